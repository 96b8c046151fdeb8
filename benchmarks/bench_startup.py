"""Start-up of the installed command (make install: /usr/bin/python3 -IS + PREFIX/lib/pyruntime) against
the checkout's bin/pyruntime and the bare interpreter, interleaved, medians.  Not a test: prints only.

    python benchmarks/bench_startup.py INSTALLED_PYRUNTIME     (make bench-startup installs one under build/)
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("BENCH_N", "50"))


def main() -> int:
    installed = sys.argv[1]
    checkout = os.path.join(ROOT, "bin", "pyruntime")
    with open(installed) as f:
        interp = f.readline()[2:].split()[0]
    with open(checkout) as f:
        dev_interp = f.readline()[2:].split()[0]
    root = tempfile.mkdtemp(prefix="pyrt-bench-startup-")
    cases = {
        f"{interp} -I -S -c pass": [interp, "-I", "-S", "-c", "pass"],
        "installed --version": [installed, "--version"],
        "installed state x (no such container)": [installed, "--root", root, "state", "x"],
        f"{dev_interp} -I -S -c pass": [dev_interp, "-I", "-S", "-c", "pass"],
        "checkout bin/pyruntime --version": [checkout, "--version"],
        "checkout bin/pyruntime state x": [checkout, "--root", root, "state", "x"],
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    try:
        for _ in range(N):
            for k, cmd in cases.items():
                t = time.perf_counter()
                subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               check=False)
                times[k].append(time.perf_counter() - t)
    finally:
        os.rmdir(root)
    print(f"start-up, median of {N} (ms)")
    for k, v in times.items():
        print(f"  {k:60s} {statistics.median(v) * 1000:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
