"""The runtime-spec "features" document (features.md, features-linux.md) for ``pyruntime features``.

Why it is probed rather than written down: a client (containerd, CRI-O, podman's future versions)
uses this document to decide what it may put into config.json.  A static list would claim what a
given build or kernel cannot do.  So every entry is the intersection of two facts:

* what *this build* implements -- read from the modules and the compiled C core that are really
  present (a feature whose module is missing or does not import is not claimed);
* what *this kernel* offers -- /proc/self/ns, cap_last_cap, /proc/filesystems, seccomp(2) probes,
  the LSM switches in /sys.

The spec allows a runtime to list less than it recognises, so the intersection stays conformant;
it never lists more.  When the build says nothing either way (no module to ask), the field is
left ``None`` -- the spec's "unknown" -- rather than guessed.

Only fields defined by the spec version in ``pyruntime.SPEC_VERSION`` (1.3.0) may appear.
"""
from __future__ import annotations

import ctypes
import errno
import importlib
import os
import platform
from types import ModuleType
from typing import Any

OCI_VERSION_MIN = "1.0.0"

# Hooks of runtime-spec 1.2.0 (config.md#posix-platform-hooks), in lifecycle order.
SPEC_HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

# spec name -> /proc/self/ns entry
NAMESPACES = {"cgroup": "cgroup", "ipc": "ipc", "mount": "mnt", "network": "net", "pid": "pid",
              "time": "time", "user": "user", "uts": "uts"}

# Kernel-side values (linux/seccomp.h) used only to ask the kernel what it accepts.
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_GET_ACTION_AVAIL = 2
_SECCOMP_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    # only valid together with NEW_LISTENER (8); probed that way
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32 | 8,
}
_SECCOMP_RET = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_NOTIFY": 0x7FC00000, "SCMP_ACT_TRACE": 0x7FF00000, "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_NR_SECCOMP = {"x86_64": 317, "aarch64": 277, "ppc64le": 358, "ppc64": 358, "s390x": 348,
               "riscv64": 277, "i686": 354, "i386": 354, "armv7l": 383, "loongarch64": 277}
_NR_MOUNT_SETATTR = 442  # same number on every architecture (new syscall table)

# The mount flags table of the build's parser must hold at least these (see _mount_options).
_FLAG_OPTION_MARKERS = frozenset({"nosuid", "nodev", "noexec", "ro"})


# ------------------------------------------------------------------------------------ probes
def _optional(name: str) -> ModuleType | None:
    """Import a module of this build if it is there; a missing or broken module means "not built"."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _core() -> tuple[Any, Any] | None:
    """(ffi, lib) of the compiled C core, or None when the extension is not built."""
    mod = _optional("pyruntime._core")
    if mod is None:
        return None
    return mod.ffi, mod.lib


def _struct_fields(struct: str) -> set[str]:
    """Field names of a struct in the C core's cdef: the ground truth of what the core can be told."""
    core = _core()
    if core is None:
        return set()
    ffi, _ = core
    try:
        return {name for name, _ in ffi.typeof(struct).fields}
    except (ffi.error, TypeError, KeyError):
        return set()


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def kernel_filesystems() -> set[str]:
    """Filesystem types the kernel can mount now (/proc/filesystems)."""
    text = _read("/proc/filesystems") or ""
    return {line.split()[-1] for line in text.splitlines() if line.strip()}


def kernel_namespaces() -> set[str]:
    """Spec names of the namespaces this kernel has (an entry in /proc/self/ns)."""
    try:
        present = set(os.listdir("/proc/self/ns"))
    except OSError:
        return set()
    return {spec for spec, proc in NAMESPACES.items() if proc in present}


def kernel_cgroup_controllers() -> set[str]:
    """Controllers enabled in the kernel (v1 table in /proc/cgroups, plus the v2 root's list)."""
    found: set[str] = set()
    for line in (_read("/proc/cgroups") or "").splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4 and parts[3] == "1":
            found.add(parts[0])
    for root in ("/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/unified/cgroup.controllers"):
        found.update((_read(root) or "").split())
    return found


def _syscall(nr: int, *args: Any) -> int:
    """Raw syscall through libc; returns 0 or the errno (no exception, probes expect failures)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(nr), *args)
    return 0 if rc >= 0 else ctypes.get_errno()


def kernel_seccomp_flags() -> set[str] | None:
    """Filter flags the kernel accepts, or None if seccomp(2) cannot be asked on this machine.

    seccomp(SET_MODE_FILTER, flag, NULL) checks the flags first (EINVAL for unknown ones) and only
    then copies the program (EFAULT for NULL), so EFAULT means "flag known" and nothing is loaded.
    """
    nr = _NR_SECCOMP.get(platform.machine())
    if nr is None:
        return None
    out: set[str] = set()
    for name, value in _SECCOMP_FLAGS.items():
        err = _syscall(nr, ctypes.c_uint(_SECCOMP_SET_MODE_FILTER), ctypes.c_uint(value), None)
        if err == errno.ENOSYS:
            return None
        if err == errno.EFAULT:
            out.add(name)
    return out


def kernel_seccomp_actions() -> set[str] | None:
    """Actions the kernel can return (SECCOMP_GET_ACTION_AVAIL), or None if it cannot be asked."""
    nr = _NR_SECCOMP.get(platform.machine())
    if nr is None:
        return None
    out: set[str] = set()
    for name, ret in _SECCOMP_RET.items():
        action = ctypes.c_uint32(ret)
        err = _syscall(nr, ctypes.c_uint(_SECCOMP_GET_ACTION_AVAIL), ctypes.c_uint(0), ctypes.byref(action))
        if err in (errno.ENOSYS, errno.EINVAL) and name == "SCMP_ACT_ALLOW":
            return None  # kernel older than GET_ACTION_AVAIL (4.14): no way to ask
        if err == 0:
            out.add(name)
    return out


def kernel_has_mount_setattr() -> bool:
    """mount_setattr(2) (Linux 5.12) is what id-mapped mounts are made with."""
    return _syscall(_NR_MOUNT_SETATTR, ctypes.c_int(-1), None, ctypes.c_uint(0), None,
                    ctypes.c_size_t(0)) != errno.ENOSYS


def kernel_apparmor() -> bool:
    return (_read("/sys/module/apparmor/parameters/enabled") or "").strip() == "Y"


def kernel_selinux() -> bool:
    return "selinuxfs" in kernel_filesystems() and os.path.exists("/sys/fs/selinux/enforce")


def kernel_resctrl() -> bool:
    return "resctrl" in kernel_filesystems()


# ------------------------------------------------------------------------------- the sections
def _hooks() -> list[str] | None:
    """Hook names the build runs: the hooks module's own table, else all spec hooks if it exists."""
    mod = _optional("pyruntime.hooks")
    if mod is None:
        return None
    for attr in ("HOOK_NAMES", "NAMES", "KINDS", "PHASES"):
        table = getattr(mod, attr, None)
        if isinstance(table, (list, tuple, set, frozenset, dict)):
            names = [h for h in SPEC_HOOKS if h in table]
            if names:
                return names
    return list(SPEC_HOOKS)


def _mount_options() -> list[str] | None:
    """Option names the build's mount parser turns into mount flags or propagation.

    Read from the planner's own table (``pyruntime.mountopts.MOUNT_OPTIONS``: every option it
    implements; anything else is refused for a bind mount).  tests/core/test_mountopts.py checks
    that the two agree and that config.md's whole table is covered.
    """
    for modname in ("pyruntime.mountopts", "pyruntime.plan"):
        mod = _optional(modname)
        if mod is None:
            continue
        declared = getattr(mod, "MOUNT_OPTIONS", None)
        if isinstance(declared, (list, tuple, set, frozenset, dict)):
            return sorted(str(k) for k in declared)
        flags = getattr(mod, "FLAG_OPTS", None)
        if not isinstance(flags, dict) or not _FLAG_OPTION_MARKERS <= set(flags):
            continue
        options = set(flags)
        for name, table in vars(mod).items():
            if name.endswith("_OPTS") and name != "IGNORED_OPTS" and isinstance(table, dict):
                options.update(k for k in table if isinstance(k, str))
        return sorted(options)
    return None


def _namespaces() -> list[str]:
    """Namespaces the validator accepts and the plan can express (clone flags, cgroupns, time ns),
    limited to those the kernel has."""
    fields = _struct_fields("struct pyrt_plan")
    built = {"ipc", "mount", "network", "pid", "user", "uts"} if "clone_flags" in fields else set()
    if "unshare_cgroupns" in fields:
        built.add("cgroup")
    if "timens_fd" in fields or "timens_offsets" in fields:
        built.add("time")
    spec = _optional("pyruntime.spec")
    accepted = getattr(spec, "NAMESPACES", None) if spec is not None else None
    if isinstance(accepted, (set, frozenset, list, tuple, dict)):
        built &= set(accepted)   # what config.json validation lets through
    return sorted(built & kernel_namespaces())


def _capabilities() -> list[str]:
    """Capability names this build knows, up to the kernel's cap_last_cap, in bit order."""
    caps = _optional("pyruntime.capabilities")
    if caps is None:
        return []
    last = caps.last_cap()
    return [name for name, bit in sorted(caps.CAPS.items(), key=lambda kv: kv[1]) if bit <= last]


def _unified_only() -> bool:
    """/sys/fs/cgroup is the cgroup2 mount itself (no v1 hierarchies): the rootless systemd driver's layout."""
    try:
        from .cgroups.layout import V2, detect
        return detect().kind == V2
    except Exception:
        return False


def _cgroup() -> dict[str, bool]:
    """Cgroup managers: the drivers present in pyruntime.cgroups and the kernel's filesystems.

    systemd / systemdUser: the package declares the systemd driver in ``pyruntime.cgroups.FEATURES``,
    systemd runs (/run/systemd/system); systemdUser also needs cgroup v2 (rootless on v1 is refused).
    """
    fs = kernel_filesystems()
    pkg = _optional("pyruntime.cgroups")
    declared = getattr(pkg, "FEATURES", None) if pkg is not None else None
    if isinstance(declared, dict):
        v1, v2 = bool(declared.get("v1")), bool(declared.get("v2"))
        rdma = bool(declared.get("rdma"))
        sd_ok = os.path.isdir("/run/systemd/system")
        systemd = bool(declared.get("systemd")) and sd_ok
        systemd_user = bool(declared.get("systemdUser")) and sd_ok and _unified_only()
    else:
        names: set[str] = set()
        if pkg is not None and getattr(pkg, "__path__", None):
            import pkgutil
            names = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
        v1 = any(n in names for n in ("v1", "fs1", "fs", "legacy", "hybrid"))
        v2 = any(n in names for n in ("v2", "fs2", "unified", "hybrid"))
        rdma = False  # no driver declares rdma support
        systemd = systemd_user = False
    return {
        "v1": v1 and "cgroup" in fs,
        "v2": v2 and "cgroup2" in fs,
        "systemd": systemd,
        "systemdUser": systemd_user,
        "rdma": rdma and "rdma" in kernel_cgroup_controllers(),
    }


def _seccomp_tables(mod: ModuleType) -> dict[str, list[str]]:
    """Recognised names from the seccomp module: its features() if it has one, else its tables."""
    fn = getattr(mod, "features", None)
    if callable(fn):
        got = fn()
        if isinstance(got, dict):
            return {k: sorted(v) for k, v in got.items() if isinstance(v, (list, tuple, set, frozenset, dict))}
    out: dict[str, list[str]] = {}
    for key, attrs in (("actions", ("ACTIONS",)), ("operators", ("OPERATORS", "OPS")),
                       ("archs", ("ARCHS", "ARCHES", "ARCHITECTURES")), ("knownFlags", ("FLAGS", "KNOWN_FLAGS"))):
        for attr in attrs:
            table = getattr(mod, attr, None)
            if isinstance(table, (dict, list, tuple, set, frozenset)):
                out[key] = sorted(str(k) for k in table)
                break
    return out


def libseccomp_version() -> str | None:
    """Version of the libseccomp the C core is linked with, if the core exposes seccomp_version()."""
    core = _core()
    if core is not None:
        ffi, lib = core
        fn = getattr(lib, "seccomp_version", None)
        if fn is not None:
            v = fn()
            if v != ffi.NULL:
                return f"{v.major}.{v.minor}.{v.micro}"
    mod = _optional("pyruntime.seccomp")
    for attr in ("libseccomp_version", "LIBSECCOMP_VERSION"):
        val = getattr(mod, attr, None) if mod is not None else None
        try:
            val = val() if callable(val) else val
        except (ImportError, OSError):
            val = None  # the module is there but the core it needs is not built
        if isinstance(val, str) and val:
            return val
    return None


def _seccomp() -> dict[str, Any]:
    """Seccomp as built (pyruntime.seccomp + the core's plan fields) and as the kernel accepts it."""
    mod = _optional("pyruntime.seccomp")
    fields = _struct_fields("struct pyrt_plan")
    kernel_ok = "Seccomp:" in (_read("/proc/self/status") or "")
    if mod is None or "seccomp_prog" not in fields or not kernel_ok:
        return {"enabled": False}
    tables = _seccomp_tables(mod)
    out: dict[str, Any] = {"enabled": True}
    kernel_actions = kernel_seccomp_actions()
    if "actions" in tables:
        acts = tables["actions"]
        out["actions"] = sorted(a for a in acts if kernel_actions is None or a not in _SECCOMP_RET
                                or a in kernel_actions)
    for key in ("operators", "archs"):
        if key in tables:
            out[key] = tables[key]
    if "knownFlags" in tables:
        known = tables["knownFlags"]
        out["knownFlags"] = known
        if "supportedFlags" in tables:
            supported = set(tables["supportedFlags"])   # the module asked the kernel itself
        else:
            kflags = kernel_seccomp_flags()
            supported = set(known) if kflags is None else set(known) & kflags
        if "seccomp_flags" not in fields:
            supported = set()  # the core has no way to pass flags to seccomp(2)
        out["supportedFlags"] = sorted(f for f in supported if f in known)
    return out


def _lsm(field: str, kernel: bool) -> dict[str, bool]:
    """An LSM is supported when the core can apply its label and the kernel has the LSM on."""
    return {"enabled": field in _struct_fields("struct pyrt_plan") and kernel}


def _intel_rdt() -> dict[str, bool]:
    fields = _struct_fields("struct pyrt_plan")
    built = any("rdt" in f or "clos" in f for f in fields) or _optional("pyruntime.intelrdt") is not None
    return {"enabled": built and kernel_resctrl()}


def _net_devices() -> dict[str, bool]:
    """linux.netDevices (1.3): moved with pyroute2 by pyruntime.netdevices."""
    return {"enabled": _optional("pyruntime.netdevices") is not None}


def _memory_policy() -> dict[str, list[str]] | None:
    """linux.memoryPolicy (1.3): what pyruntime.mempolicy recognises (the spec: recognised, whether or
    not the host supports it)."""
    mp = _optional("pyruntime.mempolicy")
    if mp is None:
        return None
    return {"modes": sorted(mp.MODES), "flags": sorted(mp.FLAGS)}


def _mount_extensions() -> dict[str, dict[str, bool]]:
    """idmap: the core's mount struct must carry a user namespace for mount_setattr(MOUNT_ATTR_IDMAP)."""
    fields = _struct_fields("struct pyrt_mount")
    built = "idmap" in fields and "tree_fd" in fields
    return {"idmap": {"enabled": built and kernel_has_mount_setattr()}}


def _annotations() -> dict[str, str]:
    from . import __version__
    notes = {"org.pyruntime.version": __version__,
             "org.pyruntime.core": "cffi" if _core() is not None else "not built"}
    ver = libseccomp_version()
    if ver:
        notes["io.github.seccomp.libseccomp.version"] = ver
    return notes


def _prune(obj: Any) -> Any:
    """Drop None values: absent and null both mean "unknown" in the spec, absent reads cleaner."""
    if isinstance(obj, dict):
        return {k: _prune(v) for k, v in obj.items() if v is not None}
    return obj


def build() -> dict[str, Any]:
    """The features document for this build on this kernel."""
    from . import SPEC_VERSION
    doc = {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": SPEC_VERSION,
        "hooks": _hooks(),
        "mountOptions": _mount_options(),
        "linux": {
            "namespaces": _namespaces(),
            "capabilities": _capabilities(),
            "cgroup": _cgroup(),
            "seccomp": _seccomp(),
            "apparmor": _lsm("apparmor_profile", kernel_apparmor()),
            "selinux": _lsm("selinux_label", kernel_selinux()),
            "intelRdt": _intel_rdt(),
            "mountExtensions": _mount_extensions(),
            "netDevices": _net_devices(),
            "memoryPolicy": _memory_policy(),
        },
        "annotations": _annotations(),
    }
    return _prune(doc)

