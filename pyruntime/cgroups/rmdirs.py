"""Removing a container's cgroup directories once they are empty: the rmdir part every driver's
``destroy`` shares, and the entry point `delete` of a stopped container calls from its state record.

On ``posix`` alone, without the drivers: importing them (and :mod:`os`) would cost every shim's `delete`
after the exit more than the rest of it, and that cgroup is empty then.  The kernel itself says whether
a cgroup may go: rmdir of one that holds a process or a sub-cgroup fails (EBUSY), which is the answer
"not empty, ask the driver" (``Manager.destroy`` finds, signals and removes what is left).
"""
from __future__ import annotations

import errno
import posix


def remove_created(created: list[str], keep: list[str] | tuple[str, ...] = ()) -> None:
    """Remove the parent directories a manager made (its record's ``created``) except ``keep`` (its own
    leaves), deepest first.  One still used by another container (EBUSY, ENOTEMPTY) or gone already
    stays quietly: a shared parent goes with the last container in it.  OSError for anything else."""
    for d in sorted(set(created) - set(keep), key=lambda p: p.count("/"), reverse=True):
        try:
            posix.rmdir(d)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
                raise


def remove_if_empty(cg: dict) -> bool:
    """Remove the cgroup directories a cgroupfs manager recorded (``to_state()``: "v2", or "v1" with
    its unified one on a hybrid host) if every one is empty; True when all are gone.

    False, having removed nothing that held anything, at the first directory the kernel refuses (a
    process or a sub-cgroup in it), for a record this cannot read, and for the systemd driver, whose
    unit must be stopped through its manager.  The unified directory goes first on a hybrid host: every
    process of the container is in it, so one left anywhere is normally found before any v1 directory
    goes.  Then the parents this container made, deepest first, where no other container is."""
    try:
        drv = cg.get("driver")
        unified = cg.get("unified") if drv == "v1" else None
        if drv == "v1":
            leaves = ([unified["path"]] if unified else []) + list(dict.fromkeys((cg.get("paths") or {}).values()))
        elif drv == "v2":
            leaves = [cg["path"]]
        else:
            return False
        for d in leaves:
            try:
                posix.rmdir(d)
            except FileNotFoundError:
                continue
        remove_created(list(cg.get("created") or []) + list((unified or {}).get("created") or []), leaves)
    except (OSError, KeyError, TypeError, AttributeError, ValueError):   # busy, or malformed: the driver says
        return False
    return True
