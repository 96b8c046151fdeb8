"""A compiled seccomp program (``Compiled``) and the linked libseccomp's version: what ``seccomp.compile``
returns, ``seccomp_cache`` stores and keys, and the C core loads.

A module of its own so that a cache hit (every create and exec after the first with podman's or
containerd's profile) does not import the compiler (``seccomp.py``, ~0.25 ms).
"""
from __future__ import annotations


class Compiled:
    """A profile ready for seccomp(2): ``prog`` is ``n`` struct sock_filter, ``flags`` SECCOMP_FILTER_FLAG_*.

    ``skipped``: syscall names libseccomp does not know; ``dropped_flags``: requested flags the kernel lacks.
    (A plain class, not a dataclass: importing dataclasses costs more than a create's planning.)"""

    __slots__ = ("prog", "n", "flags", "notify", "listener_path", "listener_metadata", "skipped",
                 "dropped_flags")

    def __init__(self, prog: bytes, n: int, flags: int, notify: bool, listener_path: str | None = None,
                 listener_metadata: str | None = None, skipped: list[str] | None = None,
                 dropped_flags: list[str] | None = None) -> None:
        self.prog, self.n, self.flags, self.notify = prog, n, flags, notify
        self.listener_path, self.listener_metadata = listener_path, listener_metadata
        self.skipped = skipped if skipped is not None else []
        self.dropped_flags = dropped_flags if dropped_flags is not None else []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Compiled) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return f"Compiled(n={self.n}, flags={self.flags}, notify={self.notify}, skipped={self.skipped})"


def libseccomp_version() -> str | None:
    """The version of the libseccomp the C core is linked with (it decides the compiled program)."""
    from ._core import ffi, lib   # lazily: `pyruntime --version` asks libversion first
    v = ffi.new("unsigned int[3]")
    if lib.pyrt_sc_version(v, v + 1, v + 2) != 0:
        return None
    return f"{v[0]}.{v[1]}.{v[2]}"
