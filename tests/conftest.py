"""Shared fixtures: a private state root, a bundle factory on the busybox rootfs, a runner for the
installed launcher, and cleanup that deletes every container a test made, even when it fails."""
from __future__ import annotations

import copy
import json
import os
import uuid

import pytest

from pyrt_testenv import CG_PARENT, LAUNCHER, ROOTFS, Runtime, _cgroup_dirs, _rm_cgroup_tree  # noqa: F401


@pytest.fixture
def rt():
    if not os.path.exists(LAUNCHER):
        pytest.fail(f"{LAUNCHER} missing: run `make` first")
    r = Runtime(f"/run/pyruntime-test-{uuid.uuid4().hex[:8]}")
    yield r
    r.cleanup()


@pytest.fixture
def make_bundle(tmp_path):
    """make_bundle(args, **overrides) -> bundle dir with config.json on the busybox rootfs."""
    from pyruntime.defaults import default_config
    made = []

    def make(args=None, *, name: str | None = None, edit=None, **top) -> str:
        if not os.path.isdir(ROOTFS):
            pytest.fail(f"{ROOTFS} missing: run `make rootfs` first")
        b = tmp_path / (name or f"b{len(made)}")
        b.mkdir()
        cfg = default_config(terminal=False, args=args or ["true"])
        cfg["root"]["path"] = ROOTFS
        cfg["linux"]["cgroupsPath"] = f"{CG_PARENT}/{b.name}-{uuid.uuid4().hex[:6]}"
        cfg.update(copy.deepcopy(top))
        if edit:
            edit(cfg)
        (b / "config.json").write_text(json.dumps(cfg))
        made.append(str(b))
        return str(b)

    yield make


@pytest.fixture(scope="session", autouse=True)
def _no_leaks():
    """Fail loudly (in the report) if the suite leaves test containers' mounts or cgroups behind."""
    yield
    for d in _cgroup_dirs(CG_PARENT):
        _rm_cgroup_tree(d)
    left = [d for d in _cgroup_dirs(CG_PARENT) if os.path.isdir(d)]
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if "/bundles/busybox/rootfs" in line or "pyruntime-test" in line]
    assert not left, f"cgroups left behind: {left}"
    assert not mounts, f"mounts left behind: {mounts}"
