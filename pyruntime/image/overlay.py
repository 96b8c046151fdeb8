"""A container rootfs as an overlay of store layers, and the removal of image bundles.

``mount -t overlay`` takes all lower directories in one option string of at most a page (4096 bytes);
the layer directories are given relative to the store's ``layers/`` directory (the mount is made with
that as the working directory), so about 60 layers fit.  Beyond that, or where overlayfs is missing
(an old kernel, a store on a file system overlayfs cannot use as upper), the caller falls back to a
full copy.

:func:`remove_bundle` is what ``delete`` calls for a ``run --image`` bundle: it is imported on the
lifecycle path, so it loads the C core only when there is something mounted to take away.
"""
from __future__ import annotations

import errno
import os

from ..fastos import remove_path

_PAGE = 4096
USE_FILE = "image-use"       # in the bundle: the store's record of this container, removed with it


class OverlayUnavailable(Exception):
    """Why an overlay cannot be used here (the caller copies the layers instead)."""


def mount(layers_dir: str, lowers: list[str], upper: str, work: str, target: str) -> None:
    """Mount ``target`` as an overlay: ``lowers`` (names in ``layers_dir``, topmost first) under
    ``upper``.  Raises OverlayUnavailable when overlayfs cannot do it here."""
    from .._core import lib
    opts = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
    if len(opts) >= _PAGE:
        raise OverlayUnavailable(f"{len(lowers)} layers do not fit in one overlay mount")
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(layers_dir)
        err = -lib.pyrt_mount_overlay(os.fsencode(target), opts.encode())
    finally:
        os.fchdir(cwd)
        os.close(cwd)
    if err:
        if err in (errno.ENODEV, errno.EINVAL, errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
            raise OverlayUnavailable(f"overlayfs: {os.strerror(err).lower()}")
        raise OSError(err, os.strerror(err), target)


def is_mountpoint(path: str) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
        pst = os.stat(os.path.dirname(path), follow_symlinks=False)
    except OSError:
        return False
    return st.st_dev != pst.st_dev


def unmount(path: str) -> None:
    """Detach whatever is mounted on ``path`` (nothing: no error)."""
    while is_mountpoint(path):
        from .._core import lib
        err = -lib.pyrt_umount_detach(os.fsencode(path))
        if err == errno.EINVAL:
            return
        if err:
            raise OSError(err, os.strerror(err), path)


def remove_bundle(bundle: str) -> None:
    """Take a ``run --image`` bundle away: unmount its rootfs, release its use of the image store,
    remove the directory (iteratively, by fd: trees of any depth, never across a mount)."""
    unmount(os.path.join(bundle, "rootfs"))
    try:
        with open(os.path.join(bundle, USE_FILE)) as f:
            use = f.read().strip()
        if use:
            os.unlink(use)
    except FileNotFoundError:
        pass
    remove_path(bundle)
