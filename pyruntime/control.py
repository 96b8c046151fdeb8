"""Start, kill, pause, resume and delete of an existing container: the calls conmon and containerd's
shim make for every container, several times.  (create is container.py, which re-exports these.)

Kept lean on purpose: nothing here imports :mod:`os`, the cgroup drivers, the C core or the hooks
runner until a call needs them (a poststart hook, a running or paused container to kill, a populated
cgroup), so `start`, `kill` and `delete` of a stopped container cost little more than the interpreter's
own start: `start`'s handshake is syncmsg.py's (the sync protocol's header and handshake, without os or
the C core), a stopped container's empty cgroup goes through ``cgroups.remove_if_empty`` (a
populated one, or a systemd unit, through the drivers) and its state directory through
fastos.remove_path (the one tree removal).
Safety is the same as everywhere: the state is read with O_NOFOLLOW and must name its own id
(state.py), commands that change a container hold its lock, and a process is only signalled through a
pidfd after its start time proved it is the container's init.
"""

import _signal as signal   # not `signal`: its enum conversion costs ms per call
import posix   # not os: see fastos.py
import time

from . import fastos, log, state
from .errors import ContainerNotFound, NotRunning, RuntimeFailure

def clear_halfmade(root: str, cid: str, st: "state.State | None", keep_bundle: str = "") -> None:
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
                from . import cgshare
                from .cgroups import manager_from_state
                mgr = manager_from_state(st.cgroup)
                own, foreign = cgshare.split(root, st, mgr)
                cgshare.signal_pids(own, signal.SIGKILL)
                mgr.destroy(kill=False)
            except (OSError, RuntimeFailure, KeyError, TypeError) as e:
                log.warning(f"cgroup: {e}")
        b = st.owned.get("bundle")
        if isinstance(b, str) and b and b != keep_bundle and fastos.lexists(b):
            _remove_image_bundle(b)
    _remove_dir(fastos.join(root, cid))


def hook_state(root: str, st: state.State, status: str) -> dict:
    """The state given to hooks (runtime.md "State"): ``ociVersion`` is the spec version this
    runtime's state complies with, not the config's; ``pid`` is the container init."""
    from . import SPEC_VERSION
    s = state.oci_state(root, st, status)
    s["ociVersion"] = SPEC_VERSION
    s["pid"] = st.pid
    return s


def poststop(root: str, cid: str, bundle: str, cfg: dict) -> None:
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
    host_notify = fastos.getenv("NOTIFY_SOCKET")
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
        from .syncmsg import release_init
        try:
            release_init(cdir)
        finally:
            try:
                posix.unlink(fastos.join(cdir, state.FIFO))
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
        pfd = posix.pidfd_open(st.pid)
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
        posix.close(pfd)


def kill(root: str, cid: str, sig: int, all_: bool = False) -> None:
    st = state.load(root, cid)
    if all_ and st.cgroup:
        # as runc: a stopped container whose cgroup is gone has nothing to signal, and that is no error
        # (a shim sends kill --all 9 twice after the init's exit); without the drivers or cgshare
        if state.stopped(st):
            from .cgroups import record_exists
            if not record_exists(st.cgroup):
                return
        from . import cgshare
        from .cgroups import manager_from_state
        mgr = manager_from_state(st.cgroup)
        own, foreign = cgshare.split(root, st, mgr)
        if foreign:      # a shared cgroup: only our own processes
            cgshare.signal_pids(own, sig)
        else:
            mgr.kill_all(sig)
        return
    if state.stopped(st):
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
    b = fastos.join(root, ".bundles", cid)
    if fastos.isdir(b):
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
        if not fastos.lexists(cdir):
            if force:
                _orphan_image_bundle(root, cid)
                return      # the shim's second `delete --force` after a `delete`: succeed quietly
            raise
        st = None
    except RuntimeFailure as e:
        if not force or not fastos.lexists(cdir):
            raise
        log.warning(f"{e}; removing only the directory {cdir}")
        _remove_dir(cdir)
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
                clear_halfmade(root, cid, st)
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
    # what every shim's delete after the exit is: a stopped container whose cgroup is empty, removed
    # from its record without loading the drivers; anything left in it (or any doubt, or a systemd
    # unit to stop) goes through them below
    gone = False
    if st.cgroup and status == "stopped":
        from .cgroups import remove_if_empty
        gone = remove_if_empty(st.cgroup)
    if st.cgroup and not gone:
        from . import cgshare
        from .cgroups import manager_from_state
        try:
            mgr = manager_from_state(st.cgroup)
        except (KeyError, TypeError) as e:
            raise RuntimeFailure(f"field 'cgroup' is malformed ({e})", step="state",
                                 path=fastos.join(cdir, "state.json")) from None
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
        poststop(root, cid, st.bundle, st.config)
    if st.owned.get("bundle"):
        _remove_image_bundle(st.owned["bundle"])
    _remove_dir(cdir)
    log.debug(f"delete {cid}: was {status}, state and cgroup removed")


def _remove_dir(cdir: str) -> None:
    """The container's state directory, through the one tree removal (never following a symlink),
    best effort: the container is gone either way, and a later create of the id clears what is left."""
    try:
        fastos.remove_path(cdir)
    except OSError as e:
        log.warning(str(RuntimeFailure.from_os(e, "delete state directory", cdir)))


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
