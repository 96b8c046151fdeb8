"""config.json → a validated dict.  Every error names the JSON path and the cause, e.g.
``config.json: linux.namespaces[2].type: unknown namespace "pdi"``.

Validation is structural (types, required fields, known enum values) and about combinations the
kernel would reject late and obscurely (a hostname without a UTS namespace, a sysctl outside the
container's namespaces).  Host-dependent checks (does a path exist) happen in plan.py.
"""
from __future__ import annotations


from .errors import ConfigError, RuntimeFailure

NAMESPACES = {"pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"}
RLIMITS = {name: i for i, name in enumerate([
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"])}
U32 = 2**32 - 1
U64 = 2**64 - 1


def _type(value: object, types: type | tuple, field: str, what: str) -> object:
    """isinstance with JSON's view of booleans: true/false are not integers (bool subclasses int)."""
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise ConfigError(field, f"must be {what}")
    return value


def _int(value: object, field: str, lo: int = 0, hi: int = U32) -> int:
    _type(value, int, field, "an integer")
    if not lo <= value <= hi:
        raise ConfigError(field, f"{value} is out of range ({lo}..{hi})")
    return value


def _strlist(value: object, field: str) -> list[str]:
    _type(value, list, field, "an array of strings")
    for i, v in enumerate(value):
        _type(v, str, f"{field}[{i}]", "a string")
    return value


def _abspath(value: object, field: str) -> str:
    _type(value, str, field, "a string")
    if not value.startswith("/"):
        raise ConfigError(field, f"{value!r} must be an absolute path")
    if "\0" in value:
        raise ConfigError(field, "contains a NUL byte")
    return value


MAX_DEPTH = 64          # far deeper than any real config; bounds every recursive walk after this one


def _path(parent: str, key: object) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def check_tree(doc: object, top: str = "", raw: bytes | None = None) -> None:
    """One iterative pass over the whole document before anything reads it: strings the kernel and C
    cannot carry (NUL bytes cut an argument short; lone surrogates cannot be encoded), numbers JSON
    cannot write back (NaN, Infinity) and nesting no config needs.  Each error names the JSON path.

    The walk carries no path strings (podman's config is ~2000 values, most of them its seccomp
    profile): each stack entry keeps its parent entry and key, and the path is spelled out only for
    an error.  ``raw``: the JSON text ``doc`` was parsed from (fastjson: strict UTF-8, no raw control
    characters in strings); without a ``\\u`` escape in it no string can hold a NUL or a lone
    surrogate, and the walk looks at containers and floats only (~3x faster: the clients' configs
    have no escapes)."""
    if raw is not None and b"\\u" not in raw and type(doc) is dict:
        _check_containers(doc, top)
        return
    stack: list = [(doc, None, None, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        entry = pop()
        v = entry[0]
        t = type(v)
        if t is str:
            if "\0" in v or not v.isascii():
                _check_str(v, entry, top)
        elif t is dict or t is list or isinstance(v, (dict, list)):
            depth = entry[3]
            if depth >= MAX_DEPTH:
                raise ConfigError(_where(entry, top), f"nested more than {MAX_DEPTH} levels deep")
            if isinstance(v, dict):
                for k, x in v.items():
                    if isinstance(k, str) and ("\0" in k or not k.isascii()):
                        _check_str(k, (k, entry, "<key>", depth + 1), top)
                    push((x, entry, k, depth + 1))
            else:
                for k, x in enumerate(v):
                    push((x, entry, k, depth + 1))
        elif isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                raise ConfigError(_where(entry, top), "number out of range")
        elif isinstance(v, str):
            _check_str(v, entry, top)


def _check_containers(doc: dict, top: str) -> None:
    """check_tree's walk over a parsed document whose strings need no look (see check_tree)."""
    stack: list = [(doc, None, None, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        entry = pop()
        v, depth = entry[0], entry[3]
        if depth >= MAX_DEPTH:
            raise ConfigError(_where(entry, top), f"nested more than {MAX_DEPTH} levels deep")
        for k, x in (v.items() if type(v) is dict else enumerate(v)):
            t = type(x)
            if t is dict or t is list:
                push((x, entry, k, depth + 1))
            elif t is float and (x != x or x in (_INF, -_INF)):
                raise ConfigError(_where((x, entry, k, depth + 1), top), "number out of range")


_INF = float("inf")


def _where(entry: tuple, top: str) -> str:
    """The JSON path of a check_tree stack entry ``(value, parent entry, key, depth)``."""
    keys = []
    while entry[1] is not None:
        keys.append(entry[2])
        entry = entry[1]
    where = top
    for k in reversed(keys):
        where = _path(where, k)
    return where or "(document)"


def _check_str(v: str, entry: tuple, top: str) -> None:
    if "\0" in v:
        raise ConfigError(_where(entry, top), "contains a NUL byte")
    try:
        v.encode()
    except UnicodeEncodeError:
        raise ConfigError(_where(entry, top), "contains an invalid unicode code point (a lone surrogate)") from None


def load(bundle: str) -> dict:
    """Read and validate ``<bundle>/config.json``."""
    import os
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise RuntimeFailure("no such file or directory", step="config.json", path=path) from None
    except OSError as e:
        raise RuntimeFailure.from_os(e, "config.json", path) from None
    from . import fastjson
    try:
        cfg = fastjson.loads(raw)
    except (ValueError, UnicodeDecodeError):
        import json      # only to word the error: line and column
        try:
            json.loads(raw)
            e: Exception = ValueError("malformed")
        except ValueError as err:
            e = err
        except RecursionError:
            e = ValueError("nested too deeply")
        raise ConfigError("(document)", f"invalid JSON: {e}") from None
    validate(cfg, raw)
    return cfg


def namespaces(cfg: dict) -> dict[str, str | None]:
    """type -> path (None = create a new one)."""
    return {ns["type"]: ns.get("path") or None for ns in cfg.get("linux", {}).get("namespaces", [])}


def validate(cfg: object, raw: bytes | None = None) -> None:
    """``raw``: the text ``cfg`` was parsed from, if it was (see check_tree)."""
    _type(cfg, dict, "(document)", "a JSON object")
    check_tree(cfg, raw=raw)
    _type(cfg.get("ociVersion", ""), str, "ociVersion", "a string")
    root = cfg.get("root")
    if root is None:
        raise ConfigError("root", "is required")
    _type(root, dict, "root", "an object")
    _type(root.get("path"), str, "root.path", "a string")
    if not root["path"]:
        raise ConfigError("root.path", "must not be empty")
    _type(root.get("readonly", False), bool, "root.readonly", "a boolean")
    proc = cfg.get("process")
    if proc is None:
        raise ConfigError("process", "is required")
    validate_process(proc, "process", walked=True)
    for key in ("hostname", "domainname"):
        if key in cfg:
            _type(cfg[key], str, key, "a string")
    _validate_mounts(cfg.get("mounts", []))
    linux = _type(cfg.get("linux", {}), dict, "linux", "an object")
    ns = _validate_namespaces(linux.get("namespaces", []))
    if cfg.get("hostname") and "uts" not in ns:
        raise ConfigError("hostname", "cannot set a hostname without a private UTS namespace")
    if cfg.get("domainname") and "uts" not in ns:
        raise ConfigError("domainname", "cannot set a domainname without a private UTS namespace")
    for key in ("uidMappings", "gidMappings"):
        validate_id_mappings(linux.get(key, []), f"linux.{key}")
    if ("uidMappings" in linux or "gidMappings" in linux) and "user" not in ns:
        raise ConfigError("linux.uidMappings", "user namespace mappings given without a user namespace")
    if "user" in ns and ns["user"] is None and not linux.get("uidMappings"):
        raise ConfigError("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings")
    _validate_devices(linux.get("devices", []))
    for key in ("maskedPaths", "readonlyPaths"):
        for i, p in enumerate(_strlist(linux.get(key, []), f"linux.{key}")):
            _abspath(p, f"linux.{key}[{i}]")
    _validate_sysctl(_type(linux.get("sysctl", {}), dict, "linux.sysctl", "an object"), ns, cfg)
    if "rootfsPropagation" in linux and (not isinstance(linux["rootfsPropagation"], str)
            or linux["rootfsPropagation"] not in PROPAGATION):
        raise ConfigError("linux.rootfsPropagation", f'unknown propagation "{linux["rootfsPropagation"]}"')
    if "cgroupsPath" in linux:
        _type(linux["cgroupsPath"], str, "linux.cgroupsPath", "a string")
    _type(linux.get("resources", {}), dict, "linux.resources", "an object")
    if linux.get("intelRdt") is not None:
        raise ConfigError("linux.intelRdt", "Intel RDT is not supported by this runtime")
    if linux.get("netDevices"):
        if ns.get("network", 1) is not None:
            raise ConfigError("linux.netDevices", "needs a new network namespace")
        from .netdevices import validate_netdevices
        validate_netdevices(linux["netDevices"])
    hooks = cfg.get("hooks")
    if hooks is not None:
        _type(hooks, dict, "hooks", "an object")
        from .hooks import validate_hooks
        validate_hooks(hooks)
    ann = _type(cfg.get("annotations", {}), dict, "annotations", "an object")
    for k, v in ann.items():
        _type(v, str, f"annotations.{k}", "a string")


def _objects(value: object, field: str) -> list[tuple[str, dict]]:
    """(``field[i]``, entry) for a JSON array of objects: the array and each entry checked, so every
    error names the exact entry."""
    out = []
    for i, entry in enumerate(_type(value, list, field, "an array")):
        f = f"{field}[{i}]"
        out.append((f, _type(entry, dict, f, "an object")))
    return out


def validate_id_mappings(maps: object, field: str) -> None:
    """An array of LinuxIDMapping (config-linux.md), for linux.*Mappings and mounts[i].*Mappings."""
    for f, m in _objects(maps, field):
        for k in ("containerID", "hostID", "size"):
            _int(m.get(k), f"{f}.{k}")


def validate_process(proc: object, f: str, walked: bool = False) -> None:
    """Also used for ``exec --process`` files; ``walked``: check_tree has been over it already (as part
    of the whole config)."""
    _type(proc, dict, f, "an object")
    if not walked:
        check_tree(proc, f)
    args = proc.get("args")
    if not args:
        raise ConfigError(f"{f}.args", "is required and must not be empty")
    _strlist(args, f"{f}.args")
    for i, e in enumerate(_strlist(proc.get("env", []), f"{f}.env")):
        if "=" not in e:
            raise ConfigError(f"{f}.env[{i}]", f'"{e}" is not of the form NAME=VALUE')
    _abspath(proc.get("cwd", "/"), f"{f}.cwd")
    _type(proc.get("terminal", False), bool, f"{f}.terminal", "a boolean")
    user = _type(proc.get("user", {}), dict, f"{f}.user", "an object")
    _int(user.get("uid", 0), f"{f}.user.uid")
    _int(user.get("gid", 0), f"{f}.user.gid")
    if "umask" in user and user["umask"] is not None:
        _int(user["umask"], f"{f}.user.umask", 0, 0o7777)
    for i, g in enumerate(_type(user.get("additionalGids", []) or [], list, f"{f}.user.additionalGids",
                                "an array")):
        _int(g, f"{f}.user.additionalGids[{i}]")
    seen = set()
    for rf, rl in _objects(proc.get("rlimits", []) or [], f"{f}.rlimits"):
        seen.add(_entry_type(rl, rf, RLIMITS, "rlimit", seen))
        soft, hard = _int(rl.get("soft"), f"{rf}.soft", 0, U64), _int(rl.get("hard"), f"{rf}.hard", 0, U64)
        if soft > hard:
            raise ConfigError(rf, f"soft limit {soft} is above the hard limit {hard}")
    caps = proc.get("capabilities")
    if caps is not None:
        _type(caps, dict, f"{f}.capabilities", "an object")
    if "oomScoreAdj" in proc:
        _int(proc["oomScoreAdj"], f"{f}.oomScoreAdj", -1000, 1000)
    _type(proc.get("noNewPrivileges", False), bool, f"{f}.noNewPrivileges", "a boolean")
    if proc.get("consoleSize") is not None:
        size = _type(proc["consoleSize"], dict, f"{f}.consoleSize", "an object")
        for k in ("height", "width"):
            _int(size.get(k), f"{f}.consoleSize.{k}", 0, 65535)
    # Windows-only fields of the process schema: never silently ignored on Linux
    if proc.get("commandLine") is not None:
        raise ConfigError(f"{f}.commandLine", "is Windows-only; use process.args on Linux")
    if user.get("username") is not None:
        raise ConfigError(f"{f}.user.username", "is Windows-only; use process.user.uid/gid on Linux")


def _entry_type(entry: dict, f: str, known: set[str] | dict[str, int], what: str,
                seen: set[str] | dict[str, str | None]) -> str:
    """The ``type`` of an object entry of a typed array (rlimits, namespaces): one of ``known`` and not
    one already ``seen`` -- a second entry of a type would silently override the first."""
    t = entry.get("type")
    if not isinstance(t, str) or t not in known:
        raise ConfigError(f"{f}.type", f'unknown {what} "{t}"')
    if t in seen:
        raise ConfigError(f"{f}.type", f'duplicate {what} "{t}"')
    return t


PROPAGATION = {"shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable"}


def _validate_mounts(mounts: object) -> None:
    for f, m in _objects(mounts, "mounts"):
        _abspath(m.get("destination"), f"{f}.destination")
        for k in ("type", "source"):
            if k in m:
                _type(m[k], str, f"{f}.{k}", "a string")
        _strlist(m.get("options", []) or [], f"{f}.options")
        for k in ("uidMappings", "gidMappings"):
            if m.get(k) is not None:
                validate_id_mappings(m[k], f"{f}.{k}")


def _validate_namespaces(nss: object) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for f, ns in _objects(nss, "linux.namespaces"):
        t = _entry_type(ns, f, NAMESPACES, "namespace", out)
        path = ns.get("path")
        if path:
            _abspath(path, f"{f}.path")
        out[t] = path or None
    return out


def _validate_devices(devs: object) -> None:
    for f, d in _objects(devs, "linux.devices"):
        _abspath(d.get("path"), f"{f}.path")
        if d.get("type") not in ("c", "b", "u", "p"):
            raise ConfigError(f"{f}.type", f'unknown device type "{d.get("type")}" (c, b, u or p)')
        if d["type"] != "p":
            _int(d.get("major"), f"{f}.major")
            _int(d.get("minor"), f"{f}.minor")
        for k in ("fileMode", "uid", "gid"):
            if d.get(k) is not None:
                _int(d[k], f"{f}.{k}")


_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def _validate_sysctl(sysctl: dict, ns: dict, cfg: dict) -> None:
    """Only namespaced sysctls, and only when the container has that namespace (as runc)."""
    for key, value in sysctl.items():
        f = f"linux.sysctl.{key}"
        _type(value, str, f, "a string")
        if not key or "/" in key or ".." in key or key.startswith("."):
            raise ConfigError(f, "invalid sysctl name")
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            need = "ipc"
        elif key.startswith("net."):
            need = "network"
        elif key in ("kernel.hostname", "kernel.domainname"):
            need = "uts"
        else:
            raise ConfigError(f, "sysctl is not in a separate kernel namespace")
        if need not in ns:
            raise ConfigError(f, f"sysctl needs a {need} namespace")
        if ns[need] and _is_own_namespace(ns[need], need):
            raise ConfigError(f, f"sysctl is not allowed in the host's {need} namespace "
                                 f"(linux.namespaces joins {ns[need]})")
        if key == "kernel.hostname" and "hostname" in cfg:
            raise ConfigError(f, 'conflicts with the "hostname" field')
        if key == "kernel.domainname" and "domainname" in cfg:
            raise ConfigError(f, 'conflicts with the "domainname" field')


_NS_PROC = {"ipc": "ipc", "network": "net", "uts": "uts"}


def _is_own_namespace(path: str, nstype: str) -> bool:
    """Is the namespace at `path` the one this runtime runs in (the host's, for a sysctl)?"""
    import os
    try:
        a, b = os.stat(path), os.stat(f"/proc/self/ns/{_NS_PROC[nstype]}")
    except OSError:
        return False        # a missing path is reported where the namespace is opened
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
