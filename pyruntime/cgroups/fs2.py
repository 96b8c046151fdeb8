"""cgroup v2 driver: one leaf directory in the unified hierarchy.

Also used, without resource controllers, for the container's cgroup in the unified hierarchy of a
hybrid host (freeze, kill, procs) and for the tests of that mount.  Devices are an eBPF program built
and attached by ``_native/cgroup_bpf.c``.
"""
from __future__ import annotations

import errno
import os
import _signal as signal   # not `signal`: its enums cost milliseconds per call
import time

from ..errors import ConfigError, RuntimeFailure
from .lazy import log, res
from . import base, remove_if_empty
P = "linux.resources"


class V2Manager:
    driver = "v2"
    # False for a rootless container that asks for no limits: its delegated parent may hold the
    # caller's own processes, where enabling controllers is refused (no internal processes)
    enable_controllers = True

    def __init__(self, mount: str, path: str, created: list[str] | None = None,
                 layout: str = "v2") -> None:
        self.mount = mount          # the cgroup2 mount point
        self.path = path            # the container's leaf directory (absolute host path)
        self.created = list(created or [])
        self.layout = layout
        self.no_controllers = ""    # the populated ancestor below which no controller could be enabled

    # --- life cycle ---------------------------------------------------------------------------------
    def create(self) -> None:
        """mkdir the leaf, then enable in each ancestor every controller it offers, so the leaf gets
        the controllers' files (cgroup v2 only shows a controller's files where the parent enabled it)."""
        base.mkdirs(self.path, self.mount, self.created)
        if not self.enable_controllers:
            return
        cur = self.mount
        rel = os.path.relpath(self.path, self.mount)
        parts = [] if rel == "." else rel.split("/")
        for part in parts:
            if not self._enable_controllers(cur):
                break
            cur = os.path.join(cur, part)
        self._leave_invalid_domain()

    def _enable_controllers(self, d: str) -> bool:
        """Enable in `d` every controller it offers; False when `d` has processes of its own (a
        runtime started by a service, a CI job, a node inside a container): then nothing is enabled
        there — a domain controller would fail with EBUSY, and a threaded one (cpuset, pids) would turn
        `d` into a thread root whose new children cannot hold processes (clone: EOPNOTSUPP).  The
        container then runs without controllers, as with runc; a resource that needs one says so."""
        if d != self.mount and base.procs(d, recursive=False):
            self.no_controllers = d
            log.debug(f"cgroup: {d} has processes of its own; no controllers enabled below it")
            return False
        try:
            avail = base.read(d, "cgroup.controllers").split()
            enabled = set(base.read(d, "cgroup.subtree_control").split())
        except OSError as e:
            raise RuntimeFailure.from_os(e, "cgroup: read controllers", d) from None
        for c in avail:
            if c in enabled:
                continue
            try:
                base.write(d, "cgroup.subtree_control", f"+{c}")
            except RuntimeFailure as e:
                if e.errno == errno.EBUSY:
                    raise RuntimeFailure(
                        f"cannot enable the {c} controller for sub-cgroups: the cgroup has processes of "
                        "its own (cgroup v2 'no internal processes' rule); use an absolute "
                        "linux.cgroupsPath outside it", step="cgroup", path=d, errno=errno.EBUSY) from None
                # a controller that cannot be enabled (cpu with realtime tasks...) is left out;
                # apply() reports it if the config needs its files
                log.debug(f"cgroup: cannot enable {c} in {d}: {e}")
        return True

    def _leave_invalid_domain(self) -> None:
        """Someone made an ancestor a thread root (threaded controllers enabled while it had
        processes): our new cgroups are then "domain invalid" and refuse processes.  Make them
        threaded, as runc does; domain controllers are then unavailable, which apply() reports."""
        for d in self.created:
            try:
                if base.read(d, "cgroup.type") == "domain invalid":
                    base.write(d, "cgroup.type", "threaded")
                    self.no_controllers = self.no_controllers or os.path.dirname(d)
            except (OSError, RuntimeFailure):
                pass

    def destroy(self, kill: bool = True) -> None:
        """Remove the container's cgroup.  kill=False (a shared or foreign-populated cgroup): signal
        nobody, remove only what is empty.  An empty one (a stopped container's) goes the way `delete`
        removes it without the drivers (cgroups.remove_if_empty)."""
        if remove_if_empty(self.to_state()):
            return
        if not kill:
            base.rmdir_unused(self.path)
        elif os.path.isdir(self.path):
            # Only a populated cgroup needs thawing and killing: writing cgroup.kill waits for an RCU
            # grace period (10+ ms) even with nobody to kill, and a stopped container's is empty.
            if base.procs(self.path):
                try:
                    base.write(self.path, "cgroup.freeze", "0")
                except (RuntimeFailure, OSError):
                    pass
                self.kill_all(signal.SIGKILL)
                base.wait_empty([self.path], 2.0)
            base.rmdir_tree(self.path)
        base.remove_created(self.created, keep=[self.path])

    def to_state(self) -> dict:
        return {"driver": self.driver, "layout": self.layout, "mount": self.mount, "path": self.path,
                "created": self.created}

    @classmethod
    def from_state(cls, d: dict) -> "V2Manager":
        return cls(d["mount"], d["path"], d.get("created"), d.get("layout", "v2"))

    # --- processes ----------------------------------------------------------------------------------
    def join_dir(self, sub: dict[str, str] | None = None) -> str:
        """Where a process joins: the container's cgroup, or exec --cgroup's sub-cgroup of it (one
        hierarchy, so only the plain PATH form; runc's rule on v2)."""
        if not sub:
            return self.path
        if set(sub) != {""}:
            raise RuntimeFailure(f"{sorted(sub)[0]}:{sub[sorted(sub)[0]]}: cgroup v2 has one hierarchy, give a "
                                 "plain PATH without a controller prefix", step="exec --cgroup")
        return base.sub_dir(self.path, sub[""])

    def clone_fd(self, sub: dict[str, str] | None = None) -> int | None:
        """An fd of the cgroup to clone the process into (v2 layout), else None; the target is checked
        either way, so a bad ``sub`` fails before a process exists."""
        return base.clone_dir_fd(self.to_state(), self.join_dir(sub))

    def birth_fds(self) -> tuple[int | None, list[int]]:
        """create's join at the clone (see V1Manager.birth_fds): CLONE_INTO_CGROUP, nothing to write."""
        return self.clone_fd(), []

    def add_pid(self, pid: int, sub: dict[str, str] | None = None) -> None:
        if not sub:
            base.join(self.to_state(), pid)     # exec's join from state.json too
            return
        base.write_pid(self.join_dir(sub), pid)

    def pids(self) -> list[int]:
        return base.procs(self.path)

    def freeze(self, timeout: float = 10.0) -> None:
        base.write(self.path, "cgroup.freeze", "1")
        deadline = time.monotonic() + timeout
        while not self._events_frozen():
            if time.monotonic() > deadline:
                base.write(self.path, "cgroup.freeze", "0")
                raise RuntimeFailure("timed out waiting for the cgroup to freeze", step="cgroup: freeze",
                                     path=self.path)
            time.sleep(0.005)

    def _events_frozen(self) -> bool:
        return base.read_kv(self.path, "cgroup.events").get("frozen") == 1

    def thaw(self) -> None:
        base.write(self.path, "cgroup.freeze", "0")

    def frozen(self) -> bool:
        try:
            return base.read(self.path, "cgroup.freeze") == "1"
        except FileNotFoundError:
            return False

    def kill_all(self, sig: int) -> None:
        if sig == signal.SIGKILL and os.path.exists(os.path.join(self.path, "cgroup.kill")):
            try:
                base.write(self.path, "cgroup.kill", "1")
                return
            except RuntimeFailure as e:
                if e.errno != errno.ENOENT:
                    raise
                return
        if not os.path.isdir(self.path):
            return
        # freeze so nothing forks between reading the list and signalling it
        was = self.frozen()
        try:
            if not was:
                self.freeze()
        except RuntimeFailure:
            was = True   # could not freeze: signal anyway, leave the freezer alone
        try:
            base.signal_pids(self.pids(), sig)
        finally:
            if not was:
                self.thaw()

    def oom_kills(self) -> int | None:
        ev = base.read_kv(self.path, "memory.events")
        return ev.get("oom_kill") if ev else None

    # --- resources ----------------------------------------------------------------------------------
    def apply(self, resources: dict) -> None:
        self._set(res.validate(resources), initial=True)

    def update(self, resources: dict) -> None:
        self._set(res.validate(resources), initial=False)

    def _has(self, name: str) -> bool:
        return os.path.exists(os.path.join(self.path, name))

    def _need(self, name: str, field: str, what: str) -> None:
        if not self._has(name):
            why = ""
            if self.no_controllers:
                why = (f": {self.no_controllers} has processes of its own (cgroup v2 allows no controllers "
                       "below a populated cgroup); use a linux.cgroupsPath outside it")
            raise ConfigError(field, f"{what} need the cgroup2 {name.split('.')[0]} controller, which is "
                                     f"not enabled for {self.path}{why}")

    def _set(self, r: dict, initial: bool) -> None:
        w = self.path
        m = r.get("memory")
        if m:
            limit, swap = m.get("limit", 0), m.get("swap", 0)
            if limit or m.get("reservation") or swap:
                self._need("memory.max", f"{P}.memory", "memory limits")
            base_limit = limit
            if swap and not limit and self._has("memory.max"):
                cur = base.read(w, "memory.max")    # update of swap alone: relative to today's limit
                base_limit = -1 if cur == "max" else int(cur)
            sw = res.swap_to_v2(swap, base_limit)
            if limit and m.get("checkBeforeUpdate") and not initial and limit > 0:
                cur = base.read_int(w, "memory.current")
                if limit < cur:
                    raise ConfigError(f"{P}.memory.limit", f"new limit {limit} is below current usage {cur}")
            if sw is not None:
                if self._has("memory.swap.max"):
                    base.write(w, "memory.swap.max", "max" if sw == -1 else sw)
                elif sw != -1:
                    log.warning(f"{P}.memory.swap: swap accounting is not enabled; ignored")
            if limit:
                base.write(w, "memory.max", "max" if limit == -1 else limit)
            if m.get("reservation"):
                base.write(w, "memory.low", "max" if m["reservation"] == -1 else m["reservation"])
            if m.get("kernel") or m.get("kernelTCP"):
                log.warning(f"{P}.memory.kernel/kernelTCP: not supported on cgroup v2; ignored")
            if m.get("swappiness", -1) not in (-1, None) and "swappiness" in m:
                log.warning(f"{P}.memory.swappiness: not supported on cgroup v2; ignored")
            if m.get("disableOOMKiller"):
                log.warning(f"{P}.memory.disableOOMKiller: not supported on cgroup v2; ignored")
        c = r.get("cpu")
        if c:
            if c.get("shares"):
                self._need("cpu.weight", f"{P}.cpu.shares", "cpu shares")
                base.write(w, "cpu.weight", res.shares_to_weight(c["shares"]))
            if c.get("quota") or c.get("period"):
                self._need("cpu.max", f"{P}.cpu.quota", "cpu quota and period")
                q = c.get("quota", 0)
                period = c.get("period") or int(base.read(w, "cpu.max").split()[1])
                if not q:
                    q_text = base.read(w, "cpu.max").split()[0]
                else:
                    q_text = "max" if q < 0 else str(q)
                base.write(w, "cpu.max", f"{q_text} {period}")
            if "burst" in c:
                self._need("cpu.max.burst", f"{P}.cpu.burst", "cpu burst")
                base.write(w, "cpu.max.burst", c["burst"])
            if "idle" in c:
                self._need("cpu.idle", f"{P}.cpu.idle", "cpu idle")
                base.write(w, "cpu.idle", c["idle"])
            if c.get("realtimeRuntime") or c.get("realtimePeriod"):
                raise ConfigError(f"{P}.cpu.realtimeRuntime", "realtime scheduling limits are not "
                                                              "supported on cgroup v2")
            for k in ("cpus", "mems"):
                if c.get(k):
                    self._need(f"cpuset.{k}", f"{P}.cpu.{k}", "cpusets")
                    base.write(w, f"cpuset.{k}", c[k])
        p = r.get("pids")
        if p and p.get("limit"):
            self._need("pids.max", f"{P}.pids.limit", "pids limits")
            base.write(w, "pids.max", "max" if p["limit"] < 0 else p["limit"])
        b = r.get("blockIO")
        if b:
            self._blkio(b)
        for i, h in enumerate(r.get("hugepageLimits", [])):
            f = f"hugetlb.{h['pageSize']}.max"
            if not self._has(f):
                raise ConfigError(f"{P}.hugepageLimits[{i}].pageSize",
                                  f"hugepage size {h['pageSize']} needs the cgroup2 hugetlb controller "
                                  "with that page size; this host has neither")
            base.write(w, f, h["limit"])
        for dev, lim in (r.get("rdma") or {}).items():
            self._need("rdma.max", f"{P}.rdma", "rdma limits")
            hh = lim.get("hcaHandles")
            ho = lim.get("hcaObjects")
            base.write(w, "rdma.max", f"{dev} hca_handle={'max' if hh is None else hh} "
                                      f"hca_object={'max' if ho is None else ho}")
        if r.get("network"):
            log.warning(f"{P}.network: net_cls/net_prio do not exist on cgroup v2; ignored")
        self.apply_unified(r.get("unified") or {})
        if "devices" in r:
            self._devices(res.device_rules(r))

    def apply_unified(self, unified: dict) -> None:
        for k, v in unified.items():
            if not self._has(k):
                raise ConfigError(f"{P}.unified.{k}", f"no such cgroup file in {self.path} (controller "
                                                      "missing or not enabled?)")
            base.write(self.path, k, v)

    def _blkio(self, b: dict) -> None:
        w = self.path
        bfq = self._has("io.bfq.weight")
        if b.get("weight"):
            if bfq:
                base.write(w, "io.bfq.weight", b["weight"])
            else:
                self._need("io.weight", f"{P}.blockIO.weight", "block io weights")
                base.write(w, "io.weight", f"default {res.blkio_to_io_weight(b['weight'])}")
        if b.get("leafWeight"):
            log.warning(f"{P}.blockIO.leafWeight: not supported on cgroup v2; ignored")
        for e in b.get("weightDevice", []):
            if "weight" not in e:
                continue
            if bfq:
                base.write(w, "io.bfq.weight", f"{e['major']}:{e['minor']} {e['weight']}")
            else:
                self._need("io.weight", f"{P}.blockIO.weightDevice", "block io weights")
                base.write(w, "io.weight", f"{e['major']}:{e['minor']} {res.blkio_to_io_weight(e['weight'])}")
        for key, kw in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                        ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
            for e in b.get(key, []):
                self._need("io.max", f"{P}.blockIO.{key}", "block io throttles")
                base.write(w, "io.max", f"{e['major']}:{e['minor']} {kw}={e['rate'] or 'max'}")

    def _devices(self, rules: list[res.DeviceRule]) -> None:
        from .bpfdev import set_device_filter
        set_device_filter(self.path, rules)

    # --- stats --------------------------------------------------------------------------------------
    def stats(self) -> dict:
        from .stats import v2_stats
        return v2_stats(self.path)
