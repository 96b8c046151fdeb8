"""Run a new process in a running container (``pyruntime exec``).

Same C engine as create, in PYRT_MODE_EXEC: the child joins every namespace the container's init
has (user first; time through the parent; the pid namespace last, by an intermediate process that
forks the final one only after it joined the mount namespace: see spawn.c), is placed in the
container's cgroup (or the sub-cgroup of it that ``exec --cgroup`` names) before it runs anything, gets the container's seccomp program, capabilities,
rlimits and NNP unless overridden, and is non-dumpable until execve (no host executable exposed).
"""
from __future__ import annotations

import posix   # not os: nothing on exec's path imports it (~1 ms with _collections_abc)

from . import log, state
from .errors import ConfigError, RuntimeFailure
from .plan import build_exec
from .protocol import Forwarder, kill_and_reap, send_pidfd, spawn, wait_exec, write_pid_file


def exec_process(root: str, st: state.State, proc: dict, *, detach: bool = False, pid_file: str | None = None,
                 console_socket: str | None = None, preserve_fds: int = 0, ignore_paused: bool = False,
                 pidfd_socket: str | None = None, sub_cgroup: dict[str, str] | None = None) -> int:
    """Start ``proc`` in the container whose state ``st`` the caller loaded; returns its exit status
    (0 at once when detached).  The process is planned by the same builder as create's init
    (plan.fill_container_process) and driven by the same protocol module.  ``sub_cgroup``: exec
    --cgroup's sub-cgroups (cgroups.parse_sub), joined by the driver's one join (clone_fd/add_pid); without
    it the process is placed at its birth through cgroups.base.birth_fds (base.join if the kernel
    refuses CLONE_INTO_CGROUP), which the drivers use too, on state.json's record, so exec does not
    import the drivers."""
    from . import protocol, spec
    cid = st.id
    status = state.status(root, st)
    if status == "stopped":
        raise RuntimeFailure("cannot exec in a stopped container")
    if status == "creating":
        raise RuntimeFailure("cannot exec in a container that is still being created")
    if status == "paused" and not ignore_paused:
        raise RuntimeFailure("cannot exec in a paused container (use --ignore-paused to override)")
    spec.validate_process(proc, "process")
    keyring = None if st.owned.get("no_new_keyring") else cid
    p, warnings = build_exec(st.config, st.pid, proc, seccomp_cache=root, keyring=keyring)
    for w in warnings:
        log.warning(w)
    sync = None
    ours = None
    master = None
    fwd = None
    relay = None
    pid = 0
    try:
        _exec_groups(p, st.pid, proc)
        from .plan import born_in_cgroup, set_cgroup, set_console, set_preserve_fds, set_stdio
        mgr = None
        if st.cgroup and sub_cgroup:
            from .cgroups import manager_from_state      # the drivers check the sub-cgroup
            mgr = manager_from_state(st.cgroup)
            set_cgroup(p, mgr.clone_fd(sub_cgroup))     # a bad sub-cgroup fails here, before any process
        elif st.cgroup:
            from .cgroups import base as cgbase          # the drivers' own join, from the record alone
            set_cgroup(p, *cgbase.birth_fds(st.cgroup))  # placed at birth, no cgroup.procs write
        elif sub_cgroup:
            raise RuntimeFailure("the container has no cgroup of its own to take a sub-cgroup of",
                                 step="exec --cgroup")
        if proc.get("terminal"):
            if console_socket:
                set_console(p, socket_path=console_socket)
            elif detach:
                raise RuntimeFailure("cannot allocate tty if pyruntime will detach without setting console socket")
            else:
                from .ttyproxy import console_pair, need_terminal
                need_terminal()
                ours, theirs = console_pair()
                p.keep.append(theirs)
                set_console(p, fd=theirs.fileno(), wait=True)
        elif not detach:
            from .stdiorelay import Relay
            relay = Relay()              # our terminal fds become pipes for the process (TIOCSTI)
            set_stdio(p, relay.child)
        set_preserve_fds(p, preserve_fds)
        pid, sync = spawn(p)
        log.debug(f"exec {cid}: spawned pid {pid} into the container's namespaces")
        if relay is not None:
            relay.close_child_ends()
        if not detach:
            fwd = Forwarder(pid)         # before the process can run: signals go to it, not to us
        if mgr is not None and p.c.cgroup_fd < 0:
            mgr.add_pid(pid, sub_cgroup)
        elif st.cgroup and not born_in_cgroup(p):
            cgbase.join(st.cgroup, pid)

        def on_console(_payload: bytes, _fds: list) -> None:
            nonlocal master
            if ours is None:
                raise RuntimeFailure("exec: unexpected console message")
            from .ttyproxy import copy_winsize, recv_master
            master = recv_master(ours)
            copy_winsize(master)
            sync.send(sync.m.GO)

        def on_listener(_payload: bytes, fds: list) -> None:
            from .container import forward_listener     # only with a seccomp listener: not on every exec
            forward_listener(p, fds, state.oci_state(root, st, "running"))

        def on_pid(payload: bytes, _fds: list) -> None:
            nonlocal pid      # the intermediate joined the mount namespace, then forked into the pid ns
            pid = protocol.adopt_final(pid, payload)
            if fwd is not None:
                fwd.retarget(pid)

        sync.send(sync.m.GO)
        protocol.drive(sync, {sync.m.CONSOLE: on_console, sync.m.SECCOMP_FD: on_listener,
                                sync.m.PID: on_pid}, "exec")
        wait_exec(sync, "exec")
        log.debug(f"exec {cid}: pid {pid} runs {proc.get('args', ['?'])[0]}")
        if pid_file:
            write_pid_file(pid_file, pid)
        if pidfd_socket:
            send_pidfd(pidfd_socket, pid)
        if detach:
            pid = 0              # the caller's subreaper owns it now
            return 0
        if master is not None:
            from .ttyproxy import proxy
            pidfd = posix.pidfd_open(pid)
            try:
                proxy(master, pidfd)
            finally:
                posix.close(pidfd)
                posix.close(master)
        elif relay is not None and relay.active:
            relay.run(fwd.pidfd)
        code = fwd.wait()
        log.debug(f"exec {cid}: pid {pid} exited, status {code}")
        pid = 0
        return code
    finally:
        if relay is not None:
            relay.close()
        if fwd is not None:
            fwd.close()
        if pid:
            kill_and_reap(pid)
        if sync is not None:
            sync.close()
        p.close()


def _exec_groups(p, init_pid: int, proc: dict) -> None:
    """exec joins the container's user namespace: where setgroups is denied there (a single-id rootless
    mapping), the process keeps its groups (none can be set) and asking for some is an error.  Here, not
    in rootless.py: that module (~180 KB of peak RSS) stays off exec's path, a shim's call per exec."""
    try:
        with open(f"/proc/{init_pid}/setgroups") as f:
            denied = f.read().strip() == "deny"
    except OSError:
        return
    if not denied:
        return
    if ((proc.get("user") or {}).get("additionalGids")):
        raise ConfigError("process.user.additionalGids", "cannot set additional groups: the container's "
                          "user namespace denies setgroups (rootless, single gid mapping)")
    p.c.set_groups = 0
