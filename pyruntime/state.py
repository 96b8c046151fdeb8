"""Container state on disk: ``<root>/<id>/state.json`` (+ ``exec.sock`` while created; the lock is flock on the dir).

Written atomically (temp file + rename), read without the lock (a reader sees the old or the new file,
never half of one).  Liveness is derived, never stored: the init pid must exist, not be a zombie, and
have the start time recorded at create, so a reused pid is never taken for the container.

The state holds the whole config (process.env secrets): directories are 0700 and files 0600, as runc's.
It is read without following symlinks and must name its own directory's id: a state.json copied or
linked from another container must never make a command act on that other container.

A create writes a first record (``creating``, with the creating process's pid and start time) before it
makes anything, and updates it as it goes: if the runtime is killed halfway, ``delete --force`` and the
next ``create`` of the id find what was made (init, cgroup) and clear it.
"""

import _stat
import posix   # not os, which costs ~1 ms of every shim call: see fastos.py
import sys

from . import fastos
from .errors import ContainerNotFound, RuntimeFailure

_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_CHARS = _ID_FIRST | frozenset("_.+-")
ID_MAX = 255        # one path component (NAME_MAX): the id names the state dir and the default cgroup
FIFO = "exec.sock"   # see container.EXEC_SOCK
STATE_MAX = 64 << 20


_FIELDS = ("id", "pid", "start_time", "bundle", "created", "annotations", "owner", "rootfs", "cgroup", "owned",
           "config", "ocispec", "creating", "creator")
# field -> JSON type it must have in a state file we accept
_TYPES = {"id": str, "pid": int, "start_time": int, "bundle": str, "created": str, "annotations": dict,
          "owner": str, "rootfs": str, "cgroup": dict, "owned": dict, "config": dict, "ocispec": str,
          "creating": bool, "creator": list}
_REQUIRED = ("id", "pid", "start_time", "bundle", "created")


class State:
    """One container's record.  A plain class, not a dataclass: importing dataclasses costs ~15 ms
    (inspect, ast), paid on every `state`/`kill`/`delete` a shim makes."""

    __slots__ = _FIELDS + ("_config_json", "_spares")

    def __init__(self, id: str, pid: int, start_time: int, bundle: str, created: str,
                 annotations: dict | None = None, owner: str = "", rootfs: str = "", cgroup: dict | None = None,
                 owned: dict | None = None, config: dict | None = None, ocispec: str = "",
                 creating: bool = False, creator: list | None = None) -> None:
        self.id, self.pid, self.start_time, self.bundle, self.created = id, pid, start_time, bundle, created
        self.annotations = annotations or {}     # config.json annotations
        self.owner, self.rootfs, self.ocispec = owner, rootfs, ocispec
        self.cgroup = cgroup or {}               # the cgroup manager's own description (to_state)
        self.owned = owned or {}                 # extra things to undo on delete (image bundle, netdevices)
        self.config = config or {}               # config.json, for exec and the hooks of later commands
        self.creating = creating                 # a create is (or was, if `creator` is dead) under way
        self.creator = creator or []             # [pid, start time] of that create
        self._config_json: str | None = None     # `config` as the last save encoded it (see save)
        self._spares: list[str] = []             # files made ahead for the next saves (see reserve)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in _FIELDS}


def validate_id(cid: object) -> None:
    """runc's rule, checked on every command before anything touches the file system."""
    if not isinstance(cid, str) or not cid:
        raise RuntimeFailure("container id cannot be empty")
    if len(cid) > ID_MAX:
        raise RuntimeFailure(f"invalid container id: {len(cid)} characters (at most {ID_MAX})")
    if cid[0] not in _ID_FIRST or not _ID_CHARS.issuperset(cid):
        raise RuntimeFailure(f"invalid container id format: {cid!r} (letters, digits and _.+- only, "
                             "not starting with a punctuation mark)")


def container_dir(root: str, cid: str) -> str:
    validate_id(cid)
    return fastos.join(root, cid)


def ensure_root(root: str) -> None:
    """Create the state root (0700) or check that the given one is a directory."""
    try:
        if _stat.S_ISDIR(posix.stat(root).st_mode):
            return     # no mkdir: one of an existing name locks the parent directory exclusively all the same
    except OSError:
        pass
    import os      # create's path only (it imports os anyway)
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
    except FileExistsError:
        raise RuntimeFailure("not a directory", step="--root", path=root) from None
    except OSError as e:
        raise RuntimeFailure.from_os(e, "--root", root) from None


def _bad(path: str, cause: str) -> RuntimeFailure:
    return RuntimeFailure(cause, step="state", path=path)


def _read_state_file(root: str, cid: str) -> tuple[str, bytes]:
    """(path, bytes) of state.json, reached without following any symlink in <root>/<id>/state.json."""
    cdir = container_dir(root, cid)
    path = fastos.join(cdir, "state.json")
    try:
        dfd = posix.open(cdir, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC)
    except FileNotFoundError:
        raise ContainerNotFound(cid) from None
    except OSError as e:
        if fastos.lexists(root) and not fastos.isdir(root):
            raise _root_error(root) from None
        if fastos.islink(cdir):
            raise _bad(cdir, "the container directory is a symlink (refused)") from None
        raise RuntimeFailure.from_os(e, "state", cdir) from None
    try:
        try:
            fd = posix.open("state.json", posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_NONBLOCK | posix.O_CLOEXEC,
                            dir_fd=dfd)
        except FileNotFoundError:
            raise ContainerNotFound(cid) from None
        except OSError as e:
            if fastos.islink(path):
                raise _bad(path, "is a symlink (refused: a state file is never followed)") from None
            raise RuntimeFailure.from_os(e, "state", path) from None
    finally:
        posix.close(dfd)
    try:
        st = posix.fstat(fd)
        if not _stat.S_ISREG(st.st_mode):
            raise _bad(path, "not a regular file")
        if st.st_size > STATE_MAX:
            raise _bad(path, f"too large ({st.st_size} bytes)")
        chunks = []
        while True:
            b = posix.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return path, b"".join(chunks)
    except OSError as e:
        raise RuntimeFailure.from_os(e, "state", path) from None
    finally:
        posix.close(fd)


def _root_error(root: str) -> RuntimeFailure:
    if fastos.lexists(root):
        return RuntimeFailure("not a directory", step="--root", path=root)
    return RuntimeFailure("no such file or directory", step="--root", path=root)


def parse(path: str, cid: str, raw: bytes) -> State:
    """Check a state file's shape field by field; every refusal names the file and the cause."""
    if not raw.strip():
        raise _bad(path, "empty file")
    try:
        from . import fastjson as json     # here, not at the top: a missing container needs no parser
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _bad(path, f"not valid JSON (truncated?): {str(e)[:120]}") from None
    if not isinstance(data, dict):
        raise _bad(path, f"not a JSON object (found {type(data).__name__.replace('NoneType', 'null')})")
    for k in _REQUIRED:
        if k not in data:
            raise _bad(path, f"field {k!r} is missing")
    for k, t in _TYPES.items():
        v = data.get(k)
        if k in data and v is not None and (not isinstance(v, t) or (t is int and isinstance(v, bool))):
            raise _bad(path, f"field {k!r} must be {t.__name__.replace('str', 'a string')}")
    if data["id"] != cid:
        raise _bad(path, f"belongs to container {str(data['id'])[:ID_MAX]!r}, not {cid!r} (copied or linked "
                         "from another container: refused)")
    return State(**{k: v for k, v in data.items() if k in _FIELDS and v is not None})


def load(root: str, cid: str) -> State:
    path, raw = _read_state_file(root, cid)
    return parse(path, cid, raw)


def save(root: str, st: State, *, same_config: bool = False) -> None:
    """Atomic replace; a full disk or any write error is a RuntimeFailure naming the file.

    ``same_config``: ``st.config`` is unchanged since this State's previous save, whose encoding of it
    (most of the record: podman's config is ~10 KB of seccomp profile) is reused.  create's saves after
    the clone do so: there every page Python touches is a copy-on-write fault until the child execs,
    and walking the config again cost ~0.1-0.2 ms."""
    d = container_dir(root, st.id)
    path = fastos.join(d, "state.json")
    try:
        from . import fastjson as json
        if st._config_json is None or not same_config:
            st._config_json = json.dumps(st.config)
        head = json.dumps({k: getattr(st, k) for k in _FIELDS if k != "config"})
        data = f'{head[:-1]}, "config": {st._config_json}}}'.encode()
    except (TypeError, ValueError, RecursionError, UnicodeEncodeError) as e:
        raise RuntimeFailure(f"cannot encode the state: {e}", step="state", path=path) from None
    fd, tmp = -1, ""
    while fd < 0 and st._spares:
        fd, tmp = _open_spare(st._spares.pop(0))
    try:
        if fd < 0:
            tmp = fastos.join(d, ".state.json.tmp")
            try:
                posix.unlink(tmp)
            except FileNotFoundError:
                pass
            fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC,
                            0o600)
        try:
            view = memoryview(data)
            while view:
                n = posix.write(fd, view)
                view = view[n:]
        finally:
            posix.close(fd)
        _replace(tmp, path)
    except OSError as e:
        try:
            posix.unlink(tmp)
        except OSError:
            pass
        raise RuntimeFailure.from_os(e, "write state", path) from None


def _open_spare(name: str) -> tuple[int, str]:
    """A reserved file, opened for writing only if it is still the empty file reserve made: an existing
    name is opened without O_CREAT, and whoever could write in the directory could have put a fifo (the
    open would block), a device or a hard link to another file there (what we write would land in it).
    (-1, "") otherwise, and the name is removed."""
    try:
        fd = posix.open(name, posix.O_WRONLY | posix.O_NOFOLLOW | posix.O_NONBLOCK | posix.O_CLOEXEC)
    except OSError:
        fd = -1                # gone, or not something to write to: the next one, or a new file
    if fd >= 0:
        st = posix.fstat(fd)
        if _stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_size == 0 and st.st_uid == posix.geteuid():
            return fd, name
        posix.close(fd)
    try:
        posix.unlink(name)
    except OSError:
        pass
    return -1, ""


def reserve(root: str, st: State, n: int) -> None:
    """Make ``n`` empty files now for this State's next saves.  A file's creation is the dear part of a
    save on ext4 (0.1-0.4 ms of CPU, and milliseconds of journal wait when the disk is busy); create
    reserves its three saves (creating, pid, complete; the last two between the clone and its end) first
    thing, while the cgroup wait is pending anyway.  A spare has never been state.json, so no reader can have it open while it is written;
    a save without one creates its file as before.  Spares a killed create leaves go with its dir."""
    d = container_dir(root, st.id)
    for i in range(n):
        name = fastos.join(d, f".state.json.spare{len(st._spares)}")
        try:
            fd = posix.open(name, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC,
                            0o600)
        except OSError:
            return
        posix.close(fd)
        st._spares.append(name)


def _replace(tmp: str, path: str) -> None:
    """rename(tmp, path), atomic for every reader.  Once state.json exists, and with the C core loaded
    (create, its only writer, always has it), by exchanging the two names and unlinking the old file:
    ext4 (a state root on disk: /run is one on some hosts, and --root may be anywhere) forces the blocks
    of a file renamed over another to be allocated and written at once (auto_da_alloc), ~0.15 ms for each
    of create's saves here, and removing those blocks costs the `delete` after a short-lived container
    ~0.5 ms more; the exchange does neither.  Any refusal (no state.json yet, a file system that cannot
    exchange) falls back to rename."""
    core = sys.modules.get("pyruntime._core")
    if core is not None:
        import os      # loaded already with the core
        if core.lib.pyrt_rename_exchange(os.fsencode(tmp), os.fsencode(path)) == 0:
            try:
                posix.unlink(tmp)      # the previous state, now under the temporary name
            except OSError:
                pass                   # the next save removes it first
            return
    posix.rename(tmp, path)


def list_ids(root: str) -> list[str]:
    """Every container directory (valid id, a real directory), with or without a state file."""
    try:
        names = posix.listdir(root)
    except FileNotFoundError:
        return []
    except OSError as e:
        if not fastos.isdir(root):
            raise _root_error(root) from None
        raise RuntimeFailure.from_os(e, "--root", root) from None
    out = []
    for n in names:
        try:
            validate_id(n)
        except RuntimeFailure:
            continue
        p = fastos.join(root, n)
        if fastos.isdir(p) or fastos.islink(p):
            out.append(n)
    return sorted(out)


class locked:
    """``with locked(root, cid) as d:`` serialises commands on one container (flock on the container
    directory itself) and gives the container dir.  A class, not @contextmanager: contextlib is ~5 ms.

    The directory, not a ``lock`` file in it: a file is one more inode for every container, and on ext4
    without a journal (this host's /run and /tmp) each new inode costs 0.1-0.3 ms of CPU while the group
    holds many recently deleted ones, as the state root of a busy host does (8-way parallel benchmark).
    After the flock, the path must still name the directory we locked: a dead half-made dir is removed by
    whoever clears it (and may be made again by the next create), and a waiter must then not go on in a
    directory that is gone."""

    def __init__(self, root: str, cid: str, create: bool = False) -> None:
        self.dir = container_dir(root, cid)
        self.cid = cid
        if create:
            ensure_root(root)
        self.fd = -1

    def acquire(self, blocking: bool = True) -> bool:
        try:
            self.fd = _open_dir(self.dir)
        except FileNotFoundError:
            raise ContainerNotFound(self.cid) from None
        except OSError as e:
            if fastos.islink(self.dir):
                raise _bad(self.dir, "the container directory is a symlink (refused)") from None
            raise RuntimeFailure.from_os(e, "lock", self.dir) from None
        import fcntl      # not at the top: `state` and `kill` take no lock
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            self.release()
            return False
        try:
            now, ours = posix.stat(self.dir, follow_symlinks=False), posix.fstat(self.fd)
            same = now.st_ino == ours.st_ino and now.st_dev == ours.st_dev
        except FileNotFoundError:
            same = False
        if not same:
            self.release()
            raise ContainerNotFound(self.cid)
        return True

    def release(self) -> None:
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1

    def __enter__(self) -> str:
        self.acquire()
        return self.dir

    def __exit__(self, *exc) -> None:
        self.release()


def _open_dir(path: str) -> int:
    """The container directory, opened to be locked (never through a symlink)."""
    return posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC)


def lock_busy(root: str, cid: str) -> bool:
    """Is a command (a create under way, say) holding this container's lock right now?"""
    try:
        fd = _open_dir(container_dir(root, cid))
    except OSError:
        return False
    import fcntl
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        posix.close(fd)


def proc_start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie pid; None if gone or a zombie."""
    try:
        data = fastos.read_small(f"/proc/{pid}/stat")
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[19])


def alive(st: State) -> bool:
    return st.pid > 0 and proc_start_time(st.pid) == st.start_time


def creator_alive(st: State) -> bool:
    c = st.creator
    return len(c) == 2 and isinstance(c[0], int) and c[0] > 0 and proc_start_time(c[0]) == c[1]


def stopped(st: State) -> bool:
    """``status(...) == "stopped"`` without telling created, running and paused apart (what `kill` asks)."""
    return not creator_alive(st) if st.creating else not alive(st)


def status(root: str, st: State) -> str:
    """creating | created | running | paused | stopped, derived from the processes and the freezer.
    A record still marked creating whose create process is dead is a half-made container: stopped."""
    if st.creating:
        return "creating" if creator_alive(st) else "stopped"
    if not alive(st):
        return "stopped"
    if fastos.exists(fastos.join(root, st.id, FIFO)):
        return "created"
    if st.cgroup:
        try:
            if cgroup_frozen(st.cgroup):
                return "paused"
        except (OSError, RuntimeFailure, KeyError, TypeError):
            pass
    return "running"


def _read_cgroup_file(path: str) -> str | None:
    try:
        return fastos.read_small(path).decode().strip()
    except FileNotFoundError:
        return None


def cgroup_frozen(cg: dict) -> bool:
    """``manager_from_state(cg).frozen()`` for the record in state.json, without importing the drivers
    (`state` asks it on every call of a running container): the same files they read, v1 freezer.state
    (FREEZING counts), else the unified cgroup's cgroup.freeze."""
    drv = cg.get("driver")
    if drv == "v1" or drv == "systemd" and cg.get("paths") is not None:     # systemd on a v1 layout
        fz = (cg.get("paths") or {}).get("freezer")
        if fz:
            return _read_cgroup_file(fastos.join(fz, "freezer.state")) in ("FROZEN", "FREEZING")
        cg = cg.get("unified") or {}
    elif drv not in ("v2", "systemd"):     # systemd on v2: the scope's directory is the top-level "path"
        raise RuntimeFailure(f"unknown cgroup driver {drv!r} in state", step="cgroup")
    return bool(cg.get("path")) and _read_cgroup_file(fastos.join(cg["path"], "cgroup.freeze")) == "1"


def oci_state(root: str, st: State, status_: str | None = None) -> dict:
    """The runtime-spec state JSON (plus runc's extra fields that clients read)."""
    s = status_ or status(root, st)
    out = {"ociVersion": st.ocispec or "1.2.0", "id": st.id, "status": s,
           "pid": st.pid if s != "stopped" else 0, "bundle": st.bundle, "rootfs": st.rootfs,
           "created": st.created, "owner": st.owner}
    if st.annotations:
        out["annotations"] = st.annotations
    return out
