"""Paths and helpers shared by the test suites.  A uniquely named module (not `conftest`): with
several conftest.py files in the tree, `from conftest import` picks whichever pytest loaded last."""
from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "bin", "pyruntime")
ROOTFS = os.path.join(ROOT, "bundles", "busybox", "rootfs")
# one parent cgroup per test session, so concurrent sessions never see (or remove) each other's
CG_PARENT = f"pyrt-tests-{os.getpid()}"


def cgroup_dirs(rel: str) -> list[str]:
    """Where a relative cgroupsPath lands (if it exists): under this process's cgroup in every hierarchy."""
    found = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in (ctrls.split(",") if ctrls else ["unified"]):
                c = c.replace("name=", "")
                base = f"/sys/fs/cgroup/{c}" if os.path.isdir(f"/sys/fs/cgroup/{c}") else "/sys/fs/cgroup"
                d = os.path.normpath(f"{base}/{path}/{rel}")
                if os.path.isdir(d) and d not in found:
                    found.append(d)
    return found


_cgroup_dirs = cgroup_dirs


def _rm_cgroup_tree(d: str) -> None:
    for sub, dirs, _ in sorted(os.walk(d), key=lambda t: -len(t[0])):
        try:
            os.rmdir(sub)
        except OSError:
            pass
