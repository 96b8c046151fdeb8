/* cdef/imagefs.h — file-system calls of the image store, made by the runtime (parent) process.
 *
 * `run --image` mounts a container's rootfs as an overlay of stored layers and `delete` detaches it;
 * the unpacker resolves layer paths inside a rootfs with openat2(RESOLVE_IN_ROOT).  Python has no
 * binding for these, and ctypes would cost its import on every `run --image` and its `delete`.
 * Each returns >= 0 on success or -errno.
 * Plain declarations only: this file is both the cdef and part of the generated C source.
 */

/* mount -t overlay overlay TARGET -o DATA (relative lowerdirs resolve against the caller's cwd). */
int pyrt_mount_overlay(const char *target, const char *data);

/* umount2(TARGET, MNT_DETACH). */
int pyrt_umount_detach(const char *target);

/* openat2(DIRFD, PATH, {FLAGS|O_CLOEXEC, 0, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS}): a new fd. */
int pyrt_openat2_in_root(int dirfd, const char *path, int flags);
