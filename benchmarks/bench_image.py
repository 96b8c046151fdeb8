#!/usr/bin/env python3
"""Unpack a large image with pyruntime and with ``umoci unpack``; print median times and the ratio.

Input: a Debian bookworm minbase rootfs (``debootstrap --variant=minbase``; about 200 MB, 6,800 files)
made into an OCI layout by ``umoci insert``.  Without a reachable mirror the rootfs is built from this
machine's /usr instead.  Both are cached under ``benchmarks/.cache/image`` (gitignored), so only the
first run pays for them.

Both tools run as commands (interpreter or binary start-up included), alternately, into a fresh bundle
directory each time; the removal of the previous bundle is not timed.  The first pyruntime and umoci
trees are compared entry by entry (type, mode, owner, contents, link target, xattrs, mtimes) so the
speed is not bought with a different result.

    python benchmarks/bench_image.py [--runs N] [--no-verify] [--source debootstrap|usr]

``PYRUNTIME_BENCH_CACHE=DIR`` puts the cache elsewhere.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CACHE = os.environ.get("PYRUNTIME_BENCH_CACHE") or os.path.join(HERE, ".cache", "image")
REF = "bench"


def log(msg: str) -> None:
    print(msg, flush=True)


def run(cmd: list[str], **kw) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


def make_rootfs(kind: str) -> tuple[str, str]:
    rootfs = os.path.join(CACHE, f"rootfs-{kind}")
    stamp = rootfs + ".done"
    if os.path.exists(stamp):
        return rootfs, kind
    shutil.rmtree(rootfs, ignore_errors=True)
    if kind == "debootstrap" and shutil.which("debootstrap"):
        log("building a Debian bookworm minbase rootfs with debootstrap (first run only) ...")
        cp = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", rootfs],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=900)
        if cp.returncode == 0:
            # drop what varies between runs and is not an image's business
            shutil.rmtree(os.path.join(rootfs, "var/cache/apt/archives"), ignore_errors=True)
            open(stamp, "w").close()
            return rootfs, kind
        log(f"debootstrap failed ({cp.stderr.strip().splitlines()[-1:]}); using this machine's /usr instead")
        shutil.rmtree(rootfs, ignore_errors=True)
    return make_rootfs_from_usr()


def _tree_size(path: str) -> int:
    total = 0
    for dp, _, fns in os.walk(path):
        for n in fns:
            try:
                total += os.lstat(os.path.join(dp, n)).st_size
            except OSError:
                pass
    return total


def make_rootfs_from_usr(budget: int = 300_000_000) -> tuple[str, str]:
    """Whole subdirectories of /usr/{bin,lib,share}, in name order, up to ``budget`` bytes."""
    rootfs = os.path.join(CACHE, "rootfs-usr")
    stamp = rootfs + ".done"
    if not os.path.exists(stamp):
        shutil.rmtree(rootfs, ignore_errors=True)
        log(f"copying about {budget // 1_000_000} MB of this machine's /usr into a rootfs (first run only) ...")
        total = 0
        for top in ("bin", "lib", "share"):
            src_top = os.path.join("/usr", top)
            os.makedirs(os.path.join(rootfs, "usr", top), exist_ok=True)
            for name in sorted(os.listdir(src_top)):
                src = os.path.join(src_top, name)
                size = os.lstat(src).st_size if not os.path.isdir(src) or os.path.islink(src) else _tree_size(src)
                if total + size > budget:
                    continue
                run(["cp", "-a", src, os.path.join(rootfs, "usr", top, name)])
                total += size
        open(stamp, "w").close()
    return rootfs, "usr"


def make_layout(rootfs: str, kind: str) -> str:
    layout = os.path.join(CACHE, f"layout-{kind}")
    stamp = layout + ".done"
    if os.path.exists(stamp):
        return layout
    shutil.rmtree(layout, ignore_errors=True)
    log(f"making an OCI layout with umoci from {rootfs} ...")
    run(["umoci", "init", "--layout", layout])
    run(["umoci", "new", "--image", f"{layout}:{REF}"])
    run(["umoci", "insert", "--image", f"{layout}:{REF}", rootfs, "/"])
    run(["umoci", "config", "--image", f"{layout}:{REF}", "--config.cmd", "/bin/sh"])
    open(stamp, "w").close()
    return layout


def layout_size(layout: str) -> tuple[int, int]:
    blobs = os.path.join(layout, "blobs", "sha256")
    sizes = [os.path.getsize(os.path.join(blobs, b)) for b in os.listdir(blobs)]
    return max(sizes), len(sizes)


def timed(cmd: list[str], out: str) -> float:
    if os.path.exists(out):
        shutil.rmtree(out)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
    return time.perf_counter() - t


def verify(a: str, b: str) -> None:
    sys.path.insert(0, os.path.join(REPO, "tests", "image"))
    import treecmp
    sa, sb = treecmp.snapshot(a), treecmp.snapshot(b)
    problems = treecmp.diff(sa, sb)
    if problems:
        raise SystemExit("pyruntime and umoci trees differ:\n  " + "\n  ".join(problems))
    log(f"verified: pyruntime and umoci trees are identical ({len(sa)} entries, contents, owners, "
        "modes, xattrs, mtimes)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--source", choices=["debootstrap", "usr"], default="debootstrap")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_image: run as root (umoci unpack and pyruntime restore owners)")
    for tool in ("umoci",):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench_image: {tool} is not installed (apt-get install umoci)")
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(os.path.dirname(CACHE), ".gitignore"), "w") as fh:
        fh.write("*\n")
    rootfs, kind = make_rootfs(a.source)
    layout = make_layout(rootfs, kind)
    biggest, nblobs = layout_size(layout)
    work = os.path.join(CACHE, "work")
    os.makedirs(work, exist_ok=True)
    ours_out, umoci_out = os.path.join(work, "pyruntime"), os.path.join(work, "umoci")
    ours = [sys.executable, "-m", "pyruntime", "image", "unpack", f"{layout}:{REF}", ours_out]
    theirs = ["umoci", "unpack", "--image", f"{layout}:{REF}", umoci_out]
    log(f"image: {kind} rootfs, layer {biggest / 1e6:.1f} MB (gzip), {nblobs} blobs; {a.runs} runs each")

    # warm-up (page cache for the layout, imports) and the correctness check
    timed(ours, ours_out)
    timed(theirs, umoci_out)
    if not a.no_verify:
        verify(os.path.join(ours_out, "rootfs"), os.path.join(umoci_out, "rootfs"))
    t_ours, t_umoci = [], []
    for i in range(a.runs):
        t_ours.append(timed(ours, ours_out))
        t_umoci.append(timed(theirs, umoci_out))
        log(f"  run {i + 1}: pyruntime {t_ours[-1]:.3f}s  umoci {t_umoci[-1]:.3f}s")
    shutil.rmtree(work, ignore_errors=True)
    mo, mu = statistics.median(t_ours), statistics.median(t_umoci)
    log(f"median: pyruntime image unpack {mo:.3f}s, umoci unpack {mu:.3f}s")
    log(f"ratio umoci/pyruntime: {mu / mo:.2f}x ({'faster' if mo < mu else 'SLOWER'} than umoci)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
