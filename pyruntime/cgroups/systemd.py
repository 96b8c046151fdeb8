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

cgroup v2 (the unified hierarchy) is supported, as root on the system instance and rootless on the
user's instance (the session bus).  v1/hybrid hosts are refused with a clear error.
"""
from __future__ import annotations

import os

from ..errors import RuntimeFailure
from .fs2 import V2Manager
from .lazy import res


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

    def __init__(self, fs: V2Manager, unit: str, slice_: str, user: bool, started: bool,
                 description: str = "", extra: list | None = None) -> None:
        self.fs = fs                    # the scope's directory, driven by the cgroupfs driver
        self.unit = unit                # prefix-name.scope (or a .slice for kubelet-style names)
        self.slice = slice_             # the parent slice unit, as given (system.slice ...)
        self.user = user                # the user's systemd instance (rootless)
        self.started = started          # the unit exists (exec and the other commands)
        self.layout = "v2"
        self.description = description
        self.extra = list(extra or [])  # annotation properties, for StartTransientUnit
        self._resources: dict | None = None
        self._props: list = []

    # --- construction -------------------------------------------------------------------------------
    @classmethod
    def open(cls, cgroups_path: str | None, cid: str, annotations: dict | None) -> "SystemdManager":
        from .layout import V2, detect, host_path
        from . import sdprops
        if not os.path.isdir("/run/systemd/system"):
            raise RuntimeFailure("systemd is not running on this host (no /run/systemd/system)",
                                 step="systemd cgroup driver")
        lay = detect()
        if lay.kind != V2 or lay.unified is None:
            raise RuntimeFailure(f"this host's cgroups are {lay.kind}; this build's systemd driver supports "
                                 "the unified (cgroup v2) hierarchy only: run without --systemd-cgroup",
                                 step="systemd cgroup driver")
        user = _user_instance()
        sl, prefix, name = sdprops.parse_cgroups_path(cgroups_path, cid, user)
        unit = sdprops.unit_name(prefix, name)
        slice_path = sdprops.expand_slice(sl)
        if user:
            from .sdbus import Systemd
            with Systemd(user=True) as bus:
                slice_path = os.path.join(str(bus.manager_property("ControlGroup")), slice_path.lstrip("/"))
        path = sdprops.cgroup_dir(host_path(lay.unified, lay.unified_root, "/"), slice_path, unit)
        extra = sdprops.annotation_props(annotations or {})
        return cls(V2Manager(lay.unified, path, layout="v2"), unit, sl, user, False,
                   f"pyruntime container {name}", extra)

    def to_state(self) -> dict:
        d = self.fs.to_state()        # "path"/"mount" stay top-level: plan's cgroup mounts read them
        d.update(driver=self.driver, unit=self.unit, slice=self.slice, user=self.user)
        return d

    @classmethod
    def from_state(cls, d: dict) -> "SystemdManager":
        fs = V2Manager(d["mount"], d["path"], d.get("created"), "v2")
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

    def clone_fd(self) -> int | None:
        return self.fs.clone_fd() if self.started else None

    def add_pid(self, pid: int) -> None:
        if self.started:            # exec: join the existing scope through cgroupfs
            self.fs.add_pid(pid)
            return
        r = self._resources if self._resources is not None else res.validate({})
        with self._bus() as bus:
            from . import sdprops
            props = [("Description", ("s", self.description))]
            if self.unit.endswith(".slice"):
                props.append(("Wants", ("as", [self.slice])))
            else:
                props += [("Slice", ("s", self.slice)), ("Delegate", ("b", True))]
            props += [("PIDs", ("au", [pid])), ("MemoryAccounting", ("b", True)),
                      ("CPUAccounting", ("b", True)), ("IOAccounting", ("b", True)),
                      ("TasksAccounting", ("b", True)), ("DefaultDependencies", ("b", False))]
            props += [p for p in sdprops.resource_props(r, bus.version(), initial=True)
                      if not (self.user and p[0] in ("DevicePolicy", "DeviceAllow"))]
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
        if not os.path.isdir(self.fs.path):
            raise RuntimeFailure(f"systemd started {self.unit} but its cgroup is not where expected",
                                 step="systemd cgroup driver", path=self.fs.path)
        self.fs.create()            # enables the other controllers (cpuset, hugetlb, ...) down to the scope
        self.fs._set(r, initial=True)

    def update(self, resources: dict) -> None:
        from . import sdprops
        if self.user:
            resources = {k: v for k, v in resources.items() if k != "devices"}
        r = res.validate(resources)
        with self._bus() as bus:
            bus.set_unit_properties(self.unit, sdprops.resource_props(r, bus.version(), initial=False))
        self.fs._set(r, initial=False)

    def destroy(self, kill: bool = True) -> None:
        """Stop the unit (systemd kills what is left and removes the cgroup), then make sure the
        directory is gone.  A unit that never started, or that systemd already collected when the
        last process exited, is fine.  kill=False (processes that are not the container's may be
        in the scope): stop the unit only when it is empty, signal nobody."""
        if self.started and (kill or not self.fs.pids()):
            with self._bus() as bus:
                bus.stop_unit(self.unit)
        if os.path.isdir(self.fs.path):
            self.fs.destroy(kill=kill)

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
        return self.fs.path
