"""Host cgroup layout: which hierarchies are mounted where, and where this process sits in each.

Detection runs once per process and reads only /proc/self/mountinfo and /proc/self/cgroup (two small
files), because ``state``, ``kill`` and ``delete`` pass through here and shims call them constantly.
Commands that already have a container rebuild their manager from state.json and never detect.
"""
from __future__ import annotations

import os

from ..errors import RuntimeFailure

V2, HYBRID, V1 = "v2", "hybrid", "v1"

# v1 hierarchies a container joins, in the order runc uses (named systemd hierarchy included so that
# tools reading /proc/PID/cgroup see the container's own path there too).
V1_CONTROLLERS = ("cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "blkio", "pids",
                  "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc", "name=systemd")


class Layout:
    """The host's cgroup layout.  A plain class: dataclasses costs ~12 ms to import, paid by every
    `state`/`kill`/`delete`."""

    def __init__(self, kind: str, unified: str | None = None, unified_root: str = "/",
                 v1: dict[str, str] | None = None, v1_root: dict[str, str] | None = None,
                 own: dict[str, str] | None = None) -> None:
        self.kind = kind                        # V2 | HYBRID | V1
        self.unified = unified                  # cgroup2 mount point (V2 and HYBRID)
        self.unified_root = unified_root        # the mount's root inside the hierarchy
        self.v1 = v1 if v1 is not None else {}              # controller -> mount point
        self.v1_root = v1_root if v1_root is not None else {}  # controller -> mount root in hierarchy
        self.own = own if own is not None else {}           # controller ("" = v2) -> our cgroup path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"Layout({vars(self)!r})"


def _unescape(s: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040...)."""
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) + 0 and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> {controller: path}; "" is the v2 entry (0::/path)."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if not ctrls:
            own[""] = path
            continue
        for c in ctrls.split(","):
            own[c] = path
    return own


def _detect() -> Layout:
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    v1: dict[str, str] = {}
    v1_root: dict[str, str] = {}
    unified: str | None = None
    unified_root = "/"
    for line in lines:
        left, _, right = line.partition(" - ")
        rf = right.split()
        if not rf or rf[0] not in ("cgroup", "cgroup2"):
            continue
        lf = left.split()
        root, mnt = _unescape(lf[3]), _unescape(lf[4])
        if rf[0] == "cgroup2":
            # prefer /sys/fs/cgroup or /sys/fs/cgroup/unified over a bind elsewhere (first wins)
            if unified is None or mnt in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                unified, unified_root = mnt, root
            continue
        opts = rf[2].split(",") if len(rf) > 2 else []
        for o in opts:
            if o in V1_CONTROLLERS and o not in v1:
                v1[o], v1_root[o] = mnt, root
    with open("/proc/self/cgroup") as f:
        own = parse_proc_cgroup(f.read())
    if unified is not None and not v1:
        kind = V2
    elif v1:
        kind = HYBRID if unified is not None else V1
    else:
        raise RuntimeFailure("no cgroup filesystem is mounted", step="cgroups")
    return Layout(kind, unified, unified_root, v1, v1_root, own)


_cached: Layout | None = None


def detect() -> Layout:
    """The host layout, computed once per process."""
    global _cached
    if _cached is None:
        _cached = _detect()
    return _cached


def host_path(mount: str, mount_root: str, cgpath: str) -> str:
    """Directory of hierarchy path ``cgpath`` under a mount whose root is ``mount_root``.

    In a cgroup namespace or a bind-mounted subtree the mount shows only part of the hierarchy;
    /proc/self/cgroup paths are then relative to the namespace root, which is the mount root.
    """
    rel = cgpath
    if mount_root != "/" and (cgpath == mount_root or cgpath.startswith(mount_root + "/")):
        rel = cgpath[len(mount_root):]
    rel = rel.strip("/")
    return os.path.join(mount, rel) if rel else mount
