"""Process attributes: personality, scheduler, I/O priority, CPU affinity, LSM labels, time offsets.

Python validates and encodes every value here (errors name the JSON path) and fills the plan; the
container init applies them in ``_native/procattrs.c`` (before the user switch, while it still has
the privileges SCHED_FIFO, IOPRIO_CLASS_RT and attr/exec need).  ``linux.timeOffsets`` is only turned
into the text for /proc/PID/timens_offsets: the core writes it between creating the time namespace
and the first process entering it, the only time the kernel accepts it.

Choices where the spec leaves room:

* ``process.apparmorProfile`` on a host without AppArmor is an error (a profile the user asked for
  would silently not confine); ``process.selinuxLabel`` without SELinux is ignored with a warning,
  as runc and crun do (podman only sets it when SELinux is on).
* ``linux.personality.flags``: the spec defines none; the Linux persona flags are accepted by name
  (ADDR_NO_RANDOMIZE, ...) and anything else is an error.
"""
from __future__ import annotations

import os

from . import log
from .errors import ConfigError

# linux/personality.h
PER_LINUX = 0x0000
PER_LINUX32 = 0x0008
PERSONALITY_DOMAINS = {"LINUX": PER_LINUX, "LINUX32": PER_LINUX32}
PERSONALITY_FLAGS = {
    "UNAME26": 0x0020000, "ADDR_NO_RANDOMIZE": 0x0040000, "FDPIC_FUNCPTRS": 0x0080000,
    "MMAP_PAGE_ZERO": 0x0100000, "ADDR_COMPAT_LAYOUT": 0x0200000, "READ_IMPLIES_EXEC": 0x0400000,
    "ADDR_LIMIT_32BIT": 0x0800000, "SHORT_INODE": 0x1000000, "WHOLE_SECONDS": 0x2000000,
    "STICKY_TIMEOUTS": 0x4000000, "ADDR_LIMIT_3GB": 0x8000000,
}

# linux/sched.h, uapi/linux/sched/types.h
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {
    "SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
    "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10,
    "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20, "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
}
_RT_POLICIES = ("SCHED_FIFO", "SCHED_RR")

# linux/ioprio.h
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_CLASS_SHIFT = 13

TIME_CLOCKS = ("monotonic", "boottime")


def _int(value: object, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(field, f"must be an integer between {lo} and {hi}")
    return value


def _dict(value: object, field: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(field, "must be an object")
    return value


def _flags(names: object, table: dict[str, int], field: str, what: str) -> int:
    """The OR of named flags (a JSON array of ``table``'s names; absent or null: none)."""
    names = names or []
    if not isinstance(names, list):
        raise ConfigError(field, "must be an array of strings")
    value = 0
    for i, name in enumerate(names):
        if not isinstance(name, str) or name not in table:
            raise ConfigError(f"{field}[{i}]", f"unknown {what} {name!r}")
        value |= table[name]
    return value


# ------------------------------------------------------------------------------- encoders
def personality(spec: object, field: str = "linux.personality") -> int:
    """linux.personality -> the value for personality(2)."""
    spec = _dict(spec, field)
    domain = spec.get("domain")
    if not isinstance(domain, str) or domain not in PERSONALITY_DOMAINS:
        raise ConfigError(f"{field}.domain", f'must be "LINUX" or "LINUX32", not {domain!r}')
    return PERSONALITY_DOMAINS[domain] | _flags(spec.get("flags"), PERSONALITY_FLAGS, f"{field}.flags",
                                                "personality flag")


def scheduler(spec: object, field: str = "process.scheduler") -> dict[str, int]:
    """process.scheduler -> the sched_setattr(2) fields (policy, nice, priority, flags, runtime, ...)."""
    spec = _dict(spec, field)
    policy = spec.get("policy")
    if not isinstance(policy, str) or policy not in SCHED_POLICIES:
        raise ConfigError(f"{field}.policy", f"unknown policy {policy!r}")
    if policy == "SCHED_ISO":
        raise ConfigError(f"{field}.policy", "SCHED_ISO is not implemented by Linux")
    nice = _int(spec.get("nice", 0), f"{field}.nice", -20, 19)
    lo, hi = (1, 99) if policy in _RT_POLICIES else (0, 0)
    if policy in _RT_POLICIES and "priority" not in spec:
        raise ConfigError(f"{field}.priority", f"is required for {policy} (1-99)")
    priority = _int(spec.get("priority", 0), f"{field}.priority", lo, hi)
    flags = _flags(spec.get("flags"), SCHED_FLAGS, f"{field}.flags", "flag")
    times = {k: _int(spec.get(k, 0), f"{field}.{k}", 0, (1 << 64) - 1) for k in ("runtime", "deadline", "period")}
    if policy == "SCHED_DEADLINE":
        runtime, deadline, period = times["runtime"], times["deadline"], times["period"] or times["deadline"]
        if not runtime or not deadline:
            raise ConfigError(field, "SCHED_DEADLINE needs runtime and deadline (nanoseconds)")
        if not runtime <= deadline <= period:
            raise ConfigError(field, "SCHED_DEADLINE needs runtime <= deadline <= period")
    elif any(times.values()):
        raise ConfigError(field, "runtime, deadline and period are only valid with SCHED_DEADLINE")
    if policy not in ("SCHED_OTHER", "SCHED_BATCH") and "nice" in spec and nice != 0:
        raise ConfigError(f"{field}.nice", f"is only meaningful with SCHED_OTHER or SCHED_BATCH, not {policy}")
    return {"policy": SCHED_POLICIES[policy], "nice": nice, "priority": priority, "flags": flags, **times}


def io_priority(spec: object, field: str = "process.ioPriority") -> int:
    """process.ioPriority -> IOPRIO_PRIO_VALUE(class, priority)."""
    spec = _dict(spec, field)
    cls = spec.get("class")
    if not isinstance(cls, str) or cls not in IOPRIO_CLASSES:
        raise ConfigError(f"{field}.class", f"unknown class {cls!r}")
    prio = _int(spec.get("priority", 0), f"{field}.priority", 0, 7)
    return IOPRIO_CLASSES[cls] << IOPRIO_CLASS_SHIFT | prio


def cpu_list(text: object, field: str) -> str:
    """"0-3, 7" -> "0-3,7", checked against the CPUs this machine can have (possible CPUs)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(field, "must be a CPU list like \"0-3,7\"")
    limit = _possible_cpus()
    out = []
    for part in text.split(","):
        part = part.strip()
        lo_s, sep, hi_s = part.partition("-")
        try:
            lo = int(lo_s.strip(), 10)
            hi = int(hi_s.strip(), 10) if sep else lo
        except ValueError:
            raise ConfigError(field, f"bad CPU list {text!r}") from None
        if lo < 0 or hi < lo:
            raise ConfigError(field, f"bad CPU range {part!r} in {text!r}")
        if limit is not None and hi >= limit:
            raise ConfigError(field, f"CPU {hi} does not exist (this machine has CPUs 0-{limit - 1})")
        out.append(f"{lo}-{hi}" if hi != lo else str(lo))
    return ",".join(out)


def _possible_cpus() -> int | None:
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
    except OSError:
        return None
    return max(int(p.split("-")[-1]) for p in text.split(",")) + 1


def time_offsets(spec: object, field: str = "linux.timeOffsets") -> str:
    """linux.timeOffsets -> "monotonic S NS\\nboottime S NS\\n" for /proc/PID/timens_offsets."""
    spec = _dict(spec, field)
    lines = []
    for clock, off in spec.items():
        f = f"{field}.{clock}"
        if clock not in TIME_CLOCKS:
            raise ConfigError(f, 'only "monotonic" and "boottime" can be offset')
        off = _dict(off, f)
        secs = _int(off.get("secs", 0), f + ".secs", -(1 << 63), (1 << 63) - 1)
        nsecs = _int(off.get("nanosecs", 0), f + ".nanosecs", 0, 999_999_999)
        lines.append(f"{clock} {secs} {nsecs}\n")
    return "".join(lines)


# ----------------------------------------------------------------------------------- LSMs
def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def _label(value: object, field: str) -> str:
    if not isinstance(value, str) or "\n" in value or "\0" in value or len(value) > 4000:
        raise ConfigError(field, "must be a single-line string")
    return value


# ----------------------------------------------------------------------------------- plan
def fill(plan: object, ffi: object, config: dict, keep: list) -> None:
    """Validate the process attributes of ``config`` and set them in ``plan`` (struct pyrt_plan *).

    Fields not mentioned in the config keep the caller's "leave" defaults (-1 / NULL).  Every
    ffi.new object is appended to ``keep``: the plan only points at them.
    """
    process = config.get("process") or {}
    linux = config.get("linux") or {}

    def cstr(text: str) -> object:
        buf = ffi.new("char[]", text.encode())
        keep.append(buf)
        return buf

    if linux.get("personality") is not None:
        plan.personality = personality(linux["personality"])

    if process.get("scheduler") is not None:
        s = scheduler(process["scheduler"])
        plan.sched_policy, plan.sched_nice, plan.sched_priority = s["policy"], s["nice"], s["priority"]
        plan.sched_flags = s["flags"]
        plan.sched_runtime, plan.sched_deadline, plan.sched_period = s["runtime"], s["deadline"], s["period"]

    if process.get("ioPriority") is not None:
        plan.ioprio = io_priority(process["ioPriority"])

    affinity = process.get("execCPUAffinity")
    if affinity is not None:
        affinity = _dict(affinity, "process.execCPUAffinity")
        if affinity.get("initial") is not None:
            # applied by the runtime to itself before joining (exec); validated here all the same
            cpu_list(affinity["initial"], "process.execCPUAffinity.initial")
        if affinity.get("final") is not None:
            plan.cpu_affinity = cstr(cpu_list(affinity["final"], "process.execCPUAffinity.final"))

    profile = process.get("apparmorProfile")
    if profile:
        profile = _label(profile, "process.apparmorProfile")
        if not apparmor_enabled():
            raise ConfigError("process.apparmorProfile",
                              f'AppArmor is not enabled on this host, cannot apply profile "{profile}"')
        plan.apparmor_profile = cstr(profile)

    label = process.get("selinuxLabel")
    if label:
        label = _label(label, "process.selinuxLabel")
        if selinux_enabled():
            plan.selinux_label = cstr(label)
        else:
            log.warning("process.selinuxLabel: SELinux is not enabled on this host, label ignored")

    if linux.get("timeOffsets") is not None:
        namespaces = linux.get("namespaces") or []
        timens = [ns for ns in namespaces if isinstance(ns, dict) and ns.get("type") == "time"]
        if not timens:
            raise ConfigError("linux.timeOffsets", 'needs a time namespace ({"type": "time"} in linux.namespaces)')
        if timens[0].get("path"):
            raise ConfigError("linux.timeOffsets", "cannot be set when joining an existing time namespace (path)")
        text = time_offsets(linux["timeOffsets"])
        if text:
            plan.timens_offsets = cstr(text)
