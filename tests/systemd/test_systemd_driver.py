"""The systemd cgroup driver, live: containers in transient scopes of a real systemd (PID 1), limits
read back from the unit (systemctl show) and from the scope's cgroup files, update, pause, ps,
events, kill --all, delete leaving no unit and no cgroup.  runc --systemd-cgroup is the control.
make test-systemd runs this file on each layout the guest boots: v2, hybrid and legacy v1 (there the
unit has systemd's v1 properties and the files are in each controller's hierarchy)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from sdenv import LAYOUT, SLICE, SLICE_PATH, cg_dir, cg_dirs, rd, sh, unit_gone, unit_props, wait_for

pytestmark = pytest.mark.systemd_vm
MiB = 1 << 20
V1 = LAYOUT != "v2"


def gone(cg: str) -> list[str]:
    """The directories of unit cgroup ``cg`` still present in any hierarchy (none, after delete)."""
    return [d for d in cg_dirs(cg) if os.path.exists(d)]


def test_scope_limits_lifecycle_and_delete(lane):
    res = {"memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 96 * MiB},
           "pids": {"limit": 40}, "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}}
    b, cid, unit = lane.config(["sleep", "300"], res)
    lane.create(b, cid)
    p = unit_props(unit, "Delegate", "Slice", "ControlGroup", "TasksMax", "CPUQuotaPerSecUSec", "ActiveState",
                   *(("MemoryLimit", "CPUShares") if V1 else ("MemoryMax", "MemoryLow", "MemorySwapMax",
                                                              "AllowedCPUs")))
    assert p["ActiveState"] == "active" and p["Delegate"] == "yes" and p["Slice"] == SLICE
    cg = p["ControlGroup"]
    assert cg == f"{SLICE_PATH}/{unit}"
    assert p["TasksMax"] == "40" and p["CPUQuotaPerSecUSec"] == "500ms"
    if V1:
        assert (p["MemoryLimit"], p["CPUShares"]) == (str(64 * MiB), "512")
        mem = cg_dir("memory", cg)
        assert rd(f"{mem}/memory.limit_in_bytes") == str(64 * MiB)
        assert rd(f"{mem}/memory.soft_limit_in_bytes") == str(32 * MiB)
        if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
            assert rd(f"{mem}/memory.memsw.limit_in_bytes") == str(96 * MiB)
        cpu = cg_dir("cpu", cg)
        assert (rd(f"{cpu}/cpu.cfs_quota_us"), rd(f"{cpu}/cpu.cfs_period_us"), rd(f"{cpu}/cpu.shares")) == \
            ("50000", "100000", "512")
        assert rd(f"{cg_dir('pids', cg)}/pids.max") == "40" and rd(f"{cg_dir('cpuset', cg)}/cpuset.cpus") == "0"
    else:
        assert (p["MemoryMax"], p["MemoryLow"], p["MemorySwapMax"]) == (str(64 * MiB), str(32 * MiB), str(32 * MiB))
        assert p["AllowedCPUs"] == "0"
        d = cg_dir("", cg)
        assert rd(f"{d}/memory.max") == str(64 * MiB) and rd(f"{d}/memory.low") == str(32 * MiB)
        assert rd(f"{d}/memory.swap.max") == str(32 * MiB) and rd(f"{d}/pids.max") == "40"
        assert rd(f"{d}/cpu.max") == "50000 100000" and rd(f"{d}/cpuset.cpus") == "0"
    st = json.loads(lane.cli("state", cid, check=True).stdout)
    assert st["status"] == "created"
    # the init is in the scope in every hierarchy runc joins: also those systemd leaves alone on v1
    # (freezer, cpuset, net_cls ...), and the unified one on hybrid
    joined = [cg_dir(h, cg) for h in ("cpuset", "cpu", "memory", "devices", "freezer", "blkio", "pids", "hugetlb",
                                       "perf_event", "net_cls", "systemd", "unified")
              if os.path.isdir(f"/sys/fs/cgroup/{h}")] if V1 else [cg_dir("", cg)]
    for d in joined:
        got = rd(f"{d}/cgroup.procs").split()
        assert got == [str(st["pid"])], f"the init {st['pid']} is not (alone) in {d}: cgroup.procs {got}"
    procs = f"{cg_dir('pids', cg)}/cgroup.procs"

    lane.cli("start", cid, check=True)
    ps = lane.cli("ps", "--format", "json", cid, check=True).stdout
    assert json.loads(ps) == [st["pid"]]
    lane.cli("pause", cid, check=True)
    assert lane.status(cid) == "paused"
    if V1:
        assert rd(f"{cg_dir('freezer', cg)}/freezer.state") == "FROZEN"
    else:
        assert rd(f"{cg_dir('', cg)}/cgroup.freeze") == "1"
    lane.cli("resume", cid, check=True)
    assert lane.status(cid) == "running"

    lane.cli("update", "--memory", str(48 * MiB), "--pids-limit", "30", cid, check=True)
    mem_prop, mem_file = ("MemoryLimit", "memory.limit_in_bytes") if V1 else ("MemoryMax", "memory.max")
    p = unit_props(unit, mem_prop, "TasksMax")
    assert (p[mem_prop], p["TasksMax"]) == (str(48 * MiB), "30")
    assert rd(f"{cg_dir('memory', cg)}/{mem_file}") == str(48 * MiB)
    assert rd(f"{cg_dir('pids', cg)}/pids.max") == "30"
    ev = json.loads(lane.cli("events", "--stats", cid, check=True).stdout)
    assert ev["type"] == "stats" and ev["data"]["pids"]["current"] >= 1

    with open(lane.tmp / "exec.err", "w+") as err:     # not pipes: the detached process keeps them
        r = sh(lane.bin, "--root", lane.root, "exec", "-d", cid, "sleep", "200", stdout=subprocess.DEVNULL,
               stderr=err, capture=False)
        err.seek(0)
        assert r.returncode == 0, err.read()
    wait_for("the exec'd process in the scope", lambda: len(rd(procs).split()) == 2)
    lane.cli("kill", "--all", cid, "KILL", check=True)
    wait_for("the container to stop", lambda: lane.status(cid) == "stopped")
    lane.cli("delete", cid, check=True)
    assert unit_gone(unit), unit_props(unit, "LoadState", "ActiveState")
    assert not gone(cg), gone(cg)
    assert not os.path.exists(os.path.join(lane.root, cid))


def test_scope_goes_when_container_exits(lane, tmp_path):
    """systemd collects a scope whose processes are gone; delete then still succeeds, and pyruntime's
    asks no D-Bus question about a unit systemd already unloaded (what every shim's delete after the
    exit finds: the bus round trips made that delete slow under the VM's emulation)."""
    b, cid, unit = lane.config(["true"])
    lane.create(b, cid)
    lane.cli("start", cid, check=True)
    wait_for("the container to stop", lambda: lane.status(cid) == "stopped")
    wait_for("systemd to collect the scope", lambda: unit_gone(unit))
    logf = tmp_path / "delete.log"
    lane.cli("--log", str(logf), "--debug", "delete", cid, check=True)
    assert not os.path.exists(os.path.join(lane.root, cid))
    if lane.runtime == "pyruntime":
        assert f"{unit}: already unloaded by systemd" in logf.read_text(), logf.read_text()


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
    lane.cli("delete", "--force", cid, check=True)
    assert unit_gone(unit) and not gone(p["ControlGroup"]), gone(p["ControlGroup"])


def test_default_slice_and_prefix(lane):
    """Empty cgroupsPath: system.slice, prefix runc (runc's defaults)."""
    b, cid, _ = lane.config(["sleep", "300"], cgroups_path="")
    lane.create(b, cid)
    unit = f"runc-{cid}.scope"
    assert unit_props(unit, "Slice")["Slice"] == "system.slice"
    assert os.path.isdir(cg_dir("pids", f"/system.slice/{unit}"))
    lane.cli("delete", "--force", cid, check=True)
    assert unit_gone(unit)


def test_bad_cgroups_path_is_one_clear_error(lane):
    b, cid, _ = lane.config(["true"], cgroups_path="/not/a/slice/path")
    r = lane.cli("create", "--bundle", b, cid)
    assert r.returncode == 1
    assert "slice:prefix:name" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not os.path.exists(os.path.join(lane.root, cid))
