"""Paths and helpers shared by the test suites.  A uniquely named module (not `conftest`): with
several conftest.py files in the tree, `from conftest import` picks whichever pytest loaded last."""
from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "bin", "pyruntime")
ROOTFS = os.path.join(ROOT, "bundles", "busybox", "rootfs")
# one parent cgroup per test session, so concurrent sessions never see (or remove) each other's
CG_PARENT = f"pyrt-tests-{os.getpid()}"


def _cgroup_dirs(name: str) -> list[str]:
    """Every dir called `name` directly under this process's cgroups (v1 hierarchies and unified)."""
    out = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in (ctrls.split(",") if ctrls else ["unified"]):
                c = c.replace("name=", "")
                base = f"/sys/fs/cgroup/{c}" if os.path.isdir(f"/sys/fs/cgroup/{c}") else "/sys/fs/cgroup"
                d = os.path.join(base + path, name)
                if os.path.isdir(d):
                    out.append(d)
    return out


def _rm_cgroup_tree(d: str) -> None:
    for sub, dirs, _ in sorted(os.walk(d), key=lambda t: -len(t[0])):
        try:
            os.rmdir(sub)
        except OSError:
            pass
