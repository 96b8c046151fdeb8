"""``linux.netDevices``: move host network interfaces into the container's network namespace and back.

What the spec asks and how we do it:

- The device named by the key moves into the netns of the container init, renamed to ``name`` when
  given, in the same RTM_NEWLINK as the move (so an interface of the same name that already exists
  inside, or on the host, never gets in the way half-way).
- The kernel keeps MTU and hardware address across the move but drops every address, so we record the
  permanent addresses (IFA_F_PERMANENT, any family) on the host first and add them again inside, then
  bring the device up.  Routes are not carried over (the spec does not ask for them).
- On delete the devices go back to the runtime's netns under their original names with their original
  addresses, MTU and up/down state.

Why a file in the state dir: a container may exit long before ``delete``.  When a netns dies the kernel
destroys virtual devices in it (a veth, a dummy) and returns physical ones to the initial netns without
their addresses.  ``attach`` therefore bind-mounts ``/proc/PID/ns/net`` on ``<state_dir>/netns``, which
keeps the namespace (and the devices) alive until ``detach`` has moved them out; ``detach`` then
unmounts and removes the file.  The record returned by ``attach`` (stored by the core in state.json as
``owned["netdevices"]``) holds everything ``detach`` needs, so it never re-reads config.json.
"""
from __future__ import annotations

import errno as _errno
import os

from . import log
from .errors import ConfigError, RuntimeFailure

IFA_F_PERMANENT = 0x80
# address flags that make sense to pass back when re-adding an address
_KEEP_FLAGS = 0x02 | 0x10 | 0x100 | 0x200 | 0x400   # NODAD HOMEADDRESS MANAGETEMPADDR NOPREFIXROUTE MCAUTOJOIN
NETNS_FILE = "netns"
MS_BIND = 4096
MNT_DETACH = 2
STEP = "linux.netDevices"


def _valid_ifname(name: object) -> bool:
    # 1-15 characters, no "/", ":" or white space (the kernel's dev_valid_name); no `re`: spec validation
    # imports this module on the lifecycle path
    return (isinstance(name, str) and 0 < len(name) <= 15 and name not in (".", "..")
            and not any(ch in "/:" or ch.isspace() for ch in name))


def validate_netdevices(devices: object) -> None:
    """ConfigError naming ``linux.netDevices.<name>...`` for anything we could not move.

    (That a new network namespace is configured is checked by spec validation, which sees the whole
    ``linux.namespaces`` list.)
    """
    if devices is None:
        return
    if not isinstance(devices, dict):
        raise ConfigError("linux.netDevices", "must be an object keyed by host interface name")
    targets: dict[str, str] = {}
    for host, entry in devices.items():
        where = f"linux.netDevices.{host}"
        if not _valid_ifname(host):
            raise ConfigError(where, f"invalid interface name {host!r} (1-15 characters, no '/', ':' or space)")
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise ConfigError(where, "must be an object")
        name = entry.get("name")
        if name is None:
            name = host
        elif not _valid_ifname(name):
            raise ConfigError(f"{where}.name", f"invalid interface name {name!r} (1-15 characters, no '/', "
                                               "':' or space)")
        if name in targets:
            raise ConfigError(f"{where}.name", f"{name!r} is also the name of linux.netDevices.{targets[name]}")
        targets[name] = host


# --- namespace file --------------------------------------------------------------------------------

def _libc():
    """libc through ctypes, loaded only when a device is really moved (not for validation)."""
    import ctypes
    return ctypes, ctypes.CDLL(None, use_errno=True)


def _bind_netns(pid: int, path: str) -> None:
    """Bind-mount /proc/PID/ns/net on ``path`` so the namespace outlives the container init."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
    os.close(fd)
    src = f"/proc/{pid}/ns/net".encode()
    ctypes, libc = _libc()
    if libc.mount(src, path.encode(), None, MS_BIND, None) != 0:
        err = ctypes.get_errno()
        os.unlink(path)
        raise OSError(err, os.strerror(err), path)


def _unbind_netns(path: str) -> None:
    ctypes, libc = _libc()
    if libc.umount2(path.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (_errno.EINVAL, _errno.ENOENT):   # EINVAL: not a mount point (already unmounted)
            raise OSError(err, os.strerror(err), path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _ipr(netns_path: str | None):
    """An IPRoute bound to the netns at ``netns_path`` (None: the runtime's own)."""
    from pyroute2 import IPRoute
    if netns_path is None:
        return IPRoute()
    # flags=0: never let pyroute2 create a namespace at that path if it went missing
    return IPRoute(netns=netns_path, flags=0)


def _same_netns(pid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/thread-self/ns/net").st_ino
    except FileNotFoundError:
        return False


# --- per device ------------------------------------------------------------------------------------

def _snapshot(ipr, index: int) -> dict:
    link = ipr.get_links(index)[0]
    addrs = []
    for a in ipr.get_addr(index=index):
        flags = a.get_attr("IFA_FLAGS")
        if flags is None:
            flags = a["flags"]
        if not flags & IFA_F_PERMANENT:
            continue
        label = a.get_attr("IFA_LABEL")
        ifname = link.get_attr("IFLA_IFNAME")
        addrs.append({"family": a["family"], "address": a.get_attr("IFA_ADDRESS"),
                      "local": a.get_attr("IFA_LOCAL"), "prefixlen": a["prefixlen"],
                      "broadcast": a.get_attr("IFA_BROADCAST"), "scope": a["scope"],
                      "flags": flags & _KEEP_FLAGS,
                      # an alias label "eth0:1" follows the device's name; a plain one is implied
                      "label_suffix": label[len(ifname):] if label and label.startswith(ifname + ":") else ""})
    return {"mtu": link.get_attr("IFLA_MTU"), "mac": link.get_attr("IFLA_ADDRESS"),
            "up": bool(link["flags"] & 1), "addrs": addrs}


def _restore_addrs(ipr, index: int, ifname: str, addrs: list[dict]) -> None:
    for a in addrs:
        kw: dict[str, object] = {"index": index, "address": a["address"], "prefixlen": a["prefixlen"],
                              "scope": a.get("scope", 0)}
        if a.get("local") and a["local"] != a["address"]:
            kw["local"] = a["local"]
        if a.get("broadcast"):
            kw["broadcast"] = a["broadcast"]
        if a.get("flags"):
            kw["flags"] = a["flags"]
        if a.get("label_suffix"):
            kw["label"] = ifname + a["label_suffix"]
        try:
            ipr.addr("add", **kw)
        except Exception as e:  # NetlinkError
            if getattr(e, "code", None) != _errno.EEXIST:   # a regenerated link-local address
                raise


def _lookup(ipr, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _find_inside(cipr, dev: dict) -> int | None:
    """The device inside the container: by its name there, by its host name (the rename after the
    move failed), or by hardware address (the container renamed it); a name only counts if the
    hardware address matches too (``lo`` is never ours)."""
    links = {link["index"]: link for link in cipr.get_links()}

    def mac_ok(idx: int) -> bool:
        return not dev.get("mac") or links[idx].get_attr("IFLA_ADDRESS") == dev["mac"]

    for name in (dev["name"], dev["host"]):
        idx = _lookup(cipr, name)
        if idx is not None and idx in links and mac_ok(idx):
            return idx
    if dev.get("mac") and dev["mac"] != "00:00:00:00:00:00":
        for idx, link in links.items():
            if link.get_attr("IFLA_ADDRESS") == dev["mac"]:
                return idx
    return None


def _move_back(cipr, hipr, host_fd: int, dev: dict) -> None:
    """Move one device from the container netns (cipr) to the runtime's (hipr) and restore it."""
    idx = _find_inside(cipr, dev)
    if idx is None:
        raise RuntimeFailure("not found in the container's network namespace", step=STEP, path=dev["host"])
    cipr.link("set", index=idx, state="down")
    cipr.link("set", index=idx, net_ns_fd=host_fd, ifname=dev["host"])
    hidx = _lookup(hipr, dev["host"])
    if hidx is None:
        raise RuntimeFailure("vanished while moving back to the host", step=STEP, path=dev["host"])
    if dev.get("mtu"):
        hipr.link("set", index=hidx, mtu=dev["mtu"])
    _restore_addrs(hipr, hidx, dev["host"], dev["addrs"])
    if dev.get("up"):
        hipr.link("set", index=hidx, state="up")


def _fail(e: BaseException, host: str, what: str) -> RuntimeFailure:
    if isinstance(e, RuntimeFailure):
        return e
    code = getattr(e, "code", None) or getattr(e, "errno", None) or 0
    text = os.strerror(code).lower() if code else str(e)
    return RuntimeFailure(f"{what}: {text}", step=STEP, path=host, errno=0)


def attach(devices: dict, pid: int, state_dir: str) -> dict:
    """Move ``devices`` into the netns of ``pid``; return the record ``detach`` needs (JSON-able).

    On failure everything done so far is undone and RuntimeFailure names the device.
    """
    validate_netdevices(devices)
    if not devices:
        return {}
    if _same_netns(pid):
        raise RuntimeFailure("the container has no network namespace of its own (add a 'network' entry "
                             "to linux.namespaces)", step=STEP)
    nspath = os.path.join(state_dir, NETNS_FILE)
    try:
        _bind_netns(pid, nspath)
    except OSError as e:
        raise RuntimeFailure.from_os(e, step=f"{STEP}: keeping the network namespace", path=nspath) from None
    record: dict = {"netns": nspath, "devices": []}
    hipr = cipr = None
    host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    ns_fd = os.open(nspath, os.O_RDONLY | os.O_CLOEXEC)
    try:
        hipr = _ipr(None)
        cipr = _ipr(nspath)
        for host, entry in devices.items():
            name = (entry or {}).get("name") or host
            idx = _lookup(hipr, host)
            if idx is None:
                raise RuntimeFailure("no such network interface on the host", step=STEP, path=host)
            try:
                snap = _snapshot(hipr, idx)
                dev = {"host": host, "name": name, **snap}
                record["devices"].append(dev)   # undo must look for it inside from here on
                try:
                    hipr.link("set", index=idx, net_ns_fd=ns_fd, ifname=name)
                except Exception:
                    # The kernel moves first and renames second: a rename that fails (name taken
                    # inside) leaves the device inside under its host name.  Only if it is still here
                    # is there nothing to move back.
                    if _lookup(hipr, host) == idx:
                        record["devices"].pop()
                    raise
                cidx = _lookup(cipr, name)
                if cidx is None:
                    raise RuntimeFailure("vanished while moving into the container", step=STEP, path=host)
                _restore_addrs(cipr, cidx, name, snap["addrs"])
                cipr.link("set", index=cidx, state="up")
            except Exception as e:
                raise _fail(e, host, f"moving into the container as {name!r}") from None
        return record
    except BaseException:
        for problem in _undo(record, cipr, hipr, host_fd):
            log.warning(f"undoing linux.netDevices: {problem}")
        raise
    finally:
        os.close(host_fd)
        os.close(ns_fd)
        for ipr in (hipr, cipr):
            if ipr is not None:
                ipr.close()


def _undo(record: dict, cipr, hipr, host_fd: int) -> list[str]:
    """Move back what was moved, unmount the netns file; returns the problems met (best effort)."""
    problems = []
    if cipr is not None and hipr is not None:
        for dev in reversed(record.get("devices", [])):
            try:
                _move_back(cipr, hipr, host_fd, dev)
            except Exception as e:
                problems.append(str(_fail(e, dev["host"], "moving back to the host")))
    try:
        _unbind_netns(record["netns"])
    except OSError as e:
        problems.append(f"{STEP}: unmounting {record['netns']}: {os.strerror(e.errno or 0).lower()}")
    return problems


def detach(record: dict, pid: int | None) -> None:
    """Move the devices of ``record`` back to the runtime's netns with their names and addresses.

    Works whether or not the container still runs (the netns is held by the bind mount).  Everything
    that can be restored is; one RuntimeFailure at the end lists what could not be.
    """
    if not record or not record.get("netns"):
        return
    nspath = record["netns"]
    hipr = cipr = None
    problems: list[str] = []
    host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        hipr = _ipr(None)
        path = nspath if os.path.exists(nspath) and os.path.ismount(nspath) else (
            f"/proc/{pid}/ns/net" if pid and os.path.exists(f"/proc/{pid}/ns/net") else None)
        if path is None:
            # namespace gone: physical devices came back on their own (without addresses), virtual ones
            # were destroyed with it; restore what is here
            for dev in record.get("devices", []):
                idx = _lookup(hipr, dev["host"])
                if idx is None:
                    problems.append(f"{STEP}: {dev['host']}: gone with the container's network namespace")
                    continue
                try:
                    _restore_addrs(hipr, idx, dev["host"], dev["addrs"])
                    if dev.get("up"):
                        hipr.link("set", index=idx, state="up")
                except Exception as e:
                    problems.append(str(_fail(e, dev["host"], "restoring addresses")))
            try:
                _unbind_netns(nspath)
            except OSError:
                pass
        else:
            cipr = _ipr(path)
            problems += _undo(record, cipr, hipr, host_fd)
    except Exception as e:  # netlink trouble before anything could move: still release the netns
        problems.append(str(_fail(e, "", "restoring host devices")))
        try:
            _unbind_netns(nspath)
        except OSError as oe:
            problems.append(f"{STEP}: unmounting {nspath}: {os.strerror(oe.errno or 0).lower()}")
    finally:
        os.close(host_fd)
        for ipr in (hipr, cipr):
            if ipr is not None:
                ipr.close()
    if problems:
        raise RuntimeFailure("; ".join(problems), step=f"{STEP}: restoring host devices")
