"""The linked libseccomp's version for `--version`, without loading the C core.

Why: `--version` is a start-up-only command (podman shows its output in `podman info`); loading the
cffi backend, the core and libseccomp costs it several milliseconds of relocations.  The version is
in the name of the file the dynamic loader picks for ``libseccomp.so.2`` on Debian-style systems
(``libseccomp.so.2.5.4``), so we resolve that name the way ld.so's default configuration does.  When
that is not conclusive (LD_LIBRARY_PATH set, no such file, a name without a version) we ask the
library itself through the core, as before.
"""

import posix   # not os: see fastos.py
import sys

from .fastos import exists, getenv, join

SONAME = "libseccomp.so.2"


def _search_dirs() -> list[str]:
    arch = getattr(sys.implementation, "_multiarch", "") or ""
    dirs = ["/usr/local/lib"]
    if arch:
        dirs += [f"/usr/local/lib/{arch}", f"/lib/{arch}", f"/usr/lib/{arch}"]
    return dirs + ["/lib64", "/usr/lib64", "/lib", "/usr/lib"]


def from_file_name() -> str | None:
    if getenv("LD_LIBRARY_PATH") or getenv("LD_PRELOAD"):
        return None
    for d in _search_dirs():
        path = join(d, SONAME)
        if exists(path):
            name = _final_name(path)
            rest = name[len(SONAME) - 1:] if name.startswith(SONAME[:-1]) else ""   # "2.5.4"
            parts = rest.split(".")
            if len(parts) == 3 and all(p.isdigit() for p in parts):
                return rest
            return None
    return None


def _final_name(path: str) -> str:
    """The file name `path` resolves to (os.path.realpath's last component): only the last component's
    symlinks can change it, and the soname link is one (libseccomp.so.2 -> libseccomp.so.2.5.4)."""
    for _ in range(40):
        try:
            target = posix.readlink(path)
        except OSError:      # not a symlink (EINVAL): this is the file
            break
        path = target if target.startswith("/") else join(path.rsplit("/", 1)[0], target)
    return path.rsplit("/", 1)[-1]


def libseccomp_version() -> str | None:
    v = from_file_name()
    if v is not None:
        return v
    try:
        from .seccomp import libseccomp_version as from_library
        return from_library()
    except Exception:      # a build without the C core: say nothing rather than guess
        return None
