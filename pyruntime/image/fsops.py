"""Path-safe file operations inside a rootfs.

Every path a layer names is resolved *inside* the rootfs, as if the rootfs were ``/``: symlinks are
followed but an absolute target or a ``..`` that would climb out is clamped at the rootfs (the kernel's
``openat2(RESOLVE_IN_ROOT)``).  Only directories are resolved that way; the last component of an entry
is always handled with ``*at`` calls and ``O_NOFOLLOW``/``AT_SYMLINK_NOFOLLOW`` relative to its
resolved parent, so an existing symlink is replaced, never written through.

``openat2`` is called through ctypes (Python has no binding).  Where the kernel lacks it (before 5.6,
or a seccomp profile returning ENOSYS/EPERM) :meth:`Root._walk` emulates RESOLVE_IN_ROOT with one
``openat(O_PATH|O_NOFOLLOW)`` per component and ``readlinkat`` for symlinks.
"""
from __future__ import annotations

import ctypes
import errno
import os
import stat

from .errors import ImageError

O_PATH = getattr(os, "O_PATH", 0o10000000)
_DIRFLAGS = O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_SYS_OPENAT2 = 437          # same number on every architecture (post-4.20 syscall table)
MAX_SYMLINKS = 40


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = None
_openat2_ok: bool | None = None


def _syscall():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc.syscall


def openat2_available() -> bool:
    """True when openat2(RESOLVE_IN_ROOT) works here (probed once)."""
    global _openat2_ok
    if _openat2_ok is None:
        try:
            fd = _openat2(os.open("/", _DIRFLAGS), ".", _DIRFLAGS, close_dirfd=True)
            os.close(fd)
            _openat2_ok = True
        except OSError:
            _openat2_ok = False
    return _openat2_ok


def _openat2(dirfd: int, path: str, flags: int, close_dirfd: bool = False) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    try:
        while True:
            fd = _syscall()(_SYS_OPENAT2, dirfd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
            if fd >= 0:
                return fd
            err = ctypes.get_errno()
            if err not in (errno.EINTR, errno.EAGAIN):
                raise OSError(err, os.strerror(err), path)
    finally:
        if close_dirfd:
            os.close(dirfd)


class Root:
    """A rootfs directory opened once; resolves directories in it and caches their fds.

    ``dir()`` returns an ``O_PATH`` fd owned by the cache: valid until :meth:`invalidate` or
    :meth:`trim` (callers call ``trim()`` between entries, never in the middle of one).
    """

    CACHE_MAX = 256

    def __init__(self, path: str, *, use_openat2: bool | None = None, mkdir_owner=None) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.use_openat2 = openat2_available() if use_openat2 is None else use_openat2
        self.mkdir_owner = mkdir_owner      # (uid, gid) for parents we create, or None
        self._cache: dict[str, int] = {}

    def close(self) -> None:
        self.invalidate()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Root":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- resolution -----------------------------------------------------------------------------
    def open(self, path: str, flags: int = _DIRFLAGS) -> int:
        """Open ``path`` (relative, '/'-separated) resolved inside the root; the caller owns the fd."""
        if not path:
            return os.open(".", flags | os.O_CLOEXEC, dir_fd=self.fd)
        if self.use_openat2:
            return _openat2(self.fd, path, flags)
        return self._walk(path, flags)

    def _walk(self, path: str, flags: int, create: bool = False) -> int:
        """RESOLVE_IN_ROOT without openat2: component by component, symlinks expanded by hand.

        With ``create``, missing directories are made on the way -- also where a symlink points
        to something that does not exist yet (its target is created inside the root, as umoci and
        containerd do)."""
        stack = [os.open(".", _DIRFLAGS, dir_fd=self.fd)]
        comps = [c for c in reversed(path.split("/"))]
        links = 0
        try:
            while comps:
                c = comps.pop()
                if c in ("", "."):
                    continue
                if c == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                    continue
                cur = stack[-1]
                last = not any(x not in ("", ".") for x in comps)
                try:
                    fd = os.open(c, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(c, 0o755, dir_fd=cur)
                    if self.mkdir_owner is not None:
                        os.chown(c, *self.mkdir_owner, dir_fd=cur, follow_symlinks=False)
                    fd = os.open(c, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
                st = os.fstat(fd)
                if stat.S_ISLNK(st.st_mode):
                    os.close(fd)
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                    target = os.readlink(c, dir_fd=cur)
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop())
                    comps.extend(reversed(target.split("/")))
                    continue
                if last:
                    if flags & os.O_DIRECTORY and not stat.S_ISDIR(st.st_mode):
                        os.close(fd)
                        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
                    if flags & O_PATH:
                        stack.append(fd)
                        break
                    os.close(fd)
                    stack.append(os.open(c, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur))
                    break
                if not stat.S_ISDIR(st.st_mode):
                    os.close(fd)
                    raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
                stack.append(fd)
            else:
                # path was all '.'/'..' components: the result is the directory we ended in
                if not flags & O_PATH:
                    fd = os.open(".", flags | os.O_CLOEXEC, dir_fd=stack[-1])
                    os.close(stack.pop())
                    stack.append(fd)
            return stack.pop()
        finally:
            for fd in stack:
                os.close(fd)

    def dir(self, path: str, create: bool = False) -> int:
        """The directory ``path`` resolved in the root (cached).  With ``create``, missing
        components are made (0755, owned by ``mkdir_owner``), like ``mkdir -p`` inside the root."""
        if not path:
            return self.fd
        fd = self._cache.get(path)
        if fd is not None:
            return fd
        try:
            fd = self.open(path)
        except FileNotFoundError:
            if not create:
                raise
            fd = self._mkdir_p(path)
        self._cache[path] = fd
        return fd

    def _mkdir_p(self, path: str) -> int:
        return self._walk(path, _DIRFLAGS, create=True)

    def invalidate(self, keep: str | None = None) -> None:
        """Forget cached directories (after removing a directory or symlink, which may be on the
        way to any of them).  ``keep`` names the parent the caller is working in."""
        kept = self._cache.pop(keep, None) if keep is not None else None
        for fd in self._cache.values():
            os.close(fd)
        self._cache.clear()
        if kept is not None:
            self._cache[keep] = kept

    def trim(self) -> None:
        if len(self._cache) > self.CACHE_MAX:
            for k in list(self._cache)[: self.CACHE_MAX // 2]:
                os.close(self._cache.pop(k))

    # -- reading files of the image (e.g. /etc/passwd) --------------------------------------------
    def read_file(self, path: str, limit: int = 16 << 20) -> bytes | None:
        """Contents of a regular file resolved in the root, or None if it does not exist."""
        try:
            fd = self.open(path.lstrip("/"), os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            if st.st_size > limit:
                raise ImageError(f"file is larger than {limit} bytes", step="read", path=path)
            chunks, n = [], 0
            while True:
                b = os.read(fd, 1 << 16)
                if not b:
                    return b"".join(chunks)
                n += len(b)
                if n > limit:
                    raise ImageError(f"file is larger than {limit} bytes", step="read", path=path)
                chunks.append(b)
        finally:
            os.close(fd)


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
    arbitrarily deep tree neither exhausts the stack nor the fd table.
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
    pfd = os.open(parent or "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        remove_tree(pfd, name)
    finally:
        os.close(pfd)
