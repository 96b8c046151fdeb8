#!/usr/bin/env python3
"""``run --image`` of a cached image next to ``run --bundle`` of the same rootfs (and ``podman run`` of the
same image where podman is installed).  Median wall time of the whole command, start-up included.

The image is bench_image.py's Debian minbase layout (built once, cached in benchmarks/.cache/image).
The bundle is ``umoci unpack`` of that layout, so both run the same tree; both run ``/bin/true``.

    python benchmarks/bench_run_image.py [--runs N] [--source debootstrap|usr]

Rows: ``run --bundle``; ``run --image`` first run (layers unpacked into a fresh store); ``run --image``
cached (every later run: overlay mount of the stored layers); the cached/bundle ratio (the goal: <= 1.5).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_image  # noqa: E402

BIN = os.environ.get("PYRUNTIME_BIN") or os.path.join(REPO, "bin", "pyruntime")


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=120)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--source", choices=["debootstrap", "usr"], default="debootstrap")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_run_image: run as root")
    os.makedirs(bench_image.CACHE, exist_ok=True)
    rootfs, kind = bench_image.make_rootfs(a.source)
    layout = bench_image.make_layout(rootfs, kind)
    image = f"{layout}:{bench_image.REF}"
    root = f"/run/pyrt-bench-image-{os.getpid()}"
    work = os.path.join(bench_image.CACHE, f"run-{os.getpid()}")
    bundle = os.path.join(work, "bundle")
    os.makedirs(work)
    try:
        subprocess.run(["umoci", "unpack", "--image", image, bundle], check=True, stdout=subprocess.DEVNULL)
        cfgp = os.path.join(bundle, "config.json")
        cfg = json.load(open(cfgp))
        cfg["process"]["args"] = ["/bin/true"]
        cfg["process"]["terminal"] = False
        json.dump(cfg, open(cfgp, "w"))
        g = [BIN, "--root", root]
        t_first = timed(g + ["run", "--image", image, "first", "--", "/bin/true"])
        t_bundle, t_image, t_podman = [], [], []
        podman = None if os.environ.get("PYRT_BENCH_NO_PODMAN") else shutil.which("podman")
        pod_run = ""
        import resource      # podman's default nofile (1048576) is above this host's hard limit
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
        if podman:
            # a private podman storage (never the host's), removed at the end
            pod_root = os.path.join(work, "podman")
            pod_run = f"/run/pyrtb-{os.getpid()}"        # podman wants a runroot under 50 characters
            # runc and cgroupfs: crun refuses this host's hybrid cgroups
            podman = [podman, "--root", f"{pod_root}/root", "--runroot", pod_run, "--storage-driver", "overlay",
                      "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
            # podman 4.3 cannot name an oci: image by an absolute path: skopeo copies it into the storage
            subprocess.run(["skopeo", "copy", "-q", f"oci:{layout}:{bench_image.REF}",
                            f"containers-storage:[overlay@{pod_root}/root+{pod_run}]localhost/pyrt-bench:latest"],
                           check=True, stdout=subprocess.DEVNULL)
        for i in range(a.runs):
            t_bundle.append(timed(g + ["run", "--bundle", bundle, f"b{i}"]))
            t_image.append(timed(g + ["run", "--image", image, f"i{i}", "--", "/bin/true"]))
            if podman:
                t_podman.append(timed(podman + ["run", "--rm", "--net=none", "--ulimit", f"nofile={nofile}:{nofile}",
                                                "--ulimit", f"nproc={nproc}:{nproc}", "pyrt-bench", "/bin/true"]))
        mb, mi = statistics.median(t_bundle), statistics.median(t_image)
        print(f"image: {kind} rootfs ({layout}); {a.runs} runs each, median wall time")
        print(f"  run --bundle (umoci-unpacked rootfs)   {mb * 1000:8.1f} ms")
        print(f"  run --image, first (fresh store)       {t_first * 1000:8.1f} ms")
        print(f"  run --image, cached (overlay)          {mi * 1000:8.1f} ms")
        if t_podman:
            print(f"  podman run --rm (same image, runc)     {statistics.median(t_podman) * 1000:8.1f} ms")
        print(f"  ratio cached image / bundle: {mi / mb:.2f}x (goal <= 1.5x)")
    finally:
        if podman:
            subprocess.run(podman + ["rmi", "-af"], capture_output=True)
            subprocess.run(podman + ["system", "reset", "-f"], capture_output=True)
            with open("/proc/self/mounts") as fh:
                left = [ln.split()[1] for ln in fh if work in ln.split()[1] or pod_run in ln.split()[1]]
            for m in reversed(left):
                subprocess.run(["umount", "-l", m], capture_output=True)
            shutil.rmtree(pod_run, ignore_errors=True)
        subprocess.run(g[:3] + ["image", "prune"], stdout=subprocess.DEVNULL)
        sys.path.insert(0, REPO)
        from pyruntime.fastos import remove_path
        remove_path(root)
        remove_path(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
