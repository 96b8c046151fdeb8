"""Image config -> runtime config.json (image-spec conversion.md).

Starts from :func:`pyruntime.defaults.default_config` (what ``pyruntime spec`` writes) and sets:

- ``process.args`` = Entrypoint + Cmd; ``process.cwd`` = WorkingDir (default ``/``);
- ``process.env``: the image's variables replace same-named defaults, others are appended; ``HOME`` from
  the user's passwd entry is added only if the image does not set it;
- ``process.user`` from ``User`` resolved through the rootfs's /etc/passwd and /etc/group (read with
  in-root resolution, never the host's files); ``additionalGids`` only for a user given by name alone;
- annotations: ``org.opencontainers.image.{os,architecture,variant,os.version,os.features,author,created,
  stopSignal,exposedPorts}`` and ``org.opencontainers.image.volumes`` (comma-separated), then
  ``Config.Labels`` on top (labels take precedence, conversion.md "Annotations");
- ``linux.uidMappings``/``gidMappings`` and a user namespace when ``--uid-map``/``--gid-map`` are given.
"""
from __future__ import annotations

import copy
import os

from .errors import ImageError


def _defaults() -> dict:
    from ..defaults import default_config
    return copy.deepcopy(default_config(terminal=False))


def _str_list(v: object, what: str) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ImageError(f"{what} must be a list of strings", step="config")
    return v


def _parse_db(data: bytes | None, nfields: int) -> list[list[str]]:
    rows = []
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= nfields:
            rows.append(parts)
    return rows


def _num(s: str) -> int | None:
    return int(s) if s.isdigit() else None


def resolve_user(spec: str, root) -> tuple[int, int, list[int] | None, str | None]:
    """``User`` -> (uid, gid, additional gids or None to leave alone, home or None)."""
    spec = spec.strip()
    user, _, group = spec.partition(":")
    passwd = _parse_db(root.read_file("etc/passwd") if root else None, 7)
    groups = _parse_db(root.read_file("etc/group") if root else None, 4)
    entry = None
    uid = _num(user) if user else 0
    if uid is None:
        entry = next((p for p in passwd if p[0] == user), None)
        if entry is None or _num(entry[2]) is None:
            raise ImageError(f"user {user!r} not found in the image's /etc/passwd", step="config User")
        uid = int(entry[2])
    else:
        entry = next((p for p in passwd if _num(p[2]) == uid), None)
    if group:
        gid = _num(group)
        if gid is None:
            g = next((g for g in groups if g[0] == group), None)
            if g is None or _num(g[2]) is None:
                raise ImageError(f"group {group!r} not found in the image's /etc/group", step="config User")
            gid = int(g[2])
    else:
        gid = _num(entry[3]) if entry is not None and _num(entry[3]) is not None else 0
    extra = None
    if user and _num(user) is None and not group:
        extra = []
        for g in groups:
            members = [m.strip() for m in g[3].split(",")]
            n = _num(g[2])
            if user in members and n is not None and n not in extra:
                extra.append(n)
    home = entry[5] if entry is not None and entry[5] else None
    return uid, gid, extra, home


def _merge_env(env: list[str], name: str, value: str, replace: bool = True) -> None:
    for i, kv in enumerate(env):
        if kv.partition("=")[0] == name:
            if replace:
                env[i] = f"{name}={value}"
            return
    env.append(f"{name}={value}")


def runtime_config(image_config: dict, root, uid_maps: list = (),
                   gid_maps: list = (), warn=None) -> dict:
    spec = _defaults()
    cfg = image_config.get("config") or {}
    proc = spec.setdefault("process", {})

    args = _str_list(cfg.get("Entrypoint"), "Entrypoint") + _str_list(cfg.get("Cmd"), "Cmd")
    if args:
        proc["args"] = args
    elif warn:
        warn(f"the image sets neither Entrypoint nor Cmd; keeping the default args {proc.get('args')}")

    wd = cfg.get("WorkingDir") or "/"
    if not isinstance(wd, str):
        raise ImageError("WorkingDir must be a string", step="config")
    proc["cwd"] = wd if wd.startswith("/") else "/" + wd

    env = list(proc.get("env") or [])
    for kv in _str_list(cfg.get("Env"), "Env"):
        name, eq, value = kv.partition("=")
        if not eq or not name:
            raise ImageError(f"invalid Env entry {kv!r} (want NAME=value)", step="config")
        _merge_env(env, name, value)

    user = cfg.get("User") or ""
    if not isinstance(user, str):
        raise ImageError("User must be a string", step="config")
    uid, gid, extra, home = resolve_user(user, root)
    u = proc.setdefault("user", {})
    u["uid"], u["gid"] = uid, gid
    if extra:
        u["additionalGids"] = extra
    if home:
        _merge_env(env, "HOME", home, replace=False)
    proc["env"] = env

    ann = dict(spec.get("annotations") or {})

    def put(key: str, value: object) -> None:
        if isinstance(value, str) and value:
            ann[key] = value

    put("org.opencontainers.image.os", image_config.get("os"))
    put("org.opencontainers.image.architecture", image_config.get("architecture"))
    put("org.opencontainers.image.variant", image_config.get("variant"))
    put("org.opencontainers.image.os.version", image_config.get("os.version"))
    feats = image_config.get("os.features")
    if isinstance(feats, list):
        put("org.opencontainers.image.os.features", ",".join(str(f) for f in feats))
    put("org.opencontainers.image.author", image_config.get("author"))
    put("org.opencontainers.image.created", image_config.get("created"))
    put("org.opencontainers.image.stopSignal", cfg.get("StopSignal"))
    for key, field in (("exposedPorts", "ExposedPorts"), ("volumes", "Volumes")):
        v = cfg.get(field)
        if isinstance(v, dict) and v:
            put(f"org.opencontainers.image.{key}", ",".join(v))
    labels = cfg.get("Labels") or {}
    if not isinstance(labels, dict):
        raise ImageError("Labels must be an object", step="config")
    for k, v in labels.items():
        if isinstance(v, str):
            ann[k] = v
    if ann:
        spec["annotations"] = ann

    spec.setdefault("root", {})["path"] = "rootfs"
    if uid_maps or gid_maps:
        linux = spec.setdefault("linux", {})
        nss = [n for n in linux.get("namespaces", []) if n.get("type") != "user"]
        nss.append({"type": "user"})
        linux["namespaces"] = nss
        linux["uidMappings"] = [r.to_json() for r in uid_maps]
        linux["gidMappings"] = [r.to_json() for r in gid_maps]
    elif os.geteuid() != 0:
        # an unprivileged caller: the rootfs is its own (owners kept as the user), so the container is
        # what `spec --rootless` makes: a user namespace mapping the caller to root, no network ns
        from ..rootless import to_rootless
        to_rootless(spec)
    return spec
