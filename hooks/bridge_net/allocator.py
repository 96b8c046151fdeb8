"""A tiny file-backed IPv4 allocator, safe across concurrent hook processes.

Layout, one directory per bridge under the state dir (``/run/pyruntime/net`` by default: a tmpfs, so
it is cleared with the bridges and veths at reboot)::

    <state>/<bridge>/lock          flock()ed for every read-modify-write, and by the hook for the whole
                                   set-up or tear-down of one container (so a tear-down that removes
                                   the bridge never races a set-up that is adding a port to it)
    <state>/<bridge>/<a.b.c.d>     one file per address in use, content: JSON {id, veth, ...}
    <state>/<bridge>/last          the last address handed out (round robin: a freed address is not
                                   reused at once, so stale ARP entries of a killed container age out)
    <state>/<bridge>/owned-bridge  present if the hook created the bridge (removed with the last user)

Why one file per address: creating it is the allocation, removing it the release; a reader never sees
half a table, and a crash mid-way leaves at worst one file naming its container.
"""
from __future__ import annotations

import fcntl
import ipaddress
import json
import os
from contextlib import contextmanager
from typing import Iterator

# the runtime's own liveness test (pid + start time), so a record and the runtime agree on "still alive"
from pyruntime.state import proc_start_time  # noqa: F401  (also used by main.py through this module)

DEFAULT_STATE_DIR = "/run/pyruntime/net"


class AllocatorError(Exception):
    pass


class Allocator:
    def __init__(self, state_dir: str, bridge: str, subnet: ipaddress.IPv4Network,
                 gateway: ipaddress.IPv4Address) -> None:
        self.dir = os.path.join(state_dir, bridge)
        self.subnet = subnet
        self.gateway = gateway

    @contextmanager
    def locked(self) -> Iterator["Allocator"]:
        """Hold the bridge's lock (blocking); everything that reads or changes the table runs inside.

        The last user removes the directory (lock file included) under the lock, so after getting the
        lock we check that the path still names the file we locked, else start again.
        """
        path = os.path.join(self.dir, "lock")
        while True:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:   # the directory went away between makedirs and open
                continue
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            yield self
        finally:
            os.close(fd)

    # the methods below must be called with the lock held

    def entries(self) -> dict[str, dict]:
        """address -> record, for every address in use on this bridge."""
        out = {}
        for name in os.listdir(self.dir):
            try:
                ipaddress.IPv4Address(name)
            except ValueError:
                continue
            try:
                with open(os.path.join(self.dir, name)) as f:
                    out[name] = json.load(f)
            except (OSError, ValueError):
                out[name] = {}
        return out

    def find(self, cid: str) -> str | None:
        for addr, rec in self.entries().items():
            if rec.get("id") == cid:
                return addr
        return None

    def reclaim_stale(self) -> list[dict]:
        """Free addresses whose container init is gone (pid dead or reused: start time differs).

        The spec gives every container a poststop, but some runtimes skip it when create itself fails
        (runc does); the container's netns and veth are gone with its init, so its address is free.
        Returns the records removed, so the caller can drop a stray veth.  Entries without pid/start
        are never reclaimed.
        """
        gone = []
        for addr, rec in self.entries().items():
            pid, start = rec.get("pid"), rec.get("start")
            if not isinstance(pid, int) or not isinstance(start, int):
                continue
            if proc_start_time(pid) != start:
                os.unlink(os.path.join(self.dir, addr))
                gone.append({"address": addr, **rec})
        return gone

    def allocate(self, cid: str, record: dict) -> ipaddress.IPv4Address:
        """Reserve a free address for ``cid`` (the same one if it already holds one)."""
        held = self.find(cid)
        if held:
            return ipaddress.IPv4Address(held)
        hosts = [h for h in self.subnet.hosts() if h != self.gateway]
        if not hosts:
            raise AllocatorError(f"subnet {self.subnet} has no address besides the gateway")
        start = 0
        try:
            with open(os.path.join(self.dir, "last")) as f:
                last = ipaddress.IPv4Address(f.read().strip())
            if last in self.subnet:
                start = next((i + 1 for i, h in enumerate(hosts) if h == last), 0)
        except (OSError, ValueError):
            pass
        for k in range(len(hosts)):
            addr = hosts[(start + k) % len(hosts)]
            path = os.path.join(self.dir, str(addr))
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"id": cid, **record}, f)
            self._write("last", str(addr))
            return addr
        raise AllocatorError(f"no free address left in {self.subnet} on this bridge")

    def release(self, cid: str) -> list[str]:
        """Free every address held by ``cid``; returns them."""
        freed = []
        for addr, rec in self.entries().items():
            if rec.get("id") == cid:
                os.unlink(os.path.join(self.dir, addr))
                freed.append(addr)
        return freed

    def flag(self, name: str, value: bool | None = None) -> bool:
        """Read (value None) or set/clear a marker file such as ``owned-bridge``."""
        path = os.path.join(self.dir, name)
        if value is None:
            return os.path.exists(path)
        if value:
            self._write(name, "1")
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        return value

    def _write(self, name: str, text: str) -> None:
        tmp = os.path.join(self.dir, f".{name}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, os.path.join(self.dir, name))

    def remove_if_unused(self) -> bool:
        """Remove the bridge's directory when no address is in use (called last, lock held)."""
        if self.entries():
            return False
        for name in os.listdir(self.dir):
            if name != "lock":
                os.unlink(os.path.join(self.dir, name))
        # waiters on the old lock file notice it is gone (see locked) and start over
        os.unlink(os.path.join(self.dir, "lock"))
        try:
            os.rmdir(self.dir)
        except OSError:
            pass
        return True
