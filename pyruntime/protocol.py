"""The parent side of the sync protocol (the table in ``_native/pyrt.h``), spoken by create, start and
exec: the message header, spawning the C child for a plan, the message loop, the start handshake.

The header (``struct pyrt_msg``) has one codec, :func:`pack_header`/:func:`unpack_header`, and `start`'s
handshake is :func:`release_init`: both live in :mod:`.syncmsg` and are re-exported here, because `start`,
which shims call for every container, needs only them (importing this whole module cost it ~0.15 ms
more, the C core far more).  :func:`msg` reads every message id from the C core itself and refuses to
run when it disagrees with the codec's; tests/core/test_protocol_header.py checks the codec against the
core's struct layout.  What a command does on each message is a handler it passes to :func:`drive`;
the loop, the errors and the end of the conversation are here.
"""

import errno
import posix        # not os: os costs ~1 ms, and posix has every call this module makes
import _signal as signal      # not `signal`/`socket`: their enum conversions cost ms per call
import _socket as socket
import sys

from .errors import RuntimeFailure
from .syncmsg import (ERR_MAX, EXEC_SOCK, HEADER_SIZE, MSG_ERROR, MSG_GO, child_error, pack_header,  # noqa: F401
                      release_init, short_path, unpack_header)     # (re-exported: the one protocol module's API)

def _ints(data: bytes) -> list[int]:
    """C ints in native order (SCM_RIGHTS fds, a pid)."""
    return [int.from_bytes(data[i:i + 4], sys.byteorder, signed=True) for i in range(0, len(data) - 3, 4)]


def _ids():
    from ._core import ffi, lib
    return ffi, lib


class _Msg:
    """Header size and message ids, read once from the C core (create and exec load it anyway)."""

    def __init__(self) -> None:
        ffi, lib = _ids()
        self.size = ffi.sizeof("struct pyrt_msg")
        self.GO, self.ERROR, self.HOOKS = lib.PYRT_MSG_GO, lib.PYRT_MSG_ERROR, lib.PYRT_MSG_HOOKS
        self.SECCOMP_FD, self.CREATED, self.CONSOLE = lib.PYRT_MSG_SECCOMP_FD, lib.PYRT_MSG_CREATED, lib.PYRT_MSG_CONSOLE
        self.PID = lib.PYRT_MSG_PID
        self.err_max = lib.PYRT_ERR_MAX
        fields = [(f, t.offset, t.type.cname) for f, t in ffi.typeof("struct pyrt_msg").fields]
        if (self.size, self.GO, self.ERROR, self.err_max) != (HEADER_SIZE, MSG_GO, MSG_ERROR, ERR_MAX) or \
                fields != [("type", 0, "uint32_t"), ("err", 4, "int32_t"), ("len", 8, "uint32_t"), ("pad", 12, "uint32_t")]:
            raise RuntimeFailure("pyruntime.protocol's header codec does not match this C core's pyrt.h "
                                 f"(struct pyrt_msg {fields}); rebuild the package", step="sync protocol")


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
        self.sock.sendmsg([pack_header(mtype, 0, len(payload)), payload])

    def recv(self) -> tuple[int, int, bytes, list[int]]:
        """(type, errno, payload, passed fds); type 0 means the child went away."""
        data, anc, _flags, _addr = self.sock.recvmsg(self.m.size + self.m.err_max + 64, socket.CMSG_SPACE(4))
        fds = []
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds.extend(_ints(cdata))
        if len(data) < HEADER_SIZE:
            return 0, 0, b"", fds
        mtype, err, length = unpack_header(data)
        return mtype, err, data[HEADER_SIZE:HEADER_SIZE + length], fds

    def close(self) -> None:
        self.sock.close()


def _single_threaded() -> None:
    """The CLI's own thread (the cgroup warm-up) is joined before clone(): a thread alive at clone
    time is one the child does not have (issue 10 item 8).  Threads of an API user's own are theirs:
    the child's raw set*id syscalls do not wait for them."""
    from .cgwarm import join_warmup
    join_warmup()


def adopt_final(intermediate: int, payload: bytes) -> int:
    """PYRT_MSG_PID: reap the intermediate process and return the final process's pid (our child too,
    through CLONE_PARENT).  Sent only with a pid namespace to join (see fork_into_pidns in spawn.c)."""
    if len(payload) < 4:
        raise RuntimeFailure(f"sync protocol: a pid message of {len(payload)} bytes", step="create")
    (pid,) = _ints(payload[:4])
    try:
        posix.waitpid(intermediate, 0)
    except ChildProcessError:
        pass
    return pid


def spawn(p) -> tuple[int, Sync]:
    """Clone the C child for plan `p`: (pid, the parent's end of the sync socket).  When the kernel
    refuses CLONE_INTO_CGROUP (a cgroup below a populated one, a threaded subtree, a kernel without
    it) the child is cloned normally and ``p.c.cgroup_fd`` is -1: the caller then writes cgroup.procs
    (plan.born_in_cgroup, Manager.add_pid), which says clearly why if that is refused too."""
    from ._core import ffi, lib
    _single_threaded()
    pfd = ffi.new("int *")
    err = ffi.new("char[]", lib.PYRT_ERR_MAX)
    own = None
    if getattr(p, "initial_cpus", None):
        own = posix.sched_getaffinity(0)
        posix.sched_setaffinity(0, _cpus(p.initial_cpus))
    try:
        rc = lib.pyrt_spawn(p.c, pfd, err, lib.PYRT_ERR_MAX)
        # refused (a cgroup below a populated one, a threaded subtree), or a kernel without clone3
        # (ENOSYS, < 5.3) or CLONE_INTO_CGROUP (E2BIG/EINVAL, < 5.7): v1 and hybrid hosts use it too
        if rc in (-errno.EOPNOTSUPP, -errno.EBUSY, -errno.ENOSYS, -errno.E2BIG, -errno.EINVAL) \
                and p.c.cgroup_fd >= 0:
            p.c.cgroup_fd = -1
            rc = lib.pyrt_spawn(p.c, pfd, err, lib.PYRT_ERR_MAX)
    finally:
        if own is not None:
            posix.sched_setaffinity(0, own)
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
                posix.close(fd)


def wait_exec(sync: Sync, what: str) -> None:
    """After CREATED (exec mode): EOF means execve closed the CLOEXEC socket, i.e. the program runs."""
    mtype, errno_, payload, fds = sync.recv()
    for fd in fds:
        posix.close(fd)
    if mtype == sync.m.ERROR:
        raise child_error(errno_, payload)
    if mtype != 0:
        raise RuntimeFailure(f"{what}: unexpected message {mtype} after CREATED")


def send_pidfd(path: str, pid: int) -> None:
    """--pidfd-socket (runc 1.2): a pidfd of the new process, sent with SCM_RIGHTS to the socket."""
    pidfd = posix.pidfd_open(pid)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        s.sendmsg([b"pidfd"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, pidfd.to_bytes(4, sys.byteorder, signed=True))])
    except OSError as e:
        raise RuntimeFailure.from_os(e, "send pidfd to --pidfd-socket", path) from None
    finally:
        s.close()
        posix.close(pidfd)


def write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.tmp{posix.getpid()}"
    with open(tmp, "w") as f:
        f.write(str(pid))
    posix.rename(tmp, path)


def kill_and_reap(pid: int) -> None:
    try:
        posix.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        posix.waitpid(pid, 0)
    except ChildProcessError:
        pass


def exit_status(status: int) -> int:
    if posix.WIFSIGNALED(status):
        return 128 + posix.WTERMSIG(status)
    return posix.WEXITSTATUS(status)


FORWARD = sorted(s for s in signal.valid_signals() if s not in (
    signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU) and s < 32)


class Forwarder:
    """Forward the signals we receive to our child `pid` (through a pidfd) from now on.

    Installed as soon as the pid exists, before the process is released: a signal that arrives
    while `start` is still returning must reach the container, not kill us (runc does the same)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pidfd = posix.pidfd_open(pid)
        self.old = {s: signal.signal(s, self._forward) for s in FORWARD}

    def _forward(self, sig: int, _frame) -> None:
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        """The child's exit status (128+signal when killed)."""
        _, status = posix.waitpid(self.pid, 0)
        return exit_status(status)

    def retarget(self, pid: int) -> None:
        """The intermediate process handed over to the final one (PYRT_MSG_PID)."""
        pidfd = posix.pidfd_open(pid)
        posix.close(self.pidfd)
        self.pid, self.pidfd = pid, pidfd

    def close(self) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)
        self.old = {}
        posix.close(self.pidfd)
