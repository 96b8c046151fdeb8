/* caps.c — the process's privileges: rlimits, oom_score_adj, user and groups, the five capability
 * sets, no_new_privs, and loading the (parent-compiled) seccomp program. */
#include "common.h"
#include "child.h"
#include <grp.h>
#include <seccomp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>

int pyrt_set_rlimits(const struct pyrt_plan *p, char *err, size_t errlen)
{
    int i;
    for (i = 0; i < p->n_rlimits; i++) {
        struct rlimit rl = { .rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard };
        if (setrlimit(p->rlimits[i].resource, &rl) < 0)
            return pyrt_fail(err, errlen, errno, "setrlimit (resource %d, soft %llu, hard %llu)",
                             p->rlimits[i].resource, (unsigned long long)rl.rlim_cur,
                             (unsigned long long)rl.rlim_max);
    }
    return 0;
}

int pyrt_set_oom_score_adj(const struct pyrt_plan *p, char *err, size_t errlen)
{
    char buf[16];
    int fd, n;

    if (!p->set_oom_score_adj)
        return 0;
    fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return pyrt_fail(err, errlen, errno, "open /proc/self/oom_score_adj");
    n = snprintf(buf, sizeof buf, "%d", p->oom_score_adj);
    if (write(fd, buf, (size_t)n) < 0) {
        int e = errno;
        close(fd);
        return pyrt_fail(err, errlen, e, "write oom_score_adj %d", p->oom_score_adj);
    }
    close(fd);
    return 0;
}

static int capset_all(const struct pyrt_plan *p)
{
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct d[2];

    uint64_t eff = p->cap_effective | p->cap_hold, perm = p->cap_permitted | p->cap_hold;

    d[0].effective = (uint32_t)eff;
    d[1].effective = (uint32_t)(eff >> 32);
    d[0].permitted = (uint32_t)perm;
    d[1].permitted = (uint32_t)(perm >> 32);
    d[0].inheritable = (uint32_t)p->cap_inheritable;
    d[1].inheritable = (uint32_t)(p->cap_inheritable >> 32);
    return (int)syscall(SYS_capset, &h, d);
}

/* A session keyring of the container's own, so containers never share the host's keys (runc does the
 * same unless --no-new-keyring).  Kernels or policies without keyrings: nothing to isolate, go on. */
int pyrt_join_keyring(const struct pyrt_plan *p, char *err, size_t errlen)
{
    long id;

    if (!p->session_keyring)
        return 0;
    id = syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, p->session_keyring, 0, 0, 0);
    if (id < 0) {
        if (errno == ENOSYS || errno == EACCES || errno == EPERM || errno == EDQUOT)
            return 0;
        return pyrt_fail(err, errlen, errno, "join session keyring %s", p->session_keyring);
    }
    /* possessor: all; user (the container's uid after the switch): view, read, write, search, link */
    if (syscall(SYS_keyctl, 5 /* KEYCTL_SETPERM */, id, 0x3f1b0000L, 0, 0) < 0 && errno != EACCES)
        return pyrt_fail(err, errlen, errno, "set permissions of session keyring %s", p->session_keyring);
    return 0;
}

/* linux.memoryPolicy: the NUMA policy the user program starts with (it survives execve). */
int pyrt_set_mempolicy(const struct pyrt_plan *p, char *err, size_t errlen)
{
    if (p->mempolicy_mode < 0)
        return 0;
    if (syscall(SYS_set_mempolicy, p->mempolicy_mode, p->mempolicy_maxnode ? p->mempolicy_nodes : NULL,
                p->mempolicy_maxnode) < 0)
        return pyrt_fail(err, errlen, errno, "set_mempolicy (linux.memoryPolicy)");
    return 0;
}

int pyrt_switch_user(const struct pyrt_plan *p, char *err, size_t errlen)
{
    int c;

    if (p->set_caps) {
        for (c = 0; c <= p->cap_last; c++)
            if (!(p->cap_bounding >> c & 1) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
                return pyrt_fail(err, errlen, errno, "drop capability %d from the bounding set", c);
    }
    /* Keep the permitted set across the uid change; capset below decides what stays. */
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return pyrt_fail(err, errlen, errno, "prctl(PR_SET_KEEPCAPS)");
    /* Raw syscalls, not glibc's setgroups/setresgid/setresuid: those broadcast the change to every
     * thread glibc believes the process has (__nptl_setxid) and wait for each to acknowledge.  We were
     * clone()d from a runtime that may have a thread (the cgroup warm-up), which does not exist here:
     * the wrapper would wait for it forever.  This process is single-threaded, the raw call is exact. */
    if (p->set_groups && syscall(SYS_setgroups, (size_t)p->n_groups, (const gid_t *)p->groups) < 0)
        return pyrt_fail(err, errlen, errno, "setgroups (process.user.additionalGids)");
    if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0)
        return pyrt_fail(err, errlen, errno, "setgid %u", p->gid);
    if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0)
        return pyrt_fail(err, errlen, errno, "setuid %u", p->uid);
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        return pyrt_fail(err, errlen, errno, "prctl(PR_SET_KEEPCAPS, 0)");
    if (p->set_caps) {
        if (capset_all(p) < 0)
            return pyrt_fail(err, errlen, errno, "capset (process.capabilities)");
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
            return pyrt_fail(err, errlen, errno, "clear ambient capabilities");
        /* Only caps both permitted and inheritable can be ambient; runc skips the rest silently. */
        for (c = 0; c <= p->cap_last; c++)
            if ((p->cap_ambient & p->cap_permitted & p->cap_inheritable) >> c & 1 &&
                prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
                return pyrt_fail(err, errlen, errno, "raise ambient capability %d", c);
    }
    if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return pyrt_fail(err, errlen, errno, "prctl(PR_SET_NO_NEW_PRIVS)");
    if (p->cap_hold && !p->set_caps) {
        /* no process.capabilities: a non-root uid lost its effective set at setresuid; raise the
         * held caps again (they are still permitted thanks to KEEPCAPS) */
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
        struct __user_cap_data_struct d[2];
        if (syscall(SYS_capget, &h, d) < 0)
            return pyrt_fail(err, errlen, errno, "capget");
        d[0].effective |= (uint32_t)p->cap_hold & d[0].permitted;
        d[1].effective |= (uint32_t)(p->cap_hold >> 32) & d[1].permitted;
        if (syscall(SYS_capset, &h, d) < 0)
            return pyrt_fail(err, errlen, errno, "capset (hold CAP_SYS_ADMIN for seccomp)");
    }
    return 0;
}

int pyrt_load_seccomp(const struct pyrt_plan *p, int *listener, char *err, size_t errlen)
{
    struct sock_fprog prog = { .len = (unsigned short)p->seccomp_len,
                               .filter = (struct sock_filter *)p->seccomp_prog };
    long rc;

    *listener = -1;
    if (p->seccomp_len > 0xffff)
        return pyrt_fail(err, errlen, E2BIG, "seccomp program has %u instructions", p->seccomp_len);
    rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->seccomp_flags, &prog);
    if (rc < 0)
        return pyrt_fail(err, errlen, errno, "load seccomp filter (linux.seccomp)");
    if (p->seccomp_flags & SECCOMP_FILTER_FLAG_NEW_LISTENER)
        *listener = (int)rc;
    return 0;
}

/* Run a seccomp program on one syscall as the kernel would: 0 with the returned action in *ret, or -1
 * when the program uses an instruction libseccomp does not emit (the kernel then decides alone).
 * Classic BPF only jumps forward, so this ends. */
static int bpf_eval(const struct sock_filter *f, uint32_t len, const struct seccomp_data *d, uint32_t *ret)
{
    uint32_t a = 0, pc = 0;

    while (pc < len) {
        const struct sock_filter *in = &f[pc++];
        uint32_t k = in->k;
        int t;

        switch (in->code) {
        case BPF_LD | BPF_W | BPF_ABS:
            if (k > sizeof *d - 4 || k % 4)
                return -1;
            memcpy(&a, (const char *)d + k, 4);
            continue;
        case BPF_ALU | BPF_AND | BPF_K: a &= k; continue;
        case BPF_RET | BPF_K: *ret = k; return 0;
        case BPF_JMP | BPF_JA:
            if (k >= len - pc)
                return -1;
            pc += k;
            continue;
        case BPF_JMP | BPF_JEQ | BPF_K: t = a == k; break;
        case BPF_JMP | BPF_JGT | BPF_K: t = a > k; break;
        case BPF_JMP | BPF_JGE | BPF_K: t = a >= k; break;
        case BPF_JMP | BPF_JSET | BPF_K: t = (a & k) != 0; break;
        default: return -1;
        }
        pc += t ? in->jt : in->jf;
    }
    return -1;
}

/* A filter loaded before CREATED (no no_new_privs, or notify): the waiting init (the trampoline) then
 * calls these under it, with nobody to tell if one fails before `start` connects.  So the program is
 * run on each first, here, where a refusal still reaches create.  runc's init runs its remaining
 * steps under such a filter the same way, and a profile that denies them fails there too. */
int pyrt_check_init_syscalls(const struct pyrt_plan *p, char *err, size_t errlen)
{
    static const struct { int nr; const char *name; uint64_t a2, a3; } calls[] = {
        { SYS_write, "write", 16, 0 }, { SYS_close, "close", 0, 0 },
        { SYS_accept4, "accept4", 0, SOCK_CLOEXEC }, { SYS_read, "read", 16, 0 },
    };
    struct seccomp_data d;
    uint32_t ret, act;
    size_t i;

    for (i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        memset(&d, 0, sizeof d);
        d.nr = calls[i].nr;
        d.arch = seccomp_arch_native();   /* the AUDIT_ARCH_* of the build, as the filter sees it */
        d.args[0] = 3;
        d.args[2] = calls[i].a2;
        d.args[3] = calls[i].a3;
        if (bpf_eval(p->seccomp_prog, p->seccomp_len, &d, &ret) < 0)
            return 0;
        act = ret & SECCOMP_RET_ACTION_FULL;
        if (act != SECCOMP_RET_ALLOW && act != SECCOMP_RET_LOG && act != SECCOMP_RET_USER_NOTIF)
            return pyrt_fail(err, errlen, 0, "linux.seccomp: the profile does not allow %s, which the container "
                             "init calls under the filter while it waits for start (without "
                             "process.noNewPrivileges the filter is loaded before create returns, as runc "
                             "does)", calls[i].name);
    }
    return 0;
}
