"""pyruntime vs runc (Debian) on the same busybox bundle, in one run: medians and ratios.

Measured: `run` of /bin/true; create+start+delete; and `state` alone (what shims call constantly).
Not a test: it asserts nothing and only prints.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("BENCH_N", "30"))


def bundle(tmp: str, name: str) -> str:
    sys.path.insert(0, ROOT)
    from pyruntime.defaults import default_config
    cfg = default_config(terminal=False, args=["/bin/true"])
    cfg["root"]["path"] = os.path.join(ROOT, "bundles", "busybox", "rootfs")
    cfg["linux"]["cgroupsPath"] = f"pyrt-bench/{name}"     # one cgroup per runtime
    b = os.path.join(tmp, name)
    os.makedirs(b)
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(cfg, f)
    return b


def timed(cmds: list[list[str]]) -> float:
    t = time.perf_counter()
    for c in cmds:
        subprocess.run(c, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def measure(runtimes: dict[str, list[str]], b: dict[str, str]) -> dict[str, dict[str, float]]:
    """Interleaved: each iteration runs every runtime once, so load drift hits them alike."""
    res = {name: {"run /bin/true": [], "create+start+delete": [], "state": []} for name in runtimes}
    for i in range(N):
        for name, rt in runtimes.items():
            r = res[name]
            r["run /bin/true"].append(timed([rt + ["run", "--bundle", b[name], f"r{i}"]]))
            cid = f"c{i}"
            r["create+start+delete"].append(timed([rt + ["create", "--bundle", b[name], cid], rt + ["start", cid]]) +
                                            _delete_when_stopped(rt, cid))
    for name, rt in runtimes.items():
        subprocess.run(rt + ["create", "--bundle", b[name], "st"], check=True, stdout=subprocess.DEVNULL)
    for _ in range(N):
        for name, rt in runtimes.items():
            res[name]["state"].append(timed([rt + ["state", "st"]]))
    for name, rt in runtimes.items():
        subprocess.run(rt + ["delete", "--force", "st"], check=True)
    return {name: {k: statistics.median(v) for k, v in r.items()} for name, r in res.items()}


def _delete_when_stopped(rt: list[str], cid: str) -> float:
    deadline = time.monotonic() + 5
    while '"stopped"' not in subprocess.run(rt + ["state", cid], capture_output=True, text=True).stdout:
        if time.monotonic() > deadline:
            break
        time.sleep(0.001)
    return timed([rt + ["delete", cid]])


def main() -> int:
    tmp = tempfile.mkdtemp()
    try:
        b = {name: bundle(tmp, name) for name in ("pyruntime", "runc")}
        m = measure({"pyruntime": [os.path.join(ROOT, "bin", "pyruntime"), "--root", os.path.join(tmp, "pyrt")],
                     "runc": ["runc", "--root", os.path.join(tmp, "runc")]}, b)
        ours, theirs = m["pyruntime"], m["runc"]
        print(f"{'median of ' + str(N):<24} {'pyruntime':>12} {'runc':>12} {'pyruntime/runc':>16}")
        for k in ours:
            print(f"{k:<24} {ours[k] * 1000:>10.1f}ms {theirs[k] * 1000:>10.1f}ms {ours[k] / theirs[k]:>16.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in ("memory", "cpu", "pids", "freezer", "devices", "blkio", "cpuset", "cpuacct", "unified",
                  "systemd"):
            for sub in ("pyrt-bench/pyruntime", "pyrt-bench/runc", "pyrt-bench"):
                try:
                    own = [l.split(":", 2)[2].strip() for l in open("/proc/self/cgroup")
                           if (d in l.split(":")[1].split(",") or (d == "unified" and l.startswith("0::")))]
                    os.rmdir(f"/sys/fs/cgroup/{d}{own[0] if own else ''}/{sub}")
                except (OSError, IndexError):
                    pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
