"""Compile ``trampoline/trampoline.c`` (static, no libc) for one architecture.

One place for the supported architectures and the compile flags: ``build.py`` builds the native image
with it (and refuses any other architecture, since every container process starts through this image),
and tests/core/test_trampoline_arches.py cross-builds every supported one with the same code, so the
ports cannot rot on a host that never builds them natively.
"""
from __future__ import annotations

import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "trampoline", "trampoline.c")

# uname -m -> GNU triplet (the Debian cross toolchain's prefix: gcc-<triplet>) and qemu-user's name.
# These are the architectures runc supports that have a syscall stub and _start in trampoline.c.
ARCHES: dict[str, tuple[str, str]] = {
    "x86_64": ("x86_64-linux-gnu", "x86_64"),
    "aarch64": ("aarch64-linux-gnu", "aarch64"),
    "ppc64le": ("powerpc64le-linux-gnu", "ppc64le"),
    "s390x": ("s390x-linux-gnu", "s390x"),
    "riscv64": ("riscv64-linux-gnu", "riscv64"),
}

# -fno-pie/-no-pie: a fixed-address static image, nothing to relocate before _start runs;
# -ffreestanding: no libc calls invented by the compiler (memset/memcpy) are expected to be there
FLAGS = ["-static", "-nostdlib", "-nostartfiles", "-ffreestanding", "-Os", "-fno-stack-protector",
         "-fno-pie", "-no-pie", "-Wl,--build-id=none"]


def check_machine(machine: str) -> None:
    """Refuse an architecture trampoline.c has no port to, in one line naming it and the supported ones."""
    if machine not in ARCHES:
        raise SystemExit(f"pyruntime cannot be built on {machine}: _native/trampoline/trampoline.c (the image "
                         f"every container process starts through) has a port to {', '.join(ARCHES)} only")


def compile_trampoline(out: str, machine: str, native: bool = True) -> bytes:
    """Build the stripped trampoline for `machine` at `out` and return its bytes.  native: the host's
    own gcc and strip; otherwise the Debian cross toolchain (<triplet>-gcc, <triplet>-strip)."""
    check_machine(machine)
    prefix = "" if native else ARCHES[machine][0] + "-"
    subprocess.run([prefix + "gcc", *FLAGS, "-o", out, SOURCE], check=True)
    subprocess.run([prefix + "strip", out], check=True)
    with open(out, "rb") as f:
        return f.read()
