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


ffibuilder = FFI()
ffibuilder.cdef(_cdef_text(os.path.join(HERE, "pyrt.h")))
for extra in sorted(glob.glob(os.path.join(HERE, "cdef", "*.h"))):
    ffibuilder.cdef(_cdef_text(extra))

_sources = sorted(glob.glob(os.path.join(HERE, "*.c")))
ffibuilder.set_source(
    "pyruntime._core",
    '#include "common.h"\n' + "".join(
        f'#include "cdef/{os.path.basename(h)}"\n' for h in sorted(glob.glob(os.path.join(HERE, "cdef", "*.h")))),
    sources=[os.path.relpath(s) if not os.path.isabs(s) else s for s in _sources],
    include_dirs=[HERE],
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
