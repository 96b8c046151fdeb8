"""The netlink half of bridge-net (pyroute2 only): bridge, veth pair, addresses, routes, loopback."""
from __future__ import annotations

import errno
import hashlib
import ipaddress
import os

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError


class NetError(Exception):
    pass


def veth_name(cid: str) -> str:
    """Host end of a container's veth: derived from the id, so poststop finds it without any state."""
    return "pyv" + hashlib.sha256(cid.encode()).hexdigest()[:12]


def _kind(ipr: IPRoute, index: int) -> str | None:
    info = ipr.get_links(index)[0].get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


def ensure_bridge(ipr: IPRoute, name: str, gateway: ipaddress.IPv4Address, prefixlen: int) -> bool:
    """Bridge ``name`` up with ``gateway/prefixlen`` on it; returns True if we created the bridge."""
    created = False
    found = ipr.link_lookup(ifname=name)
    if not found:
        try:
            ipr.link("add", ifname=name, kind="bridge")
            created = True
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise NetError(f"cannot create bridge {name}: {os.strerror(e.code)}") from None
        found = ipr.link_lookup(ifname=name)
    idx = found[0]
    if _kind(ipr, idx) != "bridge":
        raise NetError(f"{name} exists and is not a bridge")
    try:
        ipr.addr("add", index=idx, address=str(gateway), prefixlen=prefixlen)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise NetError(f"cannot add {gateway}/{prefixlen} to {name}: {os.strerror(e.code)}") from None
    ipr.link("set", index=idx, state="up")
    return created


def bridge_addresses(ipr: IPRoute, name: str) -> list[ipaddress.IPv4Interface]:
    found = ipr.link_lookup(ifname=name)
    if not found:
        return []
    return [ipaddress.IPv4Interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
            for a in ipr.get_addr(index=found[0], family=2)]


def delete_link(ipr: IPRoute, name: str) -> bool:
    found = ipr.link_lookup(ifname=name) if name else []
    if not found:
        return False
    try:
        ipr.link("del", index=found[0])
    except NetlinkError as e:
        if e.code != errno.ENODEV:
            raise
        return False
    return True


def plug(ipr: IPRoute, bridge: str, netns_path: str, veth: str, ifname: str,
         addr: ipaddress.IPv4Interface, gateway: ipaddress.IPv4Address) -> None:
    """Create the veth pair (peer directly in the container's netns), plug it into the bridge, and
    configure the container side: loopback up, address, link up, default route via the gateway."""
    br = ipr.link_lookup(ifname=bridge)
    if not br:
        raise NetError(f"bridge {bridge} vanished")
    nsfd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            ipr.link("add", ifname=veth, kind="veth", peer={"ifname": ifname, "net_ns_fd": nsfd})
        except NetlinkError as e:
            what = "already exists (on the host or in the container)" if e.code == errno.EEXIST \
                else os.strerror(e.code)
            raise NetError(f"cannot create veth {veth} <-> {ifname}: {what}") from None
    finally:
        os.close(nsfd)
    vidx = ipr.link_lookup(ifname=veth)[0]
    ipr.link("set", index=vidx, master=br[0], state="up")
    with IPRoute(netns=netns_path, flags=0) as cipr:
        cipr.link("set", index=cipr.link_lookup(ifname="lo")[0], state="up")
        idx = cipr.link_lookup(ifname=ifname)[0]
        cipr.addr("add", index=idx, address=str(addr.ip), prefixlen=addr.network.prefixlen)
        cipr.link("set", index=idx, state="up")
        cipr.route("add", dst="0.0.0.0/0", gateway=str(gateway), oif=idx)
