"""The configs real clients send (recorded from podman 4.3.1 and containerd 1.6.20 driving runc on this
host; see the JSON files next to this module), adapted to run on the busybox rootfs here.

Shared by ``bench_runtime.py`` and ``tests/test_imports.py``: the performance figures and the lean
start-up rule are about what clients really send, not about ``pyruntime spec``'s default.

Adaptations, each the least that lets any runtime (runc included) run the config on this host:
- ``root.path``: the busybox rootfs (podman's overlay mount no longer exists);
- ``linux.cgroupsPath``: unique per container (the recorded one is podman's/containerd's own);
- ``RLIMIT_NOFILE`` above our own hard limit dropped (without CAP_SYS_RESOURCE no runtime can raise it);
- namespace ``path``s and bind-mount sources that do not exist dropped (they belonged to the recording);
- ``process.args``: what the benchmark or test runs.
"""
from __future__ import annotations

import json
import os
import resource

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "client_configs")
CLIENTS = ("podman", "containerd")


def _rlimits(rls: list[dict]) -> list[dict]:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return [r for r in rls if not (r.get("type") == "RLIMIT_NOFILE" and hard != resource.RLIM_INFINITY
                                   and r.get("hard", 0) > hard)]


def create_config(client: str, rootfs: str, cgroups_path: str, args: list[str]) -> dict:
    """``client``'s recorded create config, adapted (see the module docstring)."""
    with open(os.path.join(HERE, f"{client}-create-config.json")) as f:
        cfg = json.load(f)
    cfg["root"] = {"path": rootfs}
    linux = cfg.setdefault("linux", {})
    linux["cgroupsPath"] = cgroups_path
    proc = cfg["process"]
    proc["args"] = list(args)
    proc["rlimits"] = _rlimits(proc.get("rlimits") or [])
    linux["namespaces"] = [n for n in linux.get("namespaces", []) if not n.get("path") or os.path.exists(n["path"])]
    cfg["mounts"] = [m for m in cfg.get("mounts", [])
                     if "bind" not in (m.get("options") or []) + [m.get("type")] or os.path.exists(m.get("source", ""))]
    return cfg


def exec_process(client: str, args: list[str] | None = None) -> dict:
    """``client``'s recorded `exec --process` document (rlimits adapted as above)."""
    with open(os.path.join(HERE, f"{client}-exec-process.json")) as f:
        proc = json.load(f)
    proc["rlimits"] = _rlimits(proc.get("rlimits") or [])
    if args is not None:
        proc["args"] = list(args)
    return proc


def write_bundle(path: str, cfg: dict) -> str:
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f)
    return path
