"""Networking end to end through the pyruntime command: bridge-net hooks and linux.netDevices."""
from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import subprocess
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import HOOK, links_in, nft_tables
from .hooks_path import allocator, firewall, netsetup


def bridge_hooks(state_dir: str, bridge: str, subnet: str) -> dict:
    env = [f"PYRUNTIME_NET_STATE_DIR={state_dir}", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    return {
        "annotations": {"pyruntime.net/bridge": bridge, "pyruntime.net/subnet": subnet},
        "hooks": {"createRuntime": [{"path": HOOK, "args": ["bridge-net", "createRuntime"], "env": env,
                                     "timeout": 60}],
                  "poststop": [{"path": HOOK, "args": ["bridge-net", "poststop"], "env": env, "timeout": 60}]},
    }


def held(state_dir: str, bridge: str) -> dict[str, dict]:
    d = os.path.join(state_dir, bridge)
    if not os.path.isdir(d):
        return {}
    return allocator.Allocator(state_dir, bridge, ipaddress.IPv4Network("0.0.0.0/0"),
                               ipaddress.IPv4Address("0.0.0.0")).entries()


def assert_clean(bridge: str, state_dir: str, cids: list[str]) -> None:
    assert held(state_dir, bridge) == {}
    host = links_in(None)
    assert bridge not in host
    assert not [c for c in cids if netsetup.veth_name(c) in host]
    assert firewall.table_name(bridge) not in nft_tables()
    assert not os.path.exists(os.path.join(state_dir, bridge))


@pytest.fixture
def listener():
    """A TCP listener in the host's netns on a given (test-owned) address; records who connected."""
    socks = []

    def listen(addr: str, port: int) -> list:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(5)
        s.settimeout(0.2)
        seen: list = []

        def loop():
            while s.fileno() >= 0:
                try:
                    c, peer = s.accept()
                except (socket.timeout, OSError):
                    continue
                seen.append(peer)
                c.close()
        threading.Thread(target=loop, daemon=True).start()
        socks.append(s)
        return seen

    yield listen
    for s in socks:
        s.close()


def test_two_containers_reach_each_other_not_the_host(rt, make_bundle, net_state_dir, bridge_name, outside,
                                                      listener):
    subnet = f"10.{secrets.choice(range(220, 250))}.{secrets.randbelow(250)}.0/24"
    net = bridge_hooks(net_state_dir, bridge_name, subnet)
    host_seen = listener(outside["host_addr"], 7779)
    a = make_bundle(["nc", "-l", "-p", "7777", "-e", "cat"], **net)
    ca, cb = "na-" + uuid.uuid4().hex[:8], "nb-" + uuid.uuid4().hex[:8]
    rt("create", "--bundle", a, ca)
    try:
        rt("start", ca)
        ip_a = next(addr for addr, rec in held(net_state_dir, bridge_name).items() if rec["id"] == ca)
        gw = str(next(ipaddress.IPv4Network(subnet).hosts()))
        script = (f"ip -4 addr show eth0; ip route; "
                  f"echo hello-over-bridge | nc -w 3 {ip_a} 7777; "
                  f"nc -w 2 {outside['host_addr']} 7779 </dev/null && echo REACHED-HOST || echo blocked-host; "
                  f"ip link show lo")
        b = make_bundle(["sh", "-c", script], **net)
        out = rt("run", "--bundle", b, cb).stdout.decode()
        assert "hello-over-bridge" in out, out
        assert "blocked-host" in out and not host_seen, out
        assert f"default via {gw}" in out and "inet 10." in out
        assert "UP" in out.split("lo:")[-1] or "LOOPBACK,UP" in out
        # cb was deleted by `run`: its veth and address are gone, ca's remain
        entries = held(net_state_dir, bridge_name)
        assert [r["id"] for r in entries.values()] == [ca]
        assert netsetup.veth_name(cb) not in links_in(None)
    finally:
        rt("delete", "--force", ca, check=False)
    assert_clean(bridge_name, net_state_dir, [ca, cb])


def test_twenty_containers_in_parallel_get_distinct_addresses(rt, make_bundle, net_state_dir, bridge_name):
    net = bridge_hooks(net_state_dir, bridge_name, "10.196.0.0/26")
    # one bundle each: make_bundle gives every bundle its own cgroupsPath
    bundles = [make_bundle(["sleep", "1000"], **net) for _ in range(20)]
    cids = [f"par-{i}-{uuid.uuid4().hex[:6]}" for i in range(20)]
    try:
        with ThreadPoolExecutor(20) as ex:
            results = list(ex.map(lambda cb: rt("create", "--bundle", cb[1], cb[0], check=False, timeout=180),
                                  zip(cids, bundles)))
        failed = [(c, r.stderr.decode()) for c, r in zip(cids, results) if r.returncode != 0]
        assert not failed, failed
        entries = held(net_state_dir, bridge_name)
        assert sorted(r["id"] for r in entries.values()) == sorted(cids)
        # and what each container really has on eth0 is its own, distinct address
        seen = {}
        for c in cids:
            pid = rt.state(c)["pid"]
            out = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-4", "-o", "addr", "show", "eth0"],
                                 capture_output=True, text=True, check=True).stdout
            seen[c] = out.split()[3]
        assert len(set(seen.values())) == 20
        assert {v.split("/")[0] for v in seen.values()} == set(entries)
    finally:
        with ThreadPoolExecutor(20) as ex:
            deleted = list(ex.map(lambda c: rt("delete", "--force", c, check=False, timeout=180), cids))
    assert [(c, r.stderr.decode()) for c, r in zip(cids, deleted) if r.returncode or r.stderr] == []
    assert_clean(bridge_name, net_state_dir, cids)


def test_net_devices_move_in_and_back(rt, make_bundle, host_ifaces, dummy_kind):
    dev = host_ifaces(dummy_kind, ("10.197.3.5/24", "fd00:197::5/64"), mtu=1280)
    before = links_in(None)[dev]

    def edit(cfg):
        cfg["linux"]["netDevices"] = {dev: {"name": "net1"}}
    bundle = make_bundle(["sh", "-c", "ip addr show net1; ip link show net1"], edit=edit)
    cid = "nd-" + uuid.uuid4().hex[:8]
    out = rt("run", "--bundle", bundle, cid).stdout.decode()
    assert "inet 10.197.3.5/24" in out and "inet6 fd00:197::5/64" in out, out
    assert "mtu 1280" in out and before["mac"] in out and ",UP" in out
    assert links_in(None)[dev] == before       # back on the host, same name, address, MTU, state


def test_net_devices_missing_device_fails_create_cleanly(rt, make_bundle):
    def edit(cfg):
        cfg["linux"]["netDevices"] = {"pyrtmissing0": {}}
    bundle = make_bundle(["true"], edit=edit)
    cid = "nd-" + uuid.uuid4().hex[:8]
    r = rt("create", "--bundle", bundle, cid, check=False)
    assert r.returncode != 0 and b"pyrtmissing0" in r.stderr and b"linux.netDevices" in r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_loopback_is_up_in_a_new_network_namespace(rt, make_bundle):
    """runc brings lo up in every netns it creates; programs expect 127.0.0.1 to work without any hook."""
    bundle = make_bundle(["sh", "-c", "ip link show lo; ping -c 1 -W 1 127.0.0.1 >/dev/null && echo lo-ok"],
                         edit=lambda cfg: cfg["process"]["capabilities"]["bounding"].append("CAP_NET_RAW") or
                         [cfg["process"]["capabilities"][k].append("CAP_NET_RAW")
                          for k in ("effective", "permitted", "ambient")])
    out = rt("run", "--bundle", bundle, "lo-" + uuid.uuid4().hex[:8], check=False).stdout.decode()
    assert "LOOPBACK,UP" in out, out
    assert "lo-ok" in out, out
