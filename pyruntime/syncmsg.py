"""The sync protocol's message header and `start`'s handshake: the part of protocol.py that `start` needs,
kept apart so that `start` (which shims call for every container) loads only this (protocol.py imports
and re-exports all of it; it is the one parent<->child protocol module).

The header is ``struct pyrt_msg`` of ``_native/pyrt.h`` in the C core's (native) byte order, written and
read with int.to_bytes/from_bytes: no `struct`, no C core (cffi and libseccomp would cost `start` more than
the rest of it).  The numbers `start` needs are written here; protocol.msg() reads them from the C core
and refuses to run when they disagree, and tests/core/test_protocol_header.py checks the codec against
the core's struct layout byte for byte.
"""

import posix
import _socket as socket      # not `socket`: its enum conversions cost ms per call
import sys

from .errors import RuntimeFailure

EXEC_SOCK = "exec.sock"

# struct pyrt_msg { uint32_t type; int32_t err; uint32_t len; uint32_t pad; } in the core's byte order
HEADER_SIZE = 16
MSG_GO = 1              # PYRT_MSG_GO
MSG_ERROR = 2           # PYRT_MSG_ERROR
ERR_MAX = 4096          # PYRT_ERR_MAX: the longest error text


def pack_header(mtype: int, err: int = 0, length: int = 0, byteorder: str = sys.byteorder) -> bytes:
    """A ``struct pyrt_msg`` (``byteorder``: another architecture's, for tests of its trampoline)."""
    return (mtype.to_bytes(4, byteorder) + err.to_bytes(4, byteorder, signed=True)
            + length.to_bytes(4, byteorder) + bytes(4))


def unpack_header(data: bytes, byteorder: str = sys.byteorder) -> tuple[int, int, int]:
    """(type, err, len) of the header that starts ``data``."""
    if len(data) < HEADER_SIZE:
        raise ValueError(f"a sync message of {len(data)} bytes is shorter than its header")
    return (int.from_bytes(data[0:4], byteorder), int.from_bytes(data[4:8], byteorder, signed=True),
            int.from_bytes(data[8:12], byteorder))


def short_path(dirfd: int, name: str) -> str:
    """Unix socket paths are limited to 108 bytes; reach deep state dirs through /proc/self/fd."""
    return f"/proc/self/fd/{dirfd}/{name}"


def child_error(err: int, payload: bytes) -> RuntimeFailure:
    """The child's PYRT_MSG_ERROR as an exception (its text already names the step)."""
    text = payload.decode(errors="replace")
    if text.startswith(("sched_setattr: policy 1 ", "sched_setattr: policy 2 ")) and "not permitted" in text:
        text = ("process.scheduler: " + text + " (a real-time policy needs a real-time budget in the "
                "container's cpu cgroup: set linux.resources.cpu.realtimeRuntime)")
    return RuntimeFailure(text, errno=0 if (err and posix.strerror(err).lower() in text.lower()) else err)


def release_init(cdir: str) -> None:
    """`start`'s handshake: connect to the waiting init's exec.sock in the container dir ``cdir`` and send
    GO; EOF = the init exec'd (its end is CLOEXEC), an ERROR message = its failure (a startContainer hook,
    the seccomp filter, execve)."""
    dirfd = posix.open(cdir, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            s.connect(short_path(dirfd, EXEC_SOCK))
            s.sendmsg([pack_header(MSG_GO)])
            data = s.recv(HEADER_SIZE + ERR_MAX + 64)
        except OSError as e:
            raise RuntimeFailure.from_os(e, "start: container init is gone", "") from None
        finally:
            s.close()
    finally:
        posix.close(dirfd)
    if data:
        try:
            _, err, length = unpack_header(data)
        except ValueError as e:
            raise RuntimeFailure(f"start: {e}", step="start") from None
        raise child_error(err, data[HEADER_SIZE:HEADER_SIZE + length])
