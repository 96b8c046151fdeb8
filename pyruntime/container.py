"""The lifecycle API: create here; start, kill, pause, resume, delete in control.py, re-exported (the
sync protocol itself is protocol.py).

The CLI is this module's first user; Python programs can call it directly::

    from pyruntime.container import create, start, delete
    create("/run/pyruntime", "c1", "/path/to/bundle")
    start("/run/pyruntime", "c1")

Nothing is left behind by a failed create: the child is killed and reaped, and its cgroup, net
devices, hooks' side effects (poststop) and state directory are undone in reverse order.
"""
from __future__ import annotations

import os
# The C-level modules, not socket/shutil: those add enum conversions and ~10 ms to every call.
import _socket as socket
import time

from . import fastjson as json
from . import cgshare, log, rootless, state
from .errors import ContainerExists, ContainerNotFound, RuntimeFailure
from .fastos import remove_path

from .protocol import (EXEC_SOCK, short_path, kill_and_reap as _kill_and_reap, spawn,  # noqa: F401
                       write_pid_file)


# start, kill, pause, resume, delete (and hook_state) are control.py's, re-exported here on first use:
# a `create` (every container, from every shim) needs none of them
_FROM_CONTROL = ("start", "kill", "pause", "resume", "delete", "hook_state")


def __getattr__(name: str):
    if name in _FROM_CONTROL:
        from . import control
        return getattr(control, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class CreateOptions:
    """create's options (runc's flags); ``console_fd`` is an already connected console socket (run -t
    without one), ``owned`` what delete must also remove (an image bundle)."""

    def __init__(self, pid_file: str | None = None, console_socket: str | None = None,
                 console_fd: int | None = None, no_pivot: bool = False, preserve_fds: int = 0,
                 systemd_cgroup: bool = False, owned: dict | None = None, no_new_keyring: bool = False,
                 stdio: "list[int] | None" = None, for_run: bool = False) -> None:
        self.pid_file, self.console_socket, self.console_fd = pid_file, console_socket, console_fd
        self.stdio = stdio      # fds for the init's 0, 1, 2 (-1 = ours): the pipes a foreground `run` relays
        self.no_pivot, self.preserve_fds, self.systemd_cgroup = no_pivot, preserve_fds, systemd_cgroup
        self.owned = owned if owned is not None else {}
        self.no_new_keyring = no_new_keyring      # else the init joins a session keyring named after the id
        self.for_run = for_run      # `run`: what start and delete need is imported while the child works


def _now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%09dZ" % int((t % 1) * 1e9)


def _write_id_maps(pid: int, linux: dict) -> None:
    from .rootless import write_id_maps      # direct writes, or newuidmap/newgidmap for a non-root caller
    write_id_maps(pid, linux)


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


def _claim_dir(root: str, cid: str, keep_bundle: str = "") -> "state.locked":
    """mkdir <root>/<id> (0700) and hold its lock.  An existing directory is a container unless it is
    a dead half-made one (no state, or a record still marked creating whose create is dead): that one
    is cleared first, as delete --force would."""
    cdir = os.path.join(root, cid)
    for _ in range(3):
        try:
            os.mkdir(cdir, 0o700)
        except FileExistsError:
            if os.path.islink(cdir) or not os.path.isdir(cdir):
                raise ContainerExists(cid) from None
            lk = state.locked(root, cid)
            try:
                if not lk.acquire(blocking=False):
                    raise ContainerExists(cid)
            except ContainerNotFound:
                continue
            try:
                try:
                    st = state.load(root, cid)
                except ContainerNotFound:
                    st = None
                except RuntimeFailure:
                    raise ContainerExists(cid) from None
                if st is not None and not st.creating:
                    raise ContainerExists(cid)
                log.warning(f"container {cid}: clearing what a killed create left behind")
                from .control import clear_halfmade
                clear_halfmade(root, cid, st, keep_bundle)
            finally:
                lk.release()
            continue
        except OSError as e:
            raise RuntimeFailure.from_os(e, "create state directory", cdir) from None
        lk = state.locked(root, cid)
        try:
            lk.acquire()
        except ContainerNotFound:
            raise ContainerExists(cid) from None
        return lk
    raise ContainerExists(cid)


def create(root: str, cid: str, bundle: str, opts: CreateOptions | None = None, *,
           _keep_child: bool = False, cfg: dict | None = None) -> state.State:
    """Create the container and leave its init blocked before the user program (runtime.md).
    ``cfg``: the bundle's config as ``spec.load(bundle)`` returned it, when the caller has it already
    (`run` reads it first for process.terminal): parsing and validating it again is ~1 ms of podman's."""
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
    if cfg is None:
        cfg = spec.load(bundle)
    proc = cfg["process"]
    if proc.get("terminal") and opts.console_socket is None and opts.console_fd is None:
        raise RuntimeFailure("cannot allocate tty if pyruntime will detach without setting console socket")
    if not proc.get("terminal") and (opts.console_socket or opts.console_fd is not None):
        raise RuntimeFailure("cannot use console socket if pyruntime will not allocate tty")

    state.ensure_root(root)
    cdir = state.container_dir(root, cid)
    lk = _claim_dir(root, cid, keep_bundle=opts.owned.get("bundle", ""))
    undo = _Undo()
    undo.push(remove_path, cdir)
    p = None
    pid = 0
    sync = None
    hooks_ran = False
    me = [os.getpid(), state.proc_start_time(os.getpid()) or 0]
    try:
        if os.environ.get("NOTIFY_SOCKET"):
            from . import notify          # sd_notify: the socket's dir is bound into the container
            notify.setup_spec(cfg, cdir)
        linux = cfg.get("linux", {})
        hooks = cfg.get("hooks", {}) or {}
        # the init is placed in its cgroup before it runs anything of the user's
        unpriv, rl_cgroups = rootless.euid_rootless(), rootless.rootless_cgroups()
        if unpriv:
            rootless.check_config(cfg, spec.namespaces(cfg))
            rootless.clamp_rlimits(proc, log.warning)
        # the first record, before anything is made: a create killed from here on leaves a
        # directory that delete --force (and the next create) can clear
        st = state.State(id=cid, pid=0, start_time=0, bundle=bundle, created=_now_rfc3339(),
                         annotations=cfg.get("annotations", {}) or {}, owner="root", owned=dict(opts.owned),
                         config=cfg, ocispec=cfg.get("ociVersion", ""), creating=True, creator=me)
        state.reserve(root, st, 3)      # the files of its three saves, made while the cgroup wait is pending
        if rl_cgroups:      # may be None: no cgroup for a caller that may not have one, needs none
            state.save(root, st)
            mgr = rootless.open_cgroup(linux, cid, opts.systemd_cgroup)
            if mgr is not None:
                undo.push(cgshare.release, mgr)
        else:
            # described now, made after the plan: on cgroup v1 making it waits until the CLI's warm-up
            # (cgroups.warm_attach_lock) has passed the kernel's RCU grace period, which planning overlaps
            mgr = open_manager(linux.get("cgroupsPath"), cid, systemd=opts.systemd_cgroup,
                               annotations=cfg.get("annotations"))
            cgshare.check_unused(mgr)
            st.cgroup = mgr.to_state()
        cg_state = mgr.to_state() if mgr is not None else {}     # the paths: the same before and after create()
        p, warnings = planmod.build_create(cfg, bundle, no_pivot=opts.no_pivot, cgroup=cg_state,
                                          seccomp_cache=root, keyring=None if opts.no_new_keyring else cid)
        for w in warnings:
            log.warning(w)
        if unpriv and p.c.clone_flags & planmod.NS_FLAGS["user"]:
            # the child stays dumpable until GO, else its /proc files are root's and we (and
            # newuidmap) may not write its maps; it has no container yet for anyone to see
            p.c.userns_dumpable = 1
        if rootless.setgroups_denied(linux):
            p.c.set_groups = 0
        # exec.sock: start connects to it to release the init
        dirfd = os.open(cdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        p.fds.append(dirfd)
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        p.keep.append(lsock)
        lsock.bind(short_path(dirfd, EXEC_SOCK))
        os.chmod(short_path(dirfd, EXEC_SOCK), 0o600)
        lsock.listen(1)
        planmod.set_exec_sock(p, lsock.fileno())
        planmod.set_console(p, socket_path=opts.console_socket, fd=opts.console_fd)
        planmod.set_stdio(p, opts.stdio)
        planmod.set_preserve_fds(p, opts.preserve_fds)
        planmod.set_hooks(p, hooks)
        cgfd, tasks = None, []
        if not rl_cgroups:
            state.save(root, st)
            mgr.create()
            undo.push(cgshare.release, mgr)
            mgr.apply(linux.get("resources", {}) or {})
            cg_state = mgr.to_state()
            cgfd, tasks = mgr.birth_fds()   # the init is born in its cgroups (v2) or joins them itself (v1)
            if cgfd is None and not tasks:  # the systemd driver: cgroup.procs writes after the clone
                from .cgwarm import rearm
                rearm()
        log.debug(f"create {cid}: bundle {bundle}, cgroup {linux.get('cgroupsPath') or '(default)'} "
                  f"{'created' if mgr is not None else 'none (rootless, not permitted, not needed)'}")
        planmod.set_cgroup(p, cgfd, tasks)
        # everything that does not need the pid is done before the clone: from the clone until the
        # init execs, each page Python touches costs a copy-on-write fault (~0.5 ms for a state save)
        from ._core import ffi
        from . import protocol
        st.rootfs, st.cgroup = os.fsdecode(ffi.string(p.c.rootfs)), cg_state
        if opts.no_new_keyring:
            st.owned["no_new_keyring"] = True     # exec's processes then keep the caller's keyring too

        def on_hooks(_payload: bytes, _fds: list) -> None:
            nonlocal hooks_ran
            hooks_ran = True
            _create_hooks(root, st, hooks, pid)
            from .control import hook_state
            sync.send(sync.m.GO, json.dumps(hook_state(root, st, "created")).encode())

        def on_listener(_payload: bytes, fds: list) -> None:
            forward_listener(p, fds, state.oci_state(root, st, "creating"))

        def on_pid(payload: bytes, _fds: list) -> None:
            nonlocal pid
            pid = cur[0] = protocol.adopt_final(pid, payload)
            st.pid, st.start_time = pid, state.proc_start_time(pid) or 0
            state.save(root, st, same_config=True)

        pid, sync = spawn(p)
        cur = [pid]          # the intermediate until PYRT_MSG_PID names the init (a pid namespace to join)
        undo.push(lambda: _kill_and_reap(cur[0]))
        st.pid, st.start_time = pid, state.proc_start_time(pid) or 0
        state.save(root, st, same_config=True)
        if p.c.clone_flags & planmod.NS_FLAGS["user"]:
            _write_id_maps(pid, linux)
        if mgr is not None and not planmod.born_in_cgroup(p):
            if not rl_cgroups:
                mgr.add_pid(pid)
                st.cgroup = mgr.to_state()   # the systemd driver on v1 makes dirs only now (created)
            elif not rootless.place(mgr, pid, linux):
                mgr, st.cgroup = None, {}
        if linux.get("netDevices"):
            from . import netdevices
            st.owned["netdevices"] = netdevices.attach(linux["netDevices"], pid, cdir)
            undo.push(netdevices.detach, st.owned["netdevices"], None)
        try:
            sync.send(sync.m.GO)
        except BrokenPipeError:
            pass        # the child failed (e.g. joining its cgroups) and left: drive() reads its error
        if opts.for_run:
            # the parent only waits while the child builds the container (~2-3 ms); `run` needs
            # control.py next (start, delete), ~0.5 ms of imports done now instead of after CREATED
            from . import control  # noqa: F401
        log.debug(f"create {cid}: spawned init pid {pid} (clone flags {p.c.clone_flags:#x})")
        protocol.drive(sync, {sync.m.HOOKS: on_hooks, sync.m.SECCOMP_FD: on_listener, sync.m.PID: on_pid},
                       "create")
        st.creating, st.creator = False, []
        if opts.pid_file:
            try:
                write_pid_file(opts.pid_file, pid)
            except OSError as e:
                raise RuntimeFailure.from_os(e, "--pid-file", opts.pid_file) from None
        state.save(root, st, same_config=True)
        log.debug(f"create {cid}: init pid {pid} set up, waiting for start")
        return st
    except BaseException:
        if hooks_ran and (cfg.get("hooks") or {}).get("poststop"):
            from .control import poststop
            poststop(root, cid, bundle, cfg)
        undo.run()
        raise
    finally:
        lk.release()
        if sync is not None:
            sync.close()
        if p is not None:
            p.close()


def forward_listener(p, fds: list, st: dict) -> None:
    """PYRT_MSG_SECCOMP_FD: the notify listener goes to seccomp.listenerPath with the state (create
    and exec alike).  The fd is taken from `fds` (closed here once sent)."""
    from . import seccomp as sc
    comp = p.seccomp
    fd = fds.pop(0) if fds else -1
    if fd < 0:
        return
    try:
        if comp is not None and comp.listener_path:
            sc.send_listener(fd, comp.listener_path, comp.listener_metadata, st)
    finally:
        os.close(fd)


def _create_hooks(root: str, st: state.State, hooks: dict, pid: int) -> None:
    from .control import hook_state
    from .hooks import run_hooks
    s = hook_state(root, st, "creating")
    run_hooks("prestart", hooks.get("prestart") or [], s)
    run_hooks("createRuntime", hooks.get("createRuntime") or [], s)
    if hooks.get("createContainer"):
        fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        try:
            run_hooks("createContainer", hooks["createContainer"], s, mntns_fd=fd)
        finally:
            os.close(fd)
