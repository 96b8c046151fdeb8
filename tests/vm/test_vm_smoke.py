"""Smoke test of the cgroup v2 VM lane (make test-cgroup2): is the guest what the cgroup tests expect?

Runs only inside the VM (tests/vm/run-in-vm.sh exports PYRUNTIME_TEST_VM=1); on the host it skips.
Needs nothing from pyruntime itself, so it also tells a broken VM from a broken runtime.
"""

import os
import subprocess
import sys
import uuid

import pytest

CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP2_SUPER_MAGIC = 0x63677270
REQUIRED_CONTROLLERS = {"memory", "pids", "cpu", "io", "cpuset"}

pytestmark = [
    pytest.mark.cgroup,
    pytest.mark.cgroup_vm,
    pytest.mark.skipif(
        os.environ.get("PYRUNTIME_TEST_VM") != "1",
        reason="only meaningful inside the cgroup v2 VM (make test-cgroup2)",
    ),
]


def _read(path):
    with open(path) as f:
        return f.read()


def _mounts():
    """(mount point, fs type) for every line of /proc/self/mounts."""
    out = []
    for line in _read("/proc/self/mounts").splitlines():
        fields = line.split()
        out.append((fields[1], fields[2]))
    return out


@pytest.fixture
def child_cgroup():
    path = os.path.join(CGROUP_ROOT, f"pyrt-smoke-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    try:
        yield path
    finally:
        # the processes in it are gone by now; a dead cgroup can be removed
        os.rmdir(path)


def test_sys_fs_cgroup_is_the_only_hierarchy_and_is_cgroup2():
    mounts = _mounts()
    assert (CGROUP_ROOT, "cgroup2") in mounts, mounts
    v1 = [m for m in mounts if m[1] == "cgroup"]
    assert not v1, f"cgroup v1 hierarchies mounted: {v1}"
    # the mount point itself is the cgroup2 root (not a tmpfs with cgroup2 under it)
    assert os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))
    assert not os.path.exists(os.path.join(CGROUP_ROOT, "unified"))
    # /proc/self/cgroup has the single v2 line "0::/..."
    lines = _read("/proc/self/cgroup").splitlines()
    assert len(lines) == 1 and lines[0].startswith("0::"), lines


def test_controllers_available_and_enabled_in_root():
    available = set(_read(os.path.join(CGROUP_ROOT, "cgroup.controllers")).split())
    enabled = set(_read(os.path.join(CGROUP_ROOT, "cgroup.subtree_control")).split())
    assert REQUIRED_CONTROLLERS <= available, f"missing: {REQUIRED_CONTROLLERS - available}"
    assert REQUIRED_CONTROLLERS <= enabled, f"not enabled in the root: {REQUIRED_CONTROLLERS - enabled}"


def test_project_dir_is_writable_and_host_root_is_an_overlay():
    mounts = dict(_mounts())
    assert mounts.get("/") == "overlay"
    here = os.path.dirname(os.path.abspath(__file__))
    probe = os.path.join(here, f".vm-write-probe-{os.getpid()}")
    with open(probe, "w") as f:
        f.write("ok")
    os.unlink(probe)


def test_memory_max_kills_a_process_allocating_more(child_cgroup):
    limit = 32 << 20
    with open(os.path.join(child_cgroup, "memory.max"), "w") as f:
        f.write(str(limit))
    swap_max = os.path.join(child_cgroup, "memory.swap.max")
    if os.path.exists(swap_max):
        with open(swap_max, "w") as f:
            f.write("0")
    # the child moves itself into the cgroup, then touches 8x the limit (bytes * n memsets every page)
    script = (
        "import os, sys\n"
        "with open(sys.argv[1] + '/cgroup.procs', 'w') as f: f.write(str(os.getpid()))\n"
        "chunks = [b'x' * (16 << 20) for _ in range(16)]\n"
        "print('survived', sum(map(len, chunks)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, child_cgroup],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == -9, (proc.returncode, proc.stdout, proc.stderr)
    events = dict(line.split() for line in _read(os.path.join(child_cgroup, "memory.events")).splitlines())
    assert int(events["oom_kill"]) >= 1, events
    peak = os.path.join(child_cgroup, "memory.peak")  # Linux >= 5.19
    if os.path.exists(peak):
        assert int(_read(peak)) <= limit
    assert _read(os.path.join(child_cgroup, "cgroup.procs")).strip() == ""
