"""systemd cgroup driver (``--systemd-cgroup``): the container lives in a transient scope unit.

runc's behaviour is the model.  cgroupsPath is ``slice:prefix:name``; the container's cgroup is the
scope ``prefix-name.scope`` in that slice, created through systemd's D-Bus API with the container
init's pid, ``Delegate=yes`` and the resources systemd has properties for; everything (also what
systemd has no property for) is then written to the scope's cgroup files by the cgroupfs driver, so
the files always hold the exact values.  Reading the cgroup (state, ps, pause, events, stats,
kill --all, exec joining) goes straight to the scope's directory: no D-Bus on those paths.

Order at create: systemd creates a scope only with a process in it, so the scope cannot exist
before the init is cloned.  As runc does, the init is cloned without CLONE_INTO_CGROUP and put in
the scope by StartTransientUnit(PIDs=[init]) while it is still blocked on the sync socket, before it
runs anything of the container's; resources are applied right after, still before it is released.

Layouts: cgroup v2 (the unified hierarchy), as root on the system instance and rootless on the user's
instance (the session bus); hybrid and legacy v1 as root, as runc does them: the unit gets the v1
properties systemd has (MemoryLimit, CPUShares, CPUQuota, BlockIOWeight, TasksMax, DeviceAllow), then
the scope's directory in every mounted v1 hierarchy is made where systemd did not make it (freezer,
cpuset, net_cls ...), the init is written into each, and the fs1 driver writes every file; on hybrid
the scope's directory in the unified hierarchy (systemd's own) lists and kills the processes.  The
cgroupfs driver behind the scope is therefore fs2's V2Manager or fs1's V1Manager, never a copy.
Rootless on v1 is refused, as by runc (a user instance cannot delegate v1 controllers).
"""
from __future__ import annotations

import os

from .. import log
from ..errors import RuntimeFailure
from .fs1 import V1Manager
from .fs2 import V2Manager
from .lazy import res

Fs = V2Manager | V1Manager
# where the system instance keeps the file of every loaded transient unit (unit_make_transient); the
# file goes when the unit is unloaded
TRANSIENT_DIR = "/run/systemd/transient"


def _user_instance() -> bool:
    """Which systemd instance, decided as runc decides it: the user's for rootless cgroups (euid
    != 0, ``--rootless true``, or uid 0 of a user namespace, which is how rootless podman runs the
    runtime); but uid 0 of a user namespace with no session bus to reach (a system container with
    its own systemd) uses the system instance, as runc does when it finds no bus owner."""
    from ..rootless import euid_rootless, rootless_cgroups
    if not rootless_cgroups():
        return False
    if euid_rootless():
        return True
    from .sdbus import user_bus_available
    return user_bus_available()


class SystemdManager:
    driver = "systemd"

    def __init__(self, fs: Fs, unit: str, slice_: str, user: bool, started: bool,
                 description: str = "", extra: list | None = None) -> None:
        self.fs = fs                    # the scope's directories, driven by the cgroupfs driver
        self.unit = unit                # prefix-name.scope (or a .slice for kubelet-style names)
        self.slice = slice_             # the parent slice unit, as given (system.slice ...)
        self.user = user                # the user's systemd instance (rootless)
        self.started = started          # the unit exists (exec and the other commands)
        self.layout = fs.layout         # v2 | hybrid | v1
        self.description = description
        self.extra = list(extra or [])  # annotation properties, for StartTransientUnit
        self._resources: dict | None = None
        self._props: list = []

    # --- construction -------------------------------------------------------------------------------
    @classmethod
    def open(cls, cgroups_path: str | None, cid: str, annotations: dict | None) -> "SystemdManager":
        from .layout import HYBRID, V2, detect, host_path
        from . import sdprops
        if not os.path.isdir("/run/systemd/system"):
            raise RuntimeFailure("systemd is not running on this host (no /run/systemd/system)",
                                 step="systemd cgroup driver")
        lay = detect()
        user = _user_instance()
        if user and lay.kind != V2:
            raise RuntimeFailure(f"this host's cgroups are {lay.kind}: rootless containers with the systemd "
                                 "driver need cgroup v2 (so does runc); run without --systemd-cgroup",
                                 step="systemd cgroup driver")
        sl, prefix, name = sdprops.parse_cgroups_path(cgroups_path, cid, user)
        unit = sdprops.unit_name(prefix, name)
        slice_path = sdprops.expand_slice(sl)
        if user:
            from .sdbus import Systemd
            with Systemd(user=True) as bus:
                slice_path = os.path.join(str(bus.manager_property("ControlGroup")), slice_path.lstrip("/"))

        def scope_dir(mount: str, root: str) -> str:
            return sdprops.cgroup_dir(host_path(mount, root, "/"), slice_path, unit)
        fs: Fs
        if lay.kind == V2:
            assert lay.unified is not None
            fs = V2Manager(lay.unified, scope_dir(lay.unified, lay.unified_root), layout="v2")
        else:
            unified = None
            if lay.kind == HYBRID and lay.unified is not None:
                unified = V2Manager(lay.unified, scope_dir(lay.unified, lay.unified_root), layout="hybrid")
            fs = V1Manager({c: scope_dir(m, lay.v1_root[c]) for c, m in lay.v1.items()}, dict(lay.v1),
                           unified=unified)
        extra = sdprops.annotation_props(annotations or {})
        return cls(fs, unit, sl, user, False, f"pyruntime container {name}", extra)

    def to_state(self) -> dict:
        d = self.fs.to_state()        # "path"/"mount" ("paths" on v1) stay top-level: plan's cgroup mounts read them
        d.update(driver=self.driver, unit=self.unit, slice=self.slice, user=self.user)
        return d

    @classmethod
    def from_state(cls, d: dict) -> "SystemdManager":
        fs: Fs = V1Manager.from_state(d) if d.get("paths") is not None else \
            V2Manager(d["mount"], d["path"], d.get("created"), "v2")
        return cls(fs, d["unit"], d.get("slice", ""), bool(d.get("user")), True)

    def _bus(self):
        from .sdbus import Systemd
        return Systemd(user=self.user)

    # --- life cycle ---------------------------------------------------------------------------------
    def create(self) -> None:
        """Nothing to make yet: the scope is created with the init's pid (add_pid)."""

    def apply(self, resources: dict) -> None:
        """Validate now (bad input fails before any process exists); applied in add_pid.  The user's
        instance gets no device rules: installing a device filter (BPF) needs privileges no user
        manager has, and a rootless container reaches only the devices its user may open anyway."""
        if self.user:
            resources = {k: v for k, v in resources.items() if k != "devices"}
        self._resources = res.validate(resources)
        if isinstance(self.fs, V1Manager):
            self.fs._check_support(self._resources)

    def clone_fd(self, sub: dict[str, str] | None = None) -> int | None:
        return self.fs.clone_fd(sub) if self.started else None

    def birth_fds(self) -> tuple[int | None, list[int]]:
        """Nothing at create: the scope (and its directories on v1) exists only from add_pid on."""
        return (self.fs.birth_fds() if self.started else (None, []))

    def add_pid(self, pid: int, sub: dict[str, str] | None = None) -> None:
        if self.started:            # exec: join the existing scope (or exec --cgroup's sub) through cgroupfs
            self.fs.add_pid(pid, sub)
            return
        if sub:
            raise RuntimeFailure("a sub-cgroup needs the container's scope to exist", step="exec --cgroup")
        r = self._resources if self._resources is not None else res.validate({})
        with self._bus() as bus:
            props = [("Description", ("s", self.description))]
            if self.unit.endswith(".slice"):
                props.append(("Wants", ("as", [self.slice])))
            else:
                props += [("Slice", ("s", self.slice)), ("Delegate", ("b", True))]
            v1 = isinstance(self.fs, V1Manager)
            props += [("PIDs", ("au", [pid])), ("MemoryAccounting", ("b", True)),
                      ("CPUAccounting", ("b", True)), ("BlockIOAccounting" if v1 else "IOAccounting", ("b", True)),
                      ("TasksAccounting", ("b", True)), ("DefaultDependencies", ("b", False))]
            props += self._props_for(r, bus.version(), initial=True)
            props += self.extra
            try:
                bus.start_transient_unit(self.unit, props)
            except RuntimeFailure as e:
                if getattr(e, "name", "") != "org.freedesktop.systemd1.UnitExists":
                    try:        # a job that timed out may still have made the unit
                        bus.stop_unit(self.unit)
                    except RuntimeFailure:
                        pass
                raise RuntimeFailure(f"cannot start unit {self.unit}: {e}", step="systemd cgroup driver") from None
            self.started = True
        if not os.path.isdir(self.path):
            raise RuntimeFailure(f"systemd started {self.unit} but its cgroup is not where expected",
                                 step="systemd cgroup driver", path=self.path)
        # v2: enables the other controllers (cpuset, hugetlb, ...) down to the scope; v1: makes the
        # scope's directory in the hierarchies systemd leaves alone (freezer, cpuset ...)
        self.fs.create()
        if isinstance(self.fs, V1Manager):
            self.fs.add_pid(pid)    # joins those (where systemd put it already, a no-op move)
        self.fs._set(r, initial=True)

    def _props_for(self, r: dict, version: int, initial: bool) -> list:
        from . import sdprops
        props = sdprops.resource_props(r, version, initial=initial, v1=isinstance(self.fs, V1Manager))
        # the user's instance: no device rules (see apply)
        return [p for p in props if not (self.user and p[0] in ("DevicePolicy", "DeviceAllow"))]

    def update(self, resources: dict) -> None:
        if self.user:
            resources = {k: v for k, v in resources.items() if k != "devices"}
        r = res.validate(resources)
        v1 = isinstance(self.fs, V1Manager)
        if v1:
            self.fs._check_support(r)
        with self._bus() as bus:
            props = self._props_for(r, bus.version(), initial=False)
            # v1: systemd rewrites device rules deny-all first; freeze meanwhile so the container
            # never sees a spurious EPERM (runc does the same), unless it is paused anyway
            thaw = v1 and any(k == "DeviceAllow" for k, _ in props) and "freezer" in self.fs.paths \
                and not self.fs.frozen()
            if thaw:
                self.fs.freeze()
            try:
                bus.set_unit_properties(self.unit, props)
            finally:
                if thaw:
                    self.fs.thaw()
        self.fs._set(r, initial=False)

    def destroy(self, kill: bool = True) -> None:
        """Stop the unit (systemd kills what is left and removes the cgroup), then make sure the
        directory is gone.  A unit that never started, or that systemd already collected when the
        last process exited, is fine.  kill=False (processes that are not the container's may be
        in the scope): stop the unit only when it is empty, signal nobody."""
        if self.started and (kill or not self.fs.pids()) and not self._collected():
            if kill and isinstance(self.fs, V1Manager) and self.fs.frozen():
                self.fs.thaw()      # v1-frozen tasks do not die: systemd's stop would wait its timeout
            with self._bus() as bus:
                bus.stop_unit(self.unit)
        self.fs.destroy(kill=kill)     # what systemd did not remove (on v1 the dirs we made)

    def _collected(self) -> bool:
        """True when systemd has already unloaded the unit, so there is nothing to stop: its cgroup is
        gone and so is its transient unit file.  A scope whose last process exited is stopped and
        unloaded by systemd itself, which is what every shim's `delete` after the exit finds; asking
        the bus anyway (jeepney's import, authentication, a subscription, a StopUnit answered
        NoSuchUnit) cost that `delete` several times a `state` under the VM's emulation.  A unit still
        loaded (failed, or its emptiness not yet noticed) keeps its file, and the user's instance keeps
        its files elsewhere: both go through the bus as before."""
        if self.user or os.path.isdir(self.path) or not os.path.isdir(TRANSIENT_DIR) \
                or os.path.lexists(os.path.join(TRANSIENT_DIR, self.unit)):
            return False
        log.debug(f"{self.unit}: already unloaded by systemd (no cgroup, no transient unit file): nothing to stop")
        return True

    # --- the cgroup itself: straight to the scope's directory ---------------------------------------
    def freeze(self) -> None:
        self.fs.freeze()

    def thaw(self) -> None:
        self.fs.thaw()

    def frozen(self) -> bool:
        return self.fs.frozen()

    def kill_all(self, sig: int) -> None:
        self.fs.kill_all(sig)

    def pids(self) -> list[int]:
        return self.fs.pids()

    def stats(self) -> dict:
        return self.fs.stats()

    def oom_kills(self) -> int | None:
        return self.fs.oom_kills()

    @property
    def path(self) -> str:
        """The scope's directory systemd made and tracks: on v1 layouts the unified one (hybrid) or
        the name=systemd one (legacy)."""
        if isinstance(self.fs, V2Manager):
            return self.fs.path
        if self.fs.unified is not None:
            return self.fs.unified.path
        return self.fs.paths.get("name=systemd") or next(iter(self.fs.paths.values()))
