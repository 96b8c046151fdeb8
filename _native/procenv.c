/* procenv.c — the process's environment as runc shapes it inside the container: HOME from the
 * container's /etc/passwd, and stdio pipes made usable by a non-root process user.
 *
 * Both run in the child after the container's root is in place (create: after pivot_root; exec:
 * after setns into the mount namespace, which also sets the root), so /etc/passwd is the
 * container's own file, never the host's.  No allocation: a stack buffer and the plan's home_env.
 */
#include "common.h"
#include "child.h"
#include <sys/stat.h>

/* Parse one passwd line "name:pw:uid:gid:gecos:dir:shell"; if its uid is `uid`, copy dir to out. */
static int passwd_home(const char *line, size_t len, uint32_t uid, char *out, size_t outlen)
{
    const char *f[7];
    size_t n = 0, i;
    unsigned long v = 0;
    const char *q;

    f[n++] = line;
    for (i = 0; i < len && n < 7; i++)
        if (line[i] == ':')
            f[n++] = line + i + 1;
    if (n < 7)
        return 0;
    if (f[2] == f[3] - 1)
        return 0;       /* empty uid field */
    for (q = f[2]; q < f[3] - 1; q++) {
        if (*q < '0' || *q > '9')
            return 0;
        v = v * 10 + (unsigned long)(*q - '0');
        if (v > 0xffffffffUL)
            return 0;
    }
    if (v != uid)
        return 0;
    {
        size_t dl = (size_t)(f[6] - 1 - f[5]);
        if (dl == 0 || dl + 1 > outlen)
            return 0;
        memcpy(out, f[5], dl);
        out[dl] = 0;
    }
    return 1;
}

/* process.env without HOME: HOME=<dir of the process uid in /etc/passwd>, else HOME=/ (runc). */
int pyrt_set_home(struct pyrt_plan *p, char *err, size_t errlen)
{
    char buf[8192], home[4096];
    size_t have = 0;
    int fd, found = 0;

    (void)err;
    (void)errlen;
    if (p->home_slot < 0)
        return 0;
    home[0] = 0;
    fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            close(fd);      /* a fifo or device at /etc/passwd: no HOME from it */
            fd = -1;
        }
    }
    while (fd >= 0 && !found) {
        ssize_t r = read(fd, buf + have, sizeof buf - have);
        char *start = buf, *nl;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (have)   /* the last line without a newline */
                found = passwd_home(buf, have, p->uid, home, sizeof home);
            break;
        }
        have += (size_t)r;
        while ((nl = memchr(start, '\n', have - (size_t)(start - buf))) != NULL) {
            if (passwd_home(start, (size_t)(nl - start), p->uid, home, sizeof home)) {
                found = 1;
                break;
            }
            start = nl + 1;
        }
        if (found)
            break;
        have -= (size_t)(start - buf);
        if (have == sizeof buf)
            have = 0;       /* a line longer than the buffer: skip it */
        else
            memmove(buf, start, have);
    }
    if (fd >= 0)
        close(fd);
    snprintf(p->home_env, sizeof p->home_env, "HOME=%s", found ? home : "/");
    p->envp[p->home_slot] = p->home_env;
    return 0;
}

/* runc's fixStdioPermissions, narrowed: stdio that is a pipe or socket the runtime's caller handed
 * over (a shim's pipes) is given to the process uid so a non-root user can reopen /proc/self/fd/N.
 * Regular files, terminals and devices are left alone: chowning a host file named by a redirection
 * would hand the container's uid a file outside the container. */
int pyrt_fix_stdio_owner(const struct pyrt_plan *p, char *err, size_t errlen)
{
    int i;

    if (p->uid == 0 || p->terminal)
        return 0;
    for (i = 0; i < 3; i++) {
        struct stat st;
        if (fstat(i, &st) < 0) {
            if (errno == EBADF)
                continue;
            return pyrt_fail(err, errlen, errno, "fstat stdio fd %d", i);
        }
        if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode))
            continue;
        if (st.st_uid == p->uid)
            continue;
        /* EINVAL: the uid is not mapped here; EPERM: the pipe's owner is not mapped in our user
         * namespace.  Nothing can be done about either (runc ignores them too). */
        if (fchown(i, p->uid, (gid_t)-1) < 0 && errno != EINVAL && errno != EPERM && errno != EROFS)
            return pyrt_fail(err, errlen, errno, "chown stdio fd %d to uid %u", i, p->uid);
    }
    return 0;
}
