"""A container process that left the container's cgroup in one hierarchy must still be found by
`kill --all` through the others.  On a hybrid host the container's unified (cgroup2) directory carries no
controller, so a process with a writable cgroup2 mount (CAP_SYS_ADMIN, or a bind-mounted cgroupfs) can
leave it for free while it stays in every v1 cgroup.  `cgroup.kill` on the unified directory misses it;
runc 1.1.5 (the control) signals the pids of the v1 cgroups and kills it.  In a shared pid namespace
(no pid namespace of its own here, a pod's in practice) nothing else would end it."""
from __future__ import annotations

import os
import time
import uuid

import pytest
from pyrt_testenv import pyruntime_or_runc

UNIFIED = "/sys/fs/cgroup/unified"


@pytest.fixture(params=["pyruntime", "runc"])
def runtime(request, rt):
    yield from pyruntime_or_runc(request.param, rt)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("how", ["kill-all-KILL", "kill-all-TERM", "delete"])
def test_a_process_escaped_from_the_unified_cgroup_is_killed(runtime, make_bundle, how):
    """By `kill --all` (KILL, TERM), and by `delete` once the init is gone."""
    if not os.path.ismount(UNIFIED) or not os.path.isdir("/sys/fs/cgroup/pids"):
        pytest.skip("needs a hybrid host (v1 controllers and cgroup2 at /sys/fs/cgroup/unified)")
    target = os.path.join(UNIFIED, f"pyrt-escape-{uuid.uuid4().hex[:8]}")
    os.mkdir(target)
    escaped: list[int] = []
    cid = f"escape{uuid.uuid4().hex[:6]}"

    def edit(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] not in ("pid", "cgroup")]
        c["process"]["capabilities"] = {k: ["CAP_SYS_ADMIN", "CAP_KILL"] for k in
                                        ("bounding", "effective", "permitted")}
        c["mounts"].append({"destination": "/mnt", "type": "bind", "source": UNIFIED, "options": ["rbind", "rw"]})
    leave = f"sleep 1000 & echo $! > /mnt/{os.path.basename(target)}/cgroup.procs; exec sleep 1000"
    b = make_bundle(["sh", "-c", leave], edit=edit)
    try:
        runtime("run", "-d", "--bundle", b, cid, stdin=open(os.devnull))
        deadline = time.monotonic() + 10
        while not escaped:
            assert time.monotonic() < deadline, "the process did not leave its unified cgroup"
            escaped = [int(p) for p in open(os.path.join(target, "cgroup.procs")).read().split()]
            time.sleep(0.02)
        if how == "delete":
            runtime("kill", cid, "KILL")
            deadline = time.monotonic() + 10
            while runtime.state(cid)["status"] != "stopped":
                assert time.monotonic() < deadline, "the init did not die"
                time.sleep(0.02)
            runtime("delete", cid)
        else:
            runtime("kill", "--all", cid, how.rsplit("-", 1)[1])
        deadline = time.monotonic() + 5
        while _alive(escaped[0]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(escaped[0]), f"{how} missed the process that left the unified cgroup"
    finally:
        for p in escaped:
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass
        runtime("delete", "--force", cid, check=False)
        deadline = time.monotonic() + 5
        while True:
            try:
                os.rmdir(target)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
