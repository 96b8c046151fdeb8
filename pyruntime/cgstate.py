"""A container's recorded cgroup (its ``state.json`` ``cgroup`` field, what the driver's ``to_state()``
wrote), read and removed without the cgroup drivers.

Why: `state` asks on every call whether a running container is paused, and `delete` of a stopped
container (what every shim does after the exit) only removes empty directories.  Importing the
drivers (pyruntime.cgroups with fs1, fs2, base and os) costs those calls more than the rest of their
work; these two answers read and remove the same files the drivers do.  Anything else (a populated
cgroup, a shared one, the systemd driver, any doubt) goes through the drivers.
"""
from __future__ import annotations

import errno
import posix   # not os: see fastos.py

from .errors import RuntimeFailure
from .fastos import join, read_small


def _read(path: str) -> str | None:
    try:
        return read_small(path).decode().strip()
    except FileNotFoundError:
        return None


def frozen(cg: dict) -> bool:
    """``manager_from_state(cg).frozen()``: v1 freezer.state (FREEZING counts), else the unified
    cgroup's cgroup.freeze."""
    drv = cg.get("driver")
    if drv == "v1" or drv == "systemd" and cg.get("paths") is not None:     # systemd on a v1 layout
        fz = (cg.get("paths") or {}).get("freezer")
        if fz:
            return _read(join(fz, "freezer.state")) in ("FROZEN", "FREEZING")
        cg = cg.get("unified") or {}
    elif drv not in ("v2", "systemd"):     # systemd on v2: the scope's directory is the top-level "path"
        raise RuntimeFailure(f"unknown cgroup driver {drv!r} in state", step="cgroup")
    return bool(cg.get("path")) and _read(join(cg["path"], "cgroup.freeze")) == "1"


def remove_if_empty(cg: dict) -> bool:
    """Remove a stopped container's cgroup directories if every one is empty; True when all are gone.

    The kernel refuses rmdir of a cgroup that holds a process or a sub-cgroup (EBUSY): the first such
    refusal returns False and the caller goes through the driver (``Manager.destroy``), which finds,
    signals and removes what is left.  The unified directory is tried first on a hybrid host: every
    process of the container is in it, so once it is gone the v1 directories can hold nobody.  Then, as
    the drivers do, the parents this container made, deepest first, where no other container is."""
    try:
        return _remove_if_empty(cg)
    except (KeyError, TypeError, AttributeError, ValueError):    # malformed: the driver says so
        return False


def _remove_if_empty(cg: dict) -> bool:
    drv = cg.get("driver")
    unified = cg.get("unified") if drv == "v1" else None
    if drv == "v1":
        leaves = ([unified["path"]] if unified else []) + list(dict.fromkeys((cg.get("paths") or {}).values()))
    elif drv == "v2":
        leaves = [cg["path"]]
    else:
        return False     # systemd: the unit must be stopped through the manager
    for d in leaves:
        try:
            posix.rmdir(d)
        except FileNotFoundError:
            continue
        except OSError:
            return False
    created = list(cg.get("created") or []) + list((unified or {}).get("created") or [])
    for d in sorted(set(created) - set(leaves), key=lambda p: p.count("/"), reverse=True):
        try:
            posix.rmdir(d)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
                return False
    return True
