/* spawn.c — clone the container process and run the plan in it, in runc's order.
 *
 * The parent half (pyrt_spawn) runs in the runtime's Python process and returns at once; Python then
 * drives the sync protocol documented in pyrt.h.  The child half (child_main) never returns: it ends
 * in execve() or in pyrt_child_die().  The child allocates nothing: every buffer lives in the plan or
 * on its stack.
 */
#include "common.h"
#include "child.h"
#include <linux/sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include "trampoline_bin.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

int pyrt_setns(int fd, int nstype)
{
    return setns(fd, nstype) < 0 ? -errno : 0;
}

/* ---------------------------------------------------------------- child */

static char exec_path[4096];

/* Look argv[0] up like execvp would, with the container's PATH, so that a missing program is a
 * create-time error with runc's wording (podman maps "no such file or directory" to 127). */
static int lookup_exec(const struct pyrt_plan *p, char *err, size_t errlen)
{
    const char *name = p->argv[0];
    const char *path = p->path_env;
    struct stat st;

    if (!name || !*name)
        return pyrt_fail(err, errlen, 0, "exec: process.args[0] is empty");
    if (strchr(name, '/')) {
        if (stat(name, &st) < 0)
            return pyrt_fail(err, errlen, errno, "exec: %s", name);
        if (S_ISDIR(st.st_mode) || access(name, X_OK) < 0)
            return pyrt_fail(err, errlen, EACCES, "exec: %s", name);
        snprintf(exec_path, sizeof exec_path, "%s", name);
        return 0;
    }
    if (!path)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    while (*path) {
        const char *end = strchrnul(path, ':');
        size_t dl = (size_t)(end - path);
        if (dl == 0)
            snprintf(exec_path, sizeof exec_path, "./%s", name);
        else
            snprintf(exec_path, sizeof exec_path, "%.*s/%s", (int)dl, path, name);
        if (stat(exec_path, &st) == 0 && S_ISREG(st.st_mode) && access(exec_path, X_OK) == 0)
            return 0;
        path = *end ? end + 1 : end;
    }
    return pyrt_fail(err, errlen, 0, "exec: \"%s\": executable file not found in $PATH", name);
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* Close every fd except stdio, the preserved ones and `keep` (CVE-2024-21626: no host fd may reach
 * the container, and none may be open while the cwd is changed). */
static int close_fds(const struct pyrt_plan *p, const int *keep, int nkeep, char *err, size_t errlen)
{
    int k[8], n = 0, i;
    unsigned int lo = 3 + (unsigned int)(p->preserve_fds > 0 ? p->preserve_fds : 0);

    for (i = 0; i < nkeep && n < 8; i++)
        if (keep[i] >= (int)lo)
            k[n++] = keep[i];
    qsort(k, n, sizeof k[0], cmp_int);
    for (i = 0; i < n; i++) {
        if ((unsigned int)k[i] > lo && syscall(SYS_close_range, lo, (unsigned int)k[i] - 1, 0) < 0)
            return pyrt_fail(err, errlen, errno, "close_range");
        lo = (unsigned int)k[i] + 1;
    }
    if (syscall(SYS_close_range, lo, ~0U, 0) < 0)
        return pyrt_fail(err, errlen, errno, "close_range");
    for (i = 3; i < 3 + p->preserve_fds; i++) {
        int fl = fcntl(i, F_GETFD);
        if (fl >= 0 && (fl & FD_CLOEXEC) && fcntl(i, F_SETFD, fl & ~FD_CLOEXEC) < 0)
            return pyrt_fail(err, errlen, errno, "preserve-fds: fd %d", i);
    }
    return 0;
}

/* Where the runtime's own argv and environ strings live (filled by the parent before clone; the
 * child has a private copy of those pages).  /proc/PID/cmdline and /proc/PID/environ read exactly
 * these ranges, so the child overwrites them: nothing of the caller's environment (a shim's or an
 * operator's secrets) is readable through the container's /proc before the child's execve. */
static unsigned long image_arg[2], image_env[2];

static void scrub_host_strings(void)
{
    static const char name[] = "pyruntime-init";
    if (image_env[1] > image_env[0])
        memset((void *)image_env[0], 0, image_env[1] - image_env[0]);
    if (image_arg[1] > image_arg[0]) {
        size_t n = image_arg[1] - image_arg[0];
        memset((void *)image_arg[0], 0, n);
        memcpy((void *)image_arg[0], name, n > sizeof name ? sizeof name : n - 1);
    }
}

/* The pipes the runtime relays (foreground run/exec whose stdio are terminals) replace our stdio. */
static void take_stdio(const struct pyrt_plan *p, int fd)
{
    int i;
    for (i = 0; i < 3; i++) {
        if (p->stdio_fds[i] < 0)
            continue;
        if (p->stdio_fds[i] == i) {
            if (fcntl(i, F_SETFD, 0) < 0)
                pyrt_child_die(fd, errno, "stdio");
        } else if (dup2(p->stdio_fds[i], i) < 0) {
            pyrt_child_die(fd, errno, "dup2 stdio pipe");
        }
    }
}

/* With a pid namespace to join (every exec; create with linux.namespaces pid path) this process is
 * an intermediate: it lives in the runtime's pid namespace, invisible to the container, while it
 * joins the mount namespace (exec) or builds and enters the rootfs (create).  Only then does it enter
 * the pid namespace and fork the final process, which therefore appears in the container already
 * with the container's root and cwd, non-dumpable, holding no host fd (CVE-2016-9962 / CVE-2019-5736
 * class; runc 1.1 makes the create-with-joined-pid-ns init visible before pivot_root).  CLONE_PARENT
 * makes it the runtime's own child, so Python waits for it as before.  Returns in the final process. */
static void fork_into_pidns(struct pyrt_plan *p, int fd)
{
    char err[256];
    int32_t child;
    int order[2];
    long pid;

    if (setns(p->pidns_fd, CLONE_NEWPID) < 0)
        pyrt_child_die(fd, errno, "setns pid namespace");
    close(p->pidns_fd);
    p->pidns_fd = -1;
    {
        int keep[4] = { fd, p->fifo_fd, p->trampoline_fd, p->console_fd };
        if (close_fds(p, keep, 4, err, sizeof err) < 0)
            pyrt_child_die(fd, 0, err);
    }
    /* The final process waits for EOF on `order` (closed once PID is sent): PID reaches the parent
     * before anything the final process sends on the same socket. */
    if (pipe2(order, O_CLOEXEC) < 0)
        pyrt_child_die(fd, errno, "pipe");
    pid = pyrt_clone(CLONE_PARENT | SIGCHLD);
    if (pid < 0)
        pyrt_child_die(fd, errno, "clone into the pid namespace");
    if (pid == 0) {
        char c;
        close(order[1]);
        while (read(order[0], &c, 1) < 0 && errno == EINTR)
            ;
        close(order[0]);
        /* the final process: the death signal is not inherited across fork */
        if (p->pdeathsig && prctl(PR_SET_PDEATHSIG, p->pdeathsig, 0, 0, 0) < 0)
            pyrt_child_die(fd, errno, "prctl(PR_SET_PDEATHSIG)");
        return;
    }
    close(order[0]);
    child = (int32_t)pid;
    if (pyrt_send_msg(fd, PYRT_MSG_PID, 0, &child, sizeof child, -1) < 0)
        kill((pid_t)pid, SIGKILL);
    /* PID is sent: release the final process now, not at our exit, which tears down the copy of the
     * runtime's address space first (exit_mm before exit_files: ~0.3 ms on exec's critical path). */
    close(order[1]);
    _exit(0);
}

/* Append n bytes to a memfd for the waiting init; dies on failure (the child allocates nothing). */
static void memfd_put(int mfd, int fd, const void *data, size_t n, const char *what)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(mfd, (const char *)data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            pyrt_child_die(fd, errno, what);
        off += (size_t)w;
    }
}

static void memfd_str(int mfd, int fd, const char *s, const char *what)
{
    memfd_put(mfd, fd, s, strlen(s) + 1, what);
}

static void memfd_num(int mfd, int fd, long v, const char *what)
{
    char num[24];
    snprintf(num, sizeof num, "%ld", v);
    memfd_str(mfd, fd, num, what);
}

/* Rewind and seal a memfd written for the waiting init: what it reads is what the runtime wrote. */
static void memfd_seal(int mfd, int fd, const char *what)
{
    if (lseek(mfd, 0, SEEK_SET) < 0 ||
        fcntl(mfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
        pyrt_child_die(fd, errno, what);
}

/* The startContainer hooks for the waiting init, in the list trampoline.c reads: count, the state
 * JSON, then per hook timeout, path, argc, argv..., envc, envp....  -1 when there are none. */
static int hooks_memfd(const struct pyrt_plan *p, int fd)
{
    const char *what = "write the startContainer hooks";
    int mfd, i, k;

    if (p->n_start_hooks == 0)
        return -1;
    mfd = memfd_create("pyruntime-hooks", MFD_ALLOW_SEALING);
    if (mfd < 0)
        pyrt_child_die(fd, errno, "memfd for the startContainer hooks");
    memfd_num(mfd, fd, p->n_start_hooks, what);
    memfd_put(mfd, fd, p->state_buf, p->state_len, what);
    memfd_put(mfd, fd, "", 1, what);
    for (i = 0; i < p->n_start_hooks; i++) {
        const struct pyrt_hook *h = &p->start_hooks[i];
        memfd_num(mfd, fd, h->timeout, what);
        memfd_str(mfd, fd, h->path, what);
        for (k = 0; h->argv[k]; k++)
            ;
        memfd_num(mfd, fd, k, what);
        for (k = 0; h->argv[k]; k++)
            memfd_str(mfd, fd, h->argv[k], what);
        for (k = 0; h->envp[k]; k++)
            ;
        memfd_num(mfd, fd, k, what);
        for (k = 0; h->envp[k]; k++)
            memfd_str(mfd, fd, h->envp[k], what);
    }
    memfd_seal(mfd, fd, "seal the startContainer hooks");
    return mfd;
}

/* Execute the sealed trampoline (argv[0] chooses its mode); a filter that allows execve but not
 * execveat reaches the same sealed memfd by path.  Returns only on failure. */
static void exec_trampoline(const struct pyrt_plan *p, char **targv)
{
    syscall(SYS_execveat, p->trampoline_fd, "", targv, p->envp, AT_EMPTY_PATH);
    if (errno == EPERM || errno == ENOSYS || errno == EACCES) {
        char self[32];
        snprintf(self, sizeof self, "/proc/self/fd/%d", p->trampoline_fd);
        execve(self, targv, p->envp);
    }
}

/* The runtime's interpreter ignores SIGPIPE and SIGXFSZ for itself, and an ignored disposition
 * survives execve: the container's process (and its startContainer hooks) start with the default
 * actions instead, as runc's do (a pipeline's `yes | head` ends by SIGPIPE, not EPIPE errors).
 * Called after the child's last own writes (the hooks' and the seccomp program's memfds, made after
 * process.rlimits' RLIMIT_FSIZE is set: EFBIG and a clear error, not a silent death by SIGXFSZ for an
 * init outside a pid namespace of its own) and before any seccomp filter (which need not allow it). */
static void default_pipe_signals(int fd)
{
    if (signal(SIGPIPE, SIG_DFL) == SIG_ERR || signal(SIGXFSZ, SIG_DFL) == SIG_ERR)
        pyrt_child_die(fd, errno, "reset SIGPIPE and SIGXFSZ to their default actions");
}

/* Load the seccomp program now; a notify listener goes to the parent (PYRT_MSG_SECCOMP_FD). */
static void load_seccomp(const struct pyrt_plan *p, int fd)
{
    char err[PYRT_ERRLEN];
    int listener;

    if (pyrt_load_seccomp(p, &listener, err, sizeof err) < 0)
        pyrt_child_die(fd, 0, err);
    if (listener >= 0) {
        if (pyrt_send_msg(fd, PYRT_MSG_SECCOMP_FD, 0, NULL, 0, listener) < 0)
            pyrt_child_die(fd, errno, "send seccomp listener fd");
        close(listener);
    }
}

/* Create mode: wait for `start` as the sealed trampoline image, never as a copy of the runtime (issue
 * 10 item 3): from CREATED on, the init's /proc/PID/exe is a sealed memfd and /proc/PID/environ holds
 * the container's environment only.  The trampoline sends CREATED itself, then accepts on exec.sock,
 * runs the startContainer hooks (a sealed memfd with the state JSON) and execs.
 * The seccomp filter: with no_new_privs the trampoline loads it after the hooks (a sealed memfd), so
 * only execve follows it.  Without, loading it needs CAP_SYS_ADMIN, which the trampoline does not
 * have after its execve: it is loaded here, before CREATED, as runc does (its init loads such a
 * filter before dropping privileges and waiting for start), and the rest of the init runs under it;
 * pyrt_check_init_syscalls first refuses, clearly, a profile that denies what that needs.  A notify
 * filter is loaded here too: its listener must reach the parent before create returns. */
__attribute__((noreturn)) static void wait_for_start(struct pyrt_plan *p, int fd)
{
    char sync_s[16], lsn_s[16], sfd_s[16], flags_s[16], hfd_s[16], err[PYRT_ERRLEN];
    int sfd = -1, hfd, argc = 0;
    int load_now = p->seccomp_len && (!p->no_new_privs || p->seccomp_notify);

    if (p->seccomp_len && !load_now) {
        sfd = memfd_create("pyruntime-seccomp", MFD_ALLOW_SEALING);
        if (sfd < 0)
            pyrt_child_die(fd, errno, "memfd for the seccomp program");
        /* struct sock_filter is 8 bytes */
        memfd_put(sfd, fd, p->seccomp_prog, (size_t)p->seccomp_len * 8, "write the seccomp program");
        memfd_seal(sfd, fd, "seal the seccomp program");
    }
    hfd = hooks_memfd(p, fd);
    default_pipe_signals(fd);
    /* these must survive the execve; everything else is CLOEXEC or already closed */
    if (fcntl(fd, F_SETFD, 0) < 0 || fcntl(p->fifo_fd, F_SETFD, 0) < 0)
        pyrt_child_die(fd, errno, "fcntl");
    snprintf(sync_s, sizeof sync_s, "%d", fd);
    snprintf(lsn_s, sizeof lsn_s, "%d", p->fifo_fd);
    snprintf(sfd_s, sizeof sfd_s, "%d", sfd);
    snprintf(flags_s, sizeof flags_s, "%u", p->seccomp_flags);
    snprintf(hfd_s, sizeof hfd_s, "%d", hfd);
    while (p->argv[argc])
        argc++;
    if (load_now) {
        if (pyrt_check_init_syscalls(p, err, sizeof err) < 0)
            pyrt_child_die(fd, 0, err);
        /* from here on only the execve of the trampoline and the trampoline itself run */
        load_seccomp(p, fd);
    }
    {
        char *targv[argc + 8];          /* on the stack: no allocation after clone */
        targv[0] = "pyruntime-init";
        targv[1] = sync_s;
        targv[2] = lsn_s;
        targv[3] = sfd_s;
        targv[4] = flags_s;
        targv[5] = hfd_s;
        targv[6] = exec_path;
        memcpy(targv + 7, p->argv, sizeof(char *) * (size_t)(argc + 1));
        exec_trampoline(p, targv);
    }
    pyrt_child_die(fd, errno, "exec the waiting init (sealed trampoline)");
}

/* Join the container's cgroup v1 hierarchies: "0" (this thread) into each pre-opened `tasks` file.
 * Why the child and why `tasks`: any other write (cgroup.procs, or another task's pid) takes the kernel's
 * global threadgroup lock, whose writer waits an RCU grace period (6-14 ms here) unless a migration
 * happened within the last one; a thread moving itself skips that lock.  The child is single-threaded,
 * so moving the thread moves the process.  The files were opened by the runtime (open-time
 * credentials decide the permission), and this runs before the child does anything else. */
static void join_cgroups_v1(const struct pyrt_plan *p, int fd)
{
    char err[PYRT_ERRLEN];
    int i;

    for (i = 0; i < p->n_cgroup_tasks; i++) {
        if (write(p->cgroup_tasks[i], "0", 1) != 1) {
            pyrt_fail(err, sizeof err, errno, "join the container's cgroup (v1 hierarchy %d of %d: write 0 to "
                      "its tasks file)", i + 1, p->n_cgroup_tasks);
            pyrt_child_die(fd, 0, err);
        }
        if (close(p->cgroup_tasks[i]) < 0)
            pyrt_child_die(fd, errno, "close a cgroup tasks file");
    }
}

__attribute__((noreturn)) static void child_main(struct pyrt_plan *p)
{
    char err[PYRT_ERRLEN];
    struct pyrt_msg hdr;
    int fd = p->sync_fd, rootfd = -1, n;
    int cwd_done;

    err[0] = 0;
    /* First: nothing in the container may open this (host) executable through /proc/PID/exe.
     * Rootless exception: an unprivileged parent can only write the uid/gid maps of a dumpable child
     * (else /proc/PID/uid_map belongs to root); the child is alone in its new namespaces until GO,
     * reachable only by its own user, and turns non-dumpable right after. */
    if (!p->userns_dumpable && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        pyrt_child_die(fd, errno, "prctl(PR_SET_DUMPABLE)");
    join_cgroups_v1(p, fd);     /* in the container's cgroups before anything else */
    scrub_host_strings();
    if (p->pdeathsig && prctl(PR_SET_PDEATHSIG, p->pdeathsig, 0, 0, 0) < 0)
        pyrt_child_die(fd, errno, "prctl(PR_SET_PDEATHSIG)");
    umask(0);
    take_stdio(p, fd);

    /* Wait until the parent has written uid/gid maps and, where we did not join at birth (the systemd
     * driver, exec --cgroup, CLONE_INTO_CGROUP refused), put us in the cgroup. */
    n = pyrt_recv_msg(fd, &hdr, NULL, 0);
    if (n < 0 || hdr.type != PYRT_MSG_GO)
        _exit(1);     /* parent gone or aborted: nothing to report to */
    if (p->userns_dumpable && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        pyrt_child_die(fd, errno, "prctl(PR_SET_DUMPABLE)");

    /* Before joining the namespaces: an exec's intermediate joins the container's mount namespace while
     * still in the runtime's pid namespace, where the container's /proc has no /proc/self.  The value
     * is kept across the fork into the pid namespace (it lives in the signal struct). */
    if (pyrt_set_oom_score_adj(p, err, sizeof err) < 0)
        pyrt_child_die(fd, 0, err);
    if (pyrt_join_namespaces(p, err, sizeof err) < 0)
        pyrt_child_die(fd, 0, err);
    if (p->unshare_cgroupns && unshare(CLONE_NEWCGROUP) < 0)
        pyrt_child_die(fd, errno, "unshare(CLONE_NEWCGROUP)");

    /* create and exec alike: a session (and process group) of its own, as runc's nsexec does */
    if (setsid() < 0)
        pyrt_child_die(fd, errno, "setsid");
    if (p->mode == PYRT_MODE_CREATE) {
        if (pyrt_set_identity_names(p, err, sizeof err) < 0)
            pyrt_child_die(fd, 0, err);
        if ((p->clone_flags & CLONE_NEWNET) && pyrt_loopback_up(err, sizeof err) < 0)
            pyrt_child_die(fd, 0, err);
        if (p->pidns_fd >= 0 && pyrt_proc_contexts(p, err, sizeof err) < 0)
            pyrt_child_die(fd, 0, err);
        if (pyrt_prepare_rootfs(p, &rootfd, err, sizeof err) < 0)
            pyrt_child_die(fd, 0, err);
        if (p->sync_hooks) {
            if (pyrt_send_msg(fd, PYRT_MSG_HOOKS, 0, NULL, 0, -1) < 0)
                _exit(1);
            n = pyrt_recv_msg(fd, &hdr, p->state_buf, p->state_cap);
            if (n == -EPIPE)
                _exit(1);     /* the parent went away: nobody to tell */
            if (n < 0)
                pyrt_child_die(fd, -n, "receive the container state after the create hooks");
            if (hdr.type != PYRT_MSG_GO)
                _exit(1);
            p->state_len = (uint32_t)n;
        }
        if (pyrt_enter_rootfs(p, rootfd, err, sizeof err) < 0)
            pyrt_child_die(fd, 0, err);
        if (pyrt_finish_rootfs(p, err, sizeof err) < 0)
            pyrt_child_die(fd, 0, err);
    } else if (chdir("/") < 0) {
        pyrt_child_die(fd, errno, "chdir /");
    }
    if (p->pidns_fd >= 0)
        fork_into_pidns(p, fd);
    /* Own session and process group: no access to the caller's controlling terminal (TIOCSTI) and
     * kill(0) cannot reach the caller's process group. */
    if (getsid(0) != getpid() && setsid() < 0)
        pyrt_child_die(fd, errno, "setsid");

    if (p->terminal && pyrt_setup_console(p, err, sizeof err) < 0)
        pyrt_child_die(fd, 0, err);
    if (p->terminal && p->console_wait) {
        /* let the parent size the pty before the program can ask for its size */
        if (pyrt_send_msg(fd, PYRT_MSG_CONSOLE, 0, NULL, 0, -1) < 0)
            _exit(1);
        n = pyrt_recv_msg(fd, &hdr, NULL, 0);
        if (n < 0 || hdr.type != PYRT_MSG_GO)
            _exit(1);
    }
    if (pyrt_set_rlimits(p, err, sizeof err) < 0)
        pyrt_child_die(fd, 0, err);
    if (pyrt_join_keyring(p, err, sizeof err) < 0)
        pyrt_child_die(fd, 0, err);
    if (pyrt_apply_procattrs(p, err, sizeof err) < 0)
        pyrt_child_die(fd, 0, err);
    if (pyrt_set_mempolicy(p, err, sizeof err) < 0)
        pyrt_child_die(fd, 0, err);
    if (pyrt_set_home(p, err, sizeof err) < 0)
        pyrt_child_die(fd, 0, err);
    if (pyrt_fix_stdio_owner(p, err, sizeof err) < 0)
        pyrt_child_die(fd, 0, err);

    /* Every step the runtime itself needs happens before the seccomp filter is loaded, so that a
     * profile only has to allow what the user program needs plus execve (runc's rule): closing fds,
     * the cwd change and its check, the user switch, the argv[0] lookup; with no_new_privs the start
     * handshake too (see wait_for_start). */
    {
        int keep[3] = { fd, p->fifo_fd, p->trampoline_fd };
        if (close_fds(p, keep, 3, err, sizeof err) < 0)
            pyrt_child_die(fd, 0, err);
    }
    /* runc: chdir first as root (the user may not be able to reach a cwd that root can), else
     * again as the user once it is set up. */
    cwd_done = !p->cwd || chdir(p->cwd) == 0;
    if (!cwd_done && errno != EACCES)
        pyrt_child_die(fd, errno, "chdir to cwd");
    /* Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: keep it (permitted and effective
     * only, never bounding/inheritable/ambient) until the next execve (the trampoline's), which
     * recomputes the capability sets from bounding, inheritable, ambient and the file: neither the
     * waiting init nor the user program has it. */
    if (p->seccomp_len && !p->no_new_privs)
        p->cap_hold = 1ULL << 21;       /* CAP_SYS_ADMIN */
    if (pyrt_switch_user(p, err, sizeof err) < 0)
        pyrt_child_die(fd, 0, err);
    if (p->umask >= 0)
        umask((mode_t)p->umask);
    else
        umask(022);
    if (!cwd_done && chdir(p->cwd) < 0)
        pyrt_child_die(fd, errno, "chdir to cwd");
    /* A cwd reached through a leaked fd would lie outside our root: getcwd says "(unreachable)". */
    if (!getcwd(exec_path, sizeof exec_path) && errno != ERANGE)
        pyrt_child_die(fd, errno, "getcwd: cwd is outside the container root");
    if (exec_path[0] != '/')
        pyrt_child_die(fd, ENOENT, "cwd is outside the container root");
    if (lookup_exec(p, err, sizeof err) < 0)
        pyrt_child_die(fd, 0, err);

    if (p->mode == PYRT_MODE_CREATE)
        wait_for_start(p, fd);
    default_pipe_signals(fd);
    /* exec: a notify listener must reach the parent before CREATED; any other filter is loaded after
     * it, right before the execve, so that a profile only has to allow execve (runc's setns init). */
    if (p->seccomp_len && p->seccomp_notify)
        load_seccomp(p, fd);
    if (pyrt_send_msg(fd, PYRT_MSG_CREATED, 0, NULL, 0, -1) < 0)
        _exit(1);
    if (p->seccomp_len && !p->seccomp_notify)
        load_seccomp(p, fd);
    {
        int argc = 0;
        while (p->argv[argc])
            argc++;
        {
            char *targv[argc + 3];          /* on the stack: no allocation after clone */
            targv[0] = "pyruntime-exec";
            targv[1] = exec_path;
            memcpy(targv + 2, p->argv, sizeof(char *) * (size_t)(argc + 1));
            exec_trampoline(p, targv);
        }
    }
    pyrt_fail(err, sizeof err, errno, "exec: %s", exec_path);
    pyrt_child_die(fd, errno, err);
}

/* ---------------------------------------------------------------- parent */

/* A sealed, anonymous copy of the exec trampoline (see trampoline/trampoline.c). */
static int sealed_trampoline(char *err, size_t errlen)
{
    size_t off = 0;
    int fd;

    fd = memfd_create("pyruntime-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return pyrt_fail(err, errlen, errno, "memfd_create for the exec trampoline");
    while (off < pyrt_trampoline_len) {
        ssize_t n = write(fd, pyrt_trampoline + off, pyrt_trampoline_len - off);
        if (n < 0) {
            int e = errno;
            close(fd);
            return pyrt_fail(err, errlen, e, "write the exec trampoline");
        }
        off += (size_t)n;
    }
    if (fchmod(fd, 0555) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
        int e = errno;
        close(fd);
        return pyrt_fail(err, errlen, e, "seal the exec trampoline");
    }
    return fd;
}

static long do_clone(const struct pyrt_plan *p)
{
    if (p->cgroup_fd >= 0) {
        struct clone_args ca;
        memset(&ca, 0, sizeof ca);
        ca.flags = (uint64_t)p->clone_flags | CLONE_INTO_CGROUP;
        ca.exit_signal = SIGCHLD;
        ca.cgroup = (uint64_t)p->cgroup_fd;
        return syscall(SYS_clone3, &ca, sizeof ca);
    }
    return pyrt_clone(p->clone_flags | SIGCHLD);
}

static int write_file(const char *path, const char *text)
{
    int f = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;

    if (f < 0)
        return -errno;
    n = write(f, text, strlen(text));
    if (n < 0) {
        int e = errno;
        close(f);
        return -e;
    }
    close(f);
    return 0;
}

/* arg_start, arg_end, env_start, env_end of this process (fields 48-51 of /proc/self/stat): the
 * child scrubs those ranges of its copy.  Fixed for the process's life, so read once. */
static void read_image_regions(void)
{
    char buf[4096];
    unsigned long v[4];
    ssize_t n;
    char *s;
    int f, field;

    if (image_env[1])
        return;
    f = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (f < 0)
        return;
    n = read(f, buf, sizeof buf - 1);
    close(f);
    if (n <= 0)
        return;
    buf[n] = 0;
    s = strrchr(buf, ')');
    if (!s)
        return;
    for (field = 2; *s && field < 48; s++)     /* stops just past the space before field 48 */
        if (*s == ' ')
            field++;
    if (sscanf(s, "%lu %lu %lu %lu", &v[0], &v[1], &v[2], &v[3]) != 4)
        return;
    image_arg[0] = v[0], image_arg[1] = v[1], image_env[0] = v[2], image_env[1] = v[3];
}

int pyrt_spawn(struct pyrt_plan *p, int *parent_fd, char *err, size_t errlen)
{
    int sv[2], own_time = -1, rc;
    long pid;

    read_image_regions();
    p->trampoline_fd = sealed_trampoline(err, errlen);
    if (p->trampoline_fd < 0)
        return p->trampoline_fd;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        rc = pyrt_fail(err, errlen, errno, "socketpair");
        close(p->trampoline_fd);
        return rc;
    }
    p->sync_fd = sv[1];
    /* The time namespace applies to children: enter it for the clone only.  A pid namespace to join is
     * entered by the child itself, after it holds the container's root (see fork_into_pidns). */
    if (p->timens_fd >= 0 || p->timens_offsets) {
        own_time = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
        if (own_time < 0) {
            rc = pyrt_fail(err, errlen, errno, "open /proc/self/ns/time_for_children");
            goto fail;
        }
        if (p->timens_fd >= 0 ? setns(p->timens_fd, CLONE_NEWTIME) < 0 : unshare(CLONE_NEWTIME) < 0) {
            rc = pyrt_fail(err, errlen, errno, "time namespace");
            goto fail;
        }
        if (p->timens_fd < 0 && (rc = write_file("/proc/self/timens_offsets", p->timens_offsets)) < 0) {
            rc = pyrt_fail(err, errlen, -rc, "write timens_offsets (linux.timeOffsets)");
            goto fail;
        }
    }
    pid = do_clone(p);
    if (pid == 0) {
        close(sv[0]);
        child_main(p);
    }
    rc = pid < 0 ? pyrt_fail(err, errlen, errno, "clone") : (int)pid;
fail:
    if (own_time >= 0) {
        if (setns(own_time, CLONE_NEWTIME) < 0 && rc > 0)
            rc = pyrt_fail(err, errlen, errno, "restore time namespace");
        close(own_time);
    }
    close(sv[1]);
    close(p->trampoline_fd);
    if (rc < 0) {
        close(sv[0]);
        return rc;
    }
    *parent_fd = sv[0];
    return rc;
}
