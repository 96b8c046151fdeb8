"""Capability names <-> bits.  The C core applies the five sets; Python only turns names into masks.

runc's rule, followed here: a name the running kernel does not know (a capability newer than the
kernel) is ignored with a warning; a name that is not a capability at all is an error naming it.
"""
from __future__ import annotations

from .errors import ConfigError

# Numbers from linux/capability.h (stable kernel ABI).
CAPS: dict[str, int] = {name: i for i, name in enumerate([
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
])}

SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def last_cap() -> int:
    """The highest capability the running kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAPS.values())


def to_mask(names: list, field: str, last: int, warnings: list[str] | None = None) -> int:
    """Names -> bit mask; ``field`` is the JSON path used in errors (process.capabilities.bounding)."""
    if not isinstance(names, list):
        raise ConfigError(field, "must be an array of capability names")
    mask = 0
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise ConfigError(f"{field}[{i}]", "must be a string")
        key = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
        bit = CAPS.get(key)
        if bit is None:
            raise ConfigError(f"{field}[{i}]", f'unknown capability "{name}"')
        if bit > last:
            if warnings is not None:
                warnings.append(f"{field}: {name} is not supported by this kernel, ignored")
            continue
        mask |= 1 << bit
    return mask


def names(mask: int) -> list[str]:
    return [n for n, b in CAPS.items() if mask >> b & 1]
