"""Podman's default seccomp profile (containers-common's seccomp.json) -> an OCI linux.seccomp.

Podman does not pass seccomp.json to the runtime as-is: it resolves the file's conditional entries
(``includes``/``excludes`` on architectures and capabilities, ``archMap``) against the container it
is creating and writes plain OCI rules.  This module does the same resolution so the test exercises
what podman would really hand to pyruntime.
"""
from __future__ import annotations

import json
import platform
from typing import Any

PROFILE_PATH = "/usr/share/containers/seccomp.json"

# uname -m -> (Go's GOARCH, the SCMP_ARCH_* podman's archMap keys on)
_ARCH = {"x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
         "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"), "s390x": ("s390x", "SCMP_ARCH_S390X"),
         "riscv64": ("riscv64", "SCMP_ARCH_RISCV64")}


def _kernel_at_least(version: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in v.split(".")[:2])
    return parts(platform.release()) >= parts(version)


def convert(profile: dict[str, Any], bounding: list[str]) -> dict[str, Any]:
    """Resolve a containers-common profile for this machine and a container with ``bounding`` caps."""
    goarch, native = _ARCH[platform.machine()]
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    archs = list(profile.get("architectures") or [])
    if not archs:
        for entry in profile.get("archMap") or []:
            if entry["architecture"] == native:
                archs = [native] + list(entry.get("subArchitectures") or [])
    if archs:
        out["architectures"] = archs
    rules = []
    for call in profile.get("syscalls") or []:
        inc, exc = call.get("includes") or {}, call.get("excludes") or {}
        if inc.get("arches") and goarch not in inc["arches"]:
            continue
        if inc.get("caps") and not all(c in bounding for c in inc["caps"]):
            continue
        if inc.get("minKernel") and not _kernel_at_least(inc["minKernel"]):
            continue
        if exc.get("arches") and goarch in exc["arches"]:
            continue
        if exc.get("caps") and any(c in bounding for c in exc["caps"]):
            continue
        names = list(call.get("names") or ([call["name"]] if call.get("name") else []))
        if not names:
            continue
        rule: dict[str, Any] = {"names": names, "action": call["action"]}
        if call.get("errnoRet") is not None:
            rule["errnoRet"] = call["errnoRet"]
        if call.get("args"):
            rule["args"] = [{"index": a["index"], "value": a["value"], "valueTwo": a.get("valueTwo", 0),
                             "op": a["op"]} for a in call["args"]]
        rules.append(rule)
    out["syscalls"] = rules
    return out


def load(bounding: list[str]) -> dict[str, Any]:
    with open(PROFILE_PATH) as f:
        return convert(json.load(f), bounding)
