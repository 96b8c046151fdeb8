"""Remove trees that hostile images made: iteratively, by fd, never following a symlink.

Kept apart from :mod:`.fsops` (which loads ctypes for openat2) because ``delete`` of a ``run --image``
container imports it: a 3000-level directory tree must go away without a RecursionError, and without
the cost of shutil on the lifecycle path.
"""
from __future__ import annotations

import errno
import os
import stat


def _make_writable(fd: int) -> bool:
    """Give the owner rwx on a directory so its entries can be removed (rootless cleanup)."""
    try:
        st = os.fstat(fd)
        os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
        return True
    except OSError:
        return False


def _unlink_retry(name: str, dirfd: int) -> None:
    try:
        os.unlink(name, dir_fd=dirfd)
    except FileNotFoundError:
        pass
    except PermissionError:
        if not _make_writable(dirfd):
            raise
        os.unlink(name, dir_fd=dirfd)


def _scan_unlink(fd: int) -> list[str]:
    """Unlink every non-directory in the directory ``fd``; return the names of subdirectories."""
    subdirs = []
    with os.scandir(fd) as it:
        entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    for name, is_dir in entries:
        if is_dir:
            subdirs.append(name)
        else:
            _unlink_retry(name, fd)
    return subdirs


def _open_dir_nofollow(name: str, dirfd: int) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(name, flags, dir_fd=dirfd)
    except PermissionError:
        # no read/search permission on the directory itself: fix it (we own it) and retry
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            os.chmod(name, stat.S_IMODE(st.st_mode) | stat.S_IRWXU, dir_fd=dirfd, follow_symlinks=False)
        except (OSError, NotImplementedError):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name) from None
        return os.open(name, flags, dir_fd=dirfd)


def remove_tree(dirfd: int, name: str) -> None:
    """Remove ``name`` (any type; directories recursively) under ``dirfd`` without following symlinks.

    Iterative and holding one directory fd at a time (it climbs back with ``..``), so a hostile,
    arbitrarily deep tree neither exhausts the stack nor the fd table.  It never descends into another
    file system (a mount left inside a bundle is an error, not something to empty).
    """
    try:
        os.unlink(name, dir_fd=dirfd)
        return
    except FileNotFoundError:
        return
    except IsADirectoryError:
        pass
    except PermissionError:
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            if not _make_writable(dirfd):
                raise
            os.unlink(name, dir_fd=dirfd)
            return
    cur = _open_dir_nofollow(name, dirfd)
    names = [name]
    try:
        dev = os.fstat(cur).st_dev
        frames = [_scan_unlink(cur)]
    except BaseException:
        os.close(cur)
        raise
    try:
        while True:
            if frames[-1]:
                sub = frames[-1].pop()
                nxt = _open_dir_nofollow(sub, cur)
                os.close(cur)
                cur = nxt
                if os.fstat(cur).st_dev != dev:
                    raise OSError(errno.EBUSY, "refusing to remove a mount point's contents", sub)
                names.append(sub)
                frames.append(_scan_unlink(cur))
                continue
            frames.pop()
            done = names.pop()
            if not frames:
                os.close(cur)
                cur = -1
                try:
                    os.rmdir(done, dir_fd=dirfd)
                except PermissionError:
                    if not _make_writable(dirfd):
                        raise
                    os.rmdir(done, dir_fd=dirfd)
                return
            up = os.open("..", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=cur)
            os.close(cur)
            cur = up
            try:
                os.rmdir(done, dir_fd=cur)
            except PermissionError:
                if not _make_writable(cur):
                    raise
                os.rmdir(done, dir_fd=cur)
    finally:
        if cur >= 0:
            os.close(cur)


def remove_path(path: str) -> None:
    """Remove a host path created by us (a bundle), safely and whatever its contents' modes."""
    parent, name = os.path.split(os.path.abspath(path))
    try:
        pfd = os.open(parent or "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        remove_tree(pfd, name)
    finally:
        os.close(pfd)
