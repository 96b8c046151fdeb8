"""hooks/bridge-net without a container: run through pyruntime.hooks.run_hooks against `sleep`s that
sit in their own network namespaces, exactly as the runtime would call it."""
from __future__ import annotations

import ipaddress
import json
import multiprocessing
import os
import secrets
import subprocess
import time

import pytest

from pyruntime import hooks
from pyruntime.errors import RuntimeFailure

from .conftest import HOOK, in_netns, links_in, nft_tables, ping
from .hooks_path import allocator, firewall, netsetup


def hook_env(state_dir: str) -> list[str]:
    return [f"PYRUNTIME_NET_STATE_DIR={state_dir}", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]


def run_stage(stage: str, cid: str, pid: int, ann: dict, state_dir: str) -> None:
    status = "creating" if stage == "createRuntime" else "stopped"
    state = {"ociVersion": "1.2.0", "id": cid, "pid": pid if status != "stopped" else 0, "status": status,
             "bundle": "/", "annotations": ann}
    hooks.run_hooks(stage, [{"path": HOOK, "args": ["bridge-net", stage], "env": hook_env(state_dir),
                             "timeout": 30}], state)


def addr_of(pid: int, ifname: str = "eth0") -> str | None:
    out = in_netns(pid, "ip", "-j", "-4", "addr", "show", "dev", ifname)
    if out.returncode != 0:
        return None
    info = json.loads(out.stdout)
    return info[0]["addr_info"][0]["local"] if info and info[0]["addr_info"] else None


@pytest.fixture
def subnet():
    """A random 10.2xx.y.0/24 so parallel or repeated runs never share one."""
    return f"10.{secrets.choice(range(220, 250))}.{secrets.randbelow(250)}.0/24"


def assert_clean(bridge: str, state_dir: str, cids: list[str]) -> None:
    host = links_in(None)
    assert bridge not in host, "the bridge created by the hook must go with its last container"
    for cid in cids:
        assert netsetup.veth_name(cid) not in host
    assert firewall.table_name(bridge) not in nft_tables()
    assert not os.path.exists(os.path.join(state_dir, bridge)), os.listdir(os.path.join(state_dir, bridge))


def test_two_containers_talk_over_the_bridge_and_nothing_else(netns_proc, outside, net_state_dir,
                                                              bridge_name, subnet):
    ann = {"pyruntime.net/bridge": bridge_name, "pyruntime.net/subnet": subnet}
    a, b = netns_proc(), netns_proc()
    run_stage("createRuntime", "ca", a.pid, ann, net_state_dir)
    run_stage("createRuntime", "cb", b.pid, ann, net_state_dir)
    try:
        ia, ib = addr_of(a.pid), addr_of(b.pid)
        net = ipaddress.IPv4Network(subnet)
        assert ia and ib and ia != ib and ipaddress.IPv4Address(ia) in net and ipaddress.IPv4Address(ib) in net
        gw = str(next(net.hosts()))
        assert gw not in (ia, ib)
        # loopback is up in the container's namespace
        assert in_netns(a.pid, "ip", "-br", "link", "show", "lo").stdout.split()[1] in ("UNKNOWN", "UP")
        assert ping(a.pid, "127.0.0.1")
        # default route via the gateway on the bridge
        assert f"default via {gw} dev eth0" in in_netns(a.pid, "ip", "route").stdout
        assert ping(a.pid, ib) and ping(b.pid, ia) and ping(a.pid, gw)
        # TCP echo from b to a over the bridge
        srv = subprocess.Popen(["nsenter", "-t", str(a.pid), "-n", "busybox", "nc", "-l", "-p", "7777",
                                "-e", "cat"])
        try:
            for _ in range(50):
                r = subprocess.run(["nsenter", "-t", str(b.pid), "-n", "busybox", "nc", "-w", "2", ia, "7777"],
                                   input="hello over the bridge\n", capture_output=True, text=True, timeout=10)
                if r.stdout:
                    break
                time.sleep(0.1)
            assert r.stdout == "hello over the bridge\n"
        finally:
            srv.kill()
            srv.wait()
        # not the host's other interfaces, and nothing behind them (no NAT asked)
        assert not ping(a.pid, outside["host_addr"])
        assert not ping(a.pid, outside["peer_addr"])
        assert ping(outside["pid"], outside["host_addr"])  # (the outside link itself works)
    finally:
        run_stage("poststop", "ca", 0, ann, net_state_dir)
        run_stage("poststop", "cb", 0, ann, net_state_dir)
    assert addr_of(a.pid) is None  # the veth pair is gone from the container too
    assert_clean(bridge_name, net_state_dir, ["ca", "cb"])


def test_nat_masquerades_egress(netns_proc, outside, net_state_dir, bridge_name, subnet, ip_forward_restored):
    ann = {"pyruntime.net/bridge": bridge_name, "pyruntime.net/subnet": subnet, "pyruntime.net/nat": "true"}
    c = netns_proc()
    run_stage("createRuntime", "cn", c.pid, ann, net_state_dir)
    try:
        ip = addr_of(c.pid)
        assert firewall.nat_members(bridge_name) == {ip}
        # the outside namespace sees the connection coming from the host's address, not the container's
        srv = subprocess.Popen(["nsenter", "-t", str(outside["pid"]), "-n", "busybox", "nc", "-l", "-p", "7778",
                                "-e", "sh", "-c", "echo $NCAT_REMOTE_ADDR; netstat -tn"],
                               stdout=subprocess.PIPE, text=True)
        try:
            for _ in range(50):
                r = subprocess.run(["nsenter", "-t", str(c.pid), "-n", "busybox", "nc", "-w", "2",
                                    outside["peer_addr"], "7778"], capture_output=True, text=True, timeout=10)
                if r.stdout:
                    break
                time.sleep(0.1)
        finally:
            srv.kill()
            srv.wait()
        peers = [line.split()[4].rsplit(":", 1)[0].removeprefix("::ffff:") for line in r.stdout.splitlines() if ":7778" in line]
        assert peers == [outside["host_addr"]], r.stdout
        assert not ping(c.pid, outside["host_addr"])  # the host itself stays closed
    finally:
        run_stage("poststop", "cn", 0, ann, net_state_dir)
    assert_clean(bridge_name, net_state_dir, ["cn"])


def test_killed_container_is_still_released(netns_proc, net_state_dir, bridge_name, subnet):
    ann = {"pyruntime.net/bridge": bridge_name, "pyruntime.net/subnet": subnet}
    a, b = netns_proc(), netns_proc()
    run_stage("createRuntime", "k1", a.pid, ann, net_state_dir)
    run_stage("createRuntime", "k2", b.pid, ann, net_state_dir)
    ip1 = addr_of(a.pid)
    a.kill()
    a.wait()
    run_stage("poststop", "k1", 0, ann, net_state_dir)
    alloc_dir = os.path.join(net_state_dir, bridge_name)
    assert ip1 not in os.listdir(alloc_dir) and addr_of(b.pid) in os.listdir(alloc_dir)
    assert netsetup.veth_name("k1") not in links_in(None)
    run_stage("poststop", "k2", 0, ann, net_state_dir)
    run_stage("poststop", "k2", 0, ann, net_state_dir)   # twice is harmless
    assert_clean(bridge_name, net_state_dir, ["k1", "k2"])


def test_bad_annotation_fails_with_reason(netns_proc, net_state_dir):
    p = netns_proc()
    with pytest.raises(RuntimeFailure) as ei:
        run_stage("createRuntime", "bad", p.pid, {"pyruntime.net/subnet": "10.1.2.3/24"}, net_state_dir)
    assert "pyruntime.net/subnet" in str(ei.value) and "exit status 1" in str(ei.value)
    assert not os.path.exists(net_state_dir) or os.listdir(net_state_dir) == []


def test_setup_failure_leaves_nothing(netns_proc, net_state_dir, bridge_name, subnet):
    """eth0 already taken inside: the hook fails and undoes its address, bridge and rules."""
    p = netns_proc()
    assert in_netns(p.pid, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth9").returncode == 0
    ann = {"pyruntime.net/bridge": bridge_name, "pyruntime.net/subnet": subnet}
    with pytest.raises(RuntimeFailure, match="already exists"):
        run_stage("createRuntime", "f1", p.pid, ann, net_state_dir)
    assert_clean(bridge_name, net_state_dir, ["f1"])


def _setup_one(args):
    cid, pid, ann, state_dir = args
    run_stage("createRuntime", cid, pid, ann, state_dir)
    return cid


def test_twenty_in_parallel_never_share_an_address(netns_proc, net_state_dir, bridge_name):
    ann = {"pyruntime.net/bridge": bridge_name, "pyruntime.net/subnet": "10.198.0.0/27"}   # 29 hosts
    procs = [netns_proc() for _ in range(20)]
    cids = [f"par{i}" for i in range(20)]
    try:
        with multiprocessing.get_context("fork").Pool(20) as pool:
            pool.map(_setup_one, [(c, p.pid, ann, net_state_dir) for c, p in zip(cids, procs)])
        addrs = [addr_of(p.pid) for p in procs]
        assert None not in addrs and len(set(addrs)) == 20
        held = allocator.Allocator(net_state_dir, bridge_name, ipaddress.IPv4Network("10.198.0.0/27"),
                                   ipaddress.IPv4Address("10.198.0.1")).entries()
        assert sorted(held) == sorted(addrs) and {r["id"] for r in held.values()} == set(cids)
    finally:
        with multiprocessing.get_context("fork").Pool(20) as pool:
            pool.map(_teardown_one, [(c, ann, net_state_dir) for c in cids])
    assert_clean(bridge_name, net_state_dir, cids)


def _teardown_one(args):
    cid, ann, state_dir = args
    run_stage("poststop", cid, 0, ann, state_dir)


# --- the allocator alone ---------------------------------------------------------------------------

def _grab(args):
    state_dir, cid = args
    a = allocator.Allocator(state_dir, "br", ipaddress.IPv4Network("10.0.0.0/28"), ipaddress.IPv4Address("10.0.0.1"))
    with a.locked():
        return str(a.allocate(cid, {}))


def test_allocator_parallel_exhaustion_and_round_robin(net_state_dir):
    # 13 usable addresses (/28 minus network, broadcast, gateway); 13 processes race for them
    with multiprocessing.get_context("fork").Pool(13) as pool:
        got = pool.map(_grab, [(net_state_dir, f"c{i}") for i in range(13)])
    assert len(set(got)) == 13 and "10.0.0.1" not in got and "10.0.0.0" not in got and "10.0.0.15" not in got
    a = allocator.Allocator(net_state_dir, "br", ipaddress.IPv4Network("10.0.0.0/28"), ipaddress.IPv4Address("10.0.0.1"))
    with a.locked():
        with pytest.raises(allocator.AllocatorError, match="no free address"):
            a.allocate("one-too-many", {})
        assert str(a.allocate("c3", {})) == got[3]          # same container, same address
        freed = a.release("c3")
        assert freed == [got[3]]
        last = open(os.path.join(a.dir, "last")).read()
        nxt = a.allocate("new", {})
        assert str(nxt) == got[3]                           # the only free one
        for cid in [f"c{i}" for i in range(13) if i != 3] + ["new"]:
            a.release(cid)
        assert a.entries() == {}
        # round robin: after a release, the next allocation does not reuse the freed address at once
        first = a.allocate("r1", {})
        a.release("r1")
        assert a.allocate("r2", {}) != first
        a.release("r2")
        assert last
        assert a.remove_if_unused()
    assert not os.path.exists(a.dir)


def test_entry_of_a_dead_init_without_poststop_is_reclaimed(netns_proc, net_state_dir, bridge_name, subnet):
    """runc skips poststop when create fails: the next set-up frees the address of a dead init."""
    ann = {"pyruntime.net/bridge": bridge_name, "pyruntime.net/subnet": subnet}
    a = netns_proc()
    run_stage("createRuntime", "dead", a.pid, ann, net_state_dir)
    alloc_dir = os.path.join(net_state_dir, bridge_name)
    ip_dead = addr_of(a.pid)
    assert ip_dead in os.listdir(alloc_dir)
    a.kill()
    a.wait()
    b = netns_proc()
    run_stage("createRuntime", "alive", b.pid, ann, net_state_dir)
    try:
        entries = [json.load(open(os.path.join(alloc_dir, n))) for n in os.listdir(alloc_dir) if n[0].isdigit()]
        assert [e["id"] for e in entries] == ["alive"]
        assert netsetup.veth_name("dead") not in links_in(None)
    finally:
        run_stage("poststop", "alive", 0, ann, net_state_dir)
    assert_clean(bridge_name, net_state_dir, ["dead", "alive"])
