"""The systemd cgroup driver, live: containers in transient scopes of a real systemd (PID 1), limits
read back from the unit (systemctl show) and from the scope's cgroup files, update, pause, ps,
events, kill --all, delete leaving no unit and no cgroup.  runc --systemd-cgroup is the control."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from sdenv import SLICE, SLICE_PATH, rd, sh, unit_gone, unit_props, wait_for

pytestmark = pytest.mark.systemd_vm
MiB = 1 << 20


def test_scope_limits_lifecycle_and_delete(lane):
    res = {"memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 96 * MiB},
           "pids": {"limit": 40}, "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}}
    b, cid, unit = lane.config(["sleep", "300"], res)
    lane.create(b, cid)
    p = unit_props(unit, "Delegate", "Slice", "ControlGroup", "MemoryMax", "MemoryLow", "MemorySwapMax",
                   "TasksMax", "CPUQuotaPerSecUSec", "ActiveState", "AllowedCPUs")
    assert p["ActiveState"] == "active" and p["Delegate"] == "yes" and p["Slice"] == SLICE
    assert p["ControlGroup"] == f"{SLICE_PATH}/{unit}"
    assert (p["MemoryMax"], p["MemoryLow"], p["MemorySwapMax"]) == (str(64 * MiB), str(32 * MiB), str(32 * MiB))
    assert p["TasksMax"] == "40" and p["CPUQuotaPerSecUSec"] == "500ms" and p["AllowedCPUs"] == "0"
    d = f"/sys/fs/cgroup{p['ControlGroup']}"
    assert rd(f"{d}/memory.max") == str(64 * MiB) and rd(f"{d}/memory.low") == str(32 * MiB)
    assert rd(f"{d}/memory.swap.max") == str(32 * MiB) and rd(f"{d}/pids.max") == "40"
    assert rd(f"{d}/cpu.max") == "50000 100000" and rd(f"{d}/cpuset.cpus") == "0"
    st = json.loads(lane.cli("state", cid, check=True).stdout)
    assert st["status"] == "created" and rd(f"{d}/cgroup.procs").split() == [str(st["pid"])]

    lane.cli("start", cid, check=True)
    ps = lane.cli("ps", "--format", "json", cid, check=True).stdout
    assert json.loads(ps) == [st["pid"]]
    lane.cli("pause", cid, check=True)
    assert lane.status(cid) == "paused" and rd(f"{d}/cgroup.freeze") == "1"
    lane.cli("resume", cid, check=True)
    assert lane.status(cid) == "running"

    lane.cli("update", "--memory", str(48 * MiB), "--pids-limit", "30", cid, check=True)
    p = unit_props(unit, "MemoryMax", "TasksMax")
    assert (p["MemoryMax"], p["TasksMax"]) == (str(48 * MiB), "30")
    assert rd(f"{d}/memory.max") == str(48 * MiB) and rd(f"{d}/pids.max") == "30"
    ev = json.loads(lane.cli("events", "--stats", cid, check=True).stdout)
    assert ev["type"] == "stats" and ev["data"]["pids"]["current"] >= 1

    with open(lane.tmp / "exec.err", "w+") as err:     # not pipes: the detached process keeps them
        r = sh(lane.bin, "--root", lane.root, "exec", "-d", cid, "sleep", "200", stdout=subprocess.DEVNULL,
               stderr=err, capture=False)
        err.seek(0)
        assert r.returncode == 0, err.read()
    wait_for("the exec'd process in the scope", lambda: len(rd(f"{d}/cgroup.procs").split()) == 2)
    lane.cli("kill", "--all", cid, "KILL", check=True)
    wait_for("the container to stop", lambda: lane.status(cid) == "stopped")
    lane.cli("delete", cid, check=True)
    assert unit_gone(unit), unit_props(unit, "LoadState", "ActiveState")
    assert not os.path.exists(d)
    assert not os.path.exists(os.path.join(lane.root, cid))


def test_scope_goes_when_container_exits(lane):
    """systemd collects a scope whose processes are gone; delete then still succeeds."""
    b, cid, unit = lane.config(["true"])
    lane.create(b, cid)
    lane.cli("start", cid, check=True)
    wait_for("the container to stop", lambda: lane.status(cid) == "stopped")
    wait_for("systemd to collect the scope", lambda: unit_gone(unit))
    lane.cli("delete", cid, check=True)


def test_annotations_devices_and_delete_force(lane):
    """org.systemd.property.* annotations reach the unit; the device rules are DevicePolicy=strict
    with runc's default list, and the devices work; delete --force of a running container stops
    the unit and removes the cgroup."""
    b, cid, unit = lane.config(["sleep", "300"], annotations={
        "org.systemd.property.TimeoutStopSec": "uint64 7",
        "org.systemd.property.CollectMode": "'inactive-or-failed'"})
    lane.create(b, cid)
    p = unit_props(unit, "TimeoutStopUSec", "CollectMode", "DevicePolicy", "DeviceAllow", "ControlGroup")
    assert (p["TimeoutStopUSec"], p["CollectMode"]) == ("7s", "inactive-or-failed")
    assert p["DevicePolicy"] == "strict"
    allow = p["DeviceAllow"].split(", ")
    assert "/dev/char/1:3 rwm" in allow and ("char-136 rwm" in allow or "char-pts rwm" in allow), allow
    lane.cli("start", cid, check=True)
    r = lane.cli("exec", cid, "sh", "-c", "echo x > /dev/null && head -c 4 /dev/zero | wc -c")
    assert r.returncode == 0 and r.stdout.strip() == "4", r.stderr
    d = f"/sys/fs/cgroup{p['ControlGroup']}"
    lane.cli("delete", "--force", cid, check=True)
    assert unit_gone(unit) and not os.path.exists(d)


def test_default_slice_and_prefix(lane):
    """Empty cgroupsPath: system.slice, prefix runc (runc's defaults)."""
    b, cid, _ = lane.config(["sleep", "300"], cgroups_path="")
    lane.create(b, cid)
    unit = f"runc-{cid}.scope"
    assert unit_props(unit, "Slice")["Slice"] == "system.slice"
    assert os.path.isdir(f"/sys/fs/cgroup/system.slice/{unit}")
    lane.cli("delete", "--force", cid, check=True)
    assert unit_gone(unit)


def test_bad_cgroups_path_is_one_clear_error(lane):
    b, cid, _ = lane.config(["true"], cgroups_path="/not/a/slice/path")
    r = lane.cli("create", "--bundle", b, cid)
    assert r.returncode == 1
    assert "slice:prefix:name" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not os.path.exists(os.path.join(lane.root, cid))
