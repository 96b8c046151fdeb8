"""cffi builder (API mode) for ``pyruntime._core``.

Every ``_native/*.c`` file is compiled in; the cdef is ``pyrt.h`` plus every ``_native/cdef/*.h`` (one per
concern, so engineers adding a C file never edit a shared list).  Run directly to build in place:
``python _native/build.py`` (the Makefile does), or through setuptools' ``cffi_modules`` at install.
"""
from __future__ import annotations

import glob
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def _cdef_text(path: str) -> str:
    with open(path) as f:
        return "".join(line for line in f if not line.lstrip().startswith("#"))


def _trampoline_build():
    """_native/trampoline_build.py, loaded by path: setuptools runs this file without _native on sys.path."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("trampoline_build", os.path.join(HERE, "trampoline_build.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _embed_trampoline(build_dir: str) -> None:
    """Compile trampoline/trampoline.c (static, no libc) for this machine and write it as a C array
    header.  Every container process starts through it (the created init waits for `start` as it), so
    an architecture it has no port to is refused here rather than built without it."""
    import platform
    tb = _trampoline_build()
    tb.check_machine(platform.machine())
    os.makedirs(build_dir, exist_ok=True)
    hdr = os.path.join(build_dir, "trampoline_bin.h")
    data = tb.compile_trampoline(os.path.join(build_dir, "trampoline"), platform.machine())
    body = ",".join(str(b) for b in data)
    text = (f"static const unsigned char pyrt_trampoline[] = {{{body}}};\n"
            f"static const size_t pyrt_trampoline_len = {len(data)};\n")
    if not os.path.exists(hdr) or open(hdr).read() != text:
        with open(hdr, "w") as f:
            f.write(text)


BUILD = os.path.join(os.path.dirname(HERE), "build")
_embed_trampoline(BUILD)

ffibuilder = FFI()
ffibuilder.cdef(_cdef_text(os.path.join(HERE, "pyrt.h")))
for extra in sorted(glob.glob(os.path.join(HERE, "cdef", "*.h"))):
    ffibuilder.cdef(_cdef_text(extra))

_sources = sorted(glob.glob(os.path.join(HERE, "*.c")))
ffibuilder.set_source(
    "pyruntime._core",
    '#include "common.h"\n' + "".join(
        f'#include "cdef/{os.path.basename(h)}"\n' for h in sorted(glob.glob(os.path.join(HERE, "cdef", "*.h")))),
    # setuptools (cffi_modules) refuses absolute source paths and builds from the project root; run
    # directly, cffi compiles from inside its tmpdir, where only absolute paths resolve
    sources=_sources if __name__ == "__main__" else [os.path.relpath(s, os.path.dirname(HERE)) for s in _sources],
    include_dirs=[HERE, BUILD],
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-D_GNU_SOURCE", "-std=gnu11"],
)

if __name__ == "__main__":
    root = os.path.dirname(HERE)
    os.chdir(root)
    import shutil
    built = ffibuilder.compile(tmpdir=os.path.join(root, "build"), verbose=False)
    dest = os.path.join(root, "pyruntime", os.path.basename(built))
    shutil.copy2(built, dest + ".tmp")
    os.replace(dest + ".tmp", dest)     # atomic: a running import never sees half a file
