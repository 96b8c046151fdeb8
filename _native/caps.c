/* caps.c — the process's privileges: rlimits, oom_score_adj, user and groups, the five capability
 * sets, no_new_privs, and loading the (parent-compiled) seccomp program. */
#include "common.h"
#include "child.h"
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>

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

/* Give back the caps held for a seccomp load (cap_hold) once the filter is in; best effort, since the
 * filter may deny capset: execve recomputes the sets from bounding/inheritable/ambient anyway. */
void pyrt_drop_held_caps(struct pyrt_plan *p)
{
    uint64_t held = p->cap_hold;

    p->cap_hold = 0;
    if (p->set_caps) {
        capset_all(p);
    } else {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
        struct __user_cap_data_struct d[2];
        if (p->uid == 0 || syscall(SYS_capget, &h, d) < 0)
            return;     /* root without process.capabilities keeps every cap anyway */
        d[0].effective &= ~(uint32_t)held;
        d[1].effective &= ~(uint32_t)(held >> 32);
        syscall(SYS_capset, &h, d);
    }
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
