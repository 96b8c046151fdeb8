"""The rootless decisions on their own (no user needed): runc's rules as pyruntime/rootless.py applies them."""
from __future__ import annotations

import os

import pytest

from pyruntime import rootless
from pyruntime.defaults import default_config
from pyruntime.errors import ConfigError, RuntimeFailure


@pytest.fixture
def as_user(monkeypatch):
    """Make the module believe it runs as uid/gid 1234 (only its own decisions: no syscalls change)."""
    monkeypatch.setattr(rootless, "euid_rootless", lambda: True)
    monkeypatch.setattr(os, "getegid", lambda: 1234)
    monkeypatch.setattr(os, "geteuid", lambda: 1234)


def test_flag_values():
    for v in ("true", "1", "t", "TRUE", "True"):
        rootless.set_flag(v)
        assert rootless.rootless_cgroups() is True
    for v in ("false", "0", "f", "FALSE"):
        rootless.set_flag(v)
        assert rootless.rootless_cgroups() is False
    rootless.set_flag("auto")
    assert rootless.rootless_cgroups() is (os.geteuid() != 0 or rootless.in_user_namespace())
    with pytest.raises(RuntimeFailure, match="--rootless"):
        rootless.set_flag("maybe")
    rootless.set_flag("auto")


def test_default_root(monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
    monkeypatch.setattr(rootless, "euid_rootless", lambda: True)
    assert rootless.default_root() == "/run/user/1234/pyruntime"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert rootless.default_root() == "/run/pyruntime"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/0")
    monkeypatch.setattr(rootless, "euid_rootless", lambda: False)
    monkeypatch.setattr(rootless, "in_user_namespace", lambda: False)
    assert rootless.default_root() == "/run/pyruntime"      # real root ignores XDG_RUNTIME_DIR (runc)


def test_check_root_names_the_cause(tmp_path, monkeypatch):
    monkeypatch.setattr(rootless, "euid_rootless", lambda: True)
    monkeypatch.setattr(os, "access", lambda p, m: str(p).startswith(str(tmp_path / "mine")))
    (tmp_path / "mine").mkdir()
    rootless.check_root(str(tmp_path / "mine" / "a" / "b"), given=True)       # creatable below a writable dir
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    with pytest.raises(RuntimeFailure, match="no usable state directory.*set XDG_RUNTIME_DIR"):
        rootless.check_root("/run/pyruntime", given=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(RuntimeFailure, match="is not a directory"):
        rootless.check_root(str(tmp_path / "file" / "x"), given=True)


def test_to_rootless_is_runcs_transformation(as_user):
    cfg = rootless.to_rootless(default_config())
    linux = cfg["linux"]
    types = [n["type"] for n in linux["namespaces"]]
    assert "network" not in types and types[-1] == "user" and types.count("user") == 1
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 1234, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": 1234, "size": 1}]
    assert "resources" not in linux
    sys_ = [m for m in cfg["mounts"] if m["destination"] == "/sys"]
    assert sys_ == [{"destination": "/sys", "type": "none", "source": "/sys",
                     "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}]
    assert not any(o.startswith(("uid=", "gid=")) for m in cfg["mounts"] for o in m.get("options", []))


def test_check_config(as_user):
    cfg = rootless.to_rootless(default_config())
    nss = {n["type"]: None for n in cfg["linux"]["namespaces"]}
    rootless.check_config(cfg, nss)
    with pytest.raises(ConfigError, match="requires user namespaces"):
        rootless.check_config(cfg, {k: v for k, v in nss.items() if k != "user"})
    bad = rootless.to_rootless(default_config())
    bad["mounts"][2]["options"].append("gid=5")
    with pytest.raises(ConfigError, match=r"mounts\[2\].options.*gid=5"):
        rootless.check_config(bad, nss)
    ranged = rootless.to_rootless(default_config())
    ranged["mounts"][2]["options"].append("gid=5")
    ranged["linux"]["gidMappings"].append({"containerID": 1, "hostID": 100000, "size": 65536})
    rootless.check_config(ranged, nss)                       # gid 5 is mapped through the range
    groups = rootless.to_rootless(default_config())
    groups["process"]["user"]["additionalGids"] = [10]
    with pytest.raises(ConfigError, match="additionalGids"):
        rootless.check_config(groups, nss)
    no_maps = rootless.to_rootless(default_config())
    del no_maps["linux"]["uidMappings"]
    with pytest.raises(ConfigError, match="uidMappings"):
        rootless.check_config(no_maps, nss)


def test_setgroups_denied_only_for_the_own_single_gid(as_user):
    assert rootless.setgroups_denied({"gidMappings": [{"containerID": 0, "hostID": 1234, "size": 1}]})
    assert not rootless.setgroups_denied({"gidMappings": [{"containerID": 0, "hostID": 1234, "size": 1},
                                                          {"containerID": 1, "hostID": 100000, "size": 10}]})


def test_requested_limits():
    assert rootless.requested_limits({}) == []
    assert rootless.requested_limits({"devices": [{"allow": False, "access": "rwm"}]}) == []
    assert rootless.requested_limits({"memory": {"limit": 1 << 20}, "pids": {"limit": None}}) == ["memory"]
    assert rootless.requested_limits({"pids": {"limit": 10}, "unified": {"a.b": "1"}}) == ["pids", "unified"]


def test_clamp_rlimits():
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("RLIMIT_NOFILE is unlimited here: nothing to clamp")
    proc = {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": hard + 10, "hard": hard + 10},
                        {"type": "RLIMIT_NOFILE", "soft": 8, "hard": 16}]}
    warned: list[str] = []
    rootless.clamp_rlimits(proc, warned.append)
    assert proc["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard},
                               {"type": "RLIMIT_NOFILE", "soft": 8, "hard": 16}]
    assert len(warned) == 1 and "rlimits[0]" in warned[0] and "RLIMIT_NOFILE" in warned[0]


def test_root_with_rootless_true_keeps_its_cgroup_and_device_rules(rt, make_bundle):
    """--rootless=true only makes cgroup refusals non-fatal: root still gets its cgroup, limits and
    device rules (only an unprivileged caller skips the device rules it could never write)."""
    import json
    b = make_bundle(["sleep", "30"])
    rt("--rootless", "true", "run", "-d", "--bundle", b, "rlt")
    with open(os.path.join(rt.root, "rlt", "state.json")) as f:
        cg = json.load(f)["cgroup"]
    assert cg, "root lost its cgroup under --rootless=true"
    devices = (cg.get("paths") or {}).get("devices")
    if devices:
        with open(os.path.join(devices, "devices.list")) as f:
            assert "a *:* rwm" not in f.read()
    rt("delete", "--force", "rlt")
