"""Container state on disk: ``<root>/<id>/state.json`` (+ ``exec.fifo`` while created, ``lock``).

Written atomically (temp file + rename), read without the lock (a reader sees the old or the new file,
never half of one).  Liveness is derived, never stored: the init pid must exist, not be a zombie, and
have the start time recorded at create, so a reused pid is never taken for the container.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterator

from .errors import ContainerNotFound, RuntimeFailure

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,1023}$")
FIFO = "exec.sock"   # see container.EXEC_SOCK


@dataclass
class State:
    id: str
    pid: int
    start_time: int            # field 22 of /proc/PID/stat at create
    bundle: str
    created: str               # RFC 3339
    annotations: dict = field(default_factory=dict)
    owner: str = ""
    rootfs: str = ""
    cgroup: dict = field(default_factory=dict)     # the cgroup manager's own description (to_state)
    owned: dict = field(default_factory=dict)      # extra things to undo on delete (image bundle, netdevices)
    config: dict = field(default_factory=dict)     # parts of config.json later commands need (hooks, process)
    ocispec: str = ""


def validate_id(cid: str) -> None:
    if not cid:
        raise RuntimeFailure("container id cannot be empty")
    if not _ID_RE.match(cid) or cid in (".", ".."):
        raise RuntimeFailure(f"invalid container id format: {cid!r} (letters, digits and _.+- only, "
                             "not starting with a punctuation mark)")


def container_dir(root: str, cid: str) -> str:
    validate_id(cid)
    return os.path.join(root, cid)


def load(root: str, cid: str) -> State:
    path = os.path.join(container_dir(root, cid), "state.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ContainerNotFound(cid) from None
    except (OSError, ValueError) as e:
        raise RuntimeFailure(f"cannot read state: {e}", step="state", path=path) from None
    return State(**{k: v for k, v in data.items() if k in State.__dataclass_fields__})


def save(root: str, st: State) -> None:
    d = container_dir(root, st.id)
    tmp = os.path.join(d, ".state.json.tmp")
    with open(tmp, "w") as f:
        json.dump(asdict(st), f)
    os.rename(tmp, os.path.join(d, "state.json"))


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(root)
                      if os.path.exists(os.path.join(root, n, "state.json")))
    except FileNotFoundError:
        return []


@contextmanager
def locked(root: str, cid: str, create: bool = False) -> Iterator[str]:
    """Serialise commands on one container (flock on ``<dir>/lock``); yields the container dir."""
    d = container_dir(root, cid)
    if create:
        os.makedirs(root, mode=0o711, exist_ok=True)
    try:
        fd = os.open(os.path.join(d, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        raise ContainerNotFound(cid) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield d
    finally:
        os.close(fd)


def proc_start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie pid; None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[19])


def alive(st: State) -> bool:
    return st.pid > 0 and proc_start_time(st.pid) == st.start_time


def status(root: str, st: State) -> str:
    """created | running | paused | stopped, derived from the process and the cgroup freezer."""
    if not alive(st):
        return "stopped"
    if os.path.exists(os.path.join(root, st.id, FIFO)):
        return "created"
    if st.cgroup:
        from .cgroups import manager_from_state
        try:
            if manager_from_state(st.cgroup).frozen():
                return "paused"
        except (OSError, RuntimeFailure):
            pass
    return "running"


def oci_state(root: str, st: State, status_: str | None = None) -> dict:
    """The runtime-spec state JSON (plus runc's extra fields that clients read)."""
    s = status_ or status(root, st)
    out = {"ociVersion": st.ocispec or "1.2.0", "id": st.id, "status": s,
           "pid": st.pid if s != "stopped" else 0, "bundle": st.bundle, "rootfs": st.rootfs,
           "created": st.created, "owner": st.owner}
    if st.annotations:
        out["annotations"] = st.annotations
    return out
