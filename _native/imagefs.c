/* imagefs.c — mount, unmount and in-root open for the image store (see cdef/imagefs.h). */
#include "common.h"
#include <sys/mount.h>
#include <linux/openat2.h>

int pyrt_mount_overlay(const char *target, const char *data)
{
    if (mount("overlay", target, "overlay", 0, data) != 0)
        return -errno;
    return 0;
}

int pyrt_umount_detach(const char *target)
{
    if (umount2(target, MNT_DETACH) != 0)
        return -errno;
    return 0;
}

int pyrt_openat2_in_root(int dirfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(unsigned)(flags | O_CLOEXEC),
        .mode = 0,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    long fd;

    do
        fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    while (fd < 0 && (errno == EINTR || errno == EAGAIN));
    return fd < 0 ? -errno : (int)fd;
}
