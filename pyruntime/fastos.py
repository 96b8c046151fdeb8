"""The few ``os``/``os.path`` helpers the lifecycle commands need, on the interpreter's built-in ``posix``.

Why: importing :mod:`os` (which runs posixpath, stat and _collections_abc) costs ~1 ms of every `state`,
`kill`, `start` and `delete`, which conmon and containerd's shim call constantly, and those calls need
nothing of it but system calls (``posix`` has them all: ``os`` re-exports them) and these few tests.
Like fastjson, a subset on purpose: code off the lifecycle paths imports :mod:`os`.
"""

import _stat
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

