"""Container cgroups: one driver per host layout behind one interface.

- pure cgroup v2 -> :class:`fs2.V2Manager` (a leaf in the unified hierarchy; devices by eBPF)
- hybrid         -> :class:`fs1.V1Manager` with a :class:`fs2.V2Manager` for the container's cgroup in the
                    unified mount (procs, cgroup.kill, linux.resources.unified)
- v1             -> :class:`fs1.V1Manager`

linux.cgroupsPath: absolute = from the root of each hierarchy; relative = where runc puts it (the spec
lets the runtime choose): on a pure v2 host below the *parent* of this process's cgroup (/proc/self/cgroup;
"/" stays "/"), because the runtime's own cgroup normally holds processes and so could not pass controllers
to a child (v2's no-internal-processes rule); on v1 and hybrid hosts below this process's own cgroup in
each hierarchy, the unified one too; empty = /pyruntime/<id>, whose shared /pyruntime parent every
such container owns: each removes it once empty (the one that made it may go first while another is still
in it; rmdir of a non-empty cgroup fails, and mkdirs re-makes a parent removed under it).  The runtime never moves itself
into a container cgroup: the container init is moved (add_pid), cloned into it (clone_fd), or at
create both cloned into it and writing itself into v1 `tasks` files (birth_fds, no threadgroup lock).  Both take
an optional ``sub`` (``exec --cgroup``, :func:`parse_sub`): the process joins an existing sub-cgroup of the
container's instead, one path for every hierarchy (key "") or per v1 controller.

``manager_from_state`` rebuilds a manager from state.json without probing the host.  `state` (paused or
running?) and `delete` of a stopped container read that record without the drivers (state.cgroup_frozen;
:func:`remove_if_empty`, which every driver's destroy also uses for the empty case and the parents it
made).  So this package itself loads neither the drivers nor :mod:`os` (~1 ms) until a function here
needs them: `delete` imports it.
"""

import errno
import posix

from ..errors import ConfigError, RuntimeFailure

# read by pyruntime.features (`pyruntime features`)
FEATURES = {"v1": True, "v2": True, "systemd": True, "systemdUser": True, "rdma": True}
DEFAULT_PARENT = "/pyruntime"


class Manager:
    """What the container life cycle calls; see fs1/fs2 for the two implementations."""
    layout: str

    def create(self) -> None: ...
    def apply(self, resources: dict) -> None: ...
    def clone_fd(self, sub: dict[str, str] | None = None) -> int | None: ...
    def birth_fds(self) -> tuple[int | None, list[int]]: ...
    def add_pid(self, pid: int, sub: dict[str, str] | None = None) -> None: ...
    def freeze(self) -> None: ...
    def thaw(self) -> None: ...
    def frozen(self) -> bool: ...
    def kill_all(self, sig: int) -> None: ...
    def pids(self) -> list[int]: ...
    def stats(self) -> dict: ...
    def destroy(self, kill: bool = True) -> None: ...
    def to_state(self) -> dict: ...
    def update(self, resources: dict) -> None: ...
    def oom_kills(self) -> int | None: ...


def parse_sub(specs: list[str]) -> dict[str, str]:
    """``exec --cgroup`` values (runc's syntax: ``PATH`` or ``CTRL[,CTRL...]:PATH``, repeatable) as
    controller -> sub-path, "" meaning every hierarchy.  Only the syntax is checked here; the drivers
    check the controllers and that each directory exists inside the container's cgroup."""
    out: dict[str, str] = {}
    for spec in specs:
        parts = spec.split(":")
        if len(parts) > 2 or "\x00" in spec or "\n" in spec:
            raise RuntimeFailure(f"invalid --cgroup argument: {spec}")
        if len(parts) == 1:
            if len(specs) != 1:      # one path for all hierarchies excludes any per-controller one
                raise RuntimeFailure(f"invalid --cgroup argument: {spec} (missing <controller>: prefix)")
            out[""] = spec
            continue
        for ctrl in parts[0].split(","):
            if not ctrl:
                raise RuntimeFailure(f"invalid --cgroup argument: {spec} (empty <controller> prefix)")
            if out.get(ctrl, parts[1]) != parts[1]:
                raise RuntimeFailure(f"invalid --cgroup argument(s): controller {ctrl} given two different paths")
            out[ctrl] = parts[1]
    return out


def _check_path(p: str) -> str:
    if "\x00" in p or "\n" in p:
        raise ConfigError("linux.cgroupsPath", "invalid character in path")
    if any(part == ".." for part in p.split("/")):
        raise ConfigError("linux.cgroupsPath", f"{p!r} must not contain '..'")
    return p


def _hier_path(cgroups_path: str, own: str, *, pure_v2: bool = False) -> str:
    """Path inside one hierarchy: absolute as given; relative below our own cgroup ``own`` there, or
    below its parent on a pure v2 host (runc's rule, see the module docstring)."""
    import os
    if cgroups_path.startswith("/"):
        return os.path.normpath(cgroups_path)
    base = own or "/"
    if pure_v2:
        base = os.path.dirname(base.rstrip("/")) or "/"
    return os.path.normpath(os.path.join(base, cgroups_path))


def open_manager(cgroups_path: str | None, container_id: str, *, systemd: bool = False,
                 annotations: dict | None = None) -> Manager:
    """The manager for a new container (nothing is created until ``create()``).  ``systemd``: the
    systemd driver (cgroupsPath "slice:prefix:name"; ``annotations`` carry org.systemd.property.*)."""
    import os
    if systemd:
        from .systemd import SystemdManager
        return SystemdManager.open(cgroups_path, container_id, annotations)
    from .layout import HYBRID, V2, detect, host_path
    from .fs1 import V1Manager
    from .fs2 import V2Manager
    owned = not cgroups_path        # the default parent is the runtime's own: see the module docstring
    if not cgroups_path:
        cgroups_path = f"{DEFAULT_PARENT}/{container_id}"

    def parent(path: str) -> list[str]:
        return [os.path.dirname(path)] if owned else []
    _check_path(cgroups_path)
    if cgroups_path.strip("/") == "":
        raise ConfigError("linux.cgroupsPath", "must not be the root cgroup")
    lay = detect()
    if lay.kind == V2:
        assert lay.unified is not None
        p = _hier_path(cgroups_path, lay.own.get("", "/"), pure_v2=True)
        if p == "/":
            raise ConfigError("linux.cgroupsPath", "resolves to the root cgroup")
        path = host_path(lay.unified, lay.unified_root, p)
        return V2Manager(lay.unified, path, parent(path), layout="v2")
    paths, mounts = {}, {}
    for ctrl, mnt in lay.v1.items():
        p = _hier_path(cgroups_path, lay.own.get(ctrl, "/"))
        paths[ctrl] = host_path(mnt, lay.v1_root[ctrl], p)
        mounts[ctrl] = mnt
    unified = None
    if lay.kind == HYBRID and lay.unified is not None:
        p = _hier_path(cgroups_path, lay.own.get("", "/"))
        path = host_path(lay.unified, lay.unified_root, p)
        unified = V2Manager(lay.unified, path, parent(path), layout="hybrid")
    return V1Manager(paths, mounts, sorted({d for path in paths.values() for d in parent(path)}), unified=unified)


# --- removing a container's cgroup directories once they are empty --------------------------------------
# On ``posix`` alone, without the drivers: importing them (and os) would cost every shim's `delete` after
# the exit more than the rest of it, and that cgroup is empty then.  The kernel itself says whether a
# cgroup may go: rmdir of one that holds a process or a sub-cgroup fails (EBUSY), which is the answer
# "not empty, ask the driver" (``Manager.destroy`` finds, signals and removes what is left).

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


def leaf_dirs(cg: dict, systemd: bool = False) -> list[str] | None:
    """The container's own directories in a driver's record: on v1/hybrid the unified one first, then
    each distinct v1 one; on v2 the leaf.  None for another driver (systemd's unless ``systemd``: its
    record holds the cgroupfs one's keys).  The one reader of them: removal, `kill --all`'s exists
    check and the joins (base.record_dirs) all go through it."""
    drv = cg.get("driver")
    if drv == "systemd" and systemd:
        drv = "v1" if cg.get("paths") is not None else "v2"
    if drv == "v1":
        unified = cg.get("unified")
        return ([unified["path"]] if unified else []) + list(dict.fromkeys((cg.get("paths") or {}).values()))
    return [cg["path"]] if drv == "v2" else None


def record_exists(cg: dict) -> bool:
    """Whether any of the container's cgroup directories in its state record is still there (runc's
    ``Exists``): `kill --all` of a stopped container whose cgroup is gone returns on this, without the
    drivers.  True for a record this cannot read: the driver then says."""
    try:
        leaves = leaf_dirs(cg, systemd=True)
    except (KeyError, TypeError, AttributeError):
        return True
    for d in leaves or ():
        try:
            posix.stat(d)
            return True
        except FileNotFoundError:
            continue
    return leaves is None


def remove_if_empty(cg: dict) -> bool:
    """Remove the cgroup directories a cgroupfs manager recorded (``to_state()``: "v2", or "v1" with
    its unified one on a hybrid host) if every one is empty; True when all are gone.

    False, having removed nothing that held anything, at the first directory the kernel refuses (a
    process or a sub-cgroup in it), for a record this cannot read, and for the systemd driver, whose
    unit must be stopped through its manager.  The unified directory goes first on a hybrid host: every
    process of the container is in it, so one left anywhere is normally found before any v1 directory
    goes.  Then the parents this container made, deepest first, where no other container is."""
    try:
        leaves = leaf_dirs(cg)
        if leaves is None:
            return False
        unified = cg.get("unified") if cg.get("driver") == "v1" else None
        for d in leaves:
            try:
                posix.rmdir(d)
            except FileNotFoundError:
                continue
        remove_created(list(cg.get("created") or []) + list((unified or {}).get("created") or []), leaves)
    except (OSError, KeyError, TypeError, AttributeError, ValueError):   # busy, or malformed: the driver says
        return False
    return True


def manager_from_state(d: dict) -> Manager:
    """Rebuild the manager recorded by ``to_state()`` (no host probing)."""
    from .fs1 import V1Manager
    from .fs2 import V2Manager
    drv = d.get("driver")
    if drv == "v2":
        return V2Manager.from_state(d)
    if drv == "v1":
        return V1Manager.from_state(d)
    if drv == "systemd":
        from .systemd import SystemdManager
        return SystemdManager.from_state(d)
    raise RuntimeFailure(f"unknown cgroup driver {drv!r} in state", step="cgroup")
