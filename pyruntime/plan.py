"""Validated config + host facts → the flat ``struct pyrt_plan`` the C core executes.

Everything that can be decided on the host is decided here: mount flags, device numbers, capability
masks, the seccomp program, namespace fds, the PATH for the argv[0] lookup.  The ``Plan`` object owns
every cffi allocation and fd the struct points to; keep it alive until the child has been spawned.
"""
from __future__ import annotations

import posix           # not os: exec's path imports no os (~1 ms); create's functions import it themselves
import _stat as stat   # the C module (builtin), not stat.py

from . import capabilities
from ._core import ffi, lib
from .errors import ConfigError, RuntimeFailure
from .spec import RLIMITS

# CLONE_NEW* numbers (linux/sched.h)
NS_FLAGS = {"mount": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "user": 0x10000000,
            "pid": 0x20000000, "network": 0x40000000, "cgroup": 0x02000000, "time": 0x00000080}
NS_PROC = {"mount": "mnt", "uts": "uts", "ipc": "ipc", "user": "user", "pid": "pid",
           "network": "net", "cgroup": "cgroup", "time": "time"}
# the order namespaces are joined in: user first (its caps open the others), mount last
JOIN_ORDER = ["user", "ipc", "uts", "network", "cgroup", "mount"]

from .mountopts import MS, MS_PRIVATE, MS_SHARED, MS_SLAVE, MS_UNBINDABLE, PROP_OPTS  # noqa: F401,E402

DEFAULT_DEVICES = [("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
                   ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0)]
DEV_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


class Plan:
    """Owns a ``struct pyrt_plan`` and everything it points to."""

    def __init__(self) -> None:
        self.keep: list[object] = []
        self.fds: list[int] = []
        self.initial_cpus: str | None = None     # execCPUAffinity.initial, applied around the clone
        self.clone_into = False     # set_cgroup gave a CLONE_INTO_CGROUP fd (spawn drops it if refused)
        self.c = ffi.new("struct pyrt_plan *")
        c = self.c
        for name in ("pidns_fd", "timens_fd", "cgroup_fd", "console_fd", "sync_fd", "fifo_fd"):
            setattr(c, name, -1)
        c.umask = -1
        c.personality = -1
        c.sched_policy = -1
        c.ioprio = -1
        c.mempolicy_mode = -1
        for i in range(3):
            c.stdio_fds[i] = -1
        c.home_slot = -1

    # -- allocation helpers (the struct only holds pointers; these keep the memory alive) --
    def str(self, s: str | None) -> object:
        if s is None:
            return ffi.NULL
        p = ffi.new("char[]", s.encode())
        self.keep.append(p)
        return p

    def strv(self, items: list[str]) -> object:
        arr = ffi.new("char *[]", len(items) + 1)
        for i, s in enumerate(items):
            arr[i] = self.str(s)
        self.keep.append(arr)
        return arr

    def array(self, ctype: str, n: int) -> object:
        arr = ffi.new(f"{ctype}[]", max(n, 1))
        self.keep.append(arr)
        return arr

    def open_fd(self, path: str, field: str) -> int:
        try:
            fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError as e:
            raise RuntimeFailure.from_os(e, field, path) from None
        self.fds.append(fd)
        return fd

    def close(self) -> None:
        for fd in self.fds:
            try:
                posix.close(fd)
            except OSError:
                pass
        self.fds.clear()


def _host_cgroup_mounts() -> list[tuple[str, str, str]]:
    """(mount point, fstype, superblock options) of the host's cgroup hierarchies."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fstype, _src, sopts = right.split()[:3]
            if fstype in ("cgroup", "cgroup2"):
                out.append((left.split()[4], fstype, sopts))
    return out


def _cgroup_mounts(dest: str, flags: int, new_cgroupns: bool, cg: dict, covered: bool = False) -> list[tuple]:
    """A ``cgroup`` mount expanded for this host, showing the container its own cgroup only (runc):
    with a new cgroup namespace, fresh mounts (their root is the namespace's root); without one, binds
    of the container's own cgroup directories.  v1/hybrid: a tmpfs holding one entry per hierarchy,
    made read-only afterwards when the mount asks for ro.  ``unified`` is not exposed on hybrid hosts.
    ``covered``: an earlier rbind (a rootless container's /sys) already shows the host's cgroup2 mount
    at ``dest``; the kernel refuses the same superblock on its own mount point (EBUSY), so, as runc
    falls back to, the container's own cgroup is bound there (nothing when it has none)."""
    host = _host_cgroup_mounts()
    base = [m for m in host if m[0] == "/sys/fs/cgroup"]
    paths = cg.get("paths") or {}
    if base and base[0][1] == "cgroup2":
        own = cg.get("path") or paths.get("unified")
        if covered and not own:
            return []
        if (new_cgroupns and not covered) or not own:
            return [("cgroup2", dest, "cgroup2", flags, "", 0)]
        return [(own, dest, None, flags | MS["bind"], "", 0)]
    safe = MS["nosuid"] | MS["nodev"] | MS["noexec"]
    out = [("tmpfs", dest, "tmpfs", safe, "mode=755", 0)]
    for point, fstype, sopts in host:
        name = point[len("/sys/fs/cgroup/"):] if point.startswith("/sys/fs/cgroup/") else ""
        if not name or "/" in name or fstype != "cgroup":
            continue
        if new_cgroupns:
            keep = [o for o in sopts.split(",") if o not in ("rw", "ro")]
            out.append(("cgroup", f"{dest}/{name}", "cgroup", flags | safe, ",".join(keep), 0))
            continue
        own = next((d for d in paths.values() if d == point or d.startswith(point + "/")), None)
        if own:
            out.append((own, f"{dest}/{name}", None, flags | safe | MS["bind"], "", 0))
    if flags & MS["ro"]:
        out.append(("tmpfs", dest, "tmpfs", MS["remount"] | MS["ro"] | safe, "mode=755", 0))
    return out


def _host_cgroup_at(mounts: list[tuple], dest: str) -> bool:
    """An earlier recursive bind of a host directory holding /sys/fs/cgroup puts it at ``dest``."""
    import os
    for src, at, fstype, flags, *_ in mounts:
        if fstype is None and flags & MS["rec"] and (src == "/sys/fs/cgroup" or "/sys/fs/cgroup".startswith(src + "/")):
            if os.path.normpath(os.path.join(at, os.path.relpath("/sys/fs/cgroup", src))) == dest:
                return True
    return False


def _idmap_maps(m: dict, linux: dict, field: str, in_userns: bool) -> tuple[str, str]:
    """uid_map/gid_map text for an id-mapped mount: the mount's own mappings, else the container's
    user namespace mappings (config.md "idmap"), else an error."""
    from . import spec
    uids, gids = m.get("uidMappings"), m.get("gidMappings")
    if uids is None and gids is None:
        if not in_userns or not linux.get("uidMappings"):
            raise ConfigError(f"{field}.options", "idmap needs the mount's uidMappings and gidMappings, or a "
                                                  "user namespace with mappings")
        uids, gids = linux.get("uidMappings"), linux.get("gidMappings")
    if not uids or not gids:
        raise ConfigError(f"{field}.uidMappings", "uidMappings and gidMappings must be given together")
    text = []
    for key, maps in (("uidMappings", uids), ("gidMappings", gids)):
        spec.validate_id_mappings(maps, f"{field}.{key}")
        text.append("".join(f"{x['containerID']} {x['hostID']} {x['size']}\n" for x in maps))
    return text[0], text[1]


def fill_mounts(p: Plan, cfg: dict, bundle: str, nss: dict, in_userns: bool, cg: dict) -> None:
    import os
    from . import mountopts
    from .rootless import in_user_namespace    # create's path (container.py has it); exec's does not
    linux = cfg.get("linux", {}) or {}
    # (source, dest, fstype|None for bind, flags, data, propagation, parsed options, id-mapped tree fd)
    mounts: list[tuple] = []
    cg_dirs: set[str] = set()     # the container's own cgroup directories: create makes them after the plan
    for i, m in enumerate(cfg.get("mounts", [])):
        field = f"mounts[{i}]"
        dest = os.path.normpath(m["destination"])
        opts = m.get("options", []) or []
        mtype = m.get("type") or ""
        bind = mtype == "bind" or "bind" in opts or "rbind" in opts
        o = mountopts.parse(opts, field, bind)
        flags, prop, data = o.flags, o.prop, ",".join(o.data)
        src = m.get("source", "") or ""
        if (m.get("uidMappings") or m.get("gidMappings")) and not o.idmap:
            o.idmap = 1         # mappings without the option: still id-mapped, never dropped
        if o.idmap and not bind:
            raise ConfigError(f"{field}.options", "idmap/ridmap need a bind mount")
        if o.tmpcopyup and mtype != "tmpfs":
            raise ConfigError(f"{field}.options", '"tmpcopyup" needs "type": "tmpfs"')
        userns = -1
        if o.idmap:
            umap, gmap = _idmap_maps(m, linux, field, in_userns)
            err = ffi.new("char[]", lib.PYRT_ERR_MAX)
            userns = lib.pyrt_idmap_userns(umap.encode(), gmap.encode(), err, lib.PYRT_ERR_MAX)
            if userns < 0:
                raise RuntimeFailure(ffi.string(err).decode(errors="replace"), step=f"{field}.options")
            p.fds.append(userns)
        tree = -1
        if bind:
            if not src:
                raise ConfigError(f"{field}.source", "a bind mount needs a source")
            if not os.path.isabs(src):
                src = os.path.join(bundle, src)
            if not os.path.exists(src):
                raise RuntimeFailure("no such file or directory", step=f"{field}.source", path=src)
            if o.idmap:
                err = ffi.new("char[]", lib.PYRT_ERR_MAX)
                tree = lib.pyrt_idmapped_tree(src.encode(), int(bool(flags & MS["rec"])), int(o.idmap == 2),
                                              userns, err, lib.PYRT_ERR_MAX)
                if tree < 0:
                    raise RuntimeFailure(ffi.string(err).decode(errors="replace"), step=f"{field}.options")
                p.fds.append(tree)
            mounts.append((src, dest, None, flags, data, prop, o, tree))
        elif mtype == "cgroup":
            for t in _cgroup_mounts(dest, flags, nss.get("cgroup", 1) is None, cg, _host_cgroup_at(mounts, dest)):
                if t[2] is None:
                    cg_dirs.add(t[0])
                mounts.append((*t, o, -1))
        elif mtype == "sysfs" and (in_userns or in_user_namespace()) and "network" not in nss:
            # sysfs cannot be mounted in a user namespace that does not own the network namespace
            mounts.append(("/sys", dest, None, flags | MS["bind"] | MS["rec"], "", prop, o, -1))
        elif mtype == "mqueue" and (in_userns or in_user_namespace()) and "ipc" not in nss:
            mounts.append(("/dev/mqueue", dest, None, flags | MS["bind"] | MS["rec"], "", prop, o, -1))
        else:
            if not mtype:
                raise ConfigError(f"{field}.type", "is required for a non-bind mount")
            mounts.append((src or mtype, dest, mtype, flags, data, prop, o, -1))
    arr = p.array("struct pyrt_mount", len(mounts))
    for i, (src, dest, fstype, flags, data, prop, o, tree) in enumerate(mounts):
        a = arr[i]
        a.source, a.dest = p.str(src), p.str(dest)
        a.fstype, a.data = p.str(fstype), p.str(data or None)
        a.flags, a.propagation = flags & ~MS["bind"], prop
        a.kind = lib.PYRT_MOUNT_BIND if fstype is None else lib.PYRT_MOUNT_PLAIN
        a.dest_is_file = int(fstype is None and src not in cg_dirs and not os.path.isdir(src))
        a.attr_set, a.attr_clr = o.attr_set, o.attr_clr
        a.idmap, a.tree_fd, a.userns_fd = o.idmap, tree, -1
        a.tmpcopyup = int(o.tmpcopyup)
    p.c.mounts, p.c.n_mounts = arr, len(mounts)
    p.c.setup_dev = int(any(os.path.normpath(m["destination"]) == "/dev" for m in cfg.get("mounts", [])))


def fill_devices(p: Plan, cfg: dict, in_userns: bool) -> None:
    import os
    devs = []
    listed = set()
    for d in cfg.get("linux", {}).get("devices", []):
        mode = DEV_TYPES[d["type"]] | (d.get("fileMode", 0o666) & 0o7777)
        devs.append((os.path.normpath(d["path"]), mode, d.get("major", 0), d.get("minor", 0), d.get("uid", 0), d.get("gid", 0)))
        listed.add(os.path.normpath(d["path"]))
    for path, major, minor in DEFAULT_DEVICES:
        if path not in listed:
            devs.append((path, stat.S_IFCHR | 0o666, major, minor, 0, 0))
    if not p.c.setup_dev and not cfg.get("linux", {}).get("devices"):
        devs = []   # no fresh /dev: leave the rootfs's /dev as it is (runc does the same)
    arr = p.array("struct pyrt_device", len(devs))
    for i, (path, mode, major, minor, uid, gid) in enumerate(devs):
        a = arr[i]
        a.path, a.mode, a.major, a.minor, a.uid, a.gid = p.str(path), mode, major, minor, uid, gid
        a.host_path = p.str(path) if in_userns and os.path.exists(path) else ffi.NULL
        if in_userns and not os.path.exists(path):
            raise RuntimeFailure("cannot create a device node in a user namespace and the host has none "
                                 "to bind", step="linux.devices", path=path)
    p.c.devices, p.c.n_devices = arr, len(devs)


def fill_process(p: Plan, proc: dict, field: str = "process") -> list[str]:
    """process.* (shared by create and exec); returns warnings."""
    c = p.c
    warnings: list[str] = []
    c.argv = p.strv(proc["args"])
    env = proc.get("env", []) or []
    if any(e.startswith("HOME=") for e in env):
        c.envp = p.strv(env)
    else:
        # runc: HOME from the container's /etc/passwd for the process uid, else "/"; the C core reads
        # the file inside the container (after pivot_root / setns) and fills this slot
        c.envp = p.strv(env + ["HOME=/"])
        c.home_slot = len(env)
    path_env = next((e[5:] for e in reversed(env) if e.startswith("PATH=")), None)
    c.path_env = p.str(path_env)
    c.cwd = p.str(proc.get("cwd", "/") or "/")
    user = proc.get("user", {}) or {}
    c.uid, c.gid = user.get("uid", 0), user.get("gid", 0)
    groups = user.get("additionalGids") or []
    garr = p.array("uint32_t", len(groups))
    for i, g in enumerate(groups):
        garr[i] = g
    c.groups, c.n_groups, c.set_groups = garr, len(groups), 1
    if user.get("umask") is not None:
        c.umask = user["umask"]
    rls = proc.get("rlimits", []) or []
    rarr = p.array("struct pyrt_rlimit", len(rls))
    for i, rl in enumerate(rls):
        rarr[i].resource, rarr[i].soft, rarr[i].hard = RLIMITS[rl["type"]], rl["soft"], rl["hard"]
    c.rlimits, c.n_rlimits = rarr, len(rls)
    if "oomScoreAdj" in proc:
        c.oom_score_adj, c.set_oom_score_adj = proc["oomScoreAdj"], 1
    caps = proc.get("capabilities")
    c.cap_last = capabilities.last_cap()
    if caps is not None:
        c.set_caps = 1
        for s in capabilities.SETS:
            setattr(c, f"cap_{s}", capabilities.to_mask(caps.get(s, []) or [], f"{field}.capabilities.{s}",
                                                         c.cap_last, warnings))
    c.no_new_privs = int(bool(proc.get("noNewPrivileges", False)))
    c.terminal = int(bool(proc.get("terminal", False)))
    size = proc.get("consoleSize")
    if size:
        c.console_rows, c.console_cols = size.get("height", 0), size.get("width", 0)
    return warnings


def fill_seccomp(p: Plan, seccomp: dict | None, cache_root: str | None = None) -> object:
    """Compile linux.seccomp in the parent; the child only loads the program.  With ``cache_root`` (the
    state root) the program compiled once for this profile is reused (see seccomp_cache)."""
    if not seccomp:
        return None
    from . import seccomp_cache
    comp = seccomp_cache.compile(seccomp, "linux.seccomp", cache_root)
    if comp is None or not comp.n:
        return comp
    buf = ffi.new("char[]", comp.prog)
    p.keep.append(buf)
    p.c.seccomp_prog, p.c.seccomp_len, p.c.seccomp_flags = buf, comp.n, comp.flags
    p.c.seccomp_notify = int(bool(comp.notify))
    return comp


def fill_container_process(p: Plan, cfg: dict, proc: dict, *, joining: bool = False,
                           seccomp_cache: str | None = None, keyring: str | None = None) -> list[str]:
    """Everything about the process, for create's init and for exec alike (one builder, so the two
    cannot drift): argv/env/user/caps/rlimits/NNP, the process attributes (scheduler, ioPriority,
    execCPUAffinity, AppArmor, SELinux), linux.personality and memoryPolicy, the container's seccomp
    program, the session keyring.  ``cfg`` is the container's config; ``proc`` the process to run
    (cfg["process"] for create, exec's process); ``joining`` (exec) leaves out what only a new
    container sets up (time namespace offsets).  Returns warnings."""
    linux = cfg.get("linux", {}) or {}
    warnings = fill_process(p, proc)
    view_linux = {k: v for k, v in linux.items() if k != "timeOffsets"} if joining else linux
    fill_procattrs(p, {"process": proc, "linux": view_linux})
    if linux.get("memoryPolicy") is not None:
        from . import mempolicy
        mempolicy.fill(p.c, linux["memoryPolicy"])
    p.seccomp = fill_seccomp(p, linux.get("seccomp"), seccomp_cache)
    aff = proc.get("execCPUAffinity") or {}
    if aff.get("initial") is not None:
        # the process starts on these CPUs, inherited from the runtime at clone (protocol.spawn), until
        # it is in the container: then `final`, or every CPU the cgroup allows
        from .procattrs import cpu_list
        p.initial_cpus = cpu_list(aff["initial"], "process.execCPUAffinity.initial")
        if not aff.get("final"):
            p.c.cpu_affinity = p.str(f"0-{(posix.cpu_count() or 1) - 1}")
    if keyring:
        p.c.session_keyring = p.str(keyring)
    return warnings


def fill_procattrs(p: Plan, cfg: dict) -> None:
    proc, linux = cfg.get("process", {}), cfg.get("linux", {})
    if not any(k in proc for k in ("scheduler", "ioPriority", "execCPUAffinity", "apparmorProfile",
                                    "selinuxLabel")) and not any(
            k in linux for k in ("personality", "timeOffsets")):
        return
    from . import procattrs
    procattrs.fill(p.c, ffi, cfg, p.keep)


def build_create(cfg: dict, bundle: str, *, no_pivot: bool = False, cgroup: dict | None = None,
                 seccomp_cache: str | None = None, keyring: str | None = None) -> tuple[Plan, list[str]]:
    """The plan for a new container (namespaces, rootfs, process)."""
    import os
    from . import spec
    p = Plan()
    try:
        c = p.c
        c.mode = lib.PYRT_MODE_CREATE
        linux = cfg.get("linux", {})
        nss = spec.namespaces(cfg)
        _fill_namespaces(p, nss)
        in_userns = "user" in nss
        c.in_userns = int(in_userns)
        rootfs = cfg["root"]["path"]
        if not os.path.isabs(rootfs):
            rootfs = os.path.join(bundle, rootfs)
        rootfs = os.path.realpath(rootfs)
        if not os.path.isdir(rootfs):
            raise RuntimeFailure("no such directory", step="root.path", path=rootfs)
        c.rootfs = p.str(rootfs)
        c.rootfs_readonly = int(bool(cfg["root"].get("readonly")))
        if "rootfsPropagation" in linux:
            c.rootfs_propagation = PROP_OPTS[linux["rootfsPropagation"]]
        c.no_pivot = int(no_pivot)
        if "mount" not in nss:
            _check_no_mountns(cfg)
            c.no_mountns = 1
        c.create_cwd = 1
        if linux.get("mountLabel"):
            from .procattrs import selinux_enabled
            if selinux_enabled():
                raise ConfigError("linux.mountLabel", "SELinux mount labels are not supported by this runtime")
            warnings_pre = ["linux.mountLabel: SELinux is not enabled on this host, label ignored"]
        else:
            warnings_pre = []
        fill_mounts(p, cfg, bundle, nss, in_userns, cgroup or {})
        # runc: device nodes are bound from the host in a new user namespace, and also when the runtime
        # itself runs in one (root of rootless podman's namespace cannot mknod either)
        from .rootless import in_user_namespace
        fill_devices(p, cfg, in_userns or in_user_namespace())
        masked = linux.get("maskedPaths", []) or []
        ro = linux.get("readonlyPaths", []) or []
        c.masked, c.n_masked = p.strv(masked), len(masked)
        c.readonly, c.n_readonly = p.strv(ro), len(ro)
        c.hostname = p.str(cfg.get("hostname") or None)
        c.domainname = p.str(cfg.get("domainname") or None)
        sysctl = linux.get("sysctl", {}) or {}
        c.sysctl_keys, c.sysctl_values = p.strv(list(sysctl)), p.strv(list(sysctl.values()))
        c.n_sysctl = len(sysctl)
        warnings = fill_container_process(p, cfg, cfg["process"], seccomp_cache=seccomp_cache, keyring=keyring)
        return p, warnings_pre + warnings
    except BaseException:
        p.close()
        raise


def build_exec(cfg: dict, pid: int, proc: dict, *, seccomp_cache: str | None = None,
               keyring: str | None = None) -> tuple[Plan, list[str]]:
    """The plan for a process joining the running container whose init is `pid`: every namespace the
    config gave it (user first; pid and time through the parent, since they apply to children), then
    the same process builder as create."""
    from . import spec
    p = Plan()
    try:
        p.c.mode = lib.PYRT_MODE_EXEC
        nss = spec.namespaces(cfg)
        joins = []
        for t in nss:
            path = f"/proc/{pid}/ns/{NS_PROC[t]}"
            if t == "pid":
                p.c.pidns_fd = p.open_fd(path, "join pid namespace")
            elif t == "time":
                p.c.timens_fd = p.open_fd(path, "join time namespace")
            else:
                joins.append((JOIN_ORDER.index(t), p.open_fd(path, f"join {t} namespace"), NS_FLAGS[t]))
        set_joins(p, [(fd, fl) for _, fd, fl in sorted(joins)])
        p.c.in_userns = int("user" in nss)
        warnings = fill_container_process(p, cfg, proc, joining=True, seccomp_cache=seccomp_cache,
                                          keyring=keyring)
        return p, warnings
    except BaseException:
        p.close()
        raise


def _check_no_mountns(cfg: dict) -> None:
    """Without a mount namespace the container shares the host's mounts.  runc then mounts into the
    host's namespace; pyruntime decides otherwise: it never changes the host's mount table, enters the
    rootfs with chroot, and refuses every field that would need mounting, naming it."""
    linux = cfg.get("linux", {}) or {}
    why = "needs a mount namespace (linux.namespaces has no \"mount\"; pyruntime never mounts into " \
          "the host's mount namespace)"
    if cfg.get("mounts"):
        raise ConfigError("mounts", why)
    for key in ("maskedPaths", "readonlyPaths", "devices", "sysctl", "rootfsPropagation"):
        if linux.get(key):
            raise ConfigError(f"linux.{key}", why)
    if (cfg.get("root") or {}).get("readonly"):
        raise ConfigError("root.readonly", why)


def _fill_namespaces(p: Plan, nss: dict) -> None:
    c = p.c
    flags = 0
    joins = []
    for t, path in nss.items():
        if path is None:
            if t == "cgroup":
                c.unshare_cgroupns = 1
            elif t == "time":
                pass    # created by pyrt_spawn in the parent (offsets must be written before any process)
            else:
                flags |= NS_FLAGS[t]
        elif t == "pid":
            c.pidns_fd = p.open_fd(path, "linux.namespaces(pid).path")
        elif t == "time":
            c.timens_fd = p.open_fd(path, "linux.namespaces(time).path")
        else:
            joins.append((JOIN_ORDER.index(t), p.open_fd(path, f"linux.namespaces({t}).path"), NS_FLAGS[t]))
    c.clone_flags = flags
    set_joins(p, [(fd, fl) for _, fd, fl in sorted(joins)])
    if nss.get("time", 1) is None:
        c.timens_offsets = p.str("")  # unshare in the parent even without offsets


def set_joins(p: Plan, joins: list[tuple[int, int]]) -> None:
    arr = p.array("struct pyrt_nsjoin", len(joins))
    for i, (fd, fl) in enumerate(joins):
        arr[i].fd, arr[i].nstype = fd, fl
    p.c.join, p.c.n_join = arr, len(joins)


# --- what the runtime side adds to a built plan (create and exec use the same setters) -------------

def set_cgroup(p: Plan, fd: int | None, tasks: list[int] | None = None) -> None:
    """The cgroup v2 directory fd for CLONE_INTO_CGROUP and the cgroup v1 `tasks` files the child
    writes itself into (Manager.birth_fds; all owned by the plan from now on)."""
    if fd is not None:
        p.fds.append(fd)
        p.c.cgroup_fd = fd
        p.clone_into = True
    if tasks:
        p.fds.extend(tasks)
        arr = p.array("int", len(tasks))
        for i, t in enumerate(tasks):
            arr[i] = t
        p.c.cgroup_tasks, p.c.n_cgroup_tasks = arr, len(tasks)


def born_in_cgroup(p: Plan) -> bool:
    """After the spawn: was the process placed in its cgroups at birth, every fd set_cgroup gave
    used?  When the kernel refuses CLONE_INTO_CGROUP protocol.spawn clones without it, and a join by
    cgroup.procs (Manager.add_pid, cgroups.base.join) must follow."""
    c = p.c
    if p.clone_into:
        return c.cgroup_fd >= 0
    return c.n_cgroup_tasks > 0


def set_console(p: Plan, *, socket_path: str | None = None, fd: int | None = None, wait: bool = False) -> None:
    """process.terminal: where the pty master goes (a --console-socket path, or a connected socket
    fd of ours); ``wait``: the child pauses after sending it so the caller can size the pty."""
    if socket_path:
        import _socket as socket
        csock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        p.keep.append(csock)
        try:
            csock.connect(socket_path)
        except OSError as e:
            raise RuntimeFailure.from_os(e, "connect console socket", socket_path) from None
        fd = csock.fileno()
    if fd is not None:
        p.c.console_fd = fd
        p.c.console_wait = int(wait)


def set_stdio(p: Plan, fds) -> None:
    """The pipes the runtime relays in place of a terminal on its own stdio (see stdiorelay.py)."""
    for i, fd in enumerate(fds or ()):
        p.c.stdio_fds[i] = fd


def set_preserve_fds(p: Plan, n: int) -> None:
    p.c.preserve_fds = n


def set_exec_sock(p: Plan, listening_fd: int) -> None:
    """create: the listening exec.sock the init accepts `start` on."""
    p.c.fifo_fd = listening_fd


def set_hooks(p: Plan, hooks: dict) -> None:
    """create: startContainer hooks (run by the waiting init), and whether the child stops before pivot_root
    for prestart/createRuntime/createContainer (with room for the state JSON that comes back)."""
    if hooks.get("startContainer"):
        set_start_hooks(p, hooks["startContainer"])
    p.c.sync_hooks = int(any(hooks.get(k) for k in ("prestart", "createRuntime", "createContainer",
                                                     "startContainer")))
    if p.c.sync_hooks:
        set_state_buffer(p)


def set_start_hooks(p: Plan, hooks: list[dict]) -> None:
    arr = p.array("struct pyrt_hook", len(hooks))
    for i, h in enumerate(hooks):
        arr[i].path = p.str(h["path"])
        arr[i].argv = p.strv(h.get("args") or [h["path"]])
        arr[i].envp = p.strv(h.get("env") or [])
        arr[i].timeout = h.get("timeout") or 0
    p.c.start_hooks, p.c.n_start_hooks = arr, len(hooks)


def set_state_buffer(p: Plan, cap: int | None = None) -> None:
    """Room for the state JSON the parent sends with the second GO (read by startContainer hooks)."""
    cap = cap or lib.PYRT_STATE_MAX
    p.c.state_buf = p.array("char", cap)
    p.c.state_cap = cap
