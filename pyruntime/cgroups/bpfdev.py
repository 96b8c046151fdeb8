"""cgroup v2 device rules: hand the validated rule list to the C core, which builds, loads and attaches
the BPF_CGROUP_DEVICE program (``_native/cgroup_bpf.c``)."""
from __future__ import annotations

import os

from ..errors import RuntimeFailure
from .resources import DeviceRule

_ACCESS = {"m": 1, "r": 2, "w": 4}   # BPF_DEVCG_ACC_MKNOD / READ / WRITE


def set_device_filter(cgroup_dir: str, rules: list[DeviceRule]) -> None:
    """Replace the device filter of ``cgroup_dir`` with one enforcing ``rules`` (last match wins)."""
    from .._core import ffi, lib
    arr = ffi.new("struct pyrt_dev_rule[]", max(len(rules), 1))
    for i, r in enumerate(rules):
        arr[i].allow = 1 if r.allow else 0
        arr[i].type = r.type.encode()
        arr[i].major = r.major
        arr[i].minor = r.minor
        arr[i].access = sum(_ACCESS[c] for c in r.access)
    err = ffi.new("char[]", 4096)
    try:
        fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure.from_os(e, "cgroup: open", cgroup_dir) from None
    try:
        rc = lib.pyrt_cgroup_set_devices(fd, arr, len(rules), err, 4096)
    finally:
        os.close(fd)
    if rc < 0:
        raise RuntimeFailure(ffi.string(err).decode(errors="replace"), path=cgroup_dir, errno=-rc)


def count_device_programs(cgroup_dir: str) -> int:
    """How many device programs are attached (tests check an update replaces rather than stacks)."""
    from .._core import lib
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        n = lib.pyrt_cgroup_count_device_progs(fd)
    finally:
        os.close(fd)
    if n < 0:
        raise OSError(-n, os.strerror(-n), cgroup_dir)
    return n
