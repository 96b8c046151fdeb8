"""runc's log formats: ``--log FILE`` with ``--log-format text|json``.

containerd's shim and conmon read the *last* ``"level":"error"`` line of the JSON log to build their
error message, so every failure goes there as well as to stderr.
"""

import posix   # not os: see fastos.py (every command imports this module)
import sys
import time

_path: str | None = None
_fmt = "text"
_debug = False


def configure(path: str | None, fmt: str = "text", debug: bool = False) -> None:
    """Raises OSError when `path` cannot be opened for appending: as with runc, an unusable --log is
    an error of its own (else every later failure would be lost for the shim reading that file)."""
    global _path, _fmt, _debug
    _path, _fmt, _debug = path, fmt, debug
    if path:
        posix.close(posix.open(path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC, 0o644))


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%09dZ" % int((t % 1) * 1e9)


def _write(level: str, msg: str) -> None:
    if not _path:
        return
    if _fmt == "json":
        from . import fastjson as json    # containerd passes --log-format json on every call: no `json`/`re`
        line = json.dumps({"level": level, "msg": msg, "time": _now()}) + "\n"
    else:
        line = f'time="{_now()}" level={level} msg="{msg}"\n'
    try:
        fd = posix.open(_path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC, 0o644)
        try:
            posix.write(fd, line.encode())
        finally:
            posix.close(fd)
    except OSError:
        pass  # a log we cannot write must not hide the real error on stderr


def error(msg: str) -> None:
    """An error: to the log file (if any) and always to stderr, as runc does."""
    _write("error", msg)
    sys.stderr.write(msg + "\n")


def warning(msg: str) -> None:
    _write("warning", msg)
    sys.stderr.write("warning: " + msg + "\n")


def info(msg: str) -> None:
    """Informational lines (hook output, for instance): the log only, never the container's stdio."""
    _write("info", msg)


def debug(msg: str) -> None:
    """--debug: the steps taken, to the log; without --log to stderr in runc's text form."""
    if _debug:
        _write("debug", msg)
        if not _path:
            sys.stderr.write(f'time="{_now()}" level=debug msg="{msg}"\n')
