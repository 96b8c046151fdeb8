"""The lifecycle API: create, start, kill, delete (the sync protocol itself is protocol.py).

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
import time

from . import fastjson as json
from . import cgshare, log, rootless, state
from .errors import ContainerExists, ContainerNotFound, NotRunning, RuntimeFailure

from .protocol import (EXEC_SOCK, short_path, kill_and_reap as _kill_and_reap, release_init, spawn,  # noqa: F401
                       write_pid_file)


class CreateOptions:
    """create's options (runc's flags); ``console_fd`` is an already connected console socket (run -t
    without one), ``owned`` what delete must also remove (an image bundle)."""

    def __init__(self, pid_file: str | None = None, console_socket: str | None = None,
                 console_fd: int | None = None, no_pivot: bool = False, preserve_fds: int = 0,
                 systemd_cgroup: bool = False, owned: dict | None = None, no_new_keyring: bool = False,
                 stdio: "list[int] | None" = None) -> None:
        self.pid_file, self.console_socket, self.console_fd = pid_file, console_socket, console_fd
        self.stdio = stdio      # fds for the init's 0, 1, 2 (-1 = ours): the pipes a foreground `run` relays
        self.no_pivot, self.preserve_fds, self.systemd_cgroup = no_pivot, preserve_fds, systemd_cgroup
        self.owned = owned if owned is not None else {}
        self.no_new_keyring = no_new_keyring      # else the init joins a session keyring named after the id


def _rmtree(path: str) -> None:
    """Remove a container dir (a handful of files).  Not shutil: importing it (with bz2, lzma, fnmatch)
    costs ~10 ms on every delete.  A symlink in the place of the dir is removed, never followed."""
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        try:
            os.unlink(path)
        except OSError:
            pass
        return
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
                _clear_halfmade(root, cid, st, keep_bundle)
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


def _clear_halfmade(root: str, cid: str, st: "state.State | None", keep_bundle: str = "") -> None:
    """Clear a container whose create was killed (caller holds its lock): its init (checked by start
    time), its cgroup (never signalling processes that are not its own), its image bundle, its dir."""
    if st is not None:
        if st.pid > 0 and state.alive(st):
            try:
                _signal(st, signal.SIGKILL)
            except RuntimeFailure:
                pass
            _wait_gone(st)
        if st.cgroup:
            try:
                from .cgroups import manager_from_state
                mgr = manager_from_state(st.cgroup)
                own, foreign = cgshare.split(root, st, mgr)
                cgshare.signal_pids(own, signal.SIGKILL)
                mgr.destroy(kill=False)
            except (OSError, RuntimeFailure, KeyError, TypeError) as e:
                log.warning(f"cgroup: {e}")
        b = st.owned.get("bundle")
        if isinstance(b, str) and b and b != keep_bundle and os.path.lexists(b):
            _remove_image_bundle(b)
    _rmtree(os.path.join(root, cid))


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
    undo.push(_rmtree, cdir)
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
        # cgroup first: the init is placed in it before it runs anything of the user's
        unpriv, rl_cgroups = rootless.euid_rootless(), rootless.rootless_cgroups()
        if unpriv:
            rootless.check_config(cfg, spec.namespaces(cfg))
            rootless.clamp_rlimits(proc, log.warning)
        # the first record, before anything is made: a create killed from here on leaves a
        # directory that delete --force (and the next create) can clear
        st = state.State(id=cid, pid=0, start_time=0, bundle=bundle, created=_now_rfc3339(),
                         annotations=cfg.get("annotations", {}) or {}, owner="root", owned=dict(opts.owned),
                         config=cfg, ocispec=cfg.get("ociVersion", ""), creating=True, creator=me)
        if rl_cgroups:      # may be None: no cgroup for a caller that may not have one, needs none
            state.save(root, st)
            mgr = rootless.open_cgroup(linux, cid, opts.systemd_cgroup)
        else:
            mgr = open_manager(linux.get("cgroupsPath"), cid, systemd=opts.systemd_cgroup,
                               annotations=cfg.get("annotations"))
            cgshare.check_unused(mgr)
            st.cgroup = mgr.to_state()
            state.save(root, st)
            mgr.create()
            undo.push(cgshare.release, mgr)
            mgr.apply(linux.get("resources", {}) or {})
        log.debug(f"create {cid}: bundle {bundle}, cgroup {linux.get('cgroupsPath') or '(default)'} "
                  f"{'created' if mgr is not None else 'none (rootless, not permitted, not needed)'}")
        if mgr is not None and rl_cgroups:
            undo.push(cgshare.release, mgr)
        cg_state = mgr.to_state() if mgr is not None else {}
        p, warnings = planmod.build_create(cfg, bundle, no_pivot=opts.no_pivot, cgroup=cg_state,
                                          seccomp_cache=root, keyring=None if opts.no_new_keyring else cid)
        for w in warnings:
            log.warning(w)
        cgfd = mgr.clone_fd() if mgr is not None and not rl_cgroups else None
        if unpriv and p.c.clone_flags & planmod.NS_FLAGS["user"]:
            # the child stays dumpable until GO, else its /proc files are root's and we (and
            # newuidmap) may not write its maps; it has no container yet for anyone to see
            p.c.userns_dumpable = 1
        if rootless.setgroups_denied(linux):
            p.c.set_groups = 0
        planmod.set_cgroup(p, cgfd)
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
        pid, sync = spawn(p)
        log.debug(f"create {cid}: spawned init pid {pid} (clone flags {p.c.clone_flags:#x})")
        cur = [pid]          # the intermediate until PYRT_MSG_PID names the init (a pid namespace to join)
        undo.push(lambda: _kill_and_reap(cur[0]))
        from ._core import ffi
        st.pid, st.start_time = pid, state.proc_start_time(pid) or 0
        st.rootfs, st.cgroup = os.fsdecode(ffi.string(p.c.rootfs)), cg_state
        if opts.no_new_keyring:
            st.owned["no_new_keyring"] = True     # exec's processes then keep the caller's keyring too
        state.save(root, st)
        if p.c.clone_flags & planmod.NS_FLAGS["user"]:
            _write_id_maps(pid, linux)
        if mgr is not None and p.c.cgroup_fd < 0:
            if not rl_cgroups:
                mgr.add_pid(pid)
            elif not rootless.place(mgr, pid, linux):
                mgr, st.cgroup = None, {}
        if linux.get("netDevices"):
            from . import netdevices
            st.owned["netdevices"] = netdevices.attach(linux["netDevices"], pid, cdir)
            undo.push(netdevices.detach, st.owned["netdevices"], None)
        from . import protocol

        def on_hooks(_payload: bytes, _fds: list) -> None:
            nonlocal hooks_ran
            hooks_ran = True
            _create_hooks(root, st, hooks, pid)
            sync.send(sync.m.GO, json.dumps(hook_state(root, st, "created")).encode())

        def on_listener(_payload: bytes, fds: list) -> None:
            forward_listener(p, fds, state.oci_state(root, st, "creating"))

        def on_pid(payload: bytes, _fds: list) -> None:
            nonlocal pid
            pid = cur[0] = protocol.adopt_final(pid, payload)
            st.pid, st.start_time = pid, state.proc_start_time(pid) or 0
            state.save(root, st)

        sync.send(sync.m.GO)
        protocol.drive(sync, {sync.m.HOOKS: on_hooks, sync.m.SECCOMP_FD: on_listener, sync.m.PID: on_pid},
                       "create")
        st.creating, st.creator = False, []
        if opts.pid_file:
            try:
                write_pid_file(opts.pid_file, pid)
            except OSError as e:
                raise RuntimeFailure.from_os(e, "--pid-file", opts.pid_file) from None
        state.save(root, st)
        log.debug(f"create {cid}: init pid {pid} set up, waiting for start")
        return st
    except BaseException:
        if hooks_ran and (cfg.get("hooks") or {}).get("poststop"):
            _poststop(root, cid, bundle, cfg)
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


def hook_state(root: str, st: state.State, status: str) -> dict:
    """The state given to hooks (runtime.md "State"): ``ociVersion`` is the spec version this
    runtime's state complies with, not the config's; ``pid`` is the container init."""
    from . import SPEC_VERSION
    s = state.oci_state(root, st, status)
    s["ociVersion"] = SPEC_VERSION
    s["pid"] = st.pid
    return s


def _create_hooks(root: str, st: state.State, hooks: dict, pid: int) -> None:
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


def _poststop(root: str, cid: str, bundle: str, cfg: dict) -> None:
    from .hooks import run_hooks
    s = {"ociVersion": cfg.get("ociVersion", ""), "id": cid, "status": "stopped", "pid": 0,
         "bundle": bundle, "annotations": cfg.get("annotations", {}) or {}}
    try:
        run_hooks("poststop", (cfg.get("hooks") or {}).get("poststop") or [], s)
    except RuntimeFailure as e:
        log.warning(f"poststop hook failed: {e}")


def start(root: str, cid: str, notify_pid: int | None = None) -> state.State:
    """Release a created container's init (it then runs startContainer hooks and execve).

    With NOTIFY_SOCKET set (and the container created with it), then wait for the container's
    READY= and relay it with MAINPID = ``notify_pid`` (default: the init), as runc does; the wait
    happens outside the container's lock (it can take as long as the service takes to start)."""
    host_notify = os.environ.get("NOTIFY_SOCKET")
    socks: list = []
    try:
        st = _start(root, cid, socks if host_notify else None)
    except BaseException:
        for s in socks:
            s.close()
        raise
    if socks:
        from . import notify
        notify.wait_and_relay(socks[0], host_notify, st.pid, notify_pid or st.pid)
    return st


def _start(root: str, cid: str, notify_socks: list | None) -> state.State:
    with state.locked(root, cid) as cdir:
        st = state.load(root, cid)
        status = state.status(root, st)
        if status != "created":
            if status == "stopped":
                raise RuntimeFailure("cannot start a container that has stopped")
            if status == "creating":
                raise RuntimeFailure("cannot start a container that is still being created")
            raise RuntimeFailure(f"cannot start an already {status} container")
        if notify_socks is not None:
            from . import notify
            ns = notify.bind(cdir)          # before the init runs: its READY must find the socket
            if ns is not None:
                notify_socks.append(ns)
        try:
            release_init(cdir)
        finally:
            try:
                os.unlink(os.path.join(cdir, EXEC_SOCK))
            except FileNotFoundError:
                pass
        log.debug(f"start {cid}: init pid {st.pid} released")
        poststart = (st.config.get("hooks") or {}).get("poststart") or []
        if poststart:
            from .hooks import run_hooks
            try:
                run_hooks("poststart", poststart, hook_state(root, st, "running"))
            except RuntimeFailure:
                # runtime.md step 9: a failed poststart hook fails `start` and the container is
                # stopped; the error stays the hook's even when the program has already exited
                try:
                    _signal(st, signal.SIGKILL)
                except RuntimeFailure:
                    pass
                _wait_gone(st, 5.0)
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
        log.debug(f"signal {sig} to {st.id} init pid {st.pid}")
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
        mgr = manager_from_state(st.cgroup)
        own, foreign = cgshare.split(root, st, mgr)
        if foreign:      # a shared cgroup: only our own processes
            cgshare.signal_pids(own, sig)
        else:
            mgr.kill_all(sig)
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


def _orphan_image_bundle(root: str, cid: str) -> None:
    """A `run --image` killed before its container existed leaves ``<root>/.bundles/<id>`` (its rootfs
    maybe still mounted): `delete --force ID` takes it away too."""
    b = os.path.join(root, ".bundles", cid)
    if os.path.isdir(b):
        from .image.overlay import remove_bundle
        try:
            remove_bundle(b)
        except OSError as e:
            log.warning(str(RuntimeFailure.from_os(e, "delete image bundle", b)))


def delete(root: str, cid: str, force: bool = False) -> None:
    """Remove everything the container owned; refuse a running one without force (runc).

    A half-made container (its create was killed) is cleared whatever its state says.  A state file
    that cannot be trusted (broken, a symlink, another container's) is never acted on: --force removes
    the directory and nothing else."""
    cdir = state.container_dir(root, cid)
    try:
        st: state.State | None = state.load(root, cid)
    except ContainerNotFound:
        if not os.path.lexists(cdir):
            if force:
                _orphan_image_bundle(root, cid)
                return      # the shim's second `delete --force` after a `delete`: succeed quietly
            raise
        st = None
    except RuntimeFailure as e:
        if not force or not os.path.lexists(cdir):
            raise
        log.warning(f"{e}; removing only the directory {cdir}")
        _rmtree(cdir)
        return
    lk = state.locked(root, cid)
    try:
        if not lk.acquire(blocking=False):
            if st is not None and st.creating and not state.creator_alive(st) and state.alive(st):
                # the create was killed while its init still held the (inherited) lock fd
                try:
                    _signal(st, signal.SIGKILL)
                except RuntimeFailure:
                    pass
                _wait_gone(st)
            lk.acquire()
    except ContainerNotFound:
        if force:
            return
        raise
    try:
        if st is None or st.creating:
            try:
                st = state.load(root, cid)     # again, now that no create can be running
            except ContainerNotFound:
                st = None
            if st is None or st.creating:
                _clear_halfmade(root, cid, st)
                return
        _delete_locked(root, cid, cdir, st, force)
    finally:
        lk.release()


def _delete_locked(root: str, cid: str, cdir: str, st: state.State, force: bool) -> None:
    status = state.status(root, st)
    if status in ("running", "paused") and not force:
        raise RuntimeFailure(f"cannot delete container {cid} that is not stopped: {status}")
    mgr = None
    own: list[int] = []
    foreign: list[int] = []
    if st.cgroup:
        from .cgroups import manager_from_state
        try:
            mgr = manager_from_state(st.cgroup)
        except (KeyError, TypeError) as e:
            raise RuntimeFailure(f"field 'cgroup' is malformed ({e})", step="state",
                                 path=os.path.join(cdir, "state.json")) from None
        own, foreign = cgshare.split(root, st, mgr)
    if status != "stopped" or own:
        if mgr is not None and not foreign:
            try:
                mgr.kill_all(signal.SIGKILL)
                if status == "paused":
                    mgr.thaw()
            except (OSError, RuntimeFailure):
                pass
        elif own:
            if status == "paused" and mgr is not None:
                try:
                    mgr.thaw()
                except (OSError, RuntimeFailure):
                    pass
            cgshare.signal_pids(own, signal.SIGKILL)
        if status != "stopped":
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
        if foreign:
            cgshare.wait_pids_gone(own)
            try:
                mgr.destroy(kill=False)    # shared: remove only what is empty, signal nobody else
            except (OSError, RuntimeFailure) as e:
                log.warning(f"cgroup: {e}")
        else:
            _destroy_cgroup(mgr)
    if (st.config.get("hooks") or {}).get("poststop"):
        _poststop(root, cid, st.bundle, st.config)
    if st.owned.get("bundle"):
        _remove_image_bundle(st.owned["bundle"])
    _rmtree(cdir)
    log.debug(f"delete {cid}: was {status}, state and cgroup removed")


def _remove_image_bundle(bundle: str) -> None:
    """A run --image bundle: an overlay to unmount, a tree of any depth (iterative, by fd)."""
    from .image.overlay import remove_bundle
    try:
        remove_bundle(bundle)
    except OSError as e:     # the container goes anyway; a later run --image ID retries
        log.warning(str(RuntimeFailure.from_os(e, "delete image bundle", bundle)))


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
