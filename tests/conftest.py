"""Shared fixtures: a private state root, a bundle factory on the busybox rootfs, a runner for the
installed launcher, and cleanup that deletes every container a test made, even when it fails."""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

from pyrt_testenv import CG_PARENT, LAUNCHER, ROOTFS, _cgroup_dirs, _rm_cgroup_tree  # noqa: F401


class Runtime:
    """Runs the pyruntime command with a private --root."""

    def __init__(self, root: str, binary: str = LAUNCHER) -> None:
        self.root = root
        self.binary = binary

    def __call__(self, *args: str, check: bool = True, timeout: float = 60, input: bytes | None = None,
                 log: str | None = None, **kw) -> subprocess.CompletedProcess:
        glob = ["--root", self.root]
        if log:
            glob += ["--log", log, "--log-format", "json"]
        # Files, not pipes: a created container's init inherits our stdio and may outlive this call.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            cp = subprocess.run([self.binary, *glob, *args], stdout=kw.pop("stdout", out), stderr=err,
                                timeout=timeout, input=input, **kw)
            out.seek(0)
            err.seek(0)
            cp.stdout, cp.stderr = out.read(), err.read()
        if check and cp.returncode != 0:
            raise AssertionError(f"pyruntime {' '.join(args)} -> {cp.returncode}\nstdout: {cp.stdout.decode()}\n"
                                 f"stderr: {cp.stderr.decode()}")
        return cp

    def out(self, *args: str, **kw) -> str:
        return self(*args, **kw).stdout.decode()

    def state(self, cid: str) -> dict:
        return json.loads(self.out("state", cid))

    def cleanup(self) -> None:
        if not os.path.isdir(self.root):
            return
        for cid in os.listdir(self.root):
            if not cid.startswith("."):     # every container dir, half-made ones too
                subprocess.run([self.binary, "--root", self.root, "delete", "--force", cid], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


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
