"""Fixtures for netDevices and bridge-net tests: real network namespaces and interfaces, always removed."""
from __future__ import annotations

import os
import secrets
import subprocess

import pytest

pyroute2 = pytest.importorskip("pyroute2", reason="pyroute2 is not installed (pip install pyroute2)")
from pyroute2 import IPRoute  # noqa: E402


def _has_kind(kind: str) -> bool:
    name = "pyrtk" + secrets.token_hex(3)
    r = subprocess.run(["ip", "link", "add", name, "type", kind], capture_output=True)
    if r.returncode == 0:
        subprocess.run(["ip", "link", "del", name], capture_output=True)
        return True
    return False


@pytest.fixture(scope="session")
def dummy_kind() -> str:
    """'dummy' when the kernel has it, else 'ifb' (another virtual device with no peer)."""
    for kind in ("dummy", "ifb"):
        if _has_kind(kind):
            return kind
    pytest.skip("the kernel has neither the dummy nor the ifb network device")


@pytest.fixture
def netns_proc():
    """A `sleep` in a fresh network namespace (what a container init looks like to netdevices)."""
    procs = []

    def start() -> subprocess.Popen:
        p = subprocess.Popen(["unshare", "-n", "sleep", "600"])
        # wait until the unshare has happened (the pid then has another net ns than ours)
        me = os.stat("/proc/self/ns/net").st_ino
        for _ in range(500):
            try:
                if os.stat(f"/proc/{p.pid}/ns/net").st_ino != me and \
                        open(f"/proc/{p.pid}/comm").read().strip() == "sleep":
                    break
            except FileNotFoundError:
                pass
            import time
            time.sleep(0.01)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture
def host_ifaces():
    """Factory for host interfaces with unique names; whatever still exists on the host is deleted."""
    names: list[str] = []

    def make(kind: str, addrs: tuple[str, ...] = (), up: bool = True, mtu: int | None = None) -> str:
        name = "pyrtnd" + secrets.token_hex(3)
        subprocess.run(["ip", "link", "add", name, "type", kind], check=True)
        names.append(name)
        for a in addrs:
            subprocess.run(["ip", "addr", "add", a, "dev", name], check=True)
        if mtu:
            subprocess.run(["ip", "link", "set", name, "mtu", str(mtu)], check=True)
        if up:
            subprocess.run(["ip", "link", "set", name, "up"], check=True)
        return name

    yield make
    for n in names:
        subprocess.run(["ip", "link", "del", n], capture_output=True)


def links_in(netns_path: str | None) -> dict[str, dict]:
    """name -> {mtu, mac, up, addrs: {"a.b.c.d/len", ...}} of a netns (None: ours)."""
    ipr = IPRoute() if netns_path is None else IPRoute(netns=netns_path, flags=0)
    try:
        out = {}
        for link in ipr.get_links():
            idx = link["index"]
            addrs = {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=idx)
                     if a["scope"] == 0}
            out[link.get_attr("IFLA_IFNAME")] = {"mtu": link.get_attr("IFLA_MTU"),
                                                 "mac": link.get_attr("IFLA_ADDRESS"),
                                                 "up": bool(link["flags"] & 1), "addrs": addrs}
        return out
    finally:
        ipr.close()


# --- bridge-net ------------------------------------------------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOOK = os.path.join(REPO, "hooks", "bridge-net")


@pytest.fixture
def net_state_dir():
    """A private allocator dir under /run/pyruntime-test-*; must be empty at the end, then removed."""
    import shutil
    base = f"/run/pyruntime-test-{secrets.token_hex(4)}"
    os.makedirs(base)
    yield os.path.join(base, "net")
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def ip_forward_restored():
    """NAT turns net.ipv4.ip_forward on (and the hook never turns it off): put it back afterwards."""
    path = "/proc/sys/net/ipv4/ip_forward"
    with open(path) as f:
        saved = f.read().strip()
    yield
    with open(path, "w") as f:
        f.write(saved)


def nft_tables() -> set[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.startswith("table")}


@pytest.fixture
def bridge_name():
    """A unique bridge name; the test must leave it removed (checked), the finalizer makes sure."""
    name = "pyrtbr" + secrets.token_hex(3)
    yield name
    subprocess.run(["ip", "link", "del", name], capture_output=True)
    from .hooks_path import firewall as fw
    subprocess.run(["nft", "delete", "table", "inet", fw.table_name(name)], capture_output=True)


def in_netns(pid: int, *cmd: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", "-t", str(pid), "-n", *cmd], capture_output=True, text=True,
                          timeout=timeout)


def ping(pid: int, addr: str) -> bool:
    return in_netns(pid, "busybox", "ping", "-c", "1", "-W", "1", addr).returncode == 0


@pytest.fixture
def outside(netns_proc):
    """A 'host's other interface': a veth pair from the host to our own namespace, 10.199.x.1 <-> .2.

    Traffic only ever goes to namespaces we created here."""
    p = netns_proc()
    host_end = "pyrto" + secrets.token_hex(3)
    net = f"10.199.{secrets.randbelow(250)}"
    subprocess.run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", "ext0", "netns",
                    str(p.pid)], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{net}.1/24", "dev", host_end], check=True)
        subprocess.run(["ip", "link", "set", host_end, "up"], check=True)
        for cmd in (["ip", "addr", "add", f"{net}.2/24", "dev", "ext0"], ["ip", "link", "set", "ext0", "up"],
                    ["ip", "link", "set", "lo", "up"]):
            assert in_netns(p.pid, *cmd).returncode == 0
        yield {"pid": p.pid, "host_addr": f"{net}.1", "peer_addr": f"{net}.2"}
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
