"""The linked libseccomp's version for `--version`, without loading the C core.

Why: `--version` is a start-up-only command (podman shows its output in `podman info`); loading the
cffi backend, the core and libseccomp costs it several milliseconds of relocations.  The version is
in the name of the file the dynamic loader picks for ``libseccomp.so.2`` on Debian-style systems
(``libseccomp.so.2.5.4``), so we resolve that name the way ld.so's default configuration does.  When
that is not conclusive (LD_LIBRARY_PATH set, no such file, a name without a version) we ask the
library itself through the core, as before.
"""
from __future__ import annotations

import os
import sys

SONAME = "libseccomp.so.2"


def _search_dirs() -> list[str]:
    arch = getattr(sys.implementation, "_multiarch", "") or ""
    dirs = ["/usr/local/lib"]
    if arch:
        dirs += [f"/usr/local/lib/{arch}", f"/lib/{arch}", f"/usr/lib/{arch}"]
    return dirs + ["/lib64", "/usr/lib64", "/lib", "/usr/lib"]


def from_file_name() -> str | None:
    if os.environ.get("LD_LIBRARY_PATH") or os.environ.get("LD_PRELOAD"):
        return None
    for d in _search_dirs():
        path = os.path.join(d, SONAME)
        if os.path.exists(path):
            name = os.path.basename(os.path.realpath(path))
            rest = name[len(SONAME) - 1:] if name.startswith(SONAME[:-1]) else ""   # "2.5.4"
            parts = rest.split(".")
            if len(parts) == 3 and all(p.isdigit() for p in parts):
                return rest
            return None
    return None


def libseccomp_version() -> str | None:
    v = from_file_name()
    if v is not None:
        return v
    try:
        from .seccomp import libseccomp_version as from_library
        return from_library()
    except Exception:      # a build without the C core: say nothing rather than guess
        return None
