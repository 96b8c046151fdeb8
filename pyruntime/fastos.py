"""The few ``os``/``os.path`` helpers the lifecycle commands need, on the interpreter's built-in ``posix``,
and the runtime's one tree removal (:func:`remove_path`, :func:`remove_tree`: shutil.rmtree's job).

Why: importing :mod:`os` (which runs posixpath, stat and _collections_abc) costs ~1 ms of every `state`,
`kill`, `start` and `delete`, which conmon and containerd's shim call constantly, and those calls need
nothing of it but system calls (``posix`` has them all: ``os`` re-exports them) and these few tests.
Like fastjson, a subset on purpose: code off the lifecycle paths imports :mod:`os`.
"""

import _stat
import errno
import posix
import sys


def join(a: str, *parts: str) -> str:
    """``os.path.join`` for str paths (an absolute part starts over, as there)."""
    path = a
    for b in parts:
        if b.startswith("/"):
            path = b
        elif not path or path.endswith("/"):
            path += b
        else:
            path += "/" + b
    return path


def _mode(path: str, follow: bool) -> int:
    """st_mode of `path`, 0 when it cannot be reached (as os.path's tests answer False)."""
    try:
        return posix.stat(path, follow_symlinks=follow).st_mode
    except (OSError, ValueError):
        return 0


def exists(path: str) -> bool:
    return _mode(path, True) != 0


def lexists(path: str) -> bool:
    return _mode(path, False) != 0


def isdir(path: str) -> bool:
    return _stat.S_ISDIR(_mode(path, True))


def islink(path: str) -> bool:
    return _stat.S_ISLNK(_mode(path, False))


def read_small(path: str, size: int = 4096) -> bytes:
    """A small kernel file (/proc/PID/stat, a cgroup's freezer.state) in one read: 3 system calls
    where open() makes 8 (fstat, isatty, lseek... for its buffer)."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        return posix.read(fd, size)
    finally:
        posix.close(fd)


def getenv(name: str) -> str | None:
    """``os.environ.get(name)``: through os.environ once something imported os (it may have been changed
    there), else from the environment the process started with."""
    os = sys.modules.get("os")
    if os is not None:
        return os.environ.get(name)
    v = posix.environ.get(name.encode())
    return None if v is None else v.decode(sys.getfilesystemencoding(), "surrogateescape")


# --- removing a tree: shutil.rmtree's job, by fd and iteratively -------------------------------------------
# The one tree removal of the runtime: a container's state directory (`delete`, a failed `create`) and the
# trees hostile images make (a ``run --image`` bundle, the layer store).  Not shutil: recursive (a
# 3000-level tree from an image would end in a RecursionError), and ~10 ms of imports on every `delete`.
# Here rather than in a module of its own: `delete` loads this module anyway, a module more costs it more
# in import machinery than these functions' code.

_DIR_FLAGS = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC


def _make_writable(fd: int) -> bool:
    """Give the owner rwx on a directory so its entries can be removed (rootless cleanup, a read-only
    directory in an image layer)."""
    try:
        st = posix.fstat(fd)
        posix.chmod(f"/proc/self/fd/{fd}", _stat.S_IMODE(st.st_mode) | _stat.S_IRWXU)
        return True
    except OSError:
        return False


def _unlink_retry(name: str, dirfd: int) -> None:
    try:
        posix.unlink(name, dir_fd=dirfd)
    except FileNotFoundError:
        pass
    except PermissionError:
        if not _make_writable(dirfd):
            raise
        posix.unlink(name, dir_fd=dirfd)


def _scan_unlink(fd: int) -> list[str]:
    """Unlink every non-directory in the directory ``fd``; return the names of subdirectories (an entry
    turned into a directory since the scan, by a process racing the removal, joins them)."""
    subdirs = []
    with posix.scandir(fd) as it:
        entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    for name, is_dir in entries:
        if not is_dir:
            try:
                _unlink_retry(name, fd)
                continue
            except IsADirectoryError:
                pass
        subdirs.append(name)
    return subdirs


def _mnt_id(fd: int) -> int:
    """The mount an fd is on (``mnt_id`` of /proc/self/fdinfo): a bind mount of the same file system has
    the same st_dev, only this tells it apart; -1 without procfs (then st_dev alone is checked)."""
    try:
        info = read_small(f"/proc/self/fdinfo/{fd}")
    except OSError:
        return -1
    i = info.find(b"mnt_id:")
    return -1 if i < 0 else int(info[i + 7:info.index(b"\n", i)])


def _same_mount(fd: int, dev: int, mnt: int, name: str) -> tuple[int, int]:
    """(st_dev, st_ino) of the directory ``fd``; EBUSY when it is on another mount than (dev, mnt)."""
    st = posix.fstat(fd)
    if st.st_dev != dev or (mnt >= 0 and _mnt_id(fd) != mnt):
        raise OSError(errno.EBUSY, "refusing to remove a mount point's contents", name)
    return st.st_dev, st.st_ino


def _open_dir_nofollow(name: str, dirfd: int) -> int:
    try:
        return posix.open(name, _DIR_FLAGS, dir_fd=dirfd)
    except PermissionError:
        # no read/search permission on the directory itself: fix it (we own it) and retry
        try:
            st = posix.stat(name, dir_fd=dirfd, follow_symlinks=False)
            posix.chmod(name, _stat.S_IMODE(st.st_mode) | _stat.S_IRWXU, dir_fd=dirfd, follow_symlinks=False)
        except (OSError, NotImplementedError):
            raise PermissionError(errno.EACCES, posix.strerror(errno.EACCES), name) from None
        return posix.open(name, _DIR_FLAGS, dir_fd=dirfd)


def _rmdir_retry(name: str, dirfd: int) -> None:
    try:
        posix.rmdir(name, dir_fd=dirfd)
    except PermissionError:
        if not _make_writable(dirfd):
            raise
        posix.rmdir(name, dir_fd=dirfd)


def remove_tree(dirfd: int, name: str) -> None:
    """Remove ``name`` (any type; directories recursively) under ``dirfd`` without following symlinks:
    a symlink, even one in the place of a directory, is removed itself.  A missing name is not an error.

    Iterative and holding one directory fd at a time (it climbs back with ``..``), so a hostile,
    arbitrarily deep tree neither exhausts the stack nor the fd table; each climb checks it came back to
    the directory it descended from.  It never enters another mount, not even a bind mount of the same
    file system (a mount left inside a bundle is an error, not something to empty).
    """
    try:
        posix.unlink(name, dir_fd=dirfd)
        return
    except FileNotFoundError:
        return
    except IsADirectoryError:
        pass
    except PermissionError:
        try:
            st = posix.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not _stat.S_ISDIR(st.st_mode):
            if not _make_writable(dirfd):
                raise
            posix.unlink(name, dir_fd=dirfd)
            return
    mnt = _mnt_id(dirfd)
    cur = _open_dir_nofollow(name, dirfd)
    names = [name]
    try:
        ids = [_same_mount(cur, posix.fstat(dirfd).st_dev, mnt, name)]
        frames = [_scan_unlink(cur)]
    except BaseException:
        posix.close(cur)
        raise
    dev = ids[0][0]
    try:
        while True:
            if frames[-1]:
                sub = frames[-1].pop()
                try:
                    nxt = _open_dir_nofollow(sub, cur)
                except FileNotFoundError:
                    continue
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    _unlink_retry(sub, cur)       # swapped for a symlink or a file since the scan
                    continue
                posix.close(cur)
                cur = nxt
                ids.append(_same_mount(cur, dev, mnt, sub))
                names.append(sub)
                frames.append(_scan_unlink(cur))
                continue
            frames.pop()
            ids.pop()
            done = names.pop()
            if not frames:
                posix.close(cur)
                cur = -1
                _rmdir_retry(done, dirfd)
                return
            # Climbing by ``..`` keeps one fd open, but a racing process may have moved the directory we
            # are in (elsewhere in a volume it shares with the tree): then ``..`` is not where we came
            # from, and the names still to remove would be looked up there.  So it must be the very
            # directory we descended from.
            up = posix.open("..", posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC, dir_fd=cur)
            posix.close(cur)
            cur = up
            st = posix.fstat(cur)
            if (st.st_dev, st.st_ino) != ids[-1]:
                raise OSError(errno.EBUSY, "a directory was moved out of the tree during its removal", done)
            _rmdir_retry(done, cur)
    finally:
        if cur >= 0:
            posix.close(cur)


def _split(path: str) -> tuple[str, str]:
    """(parent, name) of ``path`` made absolute and lexically normal (``os.path.abspath``'s rules:
    ``.`` and empty parts dropped, ``..`` taking the previous part away)."""
    if not path.startswith("/"):
        path = posix.getcwd() + "/" + path
    parts: list[str] = []
    for p in path.split("/"):
        if p == "..":
            if parts:
                parts.pop()
        elif p and p != ".":
            parts.append(p)
    if not parts:
        raise OSError(errno.EBUSY, "refusing to remove /", path)
    return "/" + "/".join(parts[:-1]), parts[-1]


def remove_path(path: str) -> None:
    """Remove a host path we created (a container's state dir, a bundle) safely, whatever its contents'
    modes; a missing path is not an error.  Raises OSError for what cannot be removed (callers that
    clean up best effort catch it)."""
    parent, name = _split(path)
    try:
        pfd = posix.open(parent, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        remove_tree(pfd, name)
    finally:
        posix.close(pfd)
