"""linux.netDevices without a container: attach to / detach from a `sleep` in its own netns."""
from __future__ import annotations

import json
import os

import pytest

from pyruntime import netdevices
from pyruntime.errors import ConfigError, RuntimeFailure

from .conftest import links_in


def mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


@pytest.fixture
def state_dir(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    yield str(d)
    p = os.path.join(str(d), netdevices.NETNS_FILE)
    if mounted(p):
        os.system(f"umount -l {p}")


def test_attach_detach_roundtrip(netns_proc, host_ifaces, dummy_kind, state_dir):
    dev = host_ifaces(dummy_kind, ("10.200.7.5/24", "10.200.8.1/32", "fd00:200::5/64"), mtu=1400)
    other = host_ifaces(dummy_kind, ("10.200.9.9/24",), up=False)
    before = links_in(None)
    p = netns_proc()
    record = netdevices.attach({dev: {"name": "eth5"}, other: {}}, p.pid, state_dir)
    json.dumps(record)  # the core stores it in state.json
    inside = links_in(f"/proc/{p.pid}/ns/net")
    assert dev not in links_in(None) and other not in links_in(None)
    assert inside["eth5"]["addrs"] == {"10.200.7.5/24", "10.200.8.1/32", "fd00:200::5/64"}
    assert inside["eth5"]["up"] and inside["eth5"]["mtu"] == 1400
    assert inside["eth5"]["mac"] == before[dev]["mac"]
    assert inside[other]["addrs"] == {"10.200.9.9/24"} and inside[other]["up"]
    assert mounted(record["netns"])

    netdevices.detach(record, p.pid)
    after = links_in(None)
    assert after[dev] == before[dev]
    assert after[other] == before[other]          # down again, as it was
    assert "eth5" not in links_in(f"/proc/{p.pid}/ns/net")
    assert not os.path.exists(record["netns"]) and not mounted(record["netns"])


def test_detach_after_container_exit(netns_proc, host_ifaces, dummy_kind, state_dir):
    """A virtual device would die with the netns; the bind mount keeps it alive until detach."""
    dev = host_ifaces(dummy_kind, ("10.200.10.2/24",))
    before = links_in(None)[dev]
    p = netns_proc()
    record = netdevices.attach({dev: {"name": "net0"}}, p.pid, state_dir)
    p.kill()
    p.wait()
    netdevices.detach(record, None)
    assert links_in(None)[dev] == before
    assert not mounted(record["netns"]) and not os.path.exists(record["netns"])


def test_missing_device_undoes_everything(netns_proc, host_ifaces, dummy_kind, state_dir):
    dev = host_ifaces(dummy_kind, ("10.200.11.2/24",))
    before = links_in(None)[dev]
    p = netns_proc()
    with pytest.raises(RuntimeFailure) as ei:
        netdevices.attach({dev: {}, "pyrtnope0": {}}, p.pid, state_dir)
    assert "pyrtnope0" in str(ei.value) and "linux.netDevices" in str(ei.value)
    assert links_in(None)[dev] == before                        # moved back with its address
    assert set(links_in(f"/proc/{p.pid}/ns/net")) == {"lo"}
    assert os.listdir(state_dir) == []                          # no netns file, no mount


def test_name_taken_inside_fails_and_undoes(netns_proc, host_ifaces, dummy_kind, state_dir):
    a = host_ifaces(dummy_kind, ("10.200.12.2/24",))
    b = host_ifaces(dummy_kind)
    before = links_in(None)
    p = netns_proc()
    with pytest.raises(RuntimeFailure) as ei:
        netdevices.attach({a: {"name": "eth0"}, b: {"name": "lo"}}, p.pid, state_dir)
    assert b in str(ei.value) and "'lo'" in str(ei.value)
    after = links_in(None)
    assert after[a] == before[a] and after[b] == before[b]
    assert os.listdir(state_dir) == []


def test_no_own_netns_is_refused(host_ifaces, dummy_kind, state_dir):
    dev = host_ifaces(dummy_kind)
    with pytest.raises(RuntimeFailure, match="network namespace"):
        netdevices.attach({dev: {}}, os.getpid(), state_dir)
    assert dev in links_in(None)


@pytest.mark.parametrize("devices, field", [
    ([], "linux.netDevices"),
    ({"a/b": {}}, "linux.netDevices.a/b"),
    ({"x" * 16: {}}, "linux.netDevices." + "x" * 16),
    ({"eth0": "eth1"}, "linux.netDevices.eth0"),
    ({"eth0": {"name": ""}}, "linux.netDevices.eth0.name"),
    ({"eth0": {"name": "a b"}}, "linux.netDevices.eth0.name"),
    ({"eth0": {"name": 3}}, "linux.netDevices.eth0.name"),
    ({"eth0": {"name": "x"}, "eth1": {"name": "x"}}, "linux.netDevices.eth1.name"),
    ({"eth0": {}, "eth1": {"name": "eth0"}}, "linux.netDevices.eth1.name"),
])
def test_validate(devices, field):
    with pytest.raises(ConfigError) as ei:
        netdevices.validate_netdevices(devices)
    assert ei.value.field == field


def test_validate_ok():
    netdevices.validate_netdevices({"eth0": {}, "eth1": {"name": "net1"}, "eth2": None})
    netdevices.validate_netdevices(None)
