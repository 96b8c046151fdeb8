"""The one error type of pyruntime.

Every failure the user can see is a :class:`RuntimeFailure` carrying the step that failed, the path or
field involved and the errno.  The CLI prints ``str(err)``, writes it to ``--log`` in runc's JSON shape
and exits 1.  Errors raised inside the container init travel back over the sync socket with the same
fields (see ``_native/pyrt.h``), so a failure in C reads exactly like one found by Python.
"""

import errno as _errno
import posix   # not os: see fastos.py (every command imports this module)


class RuntimeFailure(Exception):
    """A failure with context: ``step`` (what we were doing), ``path`` (what we did it to), ``errno``."""

    def __init__(self, message: str, *, step: str = "", path: str = "", errno: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.path = path
        self.errno = errno

    def __str__(self) -> str:
        parts = [p for p in (self.step, self.path) if p]
        text = ": ".join(parts + [self.message]) if parts else self.message
        if self.errno and posix.strerror(self.errno).lower() not in text.lower():
            text += ": " + posix.strerror(self.errno).lower()
        return text

    @classmethod
    def from_os(cls, exc: OSError, step: str, path: str = "") -> "RuntimeFailure":
        """Wrap an OSError so the message names the step and path, runc-style lower-case strerror."""
        err = exc.errno or _errno.EIO
        return cls(posix.strerror(err).lower(), step=step, path=path or (exc.filename or ""), errno=err)


class ConfigError(RuntimeFailure):
    """config.json is malformed: the message names the JSON path (``linux.namespaces[2].type``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, step="config.json", path=field)
        self.field = field


class ContainerNotFound(RuntimeFailure):
    """Texts that containerd and podman match on: "container ... does not exist"."""

    def __init__(self, cid: str) -> None:
        super().__init__(f"container {cid} does not exist")


class ContainerExists(RuntimeFailure):
    def __init__(self, cid: str) -> None:
        super().__init__(f"container with id {cid} already exists")


class NotRunning(RuntimeFailure):
    def __init__(self, cid: str = "") -> None:
        super().__init__("container not running")
