"""What every driver shares: cgroupfs file I/O with useful errors, directory creation that remembers
what it made (so destroy removes exactly that), recursive pid listing and signalling.
"""
from __future__ import annotations

import errno
import posix   # not os: exec joins through write_pid without it (~1 ms); the rest imports it locally
import _signal as signal   # not `signal`: its enums cost milliseconds per call
import time

from ..errors import RuntimeFailure
from . import leaf_dirs, remove_created as _remove_created


def write(d: str, name: str, value: str | int) -> None:
    """Write one value to a cgroup file; the error names the file and what the kernel said."""
    path = f"{d}/{name}"
    data = str(value).encode()
    try:
        fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure.from_os(e, "cgroup: open", path) from None
    try:
        posix.write(fd, data)
    except OSError as e:
        hint = ""
        if e.errno == errno.EBUSY and name.startswith("memory."):
            hint = f" (writing {value}: the limit is below current usage?)"
        elif e.errno == errno.EINVAL:
            hint = f" (writing {value!r})"
        raise RuntimeFailure(posix.strerror(e.errno or errno.EIO).lower() + hint,
                             step="cgroup: write", path=path, errno=e.errno or errno.EIO) from None
    finally:
        posix.close(fd)


def sub_dir(d: str, sub: str) -> str:
    """``exec --cgroup``'s sub-path resolved below the container's cgroup ``d``: relative to it even
    when written absolute (as runc), never outside it (``..``), and an existing directory: a process
    must not be placed in a cgroup the container does not own, and a missing one fails before any
    process exists."""
    import os
    path = os.path.normpath(os.path.join(d, sub.lstrip("/")))
    if path != d and not path.startswith(d.rstrip("/") + "/"):
        raise RuntimeFailure(f"{sub} is not a sub cgroup path", step="exec --cgroup")
    if not os.path.isdir(path):
        raise RuntimeFailure(f"sub-cgroup {sub} does not exist", step="exec --cgroup", path=path)
    return path


def write_pid(d: str, pid: int) -> None:
    """Move ``pid`` into cgroup ``d``.  EINVAL can mean the task is still TASK_NEW (just forked):
    retry briefly, as runc does, before calling it an error."""
    for _ in range(5):
        try:
            write(d, "cgroup.procs", pid)
            return
        except RuntimeFailure as e:
            if e.errno in (errno.EOPNOTSUPP, errno.EBUSY):
                raise RuntimeFailure(
                    f"the kernel refuses processes in this cgroup ({posix.strerror(e.errno).lower()}): an "
                    "ancestor has processes of its own with controllers enabled (cgroup v2 'no internal "
                    "processes' rule); use a linux.cgroupsPath outside it", step="cgroup", path=d,
                    errno=e.errno) from None
            if e.errno != errno.EINVAL:
                raise
            time.sleep(0.03)
    write(d, "cgroup.procs", pid)


def record_dirs(record: dict) -> list[str]:
    """Where a process joins the container's cgroup, from the driver's state record (``to_state()``)
    alone: each distinct v1 directory (co-mounted controllers share one) in the record's order, then
    the unified one (hybrid); on v2 the leaf.  The drivers' ``add_pid`` without a sub-cgroup is
    :func:`join` of their own record, and exec calls it on state.json's record: one join, and exec
    does not import the drivers (fs1/fs2, ~0.7 ms) for it."""
    if record.get("driver") not in ("v1", "v2", "systemd"):
        raise RuntimeFailure(f"unknown cgroup driver {record.get('driver')!r} in state", step="cgroup")
    dirs = leaf_dirs(record, systemd=True) or []      # the unified one first, when there is one
    return dirs[1:] + dirs[:1] if record.get("paths") is not None and record.get("unified") else dirs


def join(record: dict, pid: int) -> None:
    """Move ``pid`` into every directory of :func:`record_dirs`."""
    for d in record_dirs(record):
        write_pid(d, pid)


def birth_fds(record: dict) -> tuple[int | None, list[int]]:
    """How a new process joins the record's cgroup with no cgroup.procs write (each such write, and
    any write of another task's pid, takes the kernel's global threadgroup lock, whose writer waits
    an RCU grace period, 6-14 ms here, unless a migration happened within the last one): (a v2 or
    hybrid unified directory fd to clone it into, CLONE_INTO_CGROUP, whose lock is the reader's; fds
    of the v1 `tasks` files it writes "0" into, itself, first thing: _native/spawn.c
    join_cgroups_v1, which takes no such lock).  The caller owns the fds."""
    paths = record.get("paths")
    if paths is None:
        return clone_dir_fd(record), []
    fds: list[int] = []
    path = ""
    try:
        for d in record_dirs(dict(record, unified=None)):
            path = f"{d}/tasks"
            fds.append(posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC))
        path = record["unified"]["path"] if record.get("unified") else ""
        uni = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC) if path else None
    except OSError as e:
        for fd in fds:
            posix.close(fd)
        raise RuntimeFailure.from_os(e, "cgroup: open", path) from None
    return uni, fds


def clone_dir_fd(record: dict, d: str | None = None) -> int | None:
    """An fd of the cgroup to clone a process into (CLONE_INTO_CGROUP: pure v2 only), else None.
    ``d``: that directory (exec --cgroup's sub-cgroup), default the record's own leaf."""
    if record.get("paths") is not None or record.get("layout", "v2") != "v2":
        return None
    d = d or record["path"]
    try:
        return posix.open(d, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure.from_os(e, "cgroup: open", d) from None


def read(d: str, name: str) -> str:
    import os
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def read_int(d: str, name: str, default: int = 0) -> int:
    """An integer file ("max" and missing files give ``default``)."""
    try:
        v = read(d, name)
    except OSError:
        return default
    try:
        return int(v.split()[0]) if v else default
    except ValueError:
        return default


def read_kv(d: str, name: str) -> dict[str, int]:
    """A flat keyed file ("key value" per line), as memory.stat, cpu.stat, memory.events."""
    out: dict[str, int] = {}
    try:
        text = read(d, name)
    except OSError:
        return out
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            continue
    return out


def mkdirs(path: str, stop: str, created: list[str]) -> None:
    """mkdir -p ``path`` below the existing ``stop`` (a mount point), appending new dirs to ``created``
    (shallowest first).  A parent removed concurrently by another container's destroy is re-made."""
    import os
    rel = os.path.relpath(path, stop)
    if rel.startswith(".."):
        raise RuntimeFailure("cgroup path escapes its hierarchy", step="cgroup: mkdir", path=path)
    if rel != ".":
        try:                    # the usual case, a container below an existing parent: one mkdir per
            os.mkdir(path, 0o755)    # hierarchy (create makes a dozen on v1, after the warm-up's wait)
            if path not in created:
                created.append(path)
            return
        except OSError:
            pass                # exists, or a missing parent: the walk below tells which
    cur = stop
    for part in ([] if rel == "." else rel.split("/")):
        cur = os.path.join(cur, part)
        for _ in range(3):
            try:
                os.mkdir(cur, 0o755)
                if cur not in created:      # an owned parent may be listed already (cgroups.open_manager)
                    created.append(cur)
                break
            except FileExistsError:
                break
            except FileNotFoundError:
                continue   # the parent went away under us; the loop above re-creates it next round
            except OSError as e:
                raise RuntimeFailure.from_os(e, "cgroup: mkdir", cur) from None
        else:
            raise RuntimeFailure("parent cgroup keeps disappearing", step="cgroup: mkdir", path=cur)


def procs(d: str, recursive: bool = True) -> list[int]:
    """Pids in cgroup ``d`` (and, for a container that made sub-cgroups, below it)."""
    import os
    out: list[int] = []
    try:
        with open(os.path.join(d, "cgroup.procs")) as f:
            out.extend(int(x) for x in f.read().split())
    except FileNotFoundError:
        return out
    if recursive:
        try:
            subs = [e.path for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            subs = []
        for s in subs:
            out.extend(procs(s, True))
    return out


def signal_pids(pids: list[int], sig: int) -> None:
    import os
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def subdirs_deepest_first(d: str) -> list[str]:
    """Every cgroup below ``d`` (made by the container itself), children before parents."""
    import os
    out: list[str] = []
    try:
        entries = [e.path for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return out
    for e in entries:
        out.extend(subdirs_deepest_first(e))
        out.append(e)
    return out


def rmdir_tree(d: str, timeout: float = 5.0) -> None:
    """Remove cgroup ``d`` and any sub-cgroups.  rmdir fails with EBUSY while a dying task is still
    charged to the cgroup, so retry for a while, re-killing anything that is left."""
    _rmdir_deepest_first(d, timeout, kill=True)


def rmdir_unused(d: str, timeout: float = 1.0) -> None:
    """Remove cgroup ``d`` and its sub-cgroups if no process is in them; never signal anyone.  A
    cgroup that keeps processes (another container's) stays.  Retries briefly for tasks that are
    already dying (an empty cgroup.procs can still refuse rmdir for a moment)."""
    _rmdir_deepest_first(d, timeout, kill=False)


def _rmdir_deepest_first(d: str, timeout: float, kill: bool) -> None:
    """The one removal loop of both: with ``kill``, what is left is killed and a cgroup still busy at
    the deadline is an error; without, a cgroup that holds processes (or is busy at the deadline) stays."""
    import os
    deadline = time.monotonic() + timeout
    for sub in subdirs_deepest_first(d) + [d]:
        while True:
            try:
                os.rmdir(sub)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno not in (errno.EBUSY, errno.ENOTEMPTY) or (kill and time.monotonic() > deadline):
                    raise RuntimeFailure.from_os(e, "cgroup: rmdir", sub) from None
                if kill:
                    signal_pids(procs(sub, False), signal.SIGKILL)
                    time.sleep(0.02)
                    continue
                if procs(sub) or time.monotonic() > deadline:
                    break
                time.sleep(0.01)


def remove_created(created: list[str], keep: list[str] | tuple[str, ...] = ()) -> None:
    """:func:`pyruntime.cgroups.remove_created` (the parents a manager made, except its leaves ``keep``), its
    errors as RuntimeFailure."""
    try:
        _remove_created(created, keep)
    except OSError as e:
        raise RuntimeFailure.from_os(e, "cgroup: rmdir", e.filename or "") from None


def wait_empty(dirs: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not any(procs(d) for d in dirs):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def write_either_order(d: str, writes: list[tuple[str, object]]) -> None:
    """Write pairs the kernel checks against each other on every single write (cpu period/quota,
    memory limit/memsw limit): in the given order, and if the kernel refuses, in the other."""
    try:
        for f, v in writes:
            write(d, f, v)
    except RuntimeFailure:
        for f, v in reversed(writes):
            write(d, f, v)
