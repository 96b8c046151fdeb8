"""Fixtures for the security tests: real containers from the busybox rootfs, a private state root.

Every test gets fresh bundles (config.json from ``pyruntime spec``, root.path made absolute,
terminal off, a tmpfs on /tmp so the read-only rootfs is never written) and a ``Runtime`` that runs
the CLI against a private ``--root`` under /run/pyruntime-test-*.  Finalizers force-delete every
container the test named, kill anything still alive from the state files, and remove the root:
a failing test leaves no container, mount or process behind.
"""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

from .helpers import CGROUP_PARENT, REPO, ROOTFS, Bundle, Runtime, default_config, runtime_for_test


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("security tests create real namespaces and need root")


@pytest.fixture(scope="session")
def rootfs() -> Path:
    """The busybox rootfs (built with `make rootfs` when missing)."""
    _need_root()
    if not (ROOTFS / "bin" / "busybox").exists():
        subprocess.run(["make", "-C", str(REPO), "rootfs"], check=True, capture_output=True)
    return ROOTFS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any):  # noqa: ANN201
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        item._sec_failed = True  # type: ignore[attr-defined]


@pytest.fixture
def runtime(request: pytest.FixtureRequest) -> Runtime:
    _need_root()
    return runtime_for_test(request)


@pytest.fixture
def make_bundle(runtime: Runtime, rootfs: Path, tmp_path: Path) -> Callable[..., Bundle]:
    """Factory: make_bundle(root=None) -> a fresh Bundle (its own directory) on `root` or the busybox rootfs."""
    counter = [0]

    def make(root: Path | None = None) -> Bundle:
        counter[0] += 1
        d = tmp_path / f"bundle{counter[0]}"
        d.mkdir()
        cfg = default_config(d)
        cfg["root"] = {"path": str(root or rootfs), "readonly": True}
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["/bin/true"]
        # our own cgroup parent (other suites may run at the same time); the runtime fixture checks it
        cfg.setdefault("linux", {})["cgroupsPath"] = f"{CGROUP_PARENT}/{uuid.uuid4().hex[:12]}"
        cfg.setdefault("mounts", []).append(
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777"]})
        b = Bundle(d, cfg)
        b.write()
        return b
    return make


@pytest.fixture
def bundle(make_bundle: Callable[..., Bundle]) -> Bundle:
    return make_bundle()


@pytest.fixture
def rootfs_copy(rootfs: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the busybox rootfs for hostile layouts."""
    dest = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(rootfs), str(dest)], check=True)
    return dest


@pytest.fixture(scope="session", autouse=True)
def _no_leaks():
    """Overrides the suite-wide check for this directory: other suites may run at the same time
    under the shared pyrt-tests cgroup, so only our own cgroup parent is checked here (mounts
    leaked into the host namespace are checked exactly like tests/conftest.py does)."""
    yield
    from .helpers import CGROUP_PARENT, cgroup_dirs
    left = []
    for d in cgroup_dirs(CGROUP_PARENT):
        for sub, _, _ in sorted(os.walk(d), key=lambda t: -len(t[0])):
            try:
                os.rmdir(sub)
            except OSError:
                left.append(sub)
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if "/bundles/busybox/rootfs" in line or "pyruntime-test" in line]
    assert not left, f"cgroups left behind: {left}"
    assert not mounts, f"mounts left behind: {mounts}"
