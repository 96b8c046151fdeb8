"""``pyruntime features`` is honest: every claim is checked against the kernel, independently.

Not marked e2e: these run in the plain unit/integration run (they need no client, only the kernel
and the built core).  The kernel facts are re-derived here with their own probes, so a wrong
probe in pyruntime/features.py cannot confirm itself.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import platform
import subprocess
import sys

import pytest

from pyruntime import SPEC_VERSION
from pyruntime import features as F

# Field names runtime-spec v1.2.0 defines (features.md / features-linux.md of that tag).
TOP_KEYS = {"ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux", "annotations",
            "potentiallyUnsafeConfigAnnotations"}
# features-linux.md of runtime-spec 1.3.0 (netDevices and memoryPolicy are new in 1.3)
LINUX_KEYS = {"namespaces", "capabilities", "cgroup", "seccomp", "apparmor", "selinux", "intelRdt",
              "mountExtensions", "netDevices", "memoryPolicy"}
NS_PROC = {"cgroup": "cgroup", "ipc": "ipc", "mount": "mnt", "network": "net", "pid": "pid", "time": "time",
           "user": "user", "uts": "uts"}
NR_SECCOMP = {"x86_64": 317, "aarch64": 277}


@pytest.fixture(scope="module")
def doc() -> dict:
    return F.build()


def _filesystems() -> set[str]:
    with open("/proc/filesystems") as f:
        return {line.split()[-1] for line in f if line.strip()}


def _seccomp_call(op: int, flags: int, arg) -> int:
    nr = NR_SECCOMP.get(platform.machine())
    if nr is None:
        pytest.skip(f"no seccomp syscall number known for {platform.machine()} in this test")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(ctypes.c_long(nr), ctypes.c_uint(op), ctypes.c_uint(flags), arg)
    return 0 if rc == 0 else ctypes.get_errno()


def test_cli_prints_the_same_document(doc):
    out = subprocess.run([sys.executable, "-m", "pyruntime", "features"], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(F.__file__)), check=True).stdout
    assert json.loads(out) == doc


def test_only_fields_of_the_spec_version(doc):
    assert set(doc) <= TOP_KEYS, set(doc) - TOP_KEYS
    assert set(doc["linux"]) <= LINUX_KEYS, set(doc["linux"]) - LINUX_KEYS
    assert doc["ociVersionMax"] == SPEC_VERSION
    mn = tuple(int(x) for x in doc["ociVersionMin"].split("."))
    mx = tuple(int(x) for x in doc["ociVersionMax"].split("-")[0].split("."))
    assert mn <= mx


def test_hooks_are_spec_hooks(doc):
    if "hooks" not in doc:
        pytest.skip("this build has no hooks module: hooks reported as unknown")
    assert doc["hooks"] and set(doc["hooks"]) <= set(F.SPEC_HOOKS)


def test_namespaces_match_the_kernel(doc):
    have = set(os.listdir("/proc/self/ns"))
    listed = doc["linux"]["namespaces"]
    assert listed == sorted(set(listed))
    for ns in listed:
        assert NS_PROC[ns] in have, f"{ns} listed but /proc/self/ns/{NS_PROC[ns]} is missing"
    if F._core() is not None:   # a built core expresses every namespace type the kernel has
        from pyruntime import spec
        missing = {n for n, p in NS_PROC.items() if p in have and n in spec.NAMESPACES} - set(listed)
        assert not missing, f"kernel has {missing} but features does not list them"


def test_capabilities_stop_at_cap_last_cap(doc):
    from pyruntime.capabilities import CAPS
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    caps = doc["linux"]["capabilities"]
    assert caps == [n for n, b in sorted(CAPS.items(), key=lambda kv: kv[1]) if b <= last]
    if max(CAPS.values()) >= last:
        assert CAPS[caps[-1]] == last, "the kernel's last capability must be listed"


def test_cgroup_managers_exist_in_the_kernel(doc):
    cg = doc["linux"]["cgroup"]
    fs = _filesystems()
    assert not cg["v1"] or "cgroup" in fs
    assert not cg["v2"] or "cgroup2" in fs
    assert cg["systemd"] is False or os.path.isdir("/run/systemd/system")
    assert cg["systemdUser"] is cg["systemd"]
    with open("/proc/cgroups") as f:
        rdma = any(line.split()[0] == "rdma" for line in f if not line.startswith("#"))
    assert not cg["rdma"] or rdma


def test_seccomp_flags_and_actions_match_the_kernel(doc):
    sc = doc["linux"]["seccomp"]
    with open("/proc/self/status") as f:
        kernel = "Seccomp:" in f.read()
    if not sc["enabled"]:
        pytest.skip("seccomp disabled in this build" + ("" if kernel else " (kernel without seccomp)"))
    assert kernel
    assert set(sc["supportedFlags"]) <= set(sc["knownFlags"])
    values = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
              "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32 | 8}
    for flag in sc["knownFlags"]:
        if flag not in values:
            continue
        # NULL program: EFAULT = flag accepted, EINVAL = unknown to this kernel; nothing is loaded
        err = _seccomp_call(1, values[flag], None)
        assert err in (errno.EFAULT, errno.EINVAL), (flag, err)
        assert (flag in sc["supportedFlags"]) == (err == errno.EFAULT), (flag, errno.errorcode[err])
    rets = {"SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_NOTIFY": 0x7FC00000,
            "SCMP_ACT_ALLOW": 0x7FFF0000, "SCMP_ACT_ERRNO": 0x00050000}
    for action in sc.get("actions", []):
        if action in rets:
            v = ctypes.c_uint32(rets[action])
            assert _seccomp_call(2, 0, ctypes.byref(v)) == 0, f"{action} listed, kernel says unavailable"


def test_libseccomp_version_is_the_loaded_library(doc):
    ver = doc["annotations"].get("io.github.seccomp.libseccomp.version")
    if ver is None:
        pytest.skip("no libseccomp version reported (core built without seccomp)")
    name = ctypes.util.find_library("seccomp")
    assert name, "a version is reported but no libseccomp is installed"

    class Ver(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]
    lib = ctypes.CDLL(name)
    lib.seccomp_version.restype = ctypes.POINTER(Ver)
    v = lib.seccomp_version().contents
    assert ver == f"{v.major}.{v.minor}.{v.micro}"


def test_lsms_only_when_the_kernel_has_them(doc):
    aa = doc["linux"]["apparmor"]["enabled"]
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            kernel_aa = f.read().strip() == "Y"
    except OSError:
        kernel_aa = False
    assert not aa or kernel_aa
    assert not doc["linux"]["selinux"]["enabled"] or os.path.exists("/sys/fs/selinux/enforce")


def test_intel_rdt_and_idmap_only_when_the_kernel_has_them(doc):
    assert not doc["linux"]["intelRdt"]["enabled"] or "resctrl" in _filesystems()
    if doc["linux"]["mountExtensions"]["idmap"]["enabled"]:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
        assert (major, minor) >= (5, 12), "id-mapped mounts need mount_setattr (Linux 5.12)"


def test_mount_options_are_a_plain_sorted_list(doc):
    if "mountOptions" not in doc:
        pytest.skip("this build exposes no mount option table: mountOptions reported as unknown")
    opts = doc["mountOptions"]
    assert opts == sorted(set(opts)) and {"ro", "nosuid", "nodev", "noexec"} <= set(opts)


def test_memory_policy_lists_the_spec_constants(doc):
    """config-linux.md 1.3: the modes and flags a runtime must recognise for linux.memoryPolicy."""
    mp = doc["linux"].get("memoryPolicy")
    if mp is None:
        pytest.skip("this build has no memory policy module: reported as unknown")
    assert set(mp["modes"]) == {"MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                                "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"}
    assert set(mp["flags"]) == {"MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"}
