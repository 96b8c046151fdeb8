"""Platforms (image-index.md): ``os/architecture[/variant]`` in Go's naming, matched against the host."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import ImageError

# uname -m -> (GOARCH, variant)
_MACHINES = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""), "i386": ("386", ""), "i686": ("386", ""),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"), "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"), "armv7": ("arm", "v7"), "armv6l": ("arm", "v6"), "armv5tel": ("arm", "v5"),
    "ppc64le": ("ppc64le", ""), "ppc64": ("ppc64", ""), "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""), "mips64": ("mips64", ""), "loongarch64": ("loong64", ""),
}
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
                 "i386": "386"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def from_json(cls, obj: object) -> "Platform | None":
        if not isinstance(obj, dict):
            return None
        o, a, v = obj.get("os"), obj.get("architecture"), obj.get("variant") or ""
        if not isinstance(o, str) or not isinstance(a, str) or not isinstance(v, str):
            return None
        return cls(o, a, v)


def parse(text: str) -> Platform:
    parts = text.strip().split("/")
    if len(parts) == 1 and parts[0]:
        parts = ["linux", parts[0]]
    if len(parts) not in (2, 3) or not all(parts):
        raise ImageError(f"invalid platform {text!r}: expected os/arch[/variant]", step="platform")
    arch = _ARCH_ALIASES.get(parts[1], parts[1])
    variant = parts[2] if len(parts) == 3 else ("v8" if arch == "arm64" else "")
    return Platform(parts[0], arch, variant)


def host() -> Platform:
    machine = os.uname().machine
    arch, variant = _MACHINES.get(machine, (machine, ""))
    return Platform("linux", arch, variant)


def _norm_variant(arch: str, variant: str) -> str:
    if arch == "arm64" and variant in ("", "v8"):
        return "v8"
    return variant


def rank(want: Platform, have: Platform | None) -> int | None:
    """How well ``have`` suits ``want``: lower is better, None means it cannot run there.

    A descriptor without a platform ranks last but matches (single-image layouts rarely have one).
    For 32-bit arm an older variant runs on a newer CPU (v7 host runs v6, v5 images), as in
    containerd's matcher.
    """
    if have is None:
        return 100
    if have.os != want.os:
        return None
    if _ARCH_ALIASES.get(have.architecture, have.architecture) != want.architecture:
        return None
    hv, wv = _norm_variant(want.architecture, have.variant), _norm_variant(want.architecture, want.variant)
    if hv == wv:
        return 0
    if not hv:
        return 1
    if not wv:
        # the caller did not ask for a variant: any variant will do, the plainest first
        return 2 + _variant_num(hv)
    if want.architecture == "arm" and _variant_num(hv) < _variant_num(wv):
        return 10 + (_variant_num(wv) - _variant_num(hv))
    return None


def _variant_num(v: str) -> int:
    try:
        return int(v.lstrip("v") or 0)
    except ValueError:
        return 50
