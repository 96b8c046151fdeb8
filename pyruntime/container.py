"""The lifecycle API: create, start, kill, delete (and the parent side of the sync protocol).

The CLI is this module's first user; Python programs can call it directly::

    from pyruntime.container import create, start, delete
    create("/run/pyruntime", "c1", "/path/to/bundle")
    start("/run/pyruntime", "c1")

Nothing is left behind by a failed create: the child is killed and reaped, and its cgroup, net
devices, hooks' side effects (poststop) and state directory are undone in reverse order.
"""
from __future__ import annotations

import os
# The C-level modules, not socket/signal/shutil: those add enum conversions and ~10 ms to every call.
import _signal as signal
import _socket as socket
import struct
import time

from . import fastjson as json
from . import log, state
from .errors import ContainerExists, ContainerNotFound, NotRunning, RuntimeFailure

MSG = struct.Struct("IiII")      # struct pyrt_msg
MSG_GO, MSG_ERROR, MSG_HOOKS, MSG_SECCOMP_FD, MSG_CREATED, MSG_CONSOLE, MSG_PID = 1, 2, 3, 4, 5, 6, 7
EXEC_SOCK = "exec.sock"


class CreateOptions:
    """create's options (runc's flags); ``console_fd`` is an already connected console socket (run -t
    without one), ``owned`` what delete must also remove (an image bundle)."""

    def __init__(self, pid_file: str | None = None, console_socket: str | None = None,
                 console_fd: int | None = None, no_pivot: bool = False, preserve_fds: int = 0,
                 systemd_cgroup: bool = False, owned: dict | None = None, no_new_keyring: bool = False,
                 stdio: "list[int] | None" = None) -> None:
        self.pid_file, self.console_socket, self.console_fd = pid_file, console_socket, console_fd
        self.stdio = stdio      # fds for the init's 0, 1, 2 (-1 = ours): the pipes `run` relays
        self.no_pivot, self.preserve_fds, self.systemd_cgroup = no_pivot, preserve_fds, systemd_cgroup
        self.owned = owned if owned is not None else {}
        self.no_new_keyring = no_new_keyring      # else the init joins a session keyring named after the id


def _rmtree(path: str) -> None:
    """Remove a container dir (a handful of files).  Not shutil: importing it (with bz2, lzma, fnmatch)
    costs ~10 ms on every delete."""
    for top, dirs, files in os.walk(path, topdown=False):
        for name in files:
            try:
                os.unlink(os.path.join(top, name))
            except OSError:
                pass
        for name in dirs:
            try:
                os.rmdir(os.path.join(top, name))
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def _rmtree_big(path: str) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def _now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%09dZ" % int((t % 1) * 1e9)


def _short_path(dirfd: int, name: str) -> str:
    """Unix socket paths are limited to 108 bytes; reach deep state dirs through /proc/self/fd."""
    return f"/proc/self/fd/{dirfd}/{name}"


def write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


class Sync:
    """The parent's end of the sync socket (see the table in _native/pyrt.h)."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=fd)

    def send(self, mtype: int, payload: bytes = b"") -> None:
        self.sock.sendmsg([MSG.pack(mtype, 0, len(payload), 0), payload])

    def recv(self) -> tuple[int, int, bytes, list[int]]:
        """(type, errno, payload, passed fds); type 0 means the child went away."""
        data, anc, _flags, _addr = self.sock.recvmsg(1 << 16, socket.CMSG_SPACE(4))
        fds = []
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds.extend(struct.unpack(f"{len(cdata) // 4}i", cdata[:len(cdata) // 4 * 4]))
        if len(data) < MSG.size:
            return 0, 0, b"", fds
        mtype, err, length, _ = MSG.unpack_from(data)
        return mtype, err, data[MSG.size:MSG.size + length], fds

    def close(self) -> None:
        self.sock.close()


def connect_console(p, path: str) -> None:
    """--console-socket: connect, and give the C core the fd to send the pty master over."""
    csock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    p.keep.append(csock)
    try:
        csock.connect(path)
    except OSError as e:
        raise RuntimeFailure.from_os(e, "connect console socket", path) from None
    p.c.console_fd = csock.fileno()


def _single_threaded() -> None:
    """No thread may be alive at clone(): the child has none of them, and anything in it that waits
    for them (glibc's set*id, a lock a thread held) waits forever (issue 10 item 8)."""
    from .cgroups import join_warmup
    join_warmup()
    for _ in range(4000):        # a finished thread leaves the kernel's list a moment later
        if len(os.listdir("/proc/self/task")) == 1:
            return
        time.sleep(0.0005)
    raise RuntimeFailure("the runtime has other threads running; refusing to clone the container process")


def spawn(p) -> tuple[int, "Sync"]:
    """Clone the container process for plan `p`: (pid, the parent's end of the sync socket).

    With a pid namespace to join, `pid` is an intermediate that later sends MSG_PID with the final
    process's pid (see adopt_final)."""
    from ._core import ffi, lib
    _single_threaded()
    pfd = ffi.new("int *")
    err = ffi.new("char[]", 4096)
    rc = lib.pyrt_spawn(p.c, pfd, err, 4096)
    if rc < 0:
        raise RuntimeFailure(ffi.string(err).decode(errors="replace"), errno=-rc)
    return rc, Sync(pfd[0])


def adopt_final(intermediate: int, payload: bytes) -> int:
    """MSG_PID: reap the intermediate process and return the final process's pid (our child too,
    through CLONE_PARENT)."""
    (pid,) = struct.unpack("i", payload[:4])
    try:
        os.waitpid(intermediate, 0)
    except ChildProcessError:
        pass
    return pid


def _child_error(err: int, payload: bytes) -> RuntimeFailure:
    text = payload.decode(errors="replace")
    return RuntimeFailure(text, errno=0 if (err and os.strerror(err).lower() in text.lower()) else err)


def _write_id_maps(pid: int, linux: dict) -> None:
    for key, fname in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        lines = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux.get(key, []))
        if not lines:
            continue
        try:
            with open(f"/proc/{pid}/{fname}", "w") as f:
                f.write(lines)
        except OSError as e:
            raise RuntimeFailure.from_os(e, f"write linux.{key}", f"/proc/{pid}/{fname}") from None


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


class _Undo:
    """Undo actions for a half-made container, run in reverse order if create fails."""

    def __init__(self) -> None:
        self.actions: list = []

    def push(self, fn, *args) -> None:
        self.actions.append((fn, args))

    def run(self) -> None:
        for fn, args in reversed(self.actions):
            try:
                fn(*args)
            except Exception as e:    # cleanup must go on; say what could not be undone
                log.warning(f"cleanup: {e}")
        self.actions.clear()


def create(root: str, cid: str, bundle: str, opts: CreateOptions | None = None, *,
           _keep_child: bool = False) -> state.State:
    """Create the container and leave its init blocked before the user program (runtime.md)."""
    from .cgroups import open_manager
    from . import plan as planmod
    from . import spec

    opts = opts or CreateOptions()
    state.validate_id(cid)
    for fd in range(3, 3 + opts.preserve_fds):
        try:
            os.fstat(fd)      # else our own fds would land there and be "preserved" into the container
        except OSError:
            raise RuntimeFailure(f"--preserve-fds: fd {fd} is not open") from None
    bundle = os.path.abspath(bundle)
    if not os.path.isdir(bundle):
        raise RuntimeFailure("no such directory", step="bundle", path=bundle)
    cfg = spec.load(bundle)
    proc = cfg["process"]
    if proc.get("terminal") and opts.console_socket is None and opts.console_fd is None:
        raise RuntimeFailure("cannot allocate tty if pyruntime will detach without setting console socket")
    if not proc.get("terminal") and (opts.console_socket or opts.console_fd is not None):
        raise RuntimeFailure("cannot use console socket if pyruntime will not allocate tty")

    os.makedirs(root, mode=0o711, exist_ok=True)
    cdir = state.container_dir(root, cid)
    try:
        os.mkdir(cdir, 0o711)
    except FileExistsError:
        raise ContainerExists(cid) from None
    undo = _Undo()
    undo.push(_rmtree, cdir)
    p = None
    pid = 0
    sync = None
    hooks_ran = False
    try:
        with state.locked(root, cid):
            linux = cfg.get("linux", {})
            hooks = cfg.get("hooks", {}) or {}
            # cgroup first: the init is placed in it before it runs anything of the user's
            mgr = open_manager(linux.get("cgroupsPath"), cid, systemd=opts.systemd_cgroup)
            mgr.create()
            undo.push(mgr.destroy)
            mgr.apply(linux.get("resources", {}) or {})
            p, warnings = planmod.build_create(cfg, bundle, no_pivot=opts.no_pivot, cgroup=mgr.to_state())
            for w in warnings:
                log.warning(w)
            cgfd = mgr.clone_fd()
            if cgfd is not None:
                p.fds.append(cgfd)
                p.c.cgroup_fd = cgfd
            # exec.sock: start connects to it to release the init
            dirfd = os.open(cdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            p.fds.append(dirfd)
            lsock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            p.keep.append(lsock)
            lsock.bind(_short_path(dirfd, EXEC_SOCK))
            lsock.listen(1)
            p.c.fifo_fd = lsock.fileno()
            if opts.console_socket:
                connect_console(p, opts.console_socket)
            elif opts.console_fd is not None:
                p.c.console_fd = opts.console_fd
            p.c.preserve_fds = opts.preserve_fds
            if not opts.no_new_keyring:
                p.c.session_keyring = p.str(cid)
            if hooks.get("startContainer"):
                planmod.set_start_hooks(p, hooks["startContainer"])
            p.c.sync_hooks = int(any(hooks.get(k) for k in ("prestart", "createRuntime", "createContainer",
                                                             "startContainer")))
            if p.c.sync_hooks:
                planmod.set_state_buffer(p)
            if opts.stdio:
                for i, fd in enumerate(opts.stdio):
                    p.c.stdio_fds[i] = fd
            pid, sync = spawn(p)
            cur = [pid]          # the intermediate until MSG_PID names the init
            undo.push(lambda: _kill_and_reap(cur[0]))
            from ._core import ffi
            start_time = state.proc_start_time(pid) or 0
            st = state.State(id=cid, pid=pid, start_time=start_time, bundle=bundle, created=_now_rfc3339(),
                             annotations=cfg.get("annotations", {}) or {}, owner="root", rootfs=
                             os.fsdecode(ffi.string(p.c.rootfs)), cgroup=mgr.to_state(), owned=dict(opts.owned),
                             config=cfg, ocispec=cfg.get("ociVersion", ""))
            if p.c.clone_flags & planmod.NS_FLAGS["user"]:
                _write_id_maps(pid, linux)
            if cgfd is None:
                mgr.add_pid(pid)
            if linux.get("netDevices"):
                from . import netdevices
                st.owned["netdevices"] = netdevices.attach(linux["netDevices"], pid, cdir)
                undo.push(netdevices.detach, st.owned["netdevices"], None)
            sync.send(MSG_GO)
            while True:
                mtype, errno_, payload, fds = sync.recv()
                if mtype == MSG_HOOKS:
                    hooks_ran = True
                    _create_hooks(root, st, hooks, pid)
                    sync.send(MSG_GO, json.dumps(state.oci_state(root, st, "created")).encode())
                elif mtype == MSG_SECCOMP_FD:
                    from . import seccomp as sc
                    comp = p.seccomp
                    try:
                        sc.send_listener(fds[0], comp.listener_path, comp.listener_metadata,
                                         state.oci_state(root, st, "creating"))
                    finally:
                        for fd in fds:
                            os.close(fd)
                elif mtype == MSG_PID:
                    pid = cur[0] = adopt_final(pid, payload)
                    st.pid, st.start_time = pid, state.proc_start_time(pid) or 0
                elif mtype == MSG_CREATED:
                    break
                elif mtype == MSG_ERROR:
                    raise _child_error(errno_, payload)
                else:
                    raise RuntimeFailure("container init exited unexpectedly during create")
            state.save(root, st)
            if opts.pid_file:
                write_pid_file(opts.pid_file, pid)
            return st
    except BaseException:
        if hooks_ran and (cfg.get("hooks") or {}).get("poststop"):
            _poststop(root, cid, bundle, cfg)
        undo.run()
        raise
    finally:
        if sync is not None:
            sync.close()
        if p is not None:
            p.close()


def _create_hooks(root: str, st: state.State, hooks: dict, pid: int) -> None:
    from .hooks import run_hooks
    s = state.oci_state(root, st, "creating")
    run_hooks("prestart", hooks.get("prestart") or [], s)
    run_hooks("createRuntime", hooks.get("createRuntime") or [], s)
    if hooks.get("createContainer"):
        fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        try:
            run_hooks("createContainer", hooks["createContainer"], s, mntns_fd=fd)
        finally:
            os.close(fd)


def _poststop(root: str, cid: str, bundle: str, cfg: dict) -> None:
    from .hooks import run_hooks
    s = {"ociVersion": cfg.get("ociVersion", ""), "id": cid, "status": "stopped", "pid": 0,
         "bundle": bundle, "annotations": cfg.get("annotations", {}) or {}}
    try:
        run_hooks("poststop", (cfg.get("hooks") or {}).get("poststop") or [], s)
    except RuntimeFailure as e:
        log.warning(f"poststop hook failed: {e}")


def start(root: str, cid: str) -> state.State:
    """Release a created container's init (it then runs startContainer hooks and execve)."""
    with state.locked(root, cid) as cdir:
        st = state.load(root, cid)
        status = state.status(root, st)
        if status != "created":
            if status == "stopped":
                raise RuntimeFailure("cannot start a container that has stopped")
            raise RuntimeFailure(f"cannot start an already {status} container")
        dirfd = os.open(cdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
            try:
                s.connect(_short_path(dirfd, EXEC_SOCK))
                s.sendmsg([MSG.pack(MSG_GO, 0, 0, 0)])
                data = s.recv(1 << 16)
            except OSError as e:
                raise RuntimeFailure.from_os(e, "start: container init is gone", "") from None
            finally:
                s.close()
        finally:
            os.close(dirfd)
        try:
            os.unlink(os.path.join(cdir, EXEC_SOCK))
        except FileNotFoundError:
            pass
        if data:
            mtype, err, length, _ = MSG.unpack_from(data)
            raise _child_error(err, data[MSG.size:MSG.size + length])
        poststart = (st.config.get("hooks") or {}).get("poststart") or []
        if poststart:
            from .hooks import run_hooks
            try:
                run_hooks("poststart", poststart, state.oci_state(root, st, "running"))
            except RuntimeFailure:
                _signal(st, signal.SIGKILL)
                raise
        return st


def _signal(st: state.State, sig: int) -> None:
    """Signal the init through a pidfd after checking its start time (no reused-pid accidents)."""
    try:
        pfd = os.pidfd_open(st.pid)
    except ProcessLookupError:
        raise NotRunning(st.id) from None
    try:
        if not state.alive(st):
            raise NotRunning(st.id)
        signal.pidfd_send_signal(pfd, sig)
    except ProcessLookupError:
        raise NotRunning(st.id) from None
    finally:
        os.close(pfd)


def kill(root: str, cid: str, sig: int, all_: bool = False) -> None:
    st = state.load(root, cid)
    status = state.status(root, st)
    if all_ and st.cgroup:
        from .cgroups import manager_from_state
        manager_from_state(st.cgroup).kill_all(sig)
        return
    if status == "stopped":
        raise NotRunning(cid)
    _signal(st, sig)


def _frozen_cgroup(root: str, cid: str, want: str):
    """(state, cgroup manager) of a container whose status is in `want`, under its lock."""
    from .cgroups import manager_from_state
    st = state.load(root, cid)
    status = state.status(root, st)
    if status == "stopped":
        raise NotRunning(cid)
    if status not in want:
        raise RuntimeFailure(f"container not {'paused' if want == ('paused',) else 'running'}")
    if not st.cgroup:
        raise RuntimeFailure("container has no cgroup to freeze", step="pause")
    return manager_from_state(st.cgroup)


def pause(root: str, cid: str) -> None:
    """Freeze every process of the container; returns once the cgroup reports frozen."""
    with state.locked(root, cid):
        _frozen_cgroup(root, cid, ("running", "created")).freeze()


def resume(root: str, cid: str) -> None:
    with state.locked(root, cid):
        _frozen_cgroup(root, cid, ("paused",)).thaw()


def _wait_gone(st: state.State, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while state.alive(st):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def delete(root: str, cid: str, force: bool = False) -> None:
    """Remove everything the container owned; refuse a running one without force (runc)."""
    try:
        st = state.load(root, cid)
    except ContainerNotFound:
        if force and not os.path.isdir(os.path.join(root, cid)):
            return      # the shim's second `delete --force` after a `delete`: succeed quietly
        raise
    with state.locked(root, cid) as cdir:
        status = state.status(root, st)
        if status in ("running", "paused") and not force:
            raise RuntimeFailure(f"cannot delete container {cid} that is not stopped: {status}")
        mgr = None
        if st.cgroup:
            from .cgroups import manager_from_state
            mgr = manager_from_state(st.cgroup)
        if status != "stopped":
            if mgr is not None:
                try:
                    mgr.kill_all(signal.SIGKILL)
                    if status == "paused":
                        mgr.thaw()
                except (OSError, RuntimeFailure):
                    pass
            try:
                _signal(st, signal.SIGKILL)
            except RuntimeFailure:
                pass
            if not _wait_gone(st):
                raise RuntimeFailure(f"container {cid} did not die after SIGKILL", step="delete")
        if st.owned.get("netdevices"):
            from . import netdevices
            try:
                netdevices.detach(st.owned["netdevices"], None)
            except RuntimeFailure as e:
                log.warning(f"netDevices: {e}")
        if mgr is not None:
            _destroy_cgroup(mgr)
        if (st.config.get("hooks") or {}).get("poststop"):
            _poststop(root, cid, st.bundle, st.config)
        if st.owned.get("bundle"):
            _rmtree_big(st.owned["bundle"])
        _rmtree(cdir)


def _destroy_cgroup(mgr) -> None:
    # a just-killed init can take a moment to leave its cgroup
    for _ in range(200):
        try:
            mgr.destroy()
            return
        except (OSError, RuntimeFailure) as e:
            last = e
            time.sleep(0.01)
    log.warning(f"cgroup: {last}")
