"""bridge-net: an OCI createRuntime / poststop hook pair that puts a container on a host bridge.

    bridge-net [createRuntime|poststop]      (state JSON on stdin; without an argument the stage is
                                              taken from the state's status: creating/created -> set up,
                                              stopped -> tear down)

Configured by the container's annotations:

    pyruntime.net/bridge   host bridge (default pyrt0; created if missing, removed with its last container
                           if we created it)
    pyruntime.net/subnet   IPv4 subnet of that bridge (default 10.77.0.0/24); the gateway is its first
                           address, on the bridge
    pyruntime.net/nat      true|false (default false): masquerade the container's egress
    pyruntime.net/ifname   interface name inside the container (default eth0)

Environment: PYRUNTIME_NET_STATE_DIR (default /run/pyruntime/net) holds the address allocator.

Set-up and tear-down of one container run under the bridge's allocator lock, so parallel containers
never get one address twice and a tear-down never removes a bridge a set-up is using.  Tear-down needs
nothing but the container id and annotations (the veth name derives from the id), so it works as well
for a container that was killed, and running it twice is harmless.
"""
from __future__ import annotations

import ipaddress
import json
import os
import sys
from dataclasses import dataclass

from . import allocator, firewall, netsetup
from .allocator import DEFAULT_STATE_DIR, Allocator, AllocatorError

PREFIX = "pyruntime.net/"
DEFAULTS = {"bridge": "pyrt0", "subnet": "10.77.0.0/24", "nat": "false", "ifname": "eth0"}


class HookError(Exception):
    pass


@dataclass
class NetConfig:
    bridge: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    nat: bool
    ifname: str

    @classmethod
    def from_annotations(cls, ann: dict) -> "NetConfig":
        get = lambda k: str(ann.get(PREFIX + k, DEFAULTS[k]))  # noqa: E731
        bridge, ifname = get("bridge"), get("ifname")
        for key, name in (("bridge", bridge), ("ifname", ifname)):
            if not (0 < len(name) <= 15) or any(c in name for c in "/: \t\n") or name in (".", ".."):
                raise HookError(f"annotation {PREFIX}{key}: invalid interface name {name!r}")
        try:
            subnet = ipaddress.IPv4Network(get("subnet"), strict=True)
        except ValueError as e:
            raise HookError(f"annotation {PREFIX}subnet: {e}") from None
        if subnet.prefixlen > 30:
            raise HookError(f"annotation {PREFIX}subnet: {subnet} is too small (at most /30)")
        nat_text = get("nat").lower()
        if nat_text not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise HookError(f"annotation {PREFIX}nat: expected true or false, got {nat_text!r}")
        return cls(bridge, subnet, next(subnet.hosts()), nat_text in ("true", "1", "yes", "on"), ifname)


def _allocator(cfg: NetConfig) -> Allocator:
    return Allocator(os.environ.get("PYRUNTIME_NET_STATE_DIR", DEFAULT_STATE_DIR), cfg.bridge, cfg.subnet,
                     cfg.gateway)


def setup(state: dict, cfg: NetConfig) -> str:
    """createRuntime: returns the address given to the container."""
    cid, pid = state.get("id"), state.get("pid")
    if not cid or not isinstance(pid, int) or pid <= 0:
        raise HookError("the state on stdin has no id or no pid (is this a createRuntime hook?)")
    netns = f"/proc/{pid}/ns/net"
    if os.stat(netns).st_ino == os.stat("/proc/self/ns/net").st_ino:
        raise HookError("the container shares the host's network namespace; add a 'network' namespace")
    alloc = _allocator(cfg)
    veth = netsetup.veth_name(cid)
    with alloc.locked(), netsetup.IPRoute() as ipr:
        subnet_file = os.path.join(alloc.dir, "subnet")
        if os.path.exists(subnet_file):
            with open(subnet_file) as f:
                used = f.read().strip()
            if used != str(cfg.subnet) and alloc.entries():
                raise HookError(f"bridge {cfg.bridge} is in use with subnet {used}, not {cfg.subnet}")
        for iface in netsetup.bridge_addresses(ipr, cfg.bridge):
            if iface.network != cfg.subnet and iface.network.overlaps(cfg.subnet):
                raise HookError(f"bridge {cfg.bridge} has {iface}, which overlaps {cfg.subnet}")
        alloc._write("subnet", str(cfg.subnet))
        for stale in alloc.reclaim_stale():
            netsetup.delete_link(ipr, stale.get("veth") or "")
            firewall.nat_del(cfg.bridge, stale["address"])
            print(f"bridge-net: reclaimed {stale['address']} of {stale.get('id')} (its init is gone)")
        try:
            addr = alloc.allocate(cid, {"veth": veth, "pid": pid,
                                        "start": allocator.proc_start_time(pid)})
        except AllocatorError as e:
            raise HookError(str(e)) from None
        try:
            if netsetup.ensure_bridge(ipr, cfg.bridge, cfg.gateway, cfg.subnet.prefixlen):
                alloc.flag("owned-bridge", True)
            firewall.ensure(cfg.bridge, cfg.gateway)
            iface = ipaddress.IPv4Interface(f"{addr}/{cfg.subnet.prefixlen}")
            netsetup.plug(ipr, cfg.bridge, netns, veth, cfg.ifname, iface, cfg.gateway)
            if cfg.nat:
                firewall.nat_add(cfg.bridge, str(addr))
        except BaseException:
            _teardown_locked(alloc, ipr, cid, cfg)
            raise
    return str(addr)


def _teardown_locked(alloc: Allocator, ipr, cid: str, cfg: NetConfig) -> list[str]:
    freed = alloc.release(cid)
    netsetup.delete_link(ipr, netsetup.veth_name(cid))
    for addr in freed:
        firewall.nat_del(cfg.bridge, addr)
    if not alloc.entries():
        # last container of this bridge: remove what we created
        firewall.remove(cfg.bridge)
        if alloc.flag("owned-bridge"):
            netsetup.delete_link(ipr, cfg.bridge)
        alloc.remove_if_unused()
    return freed


def teardown(state: dict, cfg: NetConfig) -> list[str]:
    """poststop: free the address, delete the veth (if the netns did not take it already), and the
    bridge's rules and bridge with its last container."""
    cid = state.get("id")
    if not cid:
        raise HookError("the state on stdin has no id")
    alloc = _allocator(cfg)
    if not os.path.isdir(alloc.dir):
        # nothing was ever set up on this bridge (or already torn down): still drop a stray veth
        with netsetup.IPRoute() as ipr:
            netsetup.delete_link(ipr, netsetup.veth_name(cid))
        return []
    with alloc.locked(), netsetup.IPRoute() as ipr:
        return _teardown_locked(alloc, ipr, cid, cfg)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    try:
        state = json.load(sys.stdin)
        if not isinstance(state, dict):
            raise HookError("stdin is not a JSON object")
    except ValueError as e:
        print(f"bridge-net: cannot read the state JSON on stdin: {e}", file=sys.stderr)
        return 2
    stage = argv[1] if len(argv) > 1 else {"creating": "createRuntime", "created": "createRuntime",
                                           "stopped": "poststop"}.get(str(state.get("status")), "")
    try:
        cfg = NetConfig.from_annotations(state.get("annotations") or {})
        if stage in ("createRuntime", "prestart"):
            addr = setup(state, cfg)
            print(f"bridge-net: {state.get('id')}: {cfg.ifname} {addr}/{cfg.subnet.prefixlen} on {cfg.bridge}"
                  f"{' (nat)' if cfg.nat else ''}")
        elif stage == "poststop":
            freed = teardown(state, cfg)
            print(f"bridge-net: {state.get('id')}: released {', '.join(freed) or 'nothing'}")
        else:
            raise HookError(f"unknown stage {stage!r} (expected createRuntime or poststop)")
    except (HookError, AllocatorError, firewall.FirewallError, netsetup.NetError, OSError) as e:
        print(f"bridge-net: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a netlink error we did not foresee: still one line, not a traceback
        print(f"bridge-net: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0
