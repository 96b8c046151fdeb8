"""Run a new process in a running container (``pyruntime exec``).

Same C engine as create, in PYRT_MODE_EXEC: the child joins every namespace the container's init
has (user first; pid and time through the parent, as they apply to children), is placed in the
container's cgroup before it runs anything, gets the container's seccomp program, capabilities,
rlimits and NNP unless overridden, and is non-dumpable until execve (no host executable exposed).
"""
from __future__ import annotations

import os

from . import state
from .errors import RuntimeFailure
from .plan import JOIN_ORDER, NS_FLAGS, NS_PROC, Plan, fill_process, fill_seccomp, set_joins


def _join_container_namespaces(p: Plan, st: state.State) -> None:
    from . import spec
    nss = spec.namespaces(st.config)
    joins = []
    for t in nss:
        path = f"/proc/{st.pid}/ns/{NS_PROC[t]}"
        if t == "pid":
            p.c.pidns_fd = p.open_fd(path, "join pid namespace")
        elif t == "time":
            p.c.timens_fd = p.open_fd(path, "join time namespace")
        else:
            joins.append((JOIN_ORDER.index(t), p.open_fd(path, f"join {t} namespace"), NS_FLAGS[t]))
    set_joins(p, [(fd, fl) for _, fd, fl in sorted(joins)])
    p.c.in_userns = int("user" in nss)


def exec_process(root: str, cid: str, proc: dict, *, detach: bool = False, pid_file: str | None = None,
                 console_socket: str | None = None, preserve_fds: int = 0, ignore_paused: bool = False,
                 cgroup_sub: str | None = None) -> int:
    """Start ``proc`` in the container; returns its exit status (0 at once when detached)."""
    from . import spec
    from ._core import lib
    from .container import (MSG_CONSOLE, MSG_CREATED, MSG_ERROR, MSG_GO, MSG_PID, _child_error, _kill_and_reap, adopt_final,
                            connect_console, spawn, write_pid_file)
    st = state.load(root, cid)
    status = state.status(root, st)
    if status == "stopped":
        raise RuntimeFailure("cannot exec in a stopped container")
    if status == "paused" and not ignore_paused:
        raise RuntimeFailure("cannot exec in a paused container (use --ignore-paused to override)")
    spec.validate_process(proc, "process")
    p = Plan()
    sync = None
    ours = None
    master = None
    fwd = None
    relay = None
    pid = 0
    try:
        p.c.mode = lib.PYRT_MODE_EXEC
        _join_container_namespaces(p, st)
        fill_process(p, proc)
        p.seccomp = fill_seccomp(p, (st.config.get("linux") or {}).get("seccomp"))
        mgr = None
        if st.cgroup:
            from .cgroups import manager_from_state
            mgr = manager_from_state(st.cgroup)
            cgfd = mgr.clone_fd() if not cgroup_sub else None
            if cgfd is not None:
                p.fds.append(cgfd)
                p.c.cgroup_fd = cgfd
        if proc.get("terminal"):
            if console_socket:
                connect_console(p, console_socket)
            elif detach:
                raise RuntimeFailure("cannot allocate tty if pyruntime will detach without setting console socket")
            else:
                from .ttyproxy import console_pair
                ours, theirs = console_pair()
                p.keep.append(theirs)
                p.c.console_fd = theirs.fileno()
                p.c.console_wait = 1
        elif not detach:
            from .stdiorelay import Relay
            relay = Relay()              # our terminal fds become pipes for the process (TIOCSTI)
            for i, fd in enumerate(relay.child):
                p.c.stdio_fds[i] = fd
        p.c.preserve_fds = preserve_fds
        pid, sync = spawn(p)
        if relay is not None:
            relay.close_child_ends()
        if not detach:
            from .commands.run import Forwarder
            fwd = Forwarder(pid)         # before the process can run: signals go to it, not to us
        if mgr is not None and p.c.cgroup_fd < 0:
            mgr.add_pid(pid)
        sync.send(MSG_GO)
        created = False
        while True:
            mtype, errno_, payload, fds = sync.recv()
            for fd in fds:
                os.close(fd)
            if mtype == MSG_CONSOLE and ours is not None:
                from .ttyproxy import copy_winsize, recv_master
                master = recv_master(ours)
                copy_winsize(master)
                sync.send(MSG_GO)
            elif mtype == MSG_PID:
                pid = adopt_final(pid, payload)    # the intermediate joined the mount ns, then forked
                if fwd is not None:
                    fwd.retarget(pid)
            elif mtype == MSG_CREATED:
                created = True
            elif mtype == MSG_ERROR:
                raise _child_error(errno_, payload)
            elif mtype == 0:
                if not created:
                    raise RuntimeFailure("exec: the process exited before it could start")
                break            # EOF after CREATED: execve closed the CLOEXEC socket
        if pid_file:
            write_pid_file(pid_file, pid)
        if detach:
            pid = 0              # the caller's subreaper owns it now
            return 0
        if master is not None:
            from .ttyproxy import proxy
            pidfd = os.pidfd_open(pid)
            try:
                proxy(master, pidfd)
            finally:
                os.close(pidfd)
                os.close(master)
        elif relay is not None and relay.active:
            relay.run(fwd.pidfd)
        code = fwd.wait()
        pid = 0
        return code
    finally:
        if relay is not None:
            relay.close()
        if fwd is not None:
            fwd.close()
        if pid:
            _kill_and_reap(pid)
        if sync is not None:
            sync.close()
        p.close()
