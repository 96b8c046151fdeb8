/* mounts.c — the container's filesystem: mounts, devices, pivot_root, masked and read-only paths.
 *
 * Every destination is resolved inside the rootfs with openat2(RESOLVE_IN_ROOT), created there if
 * missing, and mounted through its fd, so a symlink in a (hostile) rootfs can never redirect a mount,
 * a device node or a mask onto the host.  Masks bind the container's /dev/null after pivot_root, opened
 * with RESOLVE_NO_SYMLINKS and checked to be the null device (1:3): a hostile symlink fails create.
 */
#include "common.h"
#include "child.h"
#include <linux/openat2.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif

static int sys_openat2(int dirfd, const char *path, int flags, unsigned long long resolve)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)flags;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static int in_root(int rootfd, const char *path, int flags)
{
    while (*path == '/')
        path++;
    return sys_openat2(rootfd, *path ? path : ".", flags | O_CLOEXEC,
                       RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

int pyrt_open_in_root(int rootfd, const char *path, int flags, char *err, size_t errlen)
{
    int fd = in_root(rootfd, path, flags);
    if (fd < 0)
        return pyrt_fail(err, errlen, errno, "open %s inside the rootfs", path);
    return fd;
}

static int mkpath_depth(int rootfd, const char *path, int as_file, int depth, char *err, size_t errlen);

static int mkpath_in_root(int rootfd, const char *path, int as_file, char *err, size_t errlen)
{
    return mkpath_depth(rootfd, path, as_file, 0, err, errlen);
}

/* `name` in `parent` is a dangling symlink: create its target instead, resolved inside the root
 * (an absolute target means the rootfs's /, `..` stops at it), as runc does. */
static int follow_dangling(int rootfd, int parent, const char *dir, const char *name, int as_file, int depth,
                           char *err, size_t errlen)
{
    char target[4096], next[8192];
    ssize_t n;

    if (depth > 40)
        return pyrt_fail(err, errlen, ELOOP, "resolve %s/%s inside the rootfs", dir, name);
    n = readlinkat(parent, name, target, sizeof target - 1);
    if (n < 0)
        return pyrt_fail(err, errlen, errno, "readlink %s/%s inside the rootfs", dir, name);
    target[n] = 0;
    if (target[0] == '/')
        snprintf(next, sizeof next, "%s", target);
    else
        snprintf(next, sizeof next, "%s/%s", dir, target);
    return mkpath_depth(rootfd, next, as_file, depth + 1, err, errlen);
}

/* Open `path` inside the root, creating missing directories (and the last component as an empty
 * file when as_file) without ever leaving the root.  Returns an O_PATH fd. */
static int mkpath_depth(int rootfd, const char *path, int as_file, int depth, char *err, size_t errlen)
{
    char buf[4096];
    char *slash, *name;
    int fd = in_root(rootfd, path, O_PATH), parent;

    if (fd >= 0 || errno != ENOENT) {
        if (fd < 0)
            return pyrt_fail(err, errlen, errno, "open %s inside the rootfs", path);
        return fd;
    }
    if (strlen(path) >= sizeof buf)
        return pyrt_fail(err, errlen, ENAMETOOLONG, "%s", path);
    strcpy(buf, path);
    slash = strrchr(buf, '/');
    if (!slash || !slash[1])
        return pyrt_fail(err, errlen, EINVAL, "bad path %s", path);
    *slash = 0;
    name = slash + 1;
    parent = buf[0] ? mkpath_depth(rootfd, buf, 0, depth, err, errlen) : in_root(rootfd, "/", O_PATH);
    if (parent < 0)
        return parent < -1 ? parent : pyrt_fail(err, errlen, errno, "open / of the rootfs");
    {
        struct stat lst;
        if (fstatat(parent, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode)) {
            int rc = follow_dangling(rootfd, parent, buf, name, as_file, depth, err, errlen);
            close(parent);
            if (rc < 0)
                return rc;
            close(rc);
            fd = in_root(rootfd, path, O_PATH);
            return fd >= 0 ? fd : pyrt_fail(err, errlen, errno, "open %s inside the rootfs", path);
        }
    }
    if (as_file) {
        int f = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (f < 0 && errno != EEXIST) {
            int e = errno;
            close(parent);
            return pyrt_fail(err, errlen, e, "create %s inside the rootfs", path);
        }
        if (f >= 0)
            close(f);
    } else if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST) {
        int e = errno;
        close(parent);
        return pyrt_fail(err, errlen, e, "mkdir %s inside the rootfs", path);
    }
    close(parent);
    fd = in_root(rootfd, path, O_PATH);
    if (fd < 0)
        return pyrt_fail(err, errlen, errno, "open %s inside the rootfs", path);
    return fd;
}

static void fdpath(char *out, size_t len, int fd)
{
    snprintf(out, len, "/proc/self/fd/%d", fd);
}

static unsigned long locked_flags(const char *target)
{
    struct statvfs s;
    unsigned long f = 0;
    if (statvfs(target, &s) < 0)
        return 0;
    if (s.f_flag & ST_NOSUID) f |= MS_NOSUID;
    if (s.f_flag & ST_NODEV) f |= MS_NODEV;
    if (s.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
    if (s.f_flag & ST_RDONLY) f |= MS_RDONLY;
    if (s.f_flag & ST_NOATIME) f |= MS_NOATIME;
    if (s.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (s.f_flag & ST_RELATIME) f |= MS_RELATIME;
    return f;
}

#define REMOUNT_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | \
                       MS_RELATIME | MS_STRICTATIME | MS_NOSYMFOLLOW)

/* ------------------------------------------------------------------ procfs, held by fd
 *
 * procfs is mounted with fsopen/fsmount, and the mount's fd is kept: the masked and read-only paths
 * and the sysctls below a procfs destination are then resolved beneath that very mount
 * (RESOLVE_BENEATH | RESOLVE_NO_XDEV), never again through the path.  A sibling that renames the
 * directory procfs was mounted on (a shared volume, a hook) therefore cannot leave the container an
 * unmasked, writable procfs (CVE-2023-28642 / CVE-2025-52881 class).  A procfs destination must be an
 * ordinary directory, not a symlink (as runc). */
#define MAX_PROC 8
static int proc_ctx[MAX_PROC], n_proc_ctx, next_proc_ctx;  /* contexts made in a joined pid ns */
static struct { const char *dest; int fd; } procs[MAX_PROC];
static int n_procs;

static int is_proc_mount(const struct pyrt_mount *m)
{
    return m->kind == PYRT_MOUNT_PLAIN && m->fstype && strcmp(m->fstype, "proc") == 0 &&
           !(m->flags & (MS_REMOUNT | MS_BIND | MS_MOVE));
}

static unsigned long long mount_attrs(unsigned long f)
{
    unsigned long long a = 0;
    if (f & MS_RDONLY) a |= MOUNT_ATTR_RDONLY;
    if (f & MS_NOSUID) a |= MOUNT_ATTR_NOSUID;
    if (f & MS_NODEV) a |= MOUNT_ATTR_NODEV;
    if (f & MS_NOEXEC) a |= MOUNT_ATTR_NOEXEC;
    if (f & MS_NODIRATIME) a |= MOUNT_ATTR_NODIRATIME;
    if (f & MS_NOATIME) a |= MOUNT_ATTR_NOATIME;
    else if (f & MS_STRICTATIME) a |= MOUNT_ATTR_STRICTATIME;
    return a;
}

/* "hidepid=2,subset=pid" -> fsconfig calls. */
static int proc_options(int fsfd, const char *data, const char *dest, char *err, size_t errlen)
{
    char buf[1024], *opt, *save = NULL, *eq;

    if (!data || !*data)
        return 0;
    if (strlen(data) >= sizeof buf)
        return pyrt_fail(err, errlen, E2BIG, "mount proc to %s: options", dest);
    strcpy(buf, data);
    for (opt = strtok_r(buf, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        long rc;
        eq = strchr(opt, '=');
        if (eq) {
            *eq = 0;
            rc = syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, opt, eq + 1, 0);
        } else {
            rc = syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FLAG, opt, NULL, 0);
        }
        if (rc < 0)
            return pyrt_fail(err, errlen, errno, "mount proc to %s: option %s", dest, opt);
    }
    return 0;
}

static int mount_proc(int rootfd, const struct pyrt_mount *m, char *err, size_t errlen)
{
    struct stat st;
    struct mount_attr attr;
    int dfd, fsfd, mfd, rc;

    dfd = in_root(rootfd, m->dest, O_PATH | O_NOFOLLOW);
    if (dfd < 0 && errno == ENOENT) {
        dfd = mkpath_in_root(rootfd, m->dest, 0, err, errlen);
        if (dfd < 0)
            return dfd;
        close(dfd);
        dfd = in_root(rootfd, m->dest, O_PATH | O_NOFOLLOW);
    }
    if (dfd < 0)
        return pyrt_fail(err, errlen, errno, "open %s inside the rootfs", m->dest);
    if (fstat(dfd, &st) < 0 || !S_ISDIR(st.st_mode)) {
        close(dfd);
        return pyrt_fail(err, errlen, 0, "filesystem \"proc\" must be mounted on ordinary directory: %s "
                         "is a symlink or not a directory", m->dest);
    }
    if (n_procs >= MAX_PROC) {
        close(dfd);
        return pyrt_fail(err, errlen, E2BIG, "more than %d proc mounts", MAX_PROC);
    }
    fsfd = next_proc_ctx < n_proc_ctx ? proc_ctx[next_proc_ctx++] : (int)syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC);
    if (fsfd < 0) {
        close(dfd);
        return pyrt_fail(err, errlen, errno, "mount proc to %s: fsopen", m->dest);
    }
    rc = 0;
    if (m->source && *m->source && syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "source", m->source, 0) < 0)
        rc = pyrt_fail(err, errlen, errno, "mount proc to %s: source %s", m->dest, m->source);
    if (rc == 0)
        rc = proc_options(fsfd, m->data, m->dest, err, errlen);
    if (rc == 0 && syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        rc = pyrt_fail(err, errlen, errno, "mount proc to %s", m->dest);
    mfd = rc == 0 ? (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, mount_attrs(m->flags)) : -1;
    if (rc == 0 && mfd < 0)
        rc = pyrt_fail(err, errlen, errno, "mount proc to %s", m->dest);
    close(fsfd);
    if (rc == 0 && syscall(SYS_move_mount, mfd, "", dfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        rc = pyrt_fail(err, errlen, errno, "mount proc to %s", m->dest);
    close(dfd);
    if (rc == 0 && m->propagation) {
        memset(&attr, 0, sizeof attr);
        attr.propagation = m->propagation & ~(unsigned long)MS_REC;
        if (syscall(SYS_mount_setattr, mfd, "", AT_EMPTY_PATH | ((m->propagation & MS_REC) ? AT_RECURSIVE : 0),
                    &attr, sizeof attr) < 0)
            rc = pyrt_fail(err, errlen, errno, "set propagation of %s", m->dest);
    }
    if (rc < 0) {
        if (mfd >= 0)
            close(mfd);
        return rc;
    }
    procs[n_procs].dest = m->dest;
    procs[n_procs].fd = mfd;
    n_procs++;
    return 0;
}

/* Open a container path for masks, read-only paths and sysctls: beneath the procfs mount it lies
 * in, if any (by fd, wherever that mount has been moved to), else inside the root. */
static int open_target(int rootfd, const char *path, int flags)
{
    int i, fd;
    for (i = n_procs - 1; i >= 0; i--) {
        size_t l = strlen(procs[i].dest);
        const char *rest;
        if (l == 1)
            l = 0;          /* procfs on "/": every path is beneath it */
        if (strncmp(path, procs[i].dest, l) != 0 || (path[l] && path[l] != '/'))
            continue;
        rest = path + l;
        while (*rest == '/')
            rest++;
        fd = sys_openat2(procs[i].fd, *rest ? rest : ".", flags | O_CLOEXEC,
                         RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV);
        if (fd >= 0 || errno != EXDEV)
            return fd;
        /* another mount (a bind, an earlier mask) sits on the way: below the procfs mount's fd */
        return sys_openat2(procs[i].fd, *rest ? rest : ".", flags | O_CLOEXEC,
                           RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
    }
    return in_root(rootfd, path, flags);
}

/* Create with a pid namespace to join: procfs takes the pid namespace of the process that opens its
 * context, and the init enters that namespace only after pivot_root (see fork_into_pidns).  So a
 * throw-away process makes the contexts: an intermediate J drops every fd, chroots into the rootfs
 * directory and enters the pid namespace; its child H (visible there with the rootfs as root and cwd,
 * holding nothing but a socket) opens one procfs context per proc mount and sends them back. */
int pyrt_proc_contexts(const struct pyrt_plan *p, char *err, size_t errlen)
{
    int sv[2], i, n = 0, status;
    long j;

    for (i = 0; i < p->n_mounts; i++)
        n += is_proc_mount(&p->mounts[i]);
    if (n == 0)
        return 0;
    if (n > MAX_PROC)
        return pyrt_fail(err, errlen, E2BIG, "more than %d proc mounts", MAX_PROC);
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return pyrt_fail(err, errlen, errno, "procfs contexts: socketpair");
    j = pyrt_clone(SIGCHLD);
    if (j < 0)
        return pyrt_fail(err, errlen, errno, "procfs contexts: clone");
    if (j == 0) {
        int rfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC), fds[MAX_PROC];
        long h;
        if (rfd < 0 || fchdir(rfd) < 0 || chroot(".") < 0 || setns(p->pidns_fd, CLONE_NEWPID) < 0)
            _exit(2);
        if (dup2(sv[1], 0) < 0 || syscall(SYS_close_range, 1, ~0U, 0) < 0)
            _exit(3);
        h = pyrt_clone(SIGCHLD);
        if (h < 0)
            _exit(4);
        if (h == 0) {
            char dummy = 0;
            struct iovec iov = { &dummy, 1 };
            union { struct cmsghdr a; char buf[CMSG_SPACE(sizeof(int) * MAX_PROC)]; } ctl;
            struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                                 .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n) };
            struct cmsghdr *c;
            for (i = 0; i < n; i++)
                if ((fds[i] = (int)syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC)) < 0)
                    _exit(5);
            memset(&ctl, 0, sizeof ctl);
            c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
            memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
            _exit(sendmsg(0, &mh, MSG_NOSIGNAL) == 1 ? 0 : 6);
        }
        while (waitpid((pid_t)h, &status, 0) < 0 && errno == EINTR)
            ;
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 7);
    }
    close(sv[1]);
    while (waitpid((pid_t)j, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        close(sv[0]);
        return pyrt_fail(err, errlen, 0, "procfs contexts in the pid namespace to join: helper failed (step %d)",
                         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    {
        char dummy;
        struct iovec iov = { &dummy, 1 };
        union { struct cmsghdr a; char buf[CMSG_SPACE(sizeof(int) * MAX_PROC)]; } ctl;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                             .msg_controllen = sizeof ctl.buf };
        struct cmsghdr *c;
        ssize_t r = recvmsg(sv[0], &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        close(sv[0]);
        c = r == 1 ? CMSG_FIRSTHDR(&mh) : NULL;
        if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int) * (size_t)n))
            return pyrt_fail(err, errlen, EPROTO, "procfs contexts in the pid namespace to join");
        memcpy(proc_ctx, CMSG_DATA(c), sizeof(int) * (size_t)n);
        n_proc_ctx = n;
    }
    return 0;
}

static int do_mount(int rootfd, const struct pyrt_mount *m, char *err, size_t errlen)
{
    char target[64];
    int fd, top, lower = -1, rc;

    if (is_proc_mount(m))
        return mount_proc(rootfd, m, err, errlen);
    if (m->kind == PYRT_MOUNT_PLAIN && m->fstype && strcmp(m->fstype, "sysfs") == 0) {
        struct stat st;
        fd = in_root(rootfd, m->dest, O_PATH | O_NOFOLLOW);
        if (fd >= 0) {
            int bad = fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode);
            close(fd);
            if (bad)
                return pyrt_fail(err, errlen, 0, "filesystem \"sysfs\" must be mounted on ordinary directory: "
                                 "%s is a symlink or not a directory", m->dest);
        }
    }
    fd = mkpath_in_root(rootfd, m->dest, m->dest_is_file, err, errlen);
    if (fd < 0)
        return fd;
    fdpath(target, sizeof target, fd);
    if (m->tmpcopyup) {
        /* the directory the tmpfs will cover, opened before it is covered */
        lower = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (lower < 0) {
            int e = errno;
            close(fd);
            return pyrt_fail(err, errlen, e, "tmpcopyup: open %s", m->dest);
        }
    }
    if (m->kind == PYRT_MOUNT_BIND && m->idmap) {
        if ((rc = pyrt_mount_idmapped(m, fd, err, errlen)) < 0) {
            close(fd);
            return rc;
        }
    } else if (m->kind == PYRT_MOUNT_BIND) {
        if (mount(m->source, target, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0) {
            int e = errno;
            close(fd);
            return pyrt_fail(err, errlen, e, "mount %s to %s (bind)", m->source, m->dest);
        }
    } else if (mount(m->source, target, m->fstype, m->flags, m->data) < 0) {
        int e = errno;
        close(fd);
        if (lower >= 0)
            close(lower);
        return pyrt_fail(err, errlen, e, "mount %s (%s) to %s", m->source, m->fstype, m->dest);
    }
    close(fd);
    if (!(m->kind == PYRT_MOUNT_BIND && (m->flags & REMOUNT_FLAGS)) && !m->propagation && !m->attr_set &&
        !m->attr_clr && lower < 0)
        return 0;
    /* The fd above names the covered directory; reopen to reach the new mount on top of it. */
    top = in_root(rootfd, m->dest, lower >= 0 ? O_RDONLY | O_DIRECTORY : O_PATH);
    if (top < 0) {
        rc = pyrt_fail(err, errlen, errno, "reopen %s", m->dest);
        if (lower >= 0)
            close(lower);
        return rc;
    }
    if (lower >= 0) {
        rc = pyrt_tmpcopyup(lower, top, m->dest, err, errlen);
        close(lower);
        if (rc < 0) {
            close(top);
            return rc;
        }
    }
    fdpath(target, sizeof target, top);
    if (m->kind == PYRT_MOUNT_BIND && (m->flags & REMOUNT_FLAGS)) {
        unsigned long fl = MS_REMOUNT | MS_BIND | (m->flags & REMOUNT_FLAGS);
        if (mount(NULL, target, NULL, fl, NULL) < 0) {
            /* Flags locked by the source mount (user namespaces) must be kept on remount. */
            if (errno != EPERM || mount(NULL, target, NULL, fl | locked_flags(target), NULL) < 0) {
                int e = errno;
                close(top);
                return pyrt_fail(err, errlen, e, "remount %s", m->dest);
            }
        }
    }
    if ((rc = pyrt_mount_rec_attrs(m, top, err, errlen)) < 0) {
        close(top);
        return rc;
    }
    if (m->propagation && mount(NULL, target, NULL, m->propagation, NULL) < 0) {
        int e = errno;
        close(top);
        return pyrt_fail(err, errlen, e, "set propagation of %s", m->dest);
    }
    close(top);
    return 0;
}

static int make_device(int rootfd, const struct pyrt_device *d, char *err, size_t errlen)
{
    char buf[4096], target[64];
    char *slash;
    int parent, fd;

    if (d->host_path) {     /* user namespace: mknod is not allowed, bind the host's node */
        fd = mkpath_in_root(rootfd, d->path, 1, err, errlen);
        if (fd < 0)
            return fd;
        fdpath(target, sizeof target, fd);
        if (mount(d->host_path, target, NULL, MS_BIND, NULL) < 0) {
            int e = errno;
            close(fd);
            return pyrt_fail(err, errlen, e, "bind device %s to %s", d->host_path, d->path);
        }
        close(fd);
        return 0;
    }
    snprintf(buf, sizeof buf, "%s", d->path);
    slash = strrchr(buf, '/');
    if (!slash || !slash[1])
        return pyrt_fail(err, errlen, EINVAL, "device path %s", d->path);
    *slash = 0;
    parent = buf[0] ? mkpath_in_root(rootfd, buf, 0, err, errlen) : in_root(rootfd, "/", O_PATH);
    if (parent < 0)
        return parent < -1 ? parent : pyrt_fail(err, errlen, errno, "open rootfs");
    if (unlinkat(parent, slash + 1, 0) < 0 && errno != ENOENT) {
        int e = errno;
        close(parent);
        return pyrt_fail(err, errlen, e, "remove existing %s", d->path);
    }
    if (mknodat(parent, slash + 1, d->mode, makedev(d->major, d->minor)) < 0) {
        int e = errno;
        close(parent);
        return pyrt_fail(err, errlen, e, "mknod %s", d->path);
    }
    if (fchownat(parent, slash + 1, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0) {
        int e = errno;
        close(parent);
        return pyrt_fail(err, errlen, e, "chown %s", d->path);
    }
    close(parent);
    return 0;
}

static int dev_symlinks(int rootfd, char *err, size_t errlen)
{
    static const char *const links[][2] = {
        { "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" }, { "/proc/self/fd/1", "stdout" },
        { "/proc/self/fd/2", "stderr" }, { "pts/ptmx", "ptmx" },
    };
    int dev = in_root(rootfd, "/dev", O_PATH | O_DIRECTORY);
    size_t i;

    if (dev < 0)
        return pyrt_fail(err, errlen, errno, "open /dev inside the rootfs");
    for (i = 0; i < sizeof links / sizeof links[0]; i++) {
        if (i == 4)
            unlinkat(dev, links[i][1], 0);      /* a ptmx node from linux.devices yields to pts */
        if (symlinkat(links[i][0], dev, links[i][1]) < 0 && errno != EEXIST) {
            int e = errno;
            close(dev);
            return pyrt_fail(err, errlen, e, "symlink /dev/%s", links[i][1]);
        }
    }
    close(dev);
    return 0;
}

/* pivot_root refuses a new root whose parent mount is shared, and a bind under a shared parent would
 * propagate to the host: the mount holding the rootfs becomes slave (rootfsPropagation slave/rslave)
 * or private, found by walking up until mount() stops saying EINVAL (not a mount point), as runc. */
static int rootfs_parent_not_shared(const struct pyrt_plan *p, char *err, size_t errlen)
{
    unsigned long fl = (p->rootfs_propagation & MS_SLAVE) ? MS_SLAVE : MS_PRIVATE;
    char path[4096];
    char *slash;

    if (snprintf(path, sizeof path, "%s", p->rootfs) >= (int)sizeof path)
        return pyrt_fail(err, errlen, ENAMETOOLONG, "rootfs %s", p->rootfs);
    for (;;) {
        if (mount(NULL, path, NULL, fl, NULL) == 0)
            return 0;
        if (errno != EINVAL || strcmp(path, "/") == 0)
            return pyrt_fail(err, errlen, errno, "set propagation of the rootfs's parent mount %s", path);
        slash = strrchr(path, '/');
        if (slash == path)
            slash[1] = 0;
        else
            *slash = 0;
    }
}

int pyrt_prepare_rootfs(const struct pyrt_plan *p, int *rootfdp, char *err, size_t errlen)
{
    unsigned long prop = p->rootfs_propagation ? p->rootfs_propagation : (MS_SLAVE | MS_REC);
    int rootfd, i, rc;

    if (p->no_mountns) {
        /* the host's mount namespace: nothing is mounted, the rootfs is entered with chroot */
        rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
            return pyrt_fail(err, errlen, errno, "open rootfs %s", p->rootfs);
        *rootfdp = rootfd;
        return 0;
    }
    if (mount(NULL, "/", NULL, prop, NULL) < 0)
        return pyrt_fail(err, errlen, errno, "set rootfs propagation (linux.rootfsPropagation)");
    if ((rc = rootfs_parent_not_shared(p, err, errlen)) < 0)
        return rc;
    /* pivot_root needs the new root to be a mount point. */
    if (mount(p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        return pyrt_fail(err, errlen, errno, "bind mount rootfs %s", p->rootfs);
    rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return pyrt_fail(err, errlen, errno, "open rootfs %s", p->rootfs);
    *rootfdp = rootfd;
    for (i = 0; i < p->n_mounts; i++)
        if ((rc = do_mount(rootfd, &p->mounts[i], err, errlen)) < 0)
            return rc;
    for (i = 0; i < p->n_devices; i++)
        if ((rc = make_device(rootfd, &p->devices[i], err, errlen)) < 0)
            return rc;
    if (p->setup_dev && (rc = dev_symlinks(rootfd, err, errlen)) < 0)
        return rc;
    if (p->create_cwd && p->cwd) {
        /* a missing process.cwd is created (runc, crun): 0755, owned by the container's root */
        umask(022);
        rc = mkpath_in_root(rootfd, p->cwd, 0, err, errlen);
        umask(0);
        if (rc < 0)
            return rc;
        close(rc);
    }
    return 0;
}

int pyrt_enter_rootfs(const struct pyrt_plan *p, int rootfd, char *err, size_t errlen)
{
    int oldroot;

    if (fchdir(rootfd) < 0)
        return pyrt_fail(err, errlen, errno, "chdir to rootfs %s", p->rootfs);
    if (p->no_mountns) {
        if (chroot(".") < 0)
            return pyrt_fail(err, errlen, errno, "chroot %s (no mount namespace)", p->rootfs);
    } else if (p->no_pivot) {
        if (mount(p->rootfs, "/", NULL, MS_MOVE, NULL) < 0)
            return pyrt_fail(err, errlen, errno, "move rootfs to / (--no-pivot)");
        if (chroot(".") < 0)
            return pyrt_fail(err, errlen, errno, "chroot (--no-pivot)");
    } else {
        oldroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (oldroot < 0)
            return pyrt_fail(err, errlen, errno, "open old root");
        if (syscall(SYS_pivot_root, ".", ".") < 0)
            return pyrt_fail(err, errlen, errno, "pivot_root %s", p->rootfs);
        /* The old root now sits under the new one; detach it without touching the host's mounts. */
        if (fchdir(oldroot) < 0)
            return pyrt_fail(err, errlen, errno, "chdir to old root");
        if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
            return pyrt_fail(err, errlen, errno, "make old root rslave");
        if (umount2(".", MNT_DETACH) < 0)
            return pyrt_fail(err, errlen, errno, "unmount old root");
        close(oldroot);
    }
    close(rootfd);
    if (chdir("/") < 0)
        return pyrt_fail(err, errlen, errno, "chdir /");
    return 0;
}

static int move_tree(int tree, int target)
{
    return (int)syscall(SYS_move_mount, tree, "", target, "",
                        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

/* A mask: read-only empty tmpfs over a directory, the verified /dev/null (see above) over anything else. */
static int mask_path(int rootfd, int devnull, const char *path, char *err, size_t errlen)
{
    struct stat st;
    int fd = open_target(rootfd, path, O_PATH), tree;

    if (fd < 0)
        return errno == ENOENT ? 0 : pyrt_fail(err, errlen, errno, "open masked path %s", path);
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return pyrt_fail(err, errlen, e, "stat masked path %s", path);
    }
    if (S_ISDIR(st.st_mode)) {
        int fsfd = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
        tree = -1;
        if (fsfd >= 0 && syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
            tree = (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
        if (fsfd >= 0)
            close(fsfd);
    } else {
        tree = (int)syscall(SYS_open_tree, devnull, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    }
    if (tree < 0 || move_tree(tree, fd) < 0) {
        int e = errno;
        if (tree >= 0)
            close(tree);
        close(fd);
        return pyrt_fail(err, errlen, e, "mask %s", path);
    }
    close(tree);
    close(fd);
    return 0;
}

static int readonly_path(int rootfd, const char *path, char *err, size_t errlen)
{
    struct mount_attr attr;
    int fd = open_target(rootfd, path, O_PATH), tree;

    if (fd < 0)
        return errno == ENOENT ? 0 : pyrt_fail(err, errlen, errno, "open read-only path %s", path);
    memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_RDONLY;
    tree = (int)syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
    if (tree < 0 || syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0 ||
        move_tree(tree, fd) < 0) {
        int e = errno;
        if (tree >= 0)
            close(tree);
        close(fd);
        return pyrt_fail(err, errlen, e, "make %s read-only", path);
    }
    close(tree);
    close(fd);
    return 0;
}

static int write_sysctl(int rootfd, const char *key, const char *value, char *err, size_t errlen)
{
    char path[512];
    size_t i, n;
    ssize_t w;
    int fd;

    n = (size_t)snprintf(path, sizeof path, "/proc/sys/%s", key);
    for (i = strlen("/proc/sys/"); i < n && i < sizeof path; i++)
        if (path[i] == '.')
            path[i] = '/';
    fd = open_target(rootfd, path, O_WRONLY);
    if (fd < 0)
        return pyrt_fail(err, errlen, errno, "sysctl %s", key);
    w = write(fd, value, strlen(value));
    if (w < 0) {
        int e = errno;
        close(fd);
        return pyrt_fail(err, errlen, e, "sysctl %s=%s", key, value);
    }
    close(fd);
    return 0;
}

int pyrt_finish_rootfs(const struct pyrt_plan *p, char *err, size_t errlen)
{
    int rootfd, devnull = -1, i, rc = 0;

    if (p->no_mountns)
        return 0;
    rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (rootfd < 0)
        return pyrt_fail(err, errlen, errno, "open /");
    if (p->n_masked) {
        struct stat st;
        devnull = sys_openat2(rootfd, "dev/null", O_PATH | O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS);
        if (devnull < 0 || fstat(devnull, &st) < 0) {
            close(rootfd);
            return pyrt_fail(err, errlen, errno, "masked paths: open /dev/null in the container");
        }
        if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
            close(rootfd);
            close(devnull);
            return pyrt_fail(err, errlen, EPERM, "masked paths: /dev/null in the container is not the null device");
        }
    }
    for (i = 0; i < p->n_sysctl && rc == 0; i++)
        rc = write_sysctl(rootfd, p->sysctl_keys[i], p->sysctl_values[i], err, errlen);
    for (i = 0; i < p->n_masked && rc == 0; i++)
        rc = mask_path(rootfd, devnull, p->masked[i], err, errlen);
    for (i = 0; i < p->n_readonly && rc == 0; i++)
        rc = readonly_path(rootfd, p->readonly[i], err, errlen);
    if (rc == 0 && p->rootfs_readonly) {
        struct mount_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.attr_set = MOUNT_ATTR_RDONLY;
        if (syscall(SYS_mount_setattr, rootfd, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
            rc = pyrt_fail(err, errlen, errno, "make root read-only");
    }
    /* runc applies a shared/unbindable rootfsPropagation to the new / after pivot_root (only then is
     * it the container's); private and slave were already given to the rootfs's parent mount.  Last,
     * so that the masks above could still clone their sources (an unbindable tree refuses clones). */
    if (rc == 0 && p->rootfs_propagation && !(p->rootfs_propagation & (MS_PRIVATE | MS_SLAVE)) &&
        mount(NULL, "/", NULL, p->rootfs_propagation, NULL) < 0)
        rc = pyrt_fail(err, errlen, errno, "set rootfs propagation (linux.rootfsPropagation)");
    close(rootfd);
    if (devnull >= 0)
        close(devnull);
    return rc;
}
