/* mountopts.c — the mount options that mount(2) cannot express: recursive attributes (rro, rnosuid,
 * ... via mount_setattr AT_RECURSIVE), id-mapped bind mounts (idmap/ridmap: MOUNT_ATTR_IDMAP with a
 * user namespace holding the mount's mappings) and tmpcopyup (a tmpfs filled with what it covers).
 *
 * The child half runs inside the container's mount namespace before pivot_root, on fds resolved
 * inside the rootfs by mounts.c; it allocates nothing (stack buffers, getdents64).  The parent half
 * makes, before clone and in the host's user namespace, the id-mapped trees (pyrt_idmap_userns for the
 * mapping, pyrt_idmapped_tree for the detached clone): id-mapping needs privilege over the source's
 * filesystem, which a container init in a user namespace lacks; it only attaches the tree.
 */
#include "common.h"
#include "child.h"
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

/* ------------------------------------------------------------------------ parent: userns for idmap */

static int write_map(long pid, const char *file, const char *text)
{
    char path[64];
    int fd;
    ssize_t n;

    snprintf(path, sizeof path, "/proc/%ld/%s", pid, file);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = write(fd, text, strlen(text));
    if (n < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    close(fd);
    return 0;
}

int pyrt_idmap_userns(const char *uid_map, const char *gid_map, char *err, size_t errlen)
{
    char path[64], c = 0;
    int pipefd[2], nsfd = -1, rc = 0, status;
    long pid;

    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return pyrt_fail(err, errlen, errno, "pipe for the id-mapping user namespace");
    pid = pyrt_clone(CLONE_NEWUSER | SIGCHLD);
    if (pid < 0) {
        rc = pyrt_fail(err, errlen, errno, "clone a user namespace for an id-mapped mount");
        close(pipefd[0]);
        close(pipefd[1]);
        return rc;
    }
    if (pid == 0) {
        /* only holds the namespace open until the parent has its fd: no libc state is touched */
        ssize_t r;
        close(pipefd[1]);
        do
            r = read(pipefd[0], &c, 1);
        while (r < 0 && errno == EINTR);
        _exit(0);
    }
    close(pipefd[0]);
    if ((rc = write_map(pid, "uid_map", uid_map)) < 0)
        rc = pyrt_fail(err, errlen, -rc, "write uid_map of the id-mapping user namespace (uidMappings)");
    else if ((rc = write_map(pid, "gid_map", gid_map)) < 0)
        rc = pyrt_fail(err, errlen, -rc, "write gid_map of the id-mapping user namespace (gidMappings)");
    else {
        snprintf(path, sizeof path, "/proc/%ld/ns/user", pid);
        nsfd = open(path, O_RDONLY | O_CLOEXEC);
        if (nsfd < 0)
            rc = pyrt_fail(err, errlen, errno, "open %s", path);
    }
    close(pipefd[1]);           /* the child reads EOF and exits */
    while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
        ;
    return rc < 0 ? rc : nsfd;
}

int pyrt_idmapped_tree(const char *source, int rec_clone, int rec_attr, int userns_fd, char *err, size_t errlen)
{
    struct mount_attr attr;
    int tree;

    tree = (int)syscall(SYS_open_tree, AT_FDCWD, source,
                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (rec_clone ? AT_RECURSIVE : 0));
    if (tree < 0)
        return pyrt_fail(err, errlen, errno, "open_tree %s (id-mapped bind)", source);
    memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_IDMAP;
    attr.userns_fd = (uint64_t)userns_fd;
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (rec_attr ? AT_RECURSIVE : 0), &attr, sizeof attr) < 0) {
        int e = errno;
        close(tree);
        return pyrt_fail(err, errlen, e, "id-map the mount of %s (mount_setattr MOUNT_ATTR_IDMAP; does its "
                         "filesystem support id-mapped mounts?)", source);
    }
    return tree;
}

/* ------------------------------------------------------------------------ child */

/* idmap/ridmap: the tree the runtime id-mapped (tree_fd), moved onto `destfd`. */
int pyrt_mount_idmapped(const struct pyrt_mount *m, int destfd, char *err, size_t errlen)
{
    if (syscall(SYS_move_mount, m->tree_fd, "", destfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return pyrt_fail(err, errlen, errno, "attach the id-mapped mount of %s to %s", m->source, m->dest);
    return 0;
}

/* rro, rnosuid, ...: set/clear attributes on the mount at `topfd` and every mount below it. */
int pyrt_mount_rec_attrs(const struct pyrt_mount *m, int topfd, char *err, size_t errlen)
{
    struct mount_attr attr;

    if (!m->attr_set && !m->attr_clr)
        return 0;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = m->attr_set;
    attr.attr_clr = m->attr_clr;
    if (syscall(SYS_mount_setattr, topfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
        return pyrt_fail(err, errlen, errno, "recursive mount attributes of %s (mount_setattr)", m->dest);
    return 0;
}

/* ---- tmpcopyup: copy the tree under `src` (the covered directory) into `dst` (the new tmpfs). */

struct linux_dirent64_ {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

#define COPY_DEPTH 32

static int copy_meta(int dirfd, const char *name, const struct stat *st, int is_link)
{
    struct timespec ts[2] = { st->st_atim, st->st_mtim };
    if (fchownat(dirfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EPERM &&
        errno != EINVAL)
        return -errno;
    if (!is_link && fchmodat(dirfd, name, st->st_mode & 07777, 0) < 0)
        return -errno;
    if (utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    return 0;
}

static int copy_file(int sdir, int ddir, const char *name, const struct stat *st)
{
    char buf[16384];
    int in, out, rc = 0;

    in = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (in < 0)
        return -errno;
    out = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st->st_mode & 07777);
    if (out < 0) {
        rc = -errno;
        close(in);
        return rc;
    }
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf), off = 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0)
            break;
        while (off < r) {
            ssize_t w = write(out, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = -errno;
                break;
            }
            off += w;
        }
        if (rc < 0)
            break;
    }
    close(in);
    close(out);
    return rc;
}

static int copy_tree(int sdir, int ddir, int depth, char *err, size_t errlen, const char *dest)
{
    char dents[4096];
    long n;

    if (depth > COPY_DEPTH)
        return pyrt_fail(err, errlen, ELOOP, "tmpcopyup %s: deeper than %d levels", dest, COPY_DEPTH);
    while ((n = syscall(SYS_getdents64, sdir, dents, sizeof dents)) > 0) {
        long off = 0;
        while (off < n) {
            struct linux_dirent64_ *d = (struct linux_dirent64_ *)(dents + off);
            const char *name = d->d_name;
            struct stat st;
            int rc = 0;

            off += d->d_reclen;
            if (!strcmp(name, ".") || !strcmp(name, ".."))
                continue;
            if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return pyrt_fail(err, errlen, errno, "tmpcopyup %s: stat %s", dest, name);
            if (S_ISDIR(st.st_mode)) {
                int s2, d2;
                if (mkdirat(ddir, name, 0700) < 0)
                    return pyrt_fail(err, errlen, errno, "tmpcopyup %s: mkdir %s", dest, name);
                s2 = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (s2 < 0)
                    return pyrt_fail(err, errlen, errno, "tmpcopyup %s: open %s", dest, name);
                d2 = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (d2 < 0) {
                    int e = errno;
                    close(s2);
                    return pyrt_fail(err, errlen, e, "tmpcopyup %s: open copy of %s", dest, name);
                }
                rc = copy_tree(s2, d2, depth + 1, err, errlen, dest);
                close(s2);
                close(d2);
                if (rc < 0)
                    return rc;
            } else if (S_ISLNK(st.st_mode)) {
                char target[4096];
                ssize_t l = readlinkat(sdir, name, target, sizeof target - 1);
                if (l < 0)
                    return pyrt_fail(err, errlen, errno, "tmpcopyup %s: readlink %s", dest, name);
                target[l] = 0;
                if (symlinkat(target, ddir, name) < 0)
                    return pyrt_fail(err, errlen, errno, "tmpcopyup %s: symlink %s", dest, name);
            } else if (S_ISREG(st.st_mode)) {
                rc = copy_file(sdir, ddir, name, &st);
            } else if (mknodat(ddir, name, st.st_mode, st.st_rdev) < 0) {
                rc = -errno;
            }
            if (rc < 0)
                return pyrt_fail(err, errlen, -rc, "tmpcopyup %s: copy %s", dest, name);
            if ((rc = copy_meta(ddir, name, &st, S_ISLNK(st.st_mode))) < 0)
                return pyrt_fail(err, errlen, -rc, "tmpcopyup %s: ownership/mode of %s", dest, name);
        }
    }
    if (n < 0)
        return pyrt_fail(err, errlen, errno, "tmpcopyup %s: read directory", dest);
    return 0;
}

/* `lower` is a directory fd opened on the destination before the tmpfs covered it; `top` an fd of
 * the new tmpfs.  The tmpfs root takes the covered directory's mode, owner and times as well. */
int pyrt_tmpcopyup(int lower, int top, const char *dest, char *err, size_t errlen)
{
    struct stat st;
    int rc;

    if ((rc = copy_tree(lower, top, 0, err, errlen, dest)) < 0)
        return rc;
    if (fstat(lower, &st) < 0)
        return pyrt_fail(err, errlen, errno, "tmpcopyup %s: stat", dest);
    if (fchown(top, st.st_uid, st.st_gid) < 0 && errno != EPERM && errno != EINVAL)
        return pyrt_fail(err, errlen, errno, "tmpcopyup %s: chown", dest);
    if (fchmod(top, st.st_mode & 07777) < 0)
        return pyrt_fail(err, errlen, errno, "tmpcopyup %s: chmod", dest);
    return 0;
}
