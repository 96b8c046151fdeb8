"""`kill --all` of a stopped container, as the containerd shim sends it (twice, signal 9) during
StopContainer/StopPodSandbox after the init exited: with its cgroup still there and with the cgroup gone
(the systemd driver's unit takes it away with the last process), it is no error and says nothing, on
stdout, stderr or the JSON log.  runc 1.1.5 (the control) runs the same steps."""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from pyrt_testenv import RUNC, Runtime, cgroup_dirs, runc_control


@pytest.fixture(params=["pyruntime", "runc"])
def runtime(request, rt):
    if request.param == "pyruntime":
        yield rt
        return
    if not RUNC:
        pytest.skip("runc is not installed on this host (the control runtime)")
    with runc_control() as r:
        yield r


def stopped_container(runtime: Runtime, make_bundle) -> tuple[str, str]:
    """A container whose init (`true`) has exited; returns (id, its relative cgroupsPath)."""
    b = make_bundle(["true"])
    with open(os.path.join(b, "config.json")) as f:
        rel = json.load(f)["linux"]["cgroupsPath"]
    cid = f"v2pathk{uuid.uuid4().hex[:6]}"
    runtime("create", "--bundle", b, cid, stdin=open(os.devnull))
    runtime("start", cid)
    deadline = time.monotonic() + 10
    while runtime.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, "the init did not exit"
        time.sleep(0.02)
    return cid, rel


@pytest.mark.parametrize("cgroup", ["present", "gone"])
def test_kill_all_of_a_stopped_container(runtime, make_bundle, tmp_path, cgroup):
    cid, rel = stopped_container(runtime, make_bundle)
    dirs = cgroup_dirs(rel)
    assert dirs, rel
    if cgroup == "gone":
        for d in dirs:
            os.rmdir(d)             # empty: its only process exited
    log = str(tmp_path / "log.json")
    for _ in range(2):
        cp = runtime("kill", "--all", cid, "9", check=False, log=log)
        assert (cp.returncode, cp.stdout, cp.stderr) == (0, b"", b""), cp
    assert not os.path.exists(log) or open(log).read() == "", open(log).read()
    assert runtime.state(cid)["status"] == "stopped"
    runtime("delete", cid)
    assert not any(os.path.isdir(d) for d in dirs), dirs
