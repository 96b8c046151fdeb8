"""nftables rules of one bridge: isolation always, masquerade for the containers that asked for NAT.

One ``inet`` table per bridge (``pyrt_<bridge>_<hash>``), created with the bridge's first container and
deleted with its last, so the host's own rule set is never edited rule by rule:

- input:   from the bridge, only the gateway address is reachable on the host (not its other interfaces'
           addresses; IPv6 only link-local, which stays on the bridge);
- forward: bridge <-> bridge passes (containers reach each other, also with br_netfilter loaded);
           from the bridge to elsewhere only for addresses in the ``nat4`` set, replies back in;
           everything else from or to the bridge is dropped;
- postrouting (nat): addresses in ``nat4`` leaving by another interface are masqueraded.

A drop verdict is final across tables, but an accept here does not override a drop in another table (a
host whose FORWARD policy is DROP, as with Docker, needs its own accept rule for NAT egress).
Egress NAT also needs ``net.ipv4.ip_forward=1``; we set it when a container asks for NAT and never
reset it (other software may rely on it).
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import shutil
import subprocess


class FirewallError(Exception):
    pass


def _nft_binary() -> str:
    found = shutil.which("nft") or next(
        (p for p in ("/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft") if os.access(p, os.X_OK)), None)
    if not found:
        raise FirewallError("nft (nftables) is required for the bridge's isolation rules: "
                            "apt-get install nftables")
    return found


def table_name(bridge: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_]", "_", bridge)
    return f"pyrt_{safe}_{hashlib.sha256(bridge.encode()).hexdigest()[:6]}"


def _nft(script: str | None = None, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [_nft_binary()] + (["-f", "-"] if script is not None else list(args))
    r = subprocess.run(cmd, input=script, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise FirewallError(f"nft {' '.join(cmd[1:])} failed: {r.stderr.strip()}")
    return r


def exists(bridge: str) -> bool:
    return _nft(None, "list", "table", "inet", table_name(bridge), check=False).returncode == 0


def ensure(bridge: str, gateway: ipaddress.IPv4Address) -> None:
    """Create the bridge's table if missing (call with the allocator lock held: no duplicate rules)."""
    if exists(bridge):
        return
    t = table_name(bridge)
    br = bridge.replace('"', "")
    _nft(f"""
table inet {t} {{
    set nat4 {{ type ipv4_addr; }}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "{br}" ip daddr != {gateway} drop
        iifname "{br}" ip6 daddr != fe80::/10 drop
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname "{br}" oifname "{br}" accept
        oifname "{br}" ct state established,related accept
        iifname "{br}" ip saddr @nat4 accept
        iifname "{br}" drop
        oifname "{br}" drop
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname != "{br}" ip saddr @nat4 masquerade
    }}
}}
""")


def remove(bridge: str) -> None:
    if exists(bridge):
        _nft(None, "delete", "table", "inet", table_name(bridge))


def nat_add(bridge: str, addr: str) -> None:
    _set_ip_forward()
    _nft(None, "add", "element", "inet", table_name(bridge), "nat4", "{", addr, "}")


def nat_del(bridge: str, addr: str) -> None:
    if exists(bridge):
        # absent element: nothing to do (a container without NAT, or a second poststop)
        _nft(None, "delete", "element", "inet", table_name(bridge), "nat4", "{", addr, "}", check=False)


def nat_members(bridge: str) -> set[str]:
    r = _nft(None, "list", "set", "inet", table_name(bridge), "nat4", check=False)
    if r.returncode != 0:
        return set()
    m = re.search(r"elements\s*=\s*\{([^}]*)\}", r.stdout)
    return {e.strip() for e in m.group(1).split(",")} if m else set()


def _set_ip_forward() -> None:
    path = "/proc/sys/net/ipv4/ip_forward"
    with open(path) as f:
        if f.read().strip() == "1":
            return
    with open(path, "w") as f:
        f.write("1")
