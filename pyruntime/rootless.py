"""Running as an unprivileged user ("rootless"), decided the way runc decides it.

Two separate questions, as in runc:

- *rootless EUID*: the runtime's effective uid is not 0.  The container then needs a user namespace the
  runtime creates itself; a single mapping of the caller's own uid/gid is written directly (after
  ``setgroups`` is denied, as the kernel requires for an unprivileged gid_map), anything else goes
  through the setuid helpers ``newuidmap``/``newgidmap`` (Debian's ``uidmap`` package), which check the
  ranges in /etc/subuid and /etc/subgid.  Supplementary groups cannot be set with setgroups denied.
- *rootless cgroups* (``--rootless true|false|auto``; auto = euid != 0, or root inside a user
  namespace): cgroup directories the caller may not create are skipped when no limits are asked for
  and no cgroupsPath was given; asked-for limits that cannot be applied are an error naming them.

Imported by create/run/spec/ps only (exec's one need, its groups, is execproc's), and by ``cli`` only
when --root is missing, --rootless is given or the caller is not root: shims run as root with --root,
so their calls never load it.
"""
from __future__ import annotations

import os

from .errors import ConfigError, RuntimeFailure

SYSTEM_ROOT = "/run/pyruntime"
_TRUE = ("1", "t", "T", "true", "TRUE", "True")       # Go's strconv.ParseBool, as runc parses the flag
_FALSE = ("0", "f", "F", "false", "FALSE", "False")


def euid_rootless() -> bool:
    return os.geteuid() != 0


_in_userns: bool | None = None


def in_user_namespace() -> bool:
    """True inside any user namespace but the initial one (its uid_map is not the identity map)."""
    global _in_userns
    if _in_userns is None:
        try:
            with open("/proc/self/uid_map") as f:
                first = f.read().split()
        except OSError:
            first = ["0", "0", "4294967295"]
        _in_userns = first[:3] != ["0", "0", "4294967295"]
    return _in_userns


_flag = "auto"


def set_flag(value: str | None) -> None:
    """Record ``--rootless`` (checked now, detected only when a command needs it)."""
    global _flag
    if value not in _TRUE + _FALSE + (None, "", "auto"):
        raise RuntimeFailure(f"invalid value {value!r} for --rootless: must be true, false or auto")
    _flag = value or "auto"


def rootless_cgroups() -> bool:
    """``--rootless``: true/false as runc (Go booleans); auto = euid != 0 or root in a user namespace."""
    if _flag in _TRUE:
        return True
    if _flag in _FALSE:
        return False
    return euid_rootless() or in_user_namespace()


def _honor_xdg() -> bool:
    """runc's rule: non-root callers (and root in a user namespace unless USER=root) use XDG_RUNTIME_DIR."""
    if euid_rootless():
        return True
    if not in_user_namespace():
        return False
    return os.environ.get("USER") != "root"


def default_root() -> str:
    """The state directory when --root is not given: $XDG_RUNTIME_DIR/pyruntime for a non-root caller
    that has one, else /run/pyruntime (runc: /run/runc, $XDG_RUNTIME_DIR/runc)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and _honor_xdg():
        return os.path.join(xdg, "pyruntime")
    return SYSTEM_ROOT


def check_root(root: str, given: bool) -> None:
    """Fail with one clear line, never a traceback, when the state directory cannot be used by this
    caller: an existing one it may not enter, or a missing one it may not create."""
    if not euid_rootless():
        return
    probe = root
    while probe and not os.path.lexists(probe):
        parent = os.path.dirname(probe.rstrip("/")) or "/"
        if parent == probe:
            break
        probe = parent
    want = os.W_OK | os.X_OK
    if os.path.isdir(probe) and os.access(probe, want):
        return
    why = (f"{probe} is not a directory" if os.path.lexists(probe) and not os.path.isdir(probe)
           else f"{probe} is not writable by uid {os.geteuid()}")
    hint = ("pass --root DIR" if given else
            "set XDG_RUNTIME_DIR (as a login session does) or pass --root DIR"
            if not os.environ.get("XDG_RUNTIME_DIR") else "pass --root DIR")
    raise RuntimeFailure(f"no usable state directory: {why}; {hint}", step="--root", path=root)


# ---------------------------------------------------------------- create-time checks


def _maps(linux: dict, key: str) -> list[tuple[int, int, int]]:
    return [(int(m["containerID"]), int(m["hostID"]), int(m["size"])) for m in linux.get(key) or []]


def _mapped(maps: list[tuple[int, int, int]], cid: int) -> bool:
    return any(c <= cid < c + n for c, _h, n in maps)


def setgroups_denied(linux: dict) -> bool:
    """runc writes "deny" exactly when an unprivileged caller maps only its own egid (no newgidmap)."""
    return euid_rootless() and _maps(linux, "gidMappings") == [(0, os.getegid(), 1)]


def check_config(cfg: dict, nss: dict) -> None:
    """What an unprivileged caller's container must satisfy (runc's rootless validator): its own user
    namespace with mappings, uid=/gid= mount options only for mapped ids, no additional groups when
    setgroups is denied."""
    linux = cfg.get("linux") or {}
    if "user" not in nss:
        raise ConfigError("linux.namespaces", "rootless container requires user namespaces "
                          "(running as uid %d)" % os.geteuid())
    if nss["user"] is None:
        for key in ("uidMappings", "gidMappings"):
            if not linux.get(key):
                raise ConfigError(f"linux.{key}", "rootless containers require at least one mapping")
    uids, gids = _maps(linux, "uidMappings"), _maps(linux, "gidMappings")
    for i, m in enumerate(cfg.get("mounts") or []):
        for opt in m.get("options") or []:
            for prefix, maps in (("uid=", uids), ("gid=", gids)):
                if opt.startswith(prefix) and opt[4:].isdigit() and nss["user"] is None \
                        and not _mapped(maps, int(opt[4:])):
                    raise ConfigError(f"mounts[{i}].options", f"cannot specify {opt} mount option for "
                                      f"rootless container: {prefix[:3]} {opt[4:]} is not mapped")
    user = (cfg.get("process") or {}).get("user") or {}
    if user.get("additionalGids") and nss["user"] is None and setgroups_denied(linux):
        raise ConfigError("process.user.additionalGids", "cannot set any additional groups in a rootless "
                          "container with a single gid mapping (setgroups is denied; map ranges through "
                          "/etc/subgid to use them)")


def clamp_rlimits(proc: dict, warn) -> None:
    """An unprivileged process may lower its limits, never raise a hard limit: a requested hard limit
    above the caller's is kept at the caller's, with a warning naming it (podman does the same)."""
    import resource
    from .spec import RLIMITS
    for i, rl in enumerate(proc.get("rlimits") or []):
        _soft, hard = resource.getrlimit(RLIMITS[rl["type"]])
        if hard == resource.RLIM_INFINITY or rl["hard"] <= hard:
            continue
        warn(f"process.rlimits[{i}] ({rl['type']}): hard limit {rl['hard']} is above this user's {hard}; "
             f"kept at {hard} (an unprivileged user can only lower limits)")
        rl["hard"] = hard
        rl["soft"] = min(rl["soft"], hard)


# ---------------------------------------------------------------- id maps


def _which(name: str) -> str | None:
    for d in (os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin").split(":") + ["/usr/bin", "/bin"]:
        p = os.path.join(d or ".", name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _run_tool(tool: str, pid: int, maps: list[tuple[int, int, int]], key: str) -> None:
    path = _which(tool)
    if path is None:
        raise RuntimeFailure(f"{tool} not found: mapping more than the caller's own id needs it (Debian: "
                             f"apt-get install uidmap) and a range in /etc/sub{key[:3]}", step=f"linux.{key}")
    argv = [path, str(pid)] + [str(x) for m in maps for x in m]
    r, w = os.pipe()
    try:
        child = os.posix_spawn(path, argv, {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                               file_actions=[(os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2),
                                             (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)])
    finally:
        os.close(w)
    out = b""
    try:
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            out += chunk
    finally:
        os.close(r)
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        text = out.decode(errors="replace").strip().splitlines()
        raise RuntimeFailure(f"{tool} failed: {text[-1] if text else 'exit status %d' % status}",
                             step=f"linux.{key}")


def write_id_maps(pid: int, linux: dict) -> None:
    """Map the new user namespace of ``pid`` (a child the caller created), as runc does: setgroups
    "deny" first for a single own-gid mapping, each map written directly, and on EPERM through
    newuidmap/newgidmap."""
    if setgroups_denied(linux):
        try:
            with open(f"/proc/{pid}/setgroups", "w") as f:
                f.write("deny")
        except FileNotFoundError:
            pass
        except OSError as e:
            raise RuntimeFailure.from_os(e, "write setgroups", f"/proc/{pid}/setgroups") from None
    for key, fname, tool in (("uidMappings", "uid_map", "newuidmap"), ("gidMappings", "gid_map", "newgidmap")):
        maps = _maps(linux, key)
        if not maps:
            continue
        text = "".join(f"{c} {h} {n}\n" for c, h, n in maps)
        try:
            with open(f"/proc/{pid}/{fname}", "w") as f:
                f.write(text)
            continue
        except PermissionError:
            if not euid_rootless():
                raise RuntimeFailure(f"permission denied writing {text.strip()!r}", step=f"write linux.{key}",
                                     path=f"/proc/{pid}/{fname}") from None
        except OSError as e:
            raise RuntimeFailure.from_os(e, f"write linux.{key}", f"/proc/{pid}/{fname}") from None
        _run_tool(tool, pid, maps, key)


# ---------------------------------------------------------------- cgroups

# linux.resources members that need a cgroup controller (devices cannot be enforced rootless: runc
# ignores it there too)
_LIMITS = ("memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma", "unified")


def requested_limits(resources: dict) -> list[str]:
    def set_(v: object) -> bool:
        if isinstance(v, dict):
            return any(set_(x) for x in v.values())
        if isinstance(v, list):
            return bool(v)
        return v is not None
    return [k for k in _LIMITS if set_(resources.get(k))]


def _denied(e: RuntimeFailure) -> bool:
    """Refusals that mean "not yours": permissions, a read-only cgroupfs, or (v2) a cgroup of the
    caller's own that has processes and so cannot pass controllers down."""
    import errno
    return e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.EBUSY)


def open_cgroup(linux: dict, cid: str, systemd: bool):
    """The container's cgroup manager, created (and limits applied), or None when a rootless caller
    may not have one and needs none.  The placement of the init is left to the caller
    (:func:`place`)."""
    from .cgroups import open_manager
    resources = linux.get("resources") or {}
    explicit = bool(linux.get("cgroupsPath"))
    # runc: without cgroupsPath, a rootless container's cgroup is the relative path <id> (below the
    # caller's own cgroup, on a pure v2 host below its parent: cgroups.open_manager)
    # (the systemd driver has its own default: user.slice, prefix runc, the id)
    mgr = open_manager(linux.get("cgroupsPath") or (cid if euid_rootless() and not systemd else None), cid,
                       systemd=systemd)
    if not requested_limits(resources) and hasattr(mgr, "enable_controllers"):
        mgr.enable_controllers = False
    try:
        mgr.create()
    except RuntimeFailure as e:
        try:
            mgr.destroy()           # whatever part of the path was made before the refusal
        except (OSError, RuntimeFailure):
            pass
        if not _denied(e) or explicit:
            raise
        limits = requested_limits(resources)
        if limits:
            raise RuntimeFailure(f"cannot set {limits[0]} limit: container could not join or create cgroup "
                                 f"({e})", step=f"linux.resources.{limits[0]}") from None
        return _unified_only(mgr)
    try:
        # the device rules need CAP_SYS_ADMIN (v1 devices.allow) or CAP_BPF (v2): never an unprivileged
        # caller's, so not tried (runc ignores their errors when rootless); root keeps them enforced
        mgr.apply({k: v for k, v in resources.items() if k != "devices"} if euid_rootless() else resources)
    except RuntimeFailure:
        mgr.destroy()
        raise
    return mgr


def _unified_only(v1mgr):
    """Hybrid host, v1 hierarchies refused: the container's directory in the unified hierarchy alone
    when the caller may make it there (a delegated subtree): it gives ps, kill --all and pause
    (cgroup.freeze needs no controller).  None when that is refused too."""
    uni = getattr(v1mgr, "unified", None)
    if uni is None:
        return None
    from .cgroups.fs2 import V2Manager
    mgr = V2Manager(uni.mount, uni.path, layout="hybrid")
    mgr.enable_controllers = False      # only reached when no limits are asked for
    try:
        mgr.create()
    except RuntimeFailure as e:
        try:
            mgr.destroy()
        except (OSError, RuntimeFailure):
            pass
        if _denied(e):
            return None
        raise
    return mgr


def place(mgr, pid: int, linux: dict) -> bool:
    """Move ``pid`` into the rootless container's cgroup; False (cgroup dropped) when the kernel refuses
    the move and no limits were asked for (e.g. the caller may not write its own cgroup.procs)."""
    try:
        mgr.add_pid(pid)
        return True
    except RuntimeFailure as e:
        if not _denied(e) or linux.get("cgroupsPath") or requested_limits(linux.get("resources") or {}):
            raise
    mgr.destroy()
    return False


# ---------------------------------------------------------------- spec --rootless


def to_rootless(cfg: dict) -> dict:
    """What ``runc spec --rootless`` does to the default config: no network namespace, a new user
    namespace mapping the caller's own uid/gid, /sys as a read-only rbind of the host's, no uid=/gid=
    mount options, no resources."""
    linux = cfg.setdefault("linux", {})
    linux["namespaces"] = [ns for ns in linux.get("namespaces", []) if ns["type"] not in ("network", "user")]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    mounts = []
    for m in cfg.get("mounts", []):
        if os.path.normpath(m["destination"]) == "/sys":
            mounts.append({"destination": "/sys", "type": "none", "source": "/sys",
                           "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
            continue
        if "options" in m:
            m["options"] = [o for o in m["options"] if not o.startswith(("uid=", "gid="))]
        mounts.append(m)
    cfg["mounts"] = mounts
    linux.pop("resources", None)
    return cfg


# ---------------------------------------------------------------- ps without a cgroup


def pidns_pids(init_pid: int) -> list[int]:
    """Host pids of the processes in the pid namespace of ``init_pid``: how ``ps`` finds a rootless
    container's processes when it has no cgroup (nothing else groups them)."""
    def ns(pid: object) -> tuple[int, int] | None:
        try:
            s = os.stat(f"/proc/{pid}/ns/pid")
        except OSError:
            return None
        return s.st_dev, s.st_ino
    target = ns(init_pid)
    if target is None:
        raise RuntimeFailure("cannot read the pid namespace of the container's init", step="ps",
                             path=f"/proc/{init_pid}/ns/pid")
    if target == ns("self"):
        raise RuntimeFailure("the container has neither a cgroup nor a pid namespace of its own: its "
                             "processes cannot be told apart from the caller's", step="ps")
    return sorted(int(n) for n in os.listdir("/proc") if n.isdigit() and ns(n) == target)
