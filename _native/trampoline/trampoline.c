/* trampoline.c — the last image the container process runs before the user program.
 *
 * CVE-2019-5736 class: the container init is a clone of the host Python process, so until execve its
 * /proc/self/exe is the host interpreter.  A user program that is a script with `#!/proc/self/exe`
 * would make the kernel run that host binary inside the container.  So the C core first executes this
 * program from a sealed memfd (execveat), and it executes the user program: /proc/self/exe is then the
 * sealed anonymous copy, never a host file.
 *
 * Two modes, chosen by argv[0]:
 *  - "pyruntime-exec": argv = [name, path, user argv0, ...]: execve(path, user argv, envp).
 *  - "pyruntime-init": the created init waits here for `start` (issue 10 item 3): from the moment
 *    create returns, the init's /proc/PID/exe is this sealed memfd and its /proc/PID/environ the
 *    container's own environment, nothing of the runtime or of whoever called create.
 *    argv = [name, sync fd, exec.sock listener fd, seccomp memfd or -1, seccomp flags, hooks memfd
 *    or -1, path, user argv0, ...].  It reports CREATED on the sync socket, accepts `start`'s
 *    connection, takes its GO, runs the startContainer hooks (each a child with the state JSON on
 *    stdin, bounded by its timeout), loads the seccomp program (the late, no_new_privs case), and
 *    execs the user program; a failure goes back to `start` as a PYRT_MSG_ERROR (same layout as
 *    pyrt.h's struct pyrt_msg).  Both memfds are read and closed before CREATED.
 *    The hooks memfd (written by spawn.c's wait_for_start) is a list of NUL-terminated strings:
 *    count, the state JSON, then per hook: timeout, path, argc, argv..., envc, envp....
 *    A seccomp filter without no_new_privs is already loaded when this starts (spawn.c): what runs
 *    here before `start` connects (write, close, accept4, read) is checked against it there.
 *
 * No libc: a static blob of a few KiB, embedded into the C core at build time (_native/build.py).
 * Portable C except one small per-architecture section (the raw syscall instruction and _start):
 * x86_64, aarch64, ppc64le, s390x and riscv64.  Syscall numbers and constants come from the kernel's
 * uapi headers of the target (<asm/unistd.h> __NR_*, no libc), so a cross compiler builds it for its
 * target; every syscall used here exists on each of those except fork (aarch64 and riscv64 have only
 * clone, used as fork there: flags SIGCHLD, no new stack).
 */
#include <asm/unistd.h>
#include <asm/errno.h>
#include <linux/fcntl.h>
#include <asm/poll.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#if !defined(__x86_64__) && !defined(__aarch64__) && !(defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)) && \
    !defined(__s390x__) && !(defined(__riscv) && __riscv_xlen == 64)
#error "trampoline.c: no syscall stub and _start for this architecture (see the per-architecture section)"
#endif

#define SOCK_CLOEXEC O_CLOEXEC          /* the kernel defines SOCK_CLOEXEC as O_CLOEXEC (linux/net.h) */
#define SIGKILL 9                       /* the same on every architecture above */
#define SIGCHLD 17
#define SIGPIPE 13
#define SIG_BLOCK 0
#define SIG_SETMASK 2
#define HOOKS_MAX (2 << 20)     /* the state JSON (PYRT_STATE_MAX, 1 MiB) plus the hooks themselves */
#define HOOK_PTRS 16384
#define MSG_GO 1
#define MSG_ERROR 2
#define MSG_CREATED 5
#define MAX_INSNS BPF_MAXINSNS  /* the kernel refuses longer seccomp programs */

struct msg { unsigned int type; int err; unsigned int len; unsigned int pad; };

struct timespec { long tv_sec, tv_nsec; };    /* 64-bit targets only: the kernel's __kernel_timespec */

static struct sock_filter prog[MAX_INSNS + 1];   /* one more: a longer program is refused */
static char text[4096 + 64];
static char hooks[HOOKS_MAX];
static char *hptr[HOOK_PTRS];

/* ---- per architecture: the raw syscall (returns -errno on failure) and _start ------------------
 * _start: the kernel leaves argc at the stack pointer, then argv[], NULL, envp[], NULL; each stub hands
 * that address to pyrt_tramp_main with the stack set up as the ABI wants for a call. */

/* aarch64, s390x, riscv64: the number in one register, the arguments in others, the result (-errno on
 * failure) in the first argument's register */
#define REG_SYSCALL(insn, rn, ra, rb, rc, rd)                                                          \
    static long sys4(long n, long a, long b, long c, long d)                                           \
    {                                                                                                  \
        register long n_ __asm__(rn) = n, a_ __asm__(ra) = a, b_ __asm__(rb) = b;                      \
        register long c_ __asm__(rc) = c, d_ __asm__(rd) = d;                                          \
        __asm__ volatile(insn : "+r"(a_) : "r"(n_), "r"(b_), "r"(c_), "r"(d_) : "memory");             \
        return a_;                                                                                     \
    }

#if defined(__x86_64__)
static long sys4(long n, long a, long b, long c, long d)
{
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}
__asm__(".globl _start\n_start:\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call pyrt_tramp_main\n");

#elif defined(__aarch64__)
REG_SYSCALL("svc 0", "x8", "x0", "x1", "x2", "x3")
/* sp is 16-byte aligned at entry; frame pointer and link register cleared (outermost frame) */
__asm__(".globl _start\n_start:\n  mov x0, sp\n  mov x29, #0\n  mov x30, #0\n  bl pyrt_tramp_main\n");

#elif defined(__powerpc64__)
/* `sc` reports failure in CR0.SO with a positive errno in r3: negated here like the other targets. */
static long sys4(long n, long a, long b, long c, long d)
{
    register long r0 __asm__("r0") = n, r3 __asm__("r3") = a, r4 __asm__("r4") = b;
    register long r5 __asm__("r5") = c, r6 __asm__("r6") = d;
    __asm__ volatile("sc\n\tbns+ 1f\n\tneg %1, %1\n1:"
                     : "+r"(r0), "+r"(r3), "+r"(r4), "+r"(r5), "+r"(r6)
                     : : "r7", "r8", "r9", "r10", "r11", "r12", "cr0", "ctr", "memory");
    return r3;
}
/* ELFv2: r2 (TOC) from our own address (bl/mflr), then a 16-byte aligned minimal frame (32 bytes) with
 * a NULL back chain before the call. */
__asm__(".globl _start\n_start:\n"
        "  bl 1f\n1:  mflr 12\n"
        "  addis 2, 12, .TOC.-1b@ha\n  addi 2, 2, .TOC.-1b@l\n"
        "  mr 3, 1\n  clrrdi 1, 1, 4\n  li 0, 0\n  stdu 0, -32(1)\n"
        "  bl pyrt_tramp_main\n  nop\n");

#elif defined(__s390x__)
REG_SYSCALL("svc 0", "r1", "r2", "r3", "r4", "r5")
/* the callee may store registers in the caller's 160-byte save area: make one, back chain 0 */
__asm__(".globl _start\n_start:\n  lgr %r2, %r15\n  aghi %r15, -160\n  xc 0(8,%r15), 0(%r15)\n"
        "  brasl %r14, pyrt_tramp_main\n");

#elif defined(__riscv)
REG_SYSCALL("ecall", "a7", "a0", "a1", "a2", "a3")
/* gp first: the linker may relax accesses to gp-relative ones */
__asm__(".globl _start\n_start:\n  .option push\n  .option norelax\n  lla gp, __global_pointer$\n"
        "  .option pop\n  mv a0, sp\n  andi sp, sp, -16\n  call pyrt_tramp_main\n");
#endif

#define sys3(n, a, b, c) sys4(n, a, b, c, 0)

/* fork: aarch64 and riscv64 have only clone (flags first there; s390x, whose clone takes the stack
 * first, has fork) */
static long sys_fork(void)
{
#ifdef __NR_fork
    return sys3(__NR_fork, 0, 0, 0);
#else
    return sys4(__NR_clone, SIGCHLD, 0, 0, 0);
#endif
}

static long num(const char *s)
{
    long v = 0, neg = 0;
    if (*s == '-')
        neg = 1, s++;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (*s++ - '0');
    return neg ? -v : v;
}

/* The error text for `start`, built piecewise (no printf here). */
static unsigned int tlen;

static void put(const char *s)
{
    while (s && *s && tlen < sizeof text - sizeof(struct msg) - 1)
        text[sizeof(struct msg) + tlen++] = *s++;
}

static void putn(long v)
{
    char d[24];
    int n = 0;
    if (v < 0) {
        put("-");
        v = -v;
    }
    do
        d[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < 23);
    d[n] = 0;
    for (int i = 0; i < n / 2; i++) {          /* the digits came least significant first */
        char c = d[i];
        d[i] = d[n - 1 - i];
        d[n - 1 - i] = c;
    }
    put(d);
}

static __attribute__((noreturn)) void die_text(long fd, long err)
{
    struct msg *m = (struct msg *)text;
    m->type = MSG_ERROR;
    m->err = (int)err;
    m->len = tlen;
    m->pad = 0;
    if (fd >= 0)
        sys3(__NR_write, fd, (long)text, sizeof *m + tlen);
    for (;;)
        sys3(__NR_exit, 1, 0, 0);
}

/* A failure with a fixed text (and a path): to `start` when fd >= 0, then exit. */
static __attribute__((noreturn)) void die(long fd, long err, const char *what, const char *path)
{
    tlen = 0;
    put(what);
    put(path);
    die_text(fd, err);
}

static long now_ms(void)
{
    struct timespec ts = { 0, 0 };
    sys3(__NR_clock_gettime, 1 /* CLOCK_MONOTONIC */, (long)&ts, 0);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Read all of the memfd `fd` into buf (at most cap - 1 bytes) and close it: returns the length, or
 * dies telling `report` (create: before CREATED, nothing of them reaches a hook or the program). */
static long read_memfd(long fd, char *buf, long cap, long report, const char *what)
{
    long got = 0, r;
    for (;;) {
        r = sys3(__NR_read, fd, (long)buf + got, cap - got);
        if (r == -EINTR)
            continue;
        if (r < 0)
            die(report, -r, what, ": read");
        if (r == 0)
            break;
        got += r;
        if (got >= cap)
            die(report, E2BIG, what, ": too large");
    }
    sys3(__NR_close, fd, 0, 0);
    return got;
}

/* Next NUL-terminated string of the hooks memfd at *off, or die on a malformed list. */
static char *next(long *off, long len, long conn)
{
    char *s = hooks + *off;
    while (*off < len && hooks[*off])
        (*off)++;
    if (*off >= len)
        die(conn, EINVAL, "startContainer hooks: malformed list", 0);
    (*off)++;
    return s;
}

/* Keep the last bytes a hook wrote (stdout and stderr), for its error text: a ring, read out once
 * (a plain shifting copy would make the compiler call memmove, and there is no libc here). */
static char ring[511], tail[512];
static long seen, tl;

static void keep(const char *b, long n)
{
    long i;
    for (i = 0; i < n; i++)
        ring[seen++ % (long)sizeof ring] = b[i];
}

static void read_tail(void)
{
    long n = seen < (long)sizeof ring ? seen : (long)sizeof ring, i;
    for (i = 0; i < n; i++)
        tail[i] = ring[(seen - n + i) % (long)sizeof ring];
    tl = n;
}

static void drain(long fd)
{
    char b[256];
    long n;
    while ((n = sys3(__NR_read, fd, (long)b, sizeof b)) > 0 || n == -EINTR)
        if (n > 0)
            keep(b, n);
}

/* Run one startContainer hook: the state JSON on its stdin, its stdout and stderr kept for the error
 * text, killed at its timeout. */
static void run_hook(long conn, long idx, char *path, char **argv, char **envp, long timeout,
                     const char *state, long state_len)
{
    int in[2], out[2];
    int status = 0;     /* wait4 stores an int: a long here reads it shifted on big-endian s390x */
    long pid, pidfd, r, timed_out = 0, deadline = timeout > 0 ? now_ms() + timeout * 1000 : -1;

    seen = 0;
    if (sys3(__NR_pipe2, (long)in, O_CLOEXEC, 0) < 0 || sys3(__NR_pipe2, (long)out, O_CLOEXEC | O_NONBLOCK, 0) < 0)
        die(conn, EINVAL, "startContainer hook: pipe ", path);
    pid = sys_fork();
    if (pid < 0)
        die(conn, -pid, "startContainer hook: fork ", path);
    if (pid == 0) {
        if (sys3(__NR_dup3, in[0], 0, 0) < 0 || sys3(__NR_dup3, out[1], 1, 0) < 0 || sys3(__NR_dup3, out[1], 2, 0) < 0)
            sys3(__NR_exit, 127, 0, 0);
        r = sys3(__NR_execve, (long)path, (long)argv, (long)envp);
        tlen = 0;
        put("exec ");
        put(path);
        put(": errno ");
        putn(-r);
        sys3(__NR_write, 2, (long)text + sizeof(struct msg), tlen);
        for (;;)
            sys3(__NR_exit, 127, 0, 0);
    }
    sys3(__NR_close, in[0], 0, 0);
    sys3(__NR_close, out[1], 0, 0);
    {
        /* A hook that does not read its stdin is fine (EPIPE), but one that has already exited makes the
         * write raise SIGPIPE, whose default action would kill the init with nobody told (`start` would
         * see EOF, i.e. success): SIGPIPE is blocked for the write, a pending one discarded, the mask
         * restored (the user program gets the init's own).  Should the filter refuse these calls, the
         * write goes unprotected, as before. */
        unsigned long pipe_set = 1UL << (SIGPIPE - 1), old_set = 0;
        struct timespec now = { 0, 0 };
        long off = 0, blocked = sys4(__NR_rt_sigprocmask, SIG_BLOCK, (long)&pipe_set, (long)&old_set,
                                     sizeof pipe_set) == 0;
        while (off < state_len) {
            r = sys3(__NR_write, in[1], (long)state + off, state_len - off);
            if (r == -EINTR)
                continue;
            if (r <= 0)
                break;
            off += r;
        }
        if (blocked) {
            if (!(old_set & pipe_set))
                sys4(__NR_rt_sigtimedwait, (long)&pipe_set, 0, (long)&now, sizeof pipe_set);
            sys4(__NR_rt_sigprocmask, SIG_SETMASK, (long)&old_set, 0, sizeof old_set);
        }
    }
    sys3(__NR_close, in[1], 0, 0);
    pidfd = sys3(__NR_pidfd_open, pid, 0, 0);
    if (pidfd < 0) {
        sys3(__NR_kill, pid, SIGKILL, 0);
        sys4(__NR_wait4, pid, (long)&status, 0, 0);
        die(conn, -pidfd, "startContainer hook: pidfd_open ", path);
    }
    for (;;) {
        struct pollfd pf[2] = { { out[0], POLLIN, 0 }, { (int)pidfd, POLLIN, 0 } };
        long left = deadline < 0 ? 1000 : deadline - now_ms();
        struct timespec ts;
        if (deadline >= 0 && left <= 0) {
            sys3(__NR_kill, pid, SIGKILL, 0);
            timed_out = 1;
            break;
        }
        ts.tv_sec = left / 1000;
        ts.tv_nsec = (left % 1000) * 1000000L;
        r = sys4(__NR_ppoll, (long)pf, 2, (long)&ts, 0);
        if (r == -EINTR || r == 0)
            continue;
        if (r < 0)
            die(conn, -r, "startContainer hook: ppoll ", path);
        if (pf[0].revents)
            drain(out[0]);
        if (pf[1].revents)
            break;
    }
    do
        r = sys4(__NR_wait4, pid, (long)&status, 0, 0);
    while (r == -EINTR);
    drain(out[0]);
    sys3(__NR_close, out[0], 0, 0);
    sys3(__NR_close, pidfd, 0, 0);
    read_tail();
    while (tl && (tail[tl - 1] == '\n' || tail[tl - 1] == ' '))
        tl--;
    tail[tl] = 0;
    tlen = 0;
    put("startContainer hook #");
    putn(idx);
    put(" ");
    put(path);
    if (timed_out) {
        put(": timed out after ");
        putn(timeout);
        put("s");
        die_text(conn, 0);
    }
    if ((status & 0x7f) != 0) {                 /* WIFSIGNALED */
        put(": killed by signal ");
        putn(status & 0x7f);
    } else if (((status >> 8) & 0xff) != 0) {    /* WEXITSTATUS */
        put(": exit status ");
        putn((status >> 8) & 0xff);
    } else {
        return;
    }
    if (tl) {
        put(": ");
        put(tail);
    }
    die_text(conn, 0);
}

/* The startContainer hooks, in order, from the list spawn.c wrote (read into hooks[], `len` bytes). */
static void run_hooks(long len, long conn)
{
    long off = 0, n, i, state_len;
    char *state;
    n = num(next(&off, len, conn));
    state_len = off;
    state = next(&off, len, conn);
    state_len = off - state_len - 1;
    for (i = 0; i < n; i++) {
        long timeout = num(next(&off, len, conn)), argc, envc, k, used = 0;
        char *path = next(&off, len, conn);
        argc = num(next(&off, len, conn));
        if (argc < 0 || argc + 2 >= HOOK_PTRS)
            die(conn, E2BIG, "startContainer hooks: too many arguments", 0);
        for (k = 0; k < argc; k++)
            hptr[used++] = next(&off, len, conn);
        hptr[used++] = 0;
        envc = num(next(&off, len, conn));
        if (envc < 0 || used + envc + 1 >= HOOK_PTRS)
            die(conn, E2BIG, "startContainer hooks: too many environment entries", 0);
        for (k = 0; k < envc; k++)
            hptr[used++] = next(&off, len, conn);
        hptr[used] = 0;
        run_hook(conn, i, path, hptr, hptr + argc + 1, timeout, state, state_len);
    }
}

static __attribute__((noreturn)) void wait_and_exec(long argc, char **argv, char **envp)
{
    long sync = num(argv[1]), lsn = num(argv[2]), sfd = num(argv[3]), sflags = num(argv[4]), conn, r;
    long hfd = num(argv[5]), hlen = 0, plen = 0;
    struct msg m = { MSG_CREATED, 0, 0, 0 };

    if (argc < 8)
        die(sync, 22, "pyruntime-init: bad arguments", 0);
    /* both memfds are read and closed first: neither reaches a hook or the user program */
    if (sfd >= 0)
        plen = read_memfd(sfd, (char *)prog, sizeof prog, sync, "seccomp program");
    if (hfd >= 0) {
        hlen = read_memfd(hfd, hooks, HOOKS_MAX - 1, sync, "startContainer hooks");
        hooks[hlen] = 0;
    }
    if (sys3(__NR_write, sync, (long)&m, sizeof m) != sizeof m)
        die(-1, 0, "", 0);                              /* create went away */
    sys3(__NR_close, sync, 0, 0);
    do
        conn = sys4(__NR_accept4, lsn, 0, 0, SOCK_CLOEXEC);
    while (conn == -EINTR);
    if (conn < 0)
        die(-1, 0, "", 0);
    sys3(__NR_close, lsn, 0, 0);
    do
        r = sys3(__NR_read, conn, (long)&m, sizeof m);
    while (r == -EINTR);
    if (r != sizeof m || m.type != MSG_GO)
        die(-1, 0, "", 0);                              /* not `start`: nobody to report to */
    if (hfd >= 0)
        run_hooks(hlen, conn);
    if (sfd >= 0) {
        struct sock_fprog fp;
        fp.len = (unsigned short)(plen / sizeof prog[0]);
        fp.filter = prog;
        r = sys3(__NR_seccomp, SECCOMP_SET_MODE_FILTER, sflags, (long)&fp);
        if (r < 0)
            die(conn, -r, "load seccomp filter (linux.seccomp)", 0);
    }
    r = sys3(__NR_execve, (long)argv[6], (long)(argv + 7), (long)envp);
    die(conn, -r, "exec: ", argv[6]);
}

__attribute__((noreturn, used)) void pyrt_tramp_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    static const char msg[] = "pyruntime: exec of the container process failed\n";
    const char *name = argv[0];

    if (name[0] == 'p' && name[10] == 'i')       /* "pyruntime-init" vs "pyruntime-exec" */
        wait_and_exec(argc, argv, envp);
    if (argc >= 3)
        sys3(__NR_execve, (long)argv[1], (long)(argv + 2), (long)envp);
    sys3(__NR_write, 2, (long)msg, sizeof msg - 1);
    for (;;)
        sys3(__NR_exit, 127, 0, 0);
}
