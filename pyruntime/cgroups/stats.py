"""``events --stats``: the "data" object of runc's stats event, read from v1 or v2 files.

Field names follow runc's types.Stats JSON (cpu.usage.total, memory.usage.limit, pids.current, ...), so
clients that parse runc's output (containerd's runc shim, monitoring agents) read ours unchanged.
"""
from __future__ import annotations

import os

from . import base

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_UNLIMITED_V1 = 9223372036854771712   # v1 "no limit" (LONG_MAX rounded down to a page)


def _nums(d: str, name: str) -> list[int]:
    try:
        return [int(x) for x in base.read(d, name).split()]
    except (OSError, ValueError):
        return []


def _max(d: str, name: str) -> int:
    """A v2 limit file: "max" is reported as runc does, the largest uint64."""
    try:
        v = base.read(d, name)
    except OSError:
        return 0
    return (1 << 64) - 1 if v == "max" else int(v.split()[0])


def _blkio_v1(d: str, name: str) -> list[dict]:
    out = []
    try:
        text = base.read(d, name)
    except OSError:
        return out
    for line in text.splitlines():
        f = line.split()
        if len(f) == 3 and ":" in f[0]:
            mj, mn = f[0].split(":")
            out.append({"major": int(mj), "minor": int(mn), "op": f[1], "value": int(f[2])})
    return out


def v1_stats(paths: dict[str, str]) -> dict:
    data: dict = {"cpu": {"usage": {}, "throttling": {}}, "memory": {}, "pids": {}, "blkio": {},
                  "hugetlb": {}}
    ca = paths.get("cpuacct")
    if ca:
        u = data["cpu"]["usage"]
        u["total"] = base.read_int(ca, "cpuacct.usage")
        u["percpu"] = _nums(ca, "cpuacct.usage_percpu")
        u["percpu_kernel"] = _nums(ca, "cpuacct.usage_percpu_sys")
        u["percpu_user"] = _nums(ca, "cpuacct.usage_percpu_user")
        st = base.read_kv(ca, "cpuacct.stat")
        u["kernel"] = st.get("system", 0) * 1_000_000_000 // _TICKS
        u["user"] = st.get("user", 0) * 1_000_000_000 // _TICKS
    cpu = paths.get("cpu")
    if cpu:
        st = base.read_kv(cpu, "cpu.stat")
        data["cpu"]["throttling"] = {"periods": st.get("nr_periods", 0),
                                     "throttledPeriods": st.get("nr_throttled", 0),
                                     "throttledTime": st.get("throttled_time", 0)}
    mem = paths.get("memory")
    if mem:
        raw = base.read_kv(mem, "memory.stat")

        def entry(prefix: str) -> dict:
            return {"limit": base.read_int(mem, f"{prefix}.limit_in_bytes"),
                    "usage": base.read_int(mem, f"{prefix}.usage_in_bytes"),
                    "max": base.read_int(mem, f"{prefix}.max_usage_in_bytes"),
                    "failcnt": base.read_int(mem, f"{prefix}.failcnt")}
        data["memory"] = {"cache": raw.get("total_cache", raw.get("cache", 0)), "usage": entry("memory"),
                          "swap": entry("memory.memsw"), "kernel": entry("memory.kmem"),
                          "kernelTCP": entry("memory.kmem.tcp"), "raw": raw}
    pids = paths.get("pids")
    if pids:
        lim = base.read_int(pids, "pids.max", 0)
        data["pids"] = {"current": base.read_int(pids, "pids.current"), "limit": lim}
    blk = paths.get("blkio")
    if blk:
        data["blkio"] = {
            "ioServiceBytesRecursive": _blkio_v1(blk, "blkio.throttle.io_service_bytes_recursive"),
            "ioServicedRecursive": _blkio_v1(blk, "blkio.throttle.io_serviced_recursive"),
        }
    hug = paths.get("hugetlb")
    if hug:
        for f in sorted(os.listdir(hug)):
            if f.startswith("hugetlb.") and f.endswith(".usage_in_bytes") and ".rsvd." not in f:
                size = f.split(".")[1]
                data["hugetlb"][size] = {"usage": base.read_int(hug, f),
                                         "max": base.read_int(hug, f"hugetlb.{size}.max_usage_in_bytes"),
                                         "failcnt": base.read_int(hug, f"hugetlb.{size}.failcnt")}
    return data


def v2_stats(d: str) -> dict:
    data: dict = {"cpu": {"usage": {}, "throttling": {}}, "memory": {}, "pids": {}, "blkio": {},
                  "hugetlb": {}}
    st = base.read_kv(d, "cpu.stat")
    data["cpu"]["usage"] = {"total": st.get("usage_usec", 0) * 1000, "kernel": st.get("system_usec", 0) * 1000,
                            "user": st.get("user_usec", 0) * 1000}
    data["cpu"]["throttling"] = {"periods": st.get("nr_periods", 0),
                                 "throttledPeriods": st.get("nr_throttled", 0),
                                 "throttledTime": st.get("throttled_usec", 0) * 1000}
    if os.path.exists(os.path.join(d, "memory.current")):
        raw = base.read_kv(d, "memory.stat")
        ev = base.read_kv(d, "memory.events")
        data["memory"] = {
            "cache": raw.get("file", 0),
            "usage": {"limit": _max(d, "memory.max"), "usage": base.read_int(d, "memory.current"),
                      "max": base.read_int(d, "memory.peak"), "failcnt": ev.get("max", 0)},
            "swap": {"limit": _max(d, "memory.swap.max"), "usage": base.read_int(d, "memory.swap.current"),
                     "max": base.read_int(d, "memory.swap.peak"), "failcnt": 0},
            "raw": raw,
        }
    if os.path.exists(os.path.join(d, "pids.current")):
        lim = base.read(d, "pids.max")
        data["pids"] = {"current": base.read_int(d, "pids.current"), "limit": 0 if lim == "max" else int(lim)}
    if os.path.exists(os.path.join(d, "io.stat")):
        sb, sv = [], []
        for line in base.read(d, "io.stat").splitlines():
            f = line.split()
            if not f or ":" not in f[0]:
                continue
            mj, mn = (int(x) for x in f[0].split(":"))
            kv = dict(x.split("=", 1) for x in f[1:] if "=" in x)
            for key, op, lst in (("rbytes", "Read", sb), ("wbytes", "Write", sb), ("rios", "Read", sv),
                                 ("wios", "Write", sv)):
                if key in kv:
                    lst.append({"major": mj, "minor": mn, "op": op, "value": int(kv[key])})
        data["blkio"] = {"ioServiceBytesRecursive": sb, "ioServicedRecursive": sv}
    for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if f.startswith("hugetlb.") and f.endswith(".current") and ".rsvd." not in f:
            size = f.split(".")[1]
            data["hugetlb"][size] = {"usage": base.read_int(d, f), "max": _max(d, f"hugetlb.{size}.max"),
                                     "failcnt": base.read_kv(d, f"hugetlb.{size}.events").get("max", 0)}
    return data
