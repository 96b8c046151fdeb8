"""cgroup v1 driver (and hybrid: v1 controllers plus a directory in the unified hierarchy).

One directory per mounted v1 hierarchy (controllers co-mounted in one hierarchy share it).  On a hybrid
host the container also gets a cgroup in the cgroup2 mount, like runc's "unified" path: processes are
listed and SIGKILLed through it (cgroup.kill reaches every task, even ones forked while we signal),
and linux.resources.unified keys are written there.  Freezing stays on the v1 freezer, which is the
freezer every v1 tool (and runc on the same host) looks at.
"""
from __future__ import annotations

import os
import _signal as signal   # not `signal`: its enums cost milliseconds per call
import time

from ..errors import ConfigError, RuntimeFailure
from .lazy import log, res
from . import base, remove_if_empty
from .fs2 import V2Manager
P = "linux.resources"


def _own_cgroup(mount: str, ctrl: str) -> str | None:
    """The directory of this process's own cgroup for v1 controller `ctrl` (under `mount`)."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if ctrl in ctrls.split(","):
                    return os.path.normpath(mount + path) if mount else None
    except OSError:
        pass
    return None


class V1Manager:
    driver = "v1"

    def __init__(self, paths: dict[str, str], mounts: dict[str, str], created: list[str] | None = None,
                 unified: V2Manager | None = None) -> None:
        self.paths = paths              # controller -> container dir (absolute host path)
        self.mounts = mounts            # controller -> mount point
        self.created = list(created or [])
        self.unified = unified
        self.layout = "hybrid" if unified is not None else "v1"

    def _dirs(self) -> list[str]:
        """Distinct container dirs (co-mounted controllers share one)."""
        seen: list[str] = []
        for d in self.paths.values():
            if d not in seen:
                seen.append(d)
        return seen

    def _p(self, ctrl: str) -> str | None:
        return self.paths.get(ctrl)

    # --- life cycle ---------------------------------------------------------------------------------
    def create(self) -> None:
        for ctrl, d in self.paths.items():
            base.mkdirs(d, self.mounts[ctrl], self.created)
        cs = self._p("cpuset")
        if cs:
            self._fill_cpuset(cs, self.mounts["cpuset"])
        if self.unified is not None:
            self.unified.create()

    @staticmethod
    def _fill_cpuset(leaf: str, mount: str) -> None:
        """A new v1 cpuset starts with empty cpus/mems, and a task cannot join it until both are set:
        copy the parent's values down every level that is still empty."""
        rel = os.path.relpath(leaf, mount)
        cur = mount
        for part in ([] if rel == "." else rel.split("/")):
            parent, cur = cur, os.path.join(cur, part)
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not base.read(cur, f):
                    base.write(cur, f, base.read(parent, f))

    def destroy(self, kill: bool = True) -> None:
        """See V2Manager.destroy: kill=False signals nobody and removes only what is empty; an empty
        container cgroup goes the way `delete` removes it without the drivers (cgroups.remove_if_empty)."""
        if remove_if_empty(self.to_state()):
            return
        if not kill:
            for d in self._dirs():
                base.rmdir_unused(d)
            base.remove_created(self.created, keep=self._dirs())
            if self.unified is not None:
                self.unified.destroy(kill=False)
            return
        live = [d for d in self._dirs() if os.path.isdir(d)]
        unified = [self.unified.path] if self.unified is not None and os.path.isdir(self.unified.path) else []
        # Only a populated cgroup needs thawing and killing (see V2Manager.destroy: cgroup.kill costs an
        # RCU grace period even when empty, and a stopped container's cgroups are empty).
        if any(base.procs(d) for d in live + unified):
            fz = self._p("freezer")
            if fz and os.path.isdir(fz):
                try:
                    base.write(fz, "freezer.state", "THAWED")   # frozen tasks cannot die on v1
                except (RuntimeFailure, OSError):
                    pass
            self.kill_all(signal.SIGKILL)
            base.wait_empty(live, 2.0)
        for d in live:
            base.rmdir_tree(d)
        base.remove_created(self.created, keep=self._dirs())
        if self.unified is not None:
            self.unified.destroy()

    def to_state(self) -> dict:
        return {"driver": self.driver, "layout": self.layout, "paths": self.paths, "mounts": self.mounts,
                "created": self.created,
                "unified": self.unified.to_state() if self.unified is not None else None}

    @classmethod
    def from_state(cls, d: dict) -> "V1Manager":
        u = V2Manager.from_state(d["unified"]) if d.get("unified") else None
        return cls(d["paths"], d["mounts"], d.get("created"), u)

    # --- processes ----------------------------------------------------------------------------------
    def _join_dirs(self, sub: dict[str, str] | None) -> tuple[list[str], dict[str, str] | None]:
        """Where a process joins: one directory per hierarchy, and the ``sub`` for the unified one.
        exec --cgroup (``sub``): a plain PATH ("") applies to every hierarchy, the unified one too;
        per-controller paths move only those controllers (co-mounted ones share the directory), the
        rest stay in the container's own cgroup.  Every target is checked to exist first."""
        if not sub:
            return self._dirs(), None
        if "" in sub:
            return [base.sub_dir(d, sub[""]) for d in self._dirs()], sub
        unknown = sorted(c for c in sub if c not in self.paths)
        if unknown:
            raise RuntimeFailure(f"unknown controller {unknown[0]} (this container has: "
                                 f"{', '.join(sorted(self.paths))})", step="exec --cgroup")
        target: dict[str, str] = {}
        for ctrl, rel in sub.items():
            d = self.paths[ctrl]
            t = base.sub_dir(d, rel)
            if target.setdefault(d, t) != t:
                raise RuntimeFailure(f"controllers mounted together in {d} given different paths",
                                     step="exec --cgroup")
        return [target.get(d, d) for d in self._dirs()], None

    def clone_fd(self, sub: dict[str, str] | None = None) -> int | None:
        """None: v1 has no clone-into-cgroup; ``sub`` is checked now, before a process exists."""
        self._join_dirs(sub)
        if self.unified is not None:
            self.unified.clone_fd(sub if sub and "" in sub else None)
        return None

    def birth_fds(self) -> tuple[int | None, list[int]]:
        """create's join without the kernel's threadgroup-lock wait (an RCU grace period, 6-14 ms, for
        any cgroup.procs write): the init writes itself ("0") into each hierarchy's `tasks` file, first
        thing (_native/spawn.c join_cgroups_v1), and on a hybrid host is cloned into the unified
        cgroup (CLONE_INTO_CGROUP).  (that dir's fd or None, the `tasks` fds); the caller owns them."""
        fds: list[int] = []
        path = ""
        try:
            for d in self._dirs():
                path = f"{d}/tasks"
                fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
            path = self.unified.path if self.unified is not None else ""
            uni = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if path else None
        except OSError as e:
            for fd in fds:
                os.close(fd)
            raise RuntimeFailure.from_os(e, "cgroup: open", path) from None
        return uni, fds

    def add_pid(self, pid: int, sub: dict[str, str] | None = None) -> None:
        if not sub:
            base.join(self.to_state(), pid)     # exec's join from state.json too
            return
        dirs, usub = self._join_dirs(sub)
        for d in dirs:
            base.write_pid(d, pid)
        if self.unified is not None:
            self.unified.add_pid(pid, usub)

    def _procs_dir(self) -> str | None:
        for c in ("freezer", "pids", "memory", "cpu", "devices"):
            if c in self.paths:
                return self.paths[c]
        dirs = self._dirs()
        return dirs[0] if dirs else None

    def pids(self) -> list[int]:
        """Every process in any of the container's cgroups.  Not the unified directory's alone: it
        carries no controller on a hybrid host, so a process with a writable cgroup2 mount leaves it
        for nothing, and stays in every v1 cgroup (runc 1.1 signals the v1 devices cgroup's pids)."""
        out = self.unified.pids() if self.unified is not None and os.path.isdir(self.unified.path) else []
        seen = set(out)
        for d in self._dirs():
            for p in base.procs(d):
                if p not in seen:
                    seen.add(p)
                    out.append(p)
        return out

    def _left_unified(self) -> bool:
        """Is a process in a v1 cgroup of the container but not in its unified one (see pids)?  After
        cgroup.kill the killed ones leave both lists together, as they exit."""
        v1 = [p for d in self._dirs() for p in base.procs(d)]
        if not v1:
            return False
        u = set(self.unified.pids()) if self.unified is not None else set()
        return any(p not in u for p in v1)

    def freeze(self, timeout: float = 10.0) -> None:
        fz = self._p("freezer")
        if fz is None:
            if self.unified is not None:
                return self.unified.freeze(timeout)
            raise RuntimeFailure("pause needs the v1 freezer controller or a cgroup2 mount; "
                                 "this host has neither", step="cgroup: freeze")
        deadline = time.monotonic() + timeout
        while True:
            base.write(fz, "freezer.state", "FROZEN")   # re-written: a task forking may stall FREEZING
            time.sleep(0.002)
            if base.read(fz, "freezer.state") == "FROZEN":
                return
            if time.monotonic() > deadline:
                base.write(fz, "freezer.state", "THAWED")
                raise RuntimeFailure("timed out waiting for the cgroup to freeze", step="cgroup: freeze",
                                     path=fz)
            time.sleep(0.01)

    def thaw(self) -> None:
        fz = self._p("freezer")
        if fz is None:
            if self.unified is not None:
                return self.unified.thaw()
            raise RuntimeFailure("resume needs the v1 freezer controller or a cgroup2 mount; "
                                 "this host has neither", step="cgroup: thaw")
        base.write(fz, "freezer.state", "THAWED")

    def frozen(self) -> bool:
        fz = self._p("freezer")
        if fz is None:
            return self.unified.frozen() if self.unified is not None else False
        try:
            # FREEZING counts: a pause that has not finished is not "running"
            return base.read(fz, "freezer.state") in ("FROZEN", "FREEZING")
        except FileNotFoundError:
            return False

    def kill_all(self, sig: int) -> None:
        if not any(os.path.isdir(d) for d in self._dirs()) and \
                (self.unified is None or not os.path.isdir(self.unified.path)):
            return   # already destroyed: nothing left to signal
        if sig == signal.SIGKILL and self.unified is not None and os.path.isdir(self.unified.path) \
                and os.path.exists(os.path.join(self.unified.path, "cgroup.kill")):
            was = self.frozen()
            if was:
                self.thaw()   # v1-frozen tasks only die once thawed
            self.unified.kill_all(sig)
            if not self._left_unified():
                return
            # a process left the unified cgroup, which cgroup.kill covers: the v1 way finds it too
        fz = self._p("freezer")
        was = self.frozen() if fz else True
        try:
            if not was:
                self.freeze()
        except RuntimeFailure:
            was = True
        try:
            base.signal_pids(self.pids(), sig)
        finally:
            if fz and (not was or sig == signal.SIGKILL) and os.path.isdir(fz):
                self.thaw()

    def oom_kills(self) -> int | None:
        mem = self._p("memory")
        if not mem:
            return None
        kv = base.read_kv(mem, "memory.oom_control")
        return kv.get("oom_kill")

    # --- resources ----------------------------------------------------------------------------------
    def apply(self, resources: dict) -> None:
        r = res.validate(resources)
        self._check_support(r)
        self._set(r)

    def update(self, resources: dict) -> None:
        r = res.validate(resources)
        self._check_support(r)
        self._set(r)

    def _check_support(self, r: dict) -> None:
        """Fail before writing anything when the config needs a controller this host lacks."""
        m = r.get("memory") or {}
        if any(m.get(k) for k in ("limit", "reservation", "swap", "kernelTCP")) and "memory" not in self.paths:
            raise ConfigError(f"{P}.memory", "memory limits need the v1 memory controller or a cgroup2 "
                                             "memory controller; this host has neither")
        c = r.get("cpu") or {}
        if any(c.get(k) for k in ("shares", "quota", "period", "burst", "realtimeRuntime",
                                  "realtimePeriod")) and "cpu" not in self.paths:
            raise ConfigError(f"{P}.cpu", "cpu limits need the v1 cpu controller; this host lacks it")
        if (c.get("cpus") or c.get("mems")) and "cpuset" not in self.paths:
            raise ConfigError(f"{P}.cpu.cpus", "cpusets need the v1 cpuset controller; this host lacks it")
        if (r.get("pids") or {}).get("limit") and "pids" not in self.paths:
            raise ConfigError(f"{P}.pids.limit", "pids limits need the v1 pids controller; this host "
                                                 "lacks it")
        if r.get("blockIO") and "blkio" not in self.paths:
            raise ConfigError(f"{P}.blockIO", "block io limits need the v1 blkio controller; this host "
                                              "lacks it")
        if r.get("hugepageLimits") and "hugetlb" not in self.paths:
            raise ConfigError(f"{P}.hugepageLimits", "hugepage limits need the hugetlb controller; this "
                                                     "host has neither a v1 nor a cgroup2 one")
        if r.get("rdma") and "rdma" not in self.paths:
            raise ConfigError(f"{P}.rdma", "rdma limits need the rdma controller; this host lacks it")
        if r.get("unified") and self.unified is None:
            raise ConfigError(f"{P}.unified", "unified resources need cgroup v2; this host has only v1")
        if "devices" in r and "devices" not in self.paths:
            raise ConfigError(f"{P}.devices", "device rules need the v1 devices controller; this host "
                                              "lacks it")

    def _set(self, r: dict, initial: bool = True) -> None:
        """Write validated resources to the files (``initial``: the systemd driver's shared signature
        with fs2; v1 files need no difference between create and update)."""
        if r.get("cpu"):
            self._cpu(r["cpu"])
        if r.get("memory"):
            self._memory(r["memory"])
        p = r.get("pids")
        if p and p.get("limit"):
            base.write(self.paths["pids"], "pids.max", "max" if p["limit"] < 0 else p["limit"])
        if r.get("blockIO"):
            self._blkio(r["blockIO"])
        for i, h in enumerate(r.get("hugepageLimits", [])):
            f = f"hugetlb.{h['pageSize']}.limit_in_bytes"
            if not os.path.exists(os.path.join(self.paths["hugetlb"], f)):
                raise ConfigError(f"{P}.hugepageLimits[{i}].pageSize",
                                  f"hugepage size {h['pageSize']} is not supported by this host")
            base.write(self.paths["hugetlb"], f, h["limit"])
        for dev, lim in (r.get("rdma") or {}).items():
            hh, ho = lim.get("hcaHandles"), lim.get("hcaObjects")
            base.write(self.paths["rdma"], "rdma.max", f"{dev} hca_handle={'max' if hh is None else hh} "
                                                       f"hca_object={'max' if ho is None else ho}")
        n = r.get("network")
        if n:
            if "classID" in n:
                if "net_cls" in self.paths:
                    base.write(self.paths["net_cls"], "net_cls.classid", n["classID"])
                else:
                    log.warning(f"{P}.network.classID: no net_cls controller on this host; ignored")
            for e in n.get("priorities", []):
                if "net_prio" in self.paths:
                    base.write(self.paths["net_prio"], "net_prio.ifpriomap", f"{e['name']} {e['priority']}")
                else:
                    log.warning(f"{P}.network.priorities: no net_prio controller on this host; ignored")
                    break
        if r.get("unified"):
            assert self.unified is not None
            self.unified.apply_unified(r["unified"])
        if "devices" in r:
            self._devices(res.device_rules(r))

    def _rt_budget(self, leaf: str, c: dict) -> None:
        """cpu.rt_runtime_us/rt_period_us.  The kernel grants a child only the real-time runtime its
        parent has left, and a cgroup made by us starts with 0: the intermediate cgroups this runtime
        created first get what their children need (this one plus its siblings'), top down; runc sets
        its own cgroups too.  Cgroups that existed before are not ours: their refusal names the field."""
        runtime, period = c.get("realtimeRuntime"), c.get("realtimePeriod")
        own = _own_cgroup(self.mounts.get("cpu", ""), "cpu")
        if own and leaf.startswith(own.rstrip("/") + "/"):
            # between the cgroup this runtime runs in and the leaf (a relative cgroupsPath)
            rel = os.path.relpath(os.path.dirname(leaf), own)
            chain = [] if rel == "." else [os.path.join(own, *rel.split("/")[:i + 1])
                                           for i in range(rel.count("/") + 1)]
        else:
            chain = [d for d in sorted(self.created, key=lambda x: x.count("/")) if leaf.startswith(d + "/")]
        chain = [d for d in chain if os.path.exists(os.path.join(d, "cpu.rt_runtime_us"))]
        need: dict[str, int] = {}
        if runtime and runtime > 0:
            child, want = leaf, runtime
            for d in reversed(chain):
                others = sum(max(base.read_int(e.path, "cpu.rt_runtime_us"), 0) for e in os.scandir(d)
                             if e.is_dir(follow_symlinks=False) and e.path != child)
                want += others
                need[d] = want
                child = d
        field = f"{P}.cpu.realtimeRuntime"
        try:
            for d in chain:
                if d in need and base.read_int(d, "cpu.rt_runtime_us") < need[d]:
                    base.write(d, "cpu.rt_runtime_us", need[d])
            period_later = False
            if period:
                field = f"{P}.cpu.realtimePeriod"
                try:
                    base.write(leaf, "cpu.rt_period_us", period)
                except RuntimeFailure:
                    if not runtime:
                        raise
                    period_later = True     # runtime and period depend on each other: runtime first
            if runtime:
                field = f"{P}.cpu.realtimeRuntime"
                base.write(leaf, "cpu.rt_runtime_us", runtime)
                if period_later:
                    field = f"{P}.cpu.realtimePeriod"
                    base.write(leaf, "cpu.rt_period_us", period)
        except RuntimeFailure as e:
            at = e.path or leaf
            parent = os.path.dirname(os.path.dirname(at)) if at.endswith(".rt_runtime_us") or \
                at.endswith(".rt_period_us") else os.path.dirname(at)
            raise ConfigError(field, f"the kernel refuses it ({e}); the parent cgroup {parent} has a "
                                     f"real-time budget of {base.read_int(parent, 'cpu.rt_runtime_us', -2)} us "
                                     f"per {base.read_int(parent, 'cpu.rt_period_us')} us") from None

    def _cpu(self, c: dict) -> None:
        d = self.paths.get("cpu")
        if d:
            if c.get("shares"):
                base.write(d, "cpu.shares", c["shares"])
                got = base.read_int(d, "cpu.shares")
                if got != c["shares"]:
                    raise ConfigError(f"{P}.cpu.shares", f"the kernel clamped cpu.shares {c['shares']} "
                                                         f"to {got} (range 2-262144)")
            if c.get("realtimeRuntime") or c.get("realtimePeriod"):
                self._rt_budget(d, c)
            period, quota = c.get("period"), c.get("quota")
            if period or quota:
                # the kernel checks quota against period (and parents) on each write: try one order,
                # then the other
                writes = []
                if period:
                    writes.append(("cpu.cfs_period_us", period))
                if quota:
                    writes.append(("cpu.cfs_quota_us", quota))
                base.write_either_order(d, writes)
            if "burst" in c:
                base.write(d, "cpu.cfs_burst_us", c["burst"])
            if "idle" in c:
                base.write(d, "cpu.idle", c["idle"])
        cs = self.paths.get("cpuset")
        for k in ("cpus", "mems"):
            if c.get(k):
                assert cs is not None
                base.write(cs, f"cpuset.{k}", c[k])

    def _memory(self, m: dict) -> None:
        d = self.paths["memory"]
        limit, swap = m.get("limit", 0), m.get("swap", 0)
        if limit == -1 and swap == 0:
            swap = -1    # unlimited memory with no swap setting: swap unlimited too (runc)
        has_sw = os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes"))
        if swap and not has_sw:
            log.warning(f"{P}.memory.swap: swap accounting is not enabled on this host; ignored")
            swap = 0
        writes = []
        if limit:
            writes.append(("memory.limit_in_bytes", limit))
        if swap:
            writes.append(("memory.memsw.limit_in_bytes", swap))
        # memory.limit must stay <= memsw.limit after every single write: try both orders
        base.write_either_order(d, writes)
        if m.get("reservation"):
            base.write(d, "memory.soft_limit_in_bytes", m["reservation"])
        if m.get("swappiness", -1) >= 0 and "swappiness" in m:
            base.write(d, "memory.swappiness", m["swappiness"])
        if m.get("disableOOMKiller"):
            base.write(d, "memory.oom_control", "1")
        if m.get("kernel"):
            log.warning(f"{P}.memory.kernel: kernel memory limits are deprecated by the kernel; ignored")
        if m.get("kernelTCP"):
            base.write(d, "memory.kmem.tcp.limit_in_bytes", m["kernelTCP"])

    def _blkio(self, b: dict) -> None:
        d = self.paths["blkio"]
        bfq = not os.path.exists(os.path.join(d, "blkio.weight")) and \
            os.path.exists(os.path.join(d, "blkio.bfq.weight"))
        wfile = "blkio.bfq.weight" if bfq else "blkio.weight"
        if b.get("weight"):
            if not os.path.exists(os.path.join(d, wfile)):
                raise ConfigError(f"{P}.blockIO.weight", "no io scheduler with weights (cfq/bfq) on this "
                                                         "host")
            base.write(d, wfile, b["weight"])
        if b.get("leafWeight"):
            if os.path.exists(os.path.join(d, "blkio.leaf_weight")):
                base.write(d, "blkio.leaf_weight", b["leafWeight"])
            else:
                log.warning(f"{P}.blockIO.leafWeight: not supported by this kernel; ignored")
        for e in b.get("weightDevice", []):
            if "weight" in e:
                base.write(d, wfile + "_device", f"{e['major']}:{e['minor']} {e['weight']}")
            if "leafWeight" in e and os.path.exists(os.path.join(d, "blkio.leaf_weight_device")):
                base.write(d, "blkio.leaf_weight_device", f"{e['major']}:{e['minor']} {e['leafWeight']}")
        for key, f in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                       ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                       ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                       ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device")):
            for e in b.get(key, []):
                base.write(d, f, f"{e['major']}:{e['minor']} {e['rate']}")

    def _devices(self, rules: list[res.DeviceRule]) -> None:
        """Replay the rules in order: "a" resets the default (deny or allow, clearing exceptions), a
        specific rule adds or removes an exception; this is the kernel's own ordered semantics."""
        d = self.paths["devices"]
        for r in rules:
            base.write(d, "devices.allow" if r.allow else "devices.deny", r.v1_text())

    # --- stats --------------------------------------------------------------------------------------
    def stats(self) -> dict:
        from .stats import v1_stats
        return v1_stats(self.paths)
