"""Whose processes are in a container's cgroup, when a cgroupsPath can be shared.

Two containers that name the same cgroupsPath cannot be told apart by their cgroup, and a delete (or a
failed create) of one used to kill the other.  As runc 1.2+, create refuses a cgroup that already has
processes (:func:`check_unused`); a cgroup can still be reused after its first container stopped, so
delete and ``kill --all`` ask :func:`split` which processes are the container's own and signal only
those, and a cgroup that keeps someone else's processes is left in place (``destroy(kill=False)``).
"""
from __future__ import annotations

import fcntl
import os
import time

from . import state
from .errors import RuntimeFailure


def pidns(pid: int) -> int:
    """Inode of a process's pid namespace (0 if it is gone)."""
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return 0


NS_GET_PARENT = 0xB702      # _IO(0xb7, 0x2)


def in_pidns(pid: int, ns: int) -> bool:
    """Is `pid` in pid namespace `ns` or in one nested below it (a container may make its own)?"""
    try:
        fd = os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        for _ in range(33):             # the kernel nests pid namespaces 32 deep at most
            if os.fstat(fd).st_ino == ns:
                return True
            try:
                parent = fcntl.ioctl(fd, NS_GET_PARENT)
            except OSError:             # reached our own namespace: not below ns
                return False
            os.close(fd)
            fd = parent
        return False
    finally:
        os.close(fd)


def check_unused(mgr) -> None:
    """runc (1.2+) refuses a cgroupsPath that already holds processes: two containers in one cgroup
    could not be told apart, and deleting one would kill the other."""
    try:
        pids = mgr.pids()
    except (OSError, RuntimeFailure):
        return
    if pids:
        raise RuntimeFailure(f"container's cgroup is not empty: {len(pids)} process(es) found",
                             step="linux.cgroupsPath")
    try:
        frozen = mgr.frozen()
    except (OSError, RuntimeFailure):
        frozen = False
    if frozen:
        raise RuntimeFailure("container's cgroup unexpectedly frozen", step="linux.cgroupsPath")


def release(mgr) -> None:
    """Undo of a failed create: our init is already killed and reaped; remove what is empty and
    never signal anything else (another container may have joined the cgroup meanwhile)."""
    mgr.destroy(kill=False)


def signal_pids(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def same_cgroup(a: dict, b: dict) -> bool:
    def key(d: dict) -> set:
        out = set()
        if d.get("path"):
            out.add(d["path"])
        out.update(v for v in (d.get("paths") or {}).values() if isinstance(v, str))
        if isinstance(d.get("unified"), dict) and d["unified"].get("path"):
            out.add(d["unified"]["path"])
        return out
    return bool(key(a) & key(b))


def split(root: str, st: state.State, mgr) -> tuple[list[int], list[int]]:
    """(ours, not ours) among the processes in the container's cgroup.

    With its own pid namespace (the usual case) a process is ours iff it is in that namespace.  In the
    host's pid namespace processes cannot be told apart: they are all ours unless another living
    container of this --root names the same cgroup, and then only the init is (runc refuses such
    sharing at create; this covers a container created after the first one stopped)."""
    try:
        pids = mgr.pids()
    except (OSError, RuntimeFailure):
        return [], []
    if not pids:
        return [], []
    entry = [n for n in ((st.config.get("linux") or {}).get("namespaces") or [])
             if isinstance(n, dict) and n.get("type") == "pid"]
    if entry:
        # namespace inodes are reused once a namespace is freed: compare only with one that lives
        if state.alive(st):
            ns = pidns(st.pid)
        elif isinstance(entry[0].get("path"), str) and entry[0]["path"]:
            try:
                ns = os.stat(entry[0]["path"]).st_ino     # joined: it outlives our init
            except OSError:
                ns = 0
        else:
            ns = 0      # our own namespace died with the init, and every process in it
        ours = [p for p in pids if ns and in_pidns(p, ns)]
        return ours, [p for p in pids if p not in ours]
    others = [p for p in pids if p != st.pid]
    if others and sibling_in_cgroup(root, st):
        return [p for p in pids if p == st.pid and state.alive(st)], others
    return pids, []


def sibling_in_cgroup(root: str, st: state.State) -> bool:
    for other in state.list_ids(root):
        if other == st.id:
            continue
        try:
            o = state.load(root, other)
        except RuntimeFailure:
            continue
        if o.cgroup and same_cgroup(o.cgroup, st.cgroup) and (state.alive(o) or state.creator_alive(o)):
            return True
    return False


def wait_pids_gone(pids: list[int], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    for p in pids:
        while os.path.exists(f"/proc/{p}") and time.monotonic() < deadline:
            time.sleep(0.005)
