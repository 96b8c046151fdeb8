"""Fixtures shared by the e2e lanes (podman, containerd) and the features tests.

The lanes are marked ``e2e`` (registered here so ``--strict-markers`` accepts it) and run by
``make test-e2e``; ``pytest -m "not e2e"`` leaves them out of the unit/integration run.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from .helpers import RUNTIMES, Control, Tmux, lane_dir, need, pyruntime_binary, runtime_paths, sh
from .image import build_rootfs_tar


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end lanes driving pyruntime through podman and containerd")


@pytest.fixture(scope="session")
def e2e_tmp():
    """One temp dir for the session (0755: user-namespaced container roots must traverse it)."""
    d = tempfile.mkdtemp(prefix="pyrt-e2e-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    left = [line.split()[4] for line in open("/proc/self/mountinfo") if line.split()[4].startswith(d)]
    for mp in sorted(left, key=len, reverse=True):
        sh(["umount", "-l", mp])
    shutil.rmtree(d, ignore_errors=True)
    assert not left, f"mounts were left under {d}: {left}"


@pytest.fixture(scope="session")
def runtimes(e2e_tmp) -> dict[str, str]:
    """runc (the control) and pyruntime (under test), as absolute paths."""
    return runtime_paths(pyruntime_binary(e2e_tmp))


@pytest.fixture(scope="session")
def rootfs_tar(e2e_tmp) -> str:
    return build_rootfs_tar(os.path.join(e2e_tmp, "busybox-rootfs.tar"))


_CONTROLS: list[Control] = []


def _report_lines(control: Control) -> list[str]:
    """Per step: runc result, pyruntime result -- the table the lead reads first."""
    rows: dict[str, dict[str, str]] = {}
    for step, runtime, result in control.report:
        rows.setdefault(step, {})[runtime] = result
    if not rows:
        return []
    width = max(len(s) for s in rows)
    lines = [f"{control.lane} lane (step | runc | pyruntime)"]
    for step, r in rows.items():
        lines.append(f"  {step:<{width}} | {r.get('runc', '-')[:50]:<50} | {r.get('pyruntime', '-')}")
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    lines = [line for c in _CONTROLS for line in _report_lines(c)]
    if lines:
        terminalreporter.section("e2e lanes: runc control vs pyruntime")
        for line in lines:
            terminalreporter.write_line(line)
    path = os.environ.get("E2E_REPORT")
    if path and lines:
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")


@pytest.fixture(params=RUNTIMES)
def runtime(request) -> str:
    """Each step of a lane: runc (the control) first, then pyruntime."""
    return request.param


@pytest.fixture(scope="module")
def control(request, control_factory) -> Control:
    """The control of the test module's lane (its ``LANE`` name heads its step table)."""
    return control_factory(request.module.LANE)


@pytest.fixture(scope="module")
def tmux(request, e2e_tmp):
    """A private tmux server for the module's lane, to drive ``-it``/``--tty`` sessions."""
    need("tmux")
    t = Tmux(lane_dir(e2e_tmp, f"tmux-{request.module.LANE}"))
    yield t
    t.close()


@pytest.fixture(scope="session")
def control_factory():
    """A Control per lane; their step tables are printed in the terminal summary."""
    def make(lane: str) -> Control:
        c = Control(lane)
        _CONTROLS.append(c)
        return c
    return make
