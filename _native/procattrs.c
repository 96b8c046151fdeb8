/* procattrs.c — process attributes the container init sets on itself before the user switch:
 * personality, scheduler (sched_setattr), I/O priority, CPU affinity of the final process and the
 * LSM label for the next execve (AppArmor or SELinux).
 *
 * Why here and in this order: everything that needs privilege (SCHED_FIFO, IOPRIO_CLASS_RT, writing
 * attr/exec) must happen while the init still has its full capabilities, and every attribute set on
 * the init survives execve into the user's process.  Python (procattrs.py) validated and encoded all
 * values; this file only makes the calls, each one checked, and reports "step: cause".
 */
#include "common.h"
#include <sys/personality.h>
#include <sys/statfs.h>
#include <linux/magic.h>

/* struct sched_attr as of Linux 3.14 (SCHED_ATTR_SIZE_VER0); glibc 2.36 has no declaration. */
struct pyrt_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

#ifndef SYS_sched_setattr
#define SYS_sched_setattr __NR_sched_setattr
#endif
#ifndef SYS_ioprio_set
#define SYS_ioprio_set __NR_ioprio_set
#endif
#define PYRT_IOPRIO_WHO_PROCESS 1

static int apply_personality(const struct pyrt_plan *plan, char *err, size_t errlen)
{
    if (plan->personality < 0)
        return 0;
    /* personality() returns the previous persona; -1 is the only failure value. */
    if (personality((unsigned long)plan->personality) == -1)
        return pyrt_fail(err, errlen, errno, "personality: 0x%lx", (unsigned long)plan->personality);
    return 0;
}

static int apply_sched(const struct pyrt_plan *plan, char *err, size_t errlen)
{
    struct pyrt_sched_attr attr;

    if (plan->sched_policy < 0)
        return 0;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.sched_policy = (uint32_t)plan->sched_policy;
    attr.sched_flags = plan->sched_flags;
    attr.sched_nice = plan->sched_nice;
    attr.sched_priority = (uint32_t)plan->sched_priority;
    attr.sched_runtime = plan->sched_runtime;
    attr.sched_deadline = plan->sched_deadline;
    attr.sched_period = plan->sched_period;
    if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0)
        return pyrt_fail(err, errlen, errno, "sched_setattr: policy %d priority %d nice %d",
                         plan->sched_policy, plan->sched_priority, plan->sched_nice);
    return 0;
}

static int apply_ioprio(const struct pyrt_plan *plan, char *err, size_t errlen)
{
    if (plan->ioprio < 0)
        return 0;
    if (syscall(SYS_ioprio_set, PYRT_IOPRIO_WHO_PROCESS, 0, plan->ioprio) < 0)
        return pyrt_fail(err, errlen, errno, "ioprio_set: class %d priority %d",
                         plan->ioprio >> 13, plan->ioprio & 0x1fff);
    return 0;
}

/* "0-3,7" (already normalised by procattrs.py) -> cpu_set_t, then sched_setaffinity(). */
static int apply_affinity(const struct pyrt_plan *plan, char *err, size_t errlen)
{
    cpu_set_t set;
    const char *p = plan->cpu_affinity;

    if (p == NULL)
        return 0;
    CPU_ZERO(&set);
    while (*p != '\0') {
        char *end;
        unsigned long lo = strtoul(p, &end, 10), hi;
        if (end == p)
            return pyrt_fail(err, errlen, EINVAL, "sched_setaffinity: bad cpu list \"%s\"", plan->cpu_affinity);
        hi = lo;
        p = end;
        if (*p == '-') {
            p++;
            hi = strtoul(p, &end, 10);
            if (end == p || hi < lo)
                return pyrt_fail(err, errlen, EINVAL, "sched_setaffinity: bad cpu list \"%s\"", plan->cpu_affinity);
            p = end;
        }
        if (hi >= CPU_SETSIZE)
            return pyrt_fail(err, errlen, EINVAL, "sched_setaffinity: cpu %lu is beyond %d", hi, CPU_SETSIZE - 1);
        for (unsigned long c = lo; c <= hi; c++)
            CPU_SET(c, &set);
        if (*p == ',')
            p++;
        else if (*p != '\0')
            return pyrt_fail(err, errlen, EINVAL, "sched_setaffinity: bad cpu list \"%s\"", plan->cpu_affinity);
    }
    if (sched_setaffinity(0, sizeof(set), &set) < 0)
        return pyrt_fail(err, errlen, errno, "sched_setaffinity: %s", plan->cpu_affinity);
    return 0;
}

/* Write one LSM attribute.  The file must live on a real procfs: a container that bind-mounts
 * something else over /proc could otherwise make the label write go nowhere and run unconfined
 * (the CVE-2019-16884 class), so fstatfs() checks the magic before anything is written. */
static int write_attr(const char *path, const char *text, char *err, size_t errlen, const char *step)
{
    struct statfs sfs;
    size_t len = strlen(text), off = 0;
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0)
        return pyrt_fail(err, errlen, errno, "%s: open %s", step, path);
    if (fstatfs(fd, &sfs) < 0) {
        int e = errno;
        close(fd);
        return pyrt_fail(err, errlen, e, "%s: fstatfs %s", step, path);
    }
    if (sfs.f_type != PROC_SUPER_MAGIC) {
        close(fd);
        return pyrt_fail(err, errlen, EINVAL, "%s: %s is not on procfs", step, path);
    }
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            close(fd);
            return pyrt_fail(err, errlen, e, "%s: write %s", step, path);
        }
        off += (size_t)n;
    }
    if (close(fd) < 0)
        return pyrt_fail(err, errlen, errno, "%s: close %s", step, path);
    return 0;
}

static int apply_apparmor(const struct pyrt_plan *plan, char *err, size_t errlen)
{
    char buf[4096 + 8];
    int n;

    if (plan->apparmor_profile == NULL)
        return 0;
    n = snprintf(buf, sizeof(buf), "exec %s", plan->apparmor_profile);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return pyrt_fail(err, errlen, ENAMETOOLONG, "apparmor: profile name too long");
    /* Linux 5.8+ has a per-LSM directory; older kernels only the shared attr/exec. */
    if (access("/proc/thread-self/attr/apparmor/exec", F_OK) == 0)
        return write_attr("/proc/thread-self/attr/apparmor/exec", buf, err, errlen, "apparmor");
    return write_attr("/proc/thread-self/attr/exec", buf, err, errlen, "apparmor");
}

static int apply_selinux(const struct pyrt_plan *plan, char *err, size_t errlen)
{
    if (plan->selinux_label == NULL)
        return 0;
    return write_attr("/proc/thread-self/attr/exec", plan->selinux_label, err, errlen, "selinux");
}

int pyrt_apply_procattrs(const struct pyrt_plan *plan, char *err, size_t errlen)
{
    int rc;

    if ((rc = apply_personality(plan, err, errlen)) < 0)
        return rc;
    if ((rc = apply_sched(plan, err, errlen)) < 0)
        return rc;
    if ((rc = apply_ioprio(plan, err, errlen)) < 0)
        return rc;
    if ((rc = apply_affinity(plan, err, errlen)) < 0)
        return rc;
    if ((rc = apply_apparmor(plan, err, errlen)) < 0)
        return rc;
    return apply_selinux(plan, err, errlen);
}
