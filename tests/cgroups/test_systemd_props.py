"""The systemd driver's pure translations (no systemd needed): cgroupsPath, slices, unit properties,
annotations.  The live driver is tested in tests/systemd (the systemd VM lane)."""
from __future__ import annotations

import pytest

from pyruntime.cgroups import sdprops
from pyruntime.cgroups.resources import DEFAULT_DEVICES, DeviceRule, shares_to_weight, validate
from pyruntime.errors import ConfigError, RuntimeFailure

MiB = 1 << 20

U64 = (1 << 64) - 1


def test_cgroups_path_defaults_like_runc():
    assert sdprops.parse_cgroups_path("", "abc", False) == ("system.slice", "runc", "abc")
    assert sdprops.parse_cgroups_path(None, "abc", True) == ("user.slice", "runc", "abc")
    assert sdprops.parse_cgroups_path(":libpod:abc", "x", False) == ("system.slice", "libpod", "abc")
    assert sdprops.parse_cgroups_path("kubepods-burstable.slice:cri-containerd:1f", "x", False) == \
        ("kubepods-burstable.slice", "cri-containerd", "1f")
    for bad in ("system.slice:x", "/a/b", "a:b:c:d", "system.slice:p:", "system.slice:p:a/b"):
        with pytest.raises(ConfigError, match="linux.cgroupsPath"):
            sdprops.parse_cgroups_path(bad, "x", False)


def test_unit_names():
    assert sdprops.unit_name("libpod", "abc") == "libpod-abc.scope"
    assert sdprops.unit_name("", "abc") == "abc.scope"
    assert sdprops.unit_name("cri", "pod1.slice") == "pod1.slice"


def test_expand_slice_as_systemd_does():
    assert sdprops.expand_slice("system.slice") == "/system.slice"
    assert sdprops.expand_slice("-.slice") == "/"
    assert sdprops.expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    for bad in ("a--b.slice", "-a.slice", "a-.slice", "a.scope", "a/b.slice", ".slice"):
        with pytest.raises(ConfigError, match="invalid slice name"):
            sdprops.expand_slice(bad)


def test_range_to_bits_little_endian():
    assert sdprops.range_to_bits("0", "f") == b"\x01"
    assert sdprops.range_to_bits("0-2,7", "f") == b"\x87"
    assert sdprops.range_to_bits("8", "f") == b"\x00\x01"
    with pytest.raises(ConfigError, match="f"):
        sdprops.range_to_bits("3-1", "f")


def test_cpu_quota_rounds_to_systemd_steps():
    props, q = sdprops.cpu_quota_props(50000, 100000, 252)
    assert props == [("CPUQuotaPeriodUSec", ("t", 100000)), ("CPUQuotaPerSecUSec", ("t", 500000))]
    assert q == 50000
    props, q = sdprops.cpu_quota_props(12345, 100000, 252)      # 123450 us/s -> 130000
    assert props[-1] == ("CPUQuotaPerSecUSec", ("t", 130000)) and q == 13000
    props, _ = sdprops.cpu_quota_props(-1, 100000, 241)          # no period property before 242
    assert props == [("CPUQuotaPerSecUSec", ("t", U64))]


def _props(r: dict, version: int = 252) -> dict:
    return dict(sdprops.resource_props(validate(r), version, initial=True))


def test_resources_to_properties():
    p = _props({"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20},
                "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
                "pids": {"limit": 0x20},
                "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]}})
    assert p["MemoryMax"] == ("t", 64 << 20) and p["MemoryLow"] == ("t", 32 << 20)
    assert p["MemorySwapMax"] == ("t", 32 << 20)
    assert p["CPUWeight"] == ("t", shares_to_weight(1024)) and p["CPUQuotaPerSecUSec"] == ("t", 200000)
    assert p["AllowedCPUs"] == ("ay", b"\x01") and p["AllowedMemoryNodes"] == ("ay", b"\x01")
    assert p["TasksMax"] == ("t", 32)
    assert p["IOReadBandwidthMax"] == ("a(st)", [("/dev/block/8:0", 1000)])
    assert p["IOWeight"][0] == "t"
    assert p["DevicePolicy"] == ("s", "strict")
    assert "AllowedCPUs" not in _props({"cpu": {"cpus": "0"}}, 243)
    assert _props({"memory": {"limit": -1}, "pids": {"limit": -1}})["TasksMax"] == ("t", U64)


def test_unified_to_properties():
    p = dict(sdprops.unified_props({"memory.high": "max", "pids.max": "0", "cpu.max": "max 50000",
                                    "io.weight": "default 100"}, 252))
    assert p["MemoryHigh"] == ("t", U64) and p["TasksMax"] == ("t", 1)
    assert p["CPUQuotaPerSecUSec"] == ("t", U64) and p["CPUQuotaPeriodUSec"] == ("t", 50000)
    assert "io.weight" not in p and len(p) == 4
    with pytest.raises(ConfigError, match="unified.memory.max"):
        sdprops.unified_props({"memory.max": "lots"}, 252)


def test_device_rules_to_allow_list():
    p = dict(sdprops.device_props([DeviceRule(False, "a", -1, -1, "rwm")] + list(DEFAULT_DEVICES)))
    allow = p["DeviceAllow"][1]
    assert p["DevicePolicy"] == ("s", "strict")
    assert ("char-*", "m") in allow and ("block-*", "m") in allow
    assert ("/dev/char/1:3", "rwm") in allow and ("char-136", "rwm") in allow
    p = dict(sdprops.device_props([DeviceRule(True, "a", -1, -1, "rwm")]))
    assert p["DevicePolicy"] == ("s", "auto") and p["DeviceAllow"] == ("a(ss)", [])
    # an allowed device then denied again is not in the list
    p = dict(sdprops.device_props([DeviceRule(True, "c", 1, 3, "rwm"), DeviceRule(False, "c", 1, 3, "rwm")]))
    assert p["DeviceAllow"] == ("a(ss)", [])


def test_annotations_to_properties():
    props = sdprops.annotation_props({
        "org.systemd.property.TimeoutStopSec": "uint64 5",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.CPUAccounting": "true",
        "org.systemd.property.RuntimeMaxSec": "1.5",
        "org.systemd.property.After": "['a.service', 'b.service']",
        "org.systemd.property.TasksMax": "@t 77",
        "other": "ignored"})
    assert props == [("TimeoutStopUSec", ("t", 5000000)), ("CollectMode", ("s", "inactive-or-failed")),
                     ("CPUAccounting", ("b", True)), ("RuntimeMaxUSec", ("t", 1500000)),
                     ("After", ("as", ["a.service", "b.service"])), ("TasksMax", ("t", 77))]
    for k, v in (("org.systemd.property.lower", "1"), ("org.systemd.property.Bad-Name", "1"),
                 ("org.systemd.property.X", "uint64 -1"), ("org.systemd.property.X", "'unterminated"),
                 ("org.systemd.property.TimeoutStopSec", "'5s'")):
        with pytest.raises(ConfigError, match="annotations"):
            sdprops.annotation_props({k: v})


def test_systemd_driver_refuses_clearly_where_it_cannot_run():
    import os
    from pyruntime.cgroups import open_manager
    from pyruntime.cgroups.layout import V2, detect
    if os.path.isdir("/run/systemd/system") and (os.geteuid() == 0 or detect().kind == V2):
        pytest.skip("systemd runs here: the driver is tested live in tests/systemd")
    with pytest.raises(RuntimeFailure, match="systemd cgroup driver"):
        open_manager("system.slice:pyrt:x", "x", systemd=True)


def test_state_sees_a_paused_systemd_container(tmp_path):
    """`state` reads the freezer from state.json without the drivers: the systemd driver's record
    (the scope's directory as "path") must be understood there too."""
    from pyruntime.state import cgroup_frozen as frozen_from_state
    (tmp_path / "cgroup.freeze").write_text("1\n")
    d = {"driver": "systemd", "path": str(tmp_path), "unit": "pyrt-x.scope", "mount": "/sys/fs/cgroup"}
    assert frozen_from_state(d) is True
    (tmp_path / "cgroup.freeze").write_text("0\n")
    assert frozen_from_state(d) is False


def test_v1_properties_as_runc_passes_them():
    """hybrid/legacy hosts: MemoryLimit, CPUShares, quota, BlockIOWeight, TasksMax, devices; what
    systemd has no v1 property for (swap, reservation, throttles) is left to the files."""
    r = validate({"memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 96 * MiB},
                      "cpu": {"shares": 512, "quota": 33333, "period": 100000},
                      "pids": {"limit": -1}, "blockIO": {"weight": 300, "throttleReadBpsDevice": [
                          {"major": 8, "minor": 0, "rate": 1000}]}})
    props = dict(sdprops.resource_props(r, 252, initial=False, v1=True))
    assert props == {"MemoryLimit": ("t", 64 * MiB), "CPUShares": ("t", 512),
                     "CPUQuotaPeriodUSec": ("t", 100000), "CPUQuotaPerSecUSec": ("t", 340000),
                     "TasksMax": ("t", sdprops.U64_MAX), "BlockIOWeight": ("t", 300)}
    assert r["cpu"]["quota"] == 34000       # the file gets systemd's rounded quota
    init = dict(sdprops.resource_props(validate({}), 252, initial=True, v1=True))
    assert init["DevicePolicy"] == ("s", "strict")


def test_systemd_driver_on_a_hybrid_layout(monkeypatch, tmp_path):
    """The scope's directory in every v1 hierarchy and in the unified one; the record round-trips
    through state.json, and `state` reads the v1 freezer from it."""
    import os
    from pyruntime.cgroups import layout, manager_from_state
    from pyruntime.state import cgroup_frozen as frozen_from_state
    from pyruntime.cgroups.fs1 import V1Manager
    from pyruntime.cgroups.systemd import SystemdManager
    mnt = str(tmp_path)
    lay = layout.Layout(layout.HYBRID, f"{mnt}/unified", "/",
                        {"memory": f"{mnt}/memory", "freezer": f"{mnt}/freezer", "name=systemd": f"{mnt}/systemd"},
                        {"memory": "/", "freezer": "/", "name=systemd": "/"}, {"": "/init.scope"})
    monkeypatch.setattr(layout, "_cached", lay)
    real_isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda p: p == "/run/systemd/system" or real_isdir(p))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    m = SystemdManager.open("a-b.slice:pre:c1", "c1", None)
    assert isinstance(m.fs, V1Manager) and m.layout == "hybrid" and m.unit == "pre-c1.scope"
    assert m.fs.paths["freezer"] == f"{mnt}/freezer/a.slice/a-b.slice/pre-c1.scope"
    assert m.path == f"{mnt}/unified/a.slice/a-b.slice/pre-c1.scope"
    d = m.to_state()
    assert d["driver"] == "systemd" and d["unit"] == "pre-c1.scope"
    back = manager_from_state(d)
    assert isinstance(back.fs, V1Manager) and back.fs.paths == m.fs.paths and back.path == m.path
    fz = tmp_path / "freezer/a.slice/a-b.slice/pre-c1.scope"
    fz.mkdir(parents=True)
    (fz / "freezer.state").write_text("FROZEN\n")
    assert frozen_from_state(d) is True
    (fz / "freezer.state").write_text("THAWED\n")
    assert frozen_from_state(d) is False
    monkeypatch.setattr(os, "geteuid", lambda: 1000)     # rootless on v1: refused, as by runc
    with pytest.raises(RuntimeFailure, match="rootless containers with the systemd driver need cgroup v2"):
        SystemdManager.open("a-b.slice:pre:c1", "c1", None)
