"""Container state on disk: ``<root>/<id>/state.json`` (+ ``exec.sock`` while created, ``lock``).

Written atomically (temp file + rename), read without the lock (a reader sees the old or the new file,
never half of one).  Liveness is derived, never stored: the init pid must exist, not be a zombie, and
have the start time recorded at create, so a reused pid is never taken for the container.
"""
from __future__ import annotations

import fcntl
import os

from . import fastjson as json
from .errors import ContainerNotFound, RuntimeFailure

_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_CHARS = _ID_FIRST | frozenset("_.+-")
FIFO = "exec.sock"   # see container.EXEC_SOCK


_FIELDS = ("id", "pid", "start_time", "bundle", "created", "annotations", "owner", "rootfs", "cgroup", "owned",
           "config", "ocispec")


class State:
    """One container's record.  A plain class, not a dataclass: importing dataclasses costs ~15 ms
    (inspect, ast), paid on every `state`/`kill`/`delete` a shim makes."""

    __slots__ = _FIELDS

    def __init__(self, id: str, pid: int, start_time: int, bundle: str, created: str,
                 annotations: dict | None = None, owner: str = "", rootfs: str = "", cgroup: dict | None = None,
                 owned: dict | None = None, config: dict | None = None, ocispec: str = "") -> None:
        self.id, self.pid, self.start_time, self.bundle, self.created = id, pid, start_time, bundle, created
        self.annotations = annotations or {}     # config.json annotations
        self.owner, self.rootfs, self.ocispec = owner, rootfs, ocispec
        self.cgroup = cgroup or {}               # the cgroup manager's own description (to_state)
        self.owned = owned or {}                 # extra things to undo on delete (image bundle, netdevices)
        self.config = config or {}               # config.json, for exec and the hooks of later commands

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in _FIELDS}


def validate_id(cid: str) -> None:
    if not cid:
        raise RuntimeFailure("container id cannot be empty")
    if len(cid) > 1024 or cid[0] not in _ID_FIRST or not _ID_CHARS.issuperset(cid):
        raise RuntimeFailure(f"invalid container id format: {cid!r} (letters, digits and _.+- only, "
                             "not starting with a punctuation mark)")


def container_dir(root: str, cid: str) -> str:
    validate_id(cid)
    return os.path.join(root, cid)


def load(root: str, cid: str) -> State:
    path = os.path.join(container_dir(root, cid), "state.json")
    try:
        with open(path) as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        raise ContainerNotFound(cid) from None
    except (OSError, ValueError) as e:
        raise RuntimeFailure(f"cannot read state: {e}", step="state", path=path) from None
    return State(**{k: v for k, v in data.items() if k in _FIELDS})


def save(root: str, st: State) -> None:
    d = container_dir(root, st.id)
    tmp = os.path.join(d, ".state.json.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(st.to_dict()))
    os.rename(tmp, os.path.join(d, "state.json"))


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(root)
                      if os.path.exists(os.path.join(root, n, "state.json")))
    except FileNotFoundError:
        return []


class locked:
    """``with locked(root, cid) as d:`` serialises commands on one container (flock on
    ``<dir>/lock``) and gives the container dir.  A class, not @contextmanager: contextlib is ~5 ms."""

    def __init__(self, root: str, cid: str, create: bool = False) -> None:
        self.dir = container_dir(root, cid)
        self.cid = cid
        if create:
            os.makedirs(root, mode=0o711, exist_ok=True)
        self.fd = -1

    def __enter__(self) -> str:
        try:
            self.fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise ContainerNotFound(self.cid) from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self.dir

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


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
