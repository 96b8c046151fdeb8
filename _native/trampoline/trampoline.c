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
 *    argv = [name, sync fd, exec.sock listener fd, seccomp memfd or -1, seccomp flags, path,
 *    user argv0, ...].  It reports CREATED on the sync socket, accepts `start`'s connection, takes its
 *    GO, loads the seccomp program (the late, no_new_privs case), and execs the user program; a
 *    failure goes back to `start` as a PYRT_MSG_ERROR (same layout as pyrt.h's struct pyrt_msg).
 *
 * No libc: a static blob of a few hundred bytes, embedded into the C core at build time.  x86_64 only
 * (the builder skips it elsewhere, and the core then execs the user program directly).
 */
#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_execve 59
#define SYS_exit 60
#define SYS_accept4 288
#define SYS_seccomp 317
#define EINTR 4
#define SOCK_CLOEXEC 02000000
#define MSG_GO 1
#define MSG_ERROR 2
#define MSG_CREATED 5
#define MAX_INSNS 4096          /* BPF_MAXINSNS: the kernel refuses longer seccomp programs */

struct msg { unsigned int type; int err; unsigned int len; unsigned int pad; };
struct sock_filter { unsigned short code; unsigned char jt, jf; unsigned int k; };
struct sock_fprog { unsigned short len; struct sock_filter *filter; };

static struct sock_filter prog[MAX_INSNS];
static char text[4096 + 64];

static long sys4(long n, long a, long b, long c, long d)
{
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}
#define sys3(n, a, b, c) sys4(n, a, b, c, 0)

static long num(const char *s)
{
    long v = 0, neg = 0;
    if (*s == '-')
        neg = 1, s++;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (*s++ - '0');
    return neg ? -v : v;
}

static __attribute__((noreturn)) void die(long fd, long err, const char *what, const char *path)
{
    struct msg *m = (struct msg *)text;
    unsigned int n = 0;
    while (*what && n < 64)
        text[sizeof *m + n++] = *what++;
    while (path && *path && n < sizeof text - sizeof *m)
        text[sizeof *m + n++] = *path++;
    m->type = MSG_ERROR;
    m->err = (int)err;
    m->len = n;
    m->pad = 0;
    if (fd >= 0)
        sys3(SYS_write, fd, (long)text, sizeof *m + n);
    for (;;)
        sys3(SYS_exit, 1, 0, 0);
}

static __attribute__((noreturn)) void wait_and_exec(long argc, char **argv, char **envp)
{
    long sync = num(argv[1]), lsn = num(argv[2]), sfd = num(argv[3]), sflags = num(argv[4]), conn, r;
    struct msg m = { MSG_CREATED, 0, 0, 0 };

    if (argc < 7)
        die(sync, 22, "pyruntime-init: bad arguments", 0);
    if (sys3(SYS_write, sync, (long)&m, sizeof m) != sizeof m)
        die(-1, 0, "", 0);                              /* create went away */
    sys3(SYS_close, sync, 0, 0);
    do
        conn = sys4(SYS_accept4, lsn, 0, 0, SOCK_CLOEXEC);
    while (conn == -EINTR);
    if (conn < 0)
        die(-1, 0, "", 0);
    sys3(SYS_close, lsn, 0, 0);
    do
        r = sys3(SYS_read, conn, (long)&m, sizeof m);
    while (r == -EINTR);
    if (r != sizeof m || m.type != MSG_GO)
        die(-1, 0, "", 0);                              /* not `start`: nobody to report to */
    if (sfd >= 0) {
        struct sock_fprog fp;
        long got = 0;
        while (got < (long)sizeof prog) {
            r = sys3(SYS_read, sfd, (long)prog + got, sizeof prog - got);
            if (r == -EINTR)
                continue;
            if (r <= 0)
                break;
            got += r;
        }
        sys3(SYS_close, sfd, 0, 0);
        fp.len = (unsigned short)(got / sizeof prog[0]);
        fp.filter = prog;
        r = sys3(SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, sflags, (long)&fp);
        if (r < 0)
            die(conn, -r, "load seccomp filter (linux.seccomp)", 0);
    }
    r = sys3(SYS_execve, (long)argv[5], (long)(argv + 6), (long)envp);
    die(conn, -r, "exec: ", argv[5]);
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
        sys3(SYS_execve, (long)argv[1], (long)(argv + 2), (long)envp);
    sys3(SYS_write, 2, (long)msg, sizeof msg - 1);
    for (;;)
        sys3(SYS_exit, 127, 0, 0);
}

__asm__(".globl _start\n_start:\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call pyrt_tramp_main\n");
