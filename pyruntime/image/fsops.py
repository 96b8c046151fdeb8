"""Path-safe file operations inside a rootfs.

Every path a layer names is resolved *inside* the rootfs, as if the rootfs were ``/``: symlinks are
followed but an absolute target or a ``..`` that would climb out is clamped at the rootfs (the kernel's
``openat2(RESOLVE_IN_ROOT)``).  Only directories are resolved that way; the last component of an entry
is always handled with ``*at`` calls and ``O_NOFOLLOW``/``AT_SYMLINK_NOFOLLOW`` relative to its
resolved parent, so an existing symlink is replaced, never written through.

``openat2`` is called through the C core (ctypes if it is not built).  Where the kernel lacks it (before 5.6,
or a seccomp profile returning ENOSYS/EPERM) :meth:`Root._walk` emulates RESOLVE_IN_ROOT with one
``openat(O_PATH|O_NOFOLLOW)`` per component and ``readlinkat`` for symlinks.
"""
from __future__ import annotations

import errno
import os
import stat

from .errors import ImageError
from ..fastos import remove_path, remove_tree  # noqa: F401 - re-exported

O_PATH = getattr(os, "O_PATH", 0o10000000)
_DIRFLAGS = O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_SYS_OPENAT2 = 437          # same number on every architecture (post-4.20 syscall table)
MAX_SYMLINKS = 40
#: paths this long are resolved by hand: openat2 takes at most PATH_MAX (4096) bytes
LONG_PATH = 4000


try:
    from .._core import lib as _core_lib
except ImportError:      # the unpacker also works without the C core (e.g. on a machine without gcc)
    _core_lib = None


def _OpenHow(*a):        # noqa: N802 - the ctypes struct, made on first use
    import ctypes

    class OpenHow(ctypes.Structure):
        _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]
    return OpenHow(*a)


_libc = None
_openat2_ok: bool | None = None


def _syscall():
    global _libc
    import ctypes
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
    """openat2 RESOLVE_IN_ROOT: through the C core when it is built (no ctypes import), else ctypes."""
    if _core_lib is not None:
        try:
            fd = _core_lib.pyrt_openat2_in_root(dirfd, os.fsencode(path), flags)
        finally:
            if close_dirfd:
                os.close(dirfd)
        if fd < 0:
            raise OSError(-fd, os.strerror(-fd), path)
        return fd
    import ctypes
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
        st = os.fstat(self.fd)
        self._root_id = (st.st_dev, st.st_ino)

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
        if self.use_openat2 and len(path) < LONG_PATH:
            return _openat2(self.fd, path, flags)
        return self._walk(path, flags)

    def _is_root(self, fd: int) -> bool:
        st = os.fstat(fd)
        return (st.st_dev, st.st_ino) == self._root_id

    def _walk(self, path: str, flags: int, create: bool = False, start: int | None = None) -> int:
        """RESOLVE_IN_ROOT by hand: component by component, symlinks expanded, ``..`` clamped at the root.

        Used without openat2, and for paths longer than PATH_MAX (a 3000-level tree is a valid image).
        Holds one directory fd at a time: ``..`` is the real parent of a directory reached through
        real directories only, and stays put at the root.  ``start`` is a directory already resolved
        in the root (a cached parent) to continue from.  With ``create``, missing directories are made
        on the way -- also where a symlink points to something that does not exist yet (its target is
        created inside the root, as umoci and containerd do)."""
        cur = os.open(".", _DIRFLAGS, dir_fd=self.fd if start is None else start)
        comps = [c for c in reversed(path.split("/"))]
        links = 0
        try:
            while comps:
                c = comps.pop()
                if c in ("", "."):
                    continue
                if c == "..":
                    if not self._is_root(cur):
                        up = os.open("..", _DIRFLAGS, dir_fd=cur)
                        os.close(cur)
                        cur = up
                    continue
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
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path[:200])
                    target = os.readlink(c, dir_fd=cur)
                    if target.startswith("/"):
                        top = os.open(".", _DIRFLAGS, dir_fd=self.fd)
                        os.close(cur)
                        cur = top
                    comps.extend(reversed(target.split("/")))
                    continue
                if last:
                    if flags & os.O_DIRECTORY and not stat.S_ISDIR(st.st_mode):
                        os.close(fd)
                        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path[:200])
                    if flags & O_PATH:
                        os.close(cur)
                        cur = fd
                        break
                    os.close(fd)
                    fd = os.open(c, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
                    os.close(cur)
                    cur = fd
                    break
                if not stat.S_ISDIR(st.st_mode):
                    os.close(fd)
                    raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path[:200])
                os.close(cur)
                cur = fd
            else:
                # path was all '.'/'..' components: the result is the directory we ended in
                if not flags & O_PATH:
                    fd = os.open(".", flags | os.O_CLOEXEC, dir_fd=cur)
                    os.close(cur)
                    cur = fd
            fd, cur = cur, -1
            return fd
        finally:
            if cur >= 0:
                os.close(cur)

    def dir(self, path: str, create: bool = False) -> int:
        """The directory ``path`` resolved in the root (cached).  With ``create``, missing
        components are made (0755, owned by ``mkdir_owner``), like ``mkdir -p`` inside the root.

        A path whose parent is cached continues from there (deep trees: constant work per entry
        instead of a walk from the root each time)."""
        if not path:
            return self.fd
        fd = self._cache.get(path)
        if fd is not None:
            return fd
        parent, _, base = path.rpartition("/")
        pfd = self._cache.get(parent) if parent else None
        if pfd is not None and base not in ("", ".", ".."):
            fd = self._walk(base, _DIRFLAGS, create=create, start=pfd)
        else:
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
