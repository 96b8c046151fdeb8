"""The parent side of the sync protocol (the table in ``_native/pyrt.h``), spoken by create and exec:
spawning the C child for a plan, the message loop.  The start handshake on exec.sock (one GO header,
then EOF or an ERROR in the same layout) is control.py's: `start`, which shims call for every container,
loads neither this module nor the C core.

Message ids and the header size come from the C core itself (cffi exposes pyrt.h's enums and
structs), so Python and C cannot disagree about a number.  What a command does on each message is a
handler it passes to :func:`drive`; the loop, the errors and the end of the conversation are here.
"""
from __future__ import annotations

import errno
import os
import _signal as signal      # not `signal`/`socket`: their enum conversions cost ms per call
import _socket as socket
import struct

from .errors import RuntimeFailure

EXEC_SOCK = "exec.sock"


def _ids():
    from ._core import ffi, lib
    return ffi, lib


class _Msg:
    """Header layout and message ids, read once from the C core."""

    def __init__(self) -> None:
        ffi, lib = _ids()
        self.size = ffi.sizeof("struct pyrt_msg")
        # struct pyrt_msg { uint32_t type; int32_t err; uint32_t len; uint32_t pad; }
        assert self.size == 16 and [f for f, _ in ffi.typeof("struct pyrt_msg").fields] == \
            ["type", "err", "len", "pad"]
        self.struct = struct.Struct("IiII")
        self.GO, self.ERROR, self.HOOKS = lib.PYRT_MSG_GO, lib.PYRT_MSG_ERROR, lib.PYRT_MSG_HOOKS
        self.SECCOMP_FD, self.CREATED, self.CONSOLE = lib.PYRT_MSG_SECCOMP_FD, lib.PYRT_MSG_CREATED, lib.PYRT_MSG_CONSOLE
        self.PID = lib.PYRT_MSG_PID
        self.err_max = lib.PYRT_ERR_MAX


_msg: _Msg | None = None


def msg() -> _Msg:
    global _msg
    if _msg is None:
        _msg = _Msg()
    return _msg


class Sync:
    """The parent's end of the sync socket."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=fd)
        self.m = msg()

    def send(self, mtype: int, payload: bytes = b"") -> None:
        self.sock.sendmsg([self.m.struct.pack(mtype, 0, len(payload), 0), payload])

    def recv(self) -> tuple[int, int, bytes, list[int]]:
        """(type, errno, payload, passed fds); type 0 means the child went away."""
        data, anc, _flags, _addr = self.sock.recvmsg(self.m.size + self.m.err_max + 64, socket.CMSG_SPACE(4))
        fds = []
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds.extend(struct.unpack(f"{len(cdata) // 4}i", cdata[:len(cdata) // 4 * 4]))
        if len(data) < self.m.size:
            return 0, 0, b"", fds
        mtype, err, length, _ = self.m.struct.unpack_from(data)
        return mtype, err, data[self.m.size:self.m.size + length], fds

    def close(self) -> None:
        self.sock.close()


def child_error(err: int, payload: bytes) -> RuntimeFailure:
    """The child's PYRT_MSG_ERROR as an exception (its text already names the step)."""
    text = payload.decode(errors="replace")
    if text.startswith(("sched_setattr: policy 1 ", "sched_setattr: policy 2 ")) and "not permitted" in text:
        text = ("process.scheduler: " + text + " (a real-time policy needs a real-time budget in the "
                "container's cpu cgroup: set linux.resources.cpu.realtimeRuntime)")
    return RuntimeFailure(text, errno=0 if (err and os.strerror(err).lower() in text.lower()) else err)


def _single_threaded() -> None:
    """The CLI's own thread (the cgroup warm-up) is joined before clone(): a thread alive at clone
    time is one the child does not have (issue 10 item 8).  Threads of an API user's own are theirs:
    the child's raw set*id syscalls do not wait for them."""
    from .cgwarm import join_warmup
    join_warmup()


def adopt_final(intermediate: int, payload: bytes) -> int:
    """PYRT_MSG_PID: reap the intermediate process and return the final process's pid (our child too,
    through CLONE_PARENT).  Sent only with a pid namespace to join (see fork_into_pidns in spawn.c)."""
    (pid,) = struct.unpack("i", payload[:4])
    try:
        os.waitpid(intermediate, 0)
    except ChildProcessError:
        pass
    return pid


def spawn(p) -> tuple[int, Sync]:
    """Clone the C child for plan `p`: (pid, the parent's end of the sync socket).  When the kernel
    refuses CLONE_INTO_CGROUP (a cgroup below a populated one, a threaded subtree) the child is cloned
    normally and ``p.c.cgroup_fd`` is -1: the caller then writes cgroup.procs (Manager.add_pid), which
    says clearly why if that is refused too."""
    from ._core import ffi, lib
    _single_threaded()
    pfd = ffi.new("int *")
    err = ffi.new("char[]", lib.PYRT_ERR_MAX)
    own = None
    if getattr(p, "initial_cpus", None):
        own = os.sched_getaffinity(0)
        os.sched_setaffinity(0, _cpus(p.initial_cpus))
    try:
        rc = lib.pyrt_spawn(p.c, pfd, err, lib.PYRT_ERR_MAX)
        if rc in (-errno.EOPNOTSUPP, -errno.EBUSY) and p.c.cgroup_fd >= 0:
            p.c.cgroup_fd = -1
            rc = lib.pyrt_spawn(p.c, pfd, err, lib.PYRT_ERR_MAX)
    finally:
        if own is not None:
            os.sched_setaffinity(0, own)
    if rc < 0:
        raise RuntimeFailure(ffi.string(err).decode(errors="replace"), errno=-rc)
    return rc, Sync(pfd[0])


def _cpus(text: str) -> set[int]:
    """A validated cpu list ("0-3,7") as a set."""
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def drive(sync: Sync, handlers: dict, what: str) -> None:
    """Run the conversation until CREATED and return; raise the child's error, or say that the child
    went away.  ``handlers`` maps message ids to ``fn(payload, fds)``; passed fds a handler does not
    take (by emptying the list) are closed here."""
    m = sync.m
    while True:
        mtype, errno_, payload, fds = sync.recv()
        try:
            if mtype == m.CREATED:
                return
            if mtype == m.ERROR:
                raise child_error(errno_, payload)
            if mtype == 0:
                raise RuntimeFailure(f"{what}: the container process exited unexpectedly")
            h = handlers.get(mtype)
            if h is None:
                raise RuntimeFailure(f"{what}: unexpected message {mtype} from the container process")
            h(payload, fds)
        finally:
            for fd in fds:
                os.close(fd)


def wait_exec(sync: Sync, what: str) -> None:
    """After CREATED (exec mode): EOF means execve closed the CLOEXEC socket, i.e. the program runs."""
    mtype, errno_, payload, fds = sync.recv()
    for fd in fds:
        os.close(fd)
    if mtype == sync.m.ERROR:
        raise child_error(errno_, payload)
    if mtype != 0:
        raise RuntimeFailure(f"{what}: unexpected message {mtype} after CREATED")


def short_path(dirfd: int, name: str) -> str:
    """Unix socket paths are limited to 108 bytes; reach deep state dirs through /proc/self/fd."""
    return f"/proc/self/fd/{dirfd}/{name}"


def send_pidfd(path: str, pid: int) -> None:
    """--pidfd-socket (runc 1.2): a pidfd of the new process, sent with SCM_RIGHTS to the socket."""
    pidfd = os.pidfd_open(pid)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        s.sendmsg([b"pidfd"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", pidfd))])
    except OSError as e:
        raise RuntimeFailure.from_os(e, "send pidfd to --pidfd-socket", path) from None
    finally:
        s.close()
        os.close(pidfd)


def write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


FORWARD = sorted(s for s in signal.valid_signals() if s not in (
    signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU) and s < 32)


class Forwarder:
    """Forward the signals we receive to our child `pid` (through a pidfd) from now on.

    Installed as soon as the pid exists, before the process is released: a signal that arrives
    while `start` is still returning must reach the container, not kill us (runc does the same)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.old = {s: signal.signal(s, self._forward) for s in FORWARD}

    def _forward(self, sig: int, _frame) -> None:
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        """The child's exit status (128+signal when killed)."""
        _, status = os.waitpid(self.pid, 0)
        return exit_status(status)

    def retarget(self, pid: int) -> None:
        """The intermediate process handed over to the final one (PYRT_MSG_PID)."""
        pidfd = os.pidfd_open(pid)
        os.close(self.pidfd)
        self.pid, self.pidfd = pid, pidfd

    def close(self) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)
        self.old = {}
        os.close(self.pidfd)
