"""The systemd driver's translations, all pure functions (no D-Bus, no cgroupfs): cgroupsPath
``slice:prefix:name`` to a unit and its cgroup path, linux.resources to unit properties, and the
``org.systemd.property.NAME`` annotations to typed D-Bus values.

A property is ``(name, (dbus signature, value))``, the shape jeepney sends as ``a(sv)``.  Values are
systemd's, as runc passes them: limits in bytes/tasks with 2**64-1 for "infinity", CPU quota per
second in microseconds, cpusets as a little-endian bitmask.  Whatever has no unit property (or
needs a newer systemd) is still written to the scope's cgroup files afterwards, as runc does.
"""
from __future__ import annotations

import os

from ..errors import ConfigError
from .lazy import log, res

P = "linux.resources"
U64_MAX = (1 << 64) - 1
DEFAULT_PERIOD = 100000
ANNOTATION_PREFIX = "org.systemd.property."

Prop = tuple[str, tuple[str, object]]


# --- names and paths --------------------------------------------------------------------------------
def parse_cgroups_path(cgroups_path: str | None, cid: str, rootless: bool) -> tuple[str, str, str]:
    """(slice, prefix, name) from ``slice:prefix:name`` (runc: empty path = default slice, prefix
    "runc", the container id; an empty slice = system.slice, user.slice when rootless)."""
    default_slice = "user.slice" if rootless else "system.slice"
    if not cgroups_path:
        return default_slice, "runc", cid
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise ConfigError("linux.cgroupsPath", 'expected cgroupsPath to be of format "slice:prefix:name" for '
                                               f"systemd cgroups, got {cgroups_path!r} instead")
    sl, prefix, name = parts
    if not name:
        raise ConfigError("linux.cgroupsPath", f"{cgroups_path!r}: the name part is empty")
    for what, v in (("slice", sl), ("prefix", prefix), ("name", name)):
        if "/" in v or "\x00" in v or "\n" in v or v in (".", ".."):
            raise ConfigError("linux.cgroupsPath", f"{cgroups_path!r}: invalid {what} {v!r}")
    return sl or default_slice, prefix, name


def unit_name(prefix: str, name: str) -> str:
    """``prefix-name.scope``; a name that is itself a slice is used as is (kubelet's pod slices)."""
    if name.endswith(".slice"):
        return name
    return f"{prefix}-{name}.scope" if prefix else f"{name}.scope"


def expand_slice(sl: str) -> str:
    """The cgroup path of a slice as systemd lays it out: ``a-b-c.slice`` ->
    ``/a.slice/a-b.slice/a-b-c.slice``; ``-.slice`` is the root."""
    if not sl.endswith(".slice") or "/" in sl:
        raise ConfigError("linux.cgroupsPath", f"invalid slice name {sl!r}")
    base = sl[:-len(".slice")]
    if base == "-":
        return "/"
    path, prefix = "", ""
    for comp in base.split("-"):
        if not comp:
            raise ConfigError("linux.cgroupsPath", f"invalid slice name {sl!r}")
        path += f"/{prefix}{comp}.slice"
        prefix += f"{comp}-"
    return path


# --- values -----------------------------------------------------------------------------------------
def range_to_bits(text: str, field: str) -> bytes:
    """A cpu/node list ("0-2,7") as systemd's AllowedCPUs bytes: bit i of the little-endian mask."""
    mask = 0
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise ConfigError(field, f"invalid cpu/memory-node list {text!r}") from None
        if a > b or b > 65535:
            raise ConfigError(field, f"invalid range {part!r} in {text!r}")
        for i in range(a, b + 1):
            mask |= 1 << i
    if not mask:
        raise ConfigError(field, f"empty cpu/memory-node list {text!r}")
    return mask.to_bytes((mask.bit_length() + 7) // 8, "little")


def cpu_quota_props(quota: int, period: int, version: int) -> tuple[list[Prop], int]:
    """CPUQuotaPerSecUSec (+ CPUQuotaPeriodUSec on systemd >= 242) and the quota to write to cpu.max.

    systemd keeps the per-second quota in 10 ms steps; like runc, round up to the next step and
    write that same (rounded) quota to the file, so unit and cgroup agree."""
    props: list[Prop] = []
    if period and version >= 242:
        props.append(("CPUQuotaPeriodUSec", ("t", period)))
    if quota or period:
        per_sec = U64_MAX
        if quota > 0:
            per = period or DEFAULT_PERIOD
            per_sec = quota * 1000000 // per
            if per_sec % 10000:
                per_sec = (per_sec // 10000 + 1) * 10000
                quota = per_sec * per // 1000000
        props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
    return props, quota


def _dev_path(kind: str, major: int, minor: int) -> str:
    return f"/dev/{'block' if kind == 'b' else 'char'}/{major}:{minor}"


def device_props(rules: list) -> list[Prop]:
    """DevicePolicy/DeviceAllow for the effective device rules (config's, then runc's defaults).

    systemd only has an allow list.  Rules evaluate last-match-wins from "deny all"; an allow-all
    rule followed by no deny is DevicePolicy=auto; other deny-list configurations get an empty strict
    list here, like runc's temporary deny-all, and the driver's own eBPF filter (installed over the
    scope right after) enforces the exact rules."""
    allow: list = []
    allow_all = False
    for r in rules:
        if r.type == "a":
            allow_all, allow = r.allow, []
        elif r.allow:
            if not allow_all:
                allow.append(r)
        else:
            if allow_all:
                log.warning(f"{P}.devices: systemd cannot express deny rules after allowing all "
                            f"({r.v1_text()}); the unit gets an empty list, the eBPF filter is exact")
                allow_all, allow = False, []
                continue
            covered = [a for a in allow if a.type == r.type and (r.major < 0 or r.major == a.major)
                       and (r.minor < 0 or r.minor == a.minor)]
            allow = [a for a in allow if a not in covered]
            if any(_overlaps(a, r) for a in allow):
                log.warning(f"{P}.devices: deny rule {r.v1_text()!r} only partly overlaps an allowed "
                            "range; systemd's list keeps the range, the eBPF filter is exact")
    if allow_all:
        return [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
    entries: list[tuple[str, str]] = []
    for a in allow:
        prefix = "block-" if a.type == "b" else "char-"
        if a.major < 0:
            if a.minor >= 0:
                continue          # "*:n" has no systemd form (runc skips it too)
            path = prefix + "*"
        elif a.minor < 0:
            path = f"{prefix}{a.major}"
        else:
            path = _dev_path(a.type, a.major, a.minor)
        entries.append((path, a.access))
    return [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", entries))]


def _overlaps(a, r) -> bool:
    return a.type == r.type and (a.major < 0 or r.major < 0 or a.major == r.major) \
        and (a.minor < 0 or r.minor < 0 or a.minor == r.minor)


def resource_props(r: dict, version: int, *, initial: bool, v1: bool = False) -> list[Prop]:
    """Unit properties for validated linux.resources ``r`` (see module doc).  ``r`` may be updated in
    place where systemd rounds a value (cpu quota), so the cgroup file gets the same value.

    ``v1`` (hybrid and legacy hosts): the properties systemd has for cgroup v1, as runc passes them
    there: MemoryLimit, CPUShares, the CPU quota, the cpusets, BlockIOWeight, TasksMax and the device
    list.  Everything else (swap, reservation, throttles, freezer, net_cls ...) only goes to the
    files, which the fs1 driver writes after."""
    props: list[Prop] = []
    m = r.get("memory") or {}
    if m.get("limit"):
        props.append(("MemoryLimit" if v1 else "MemoryMax", ("t", U64_MAX if m["limit"] < 0 else m["limit"])))
    if m.get("reservation") and not v1:
        props.append(("MemoryLow", ("t", U64_MAX if m["reservation"] < 0 else m["reservation"])))
    if m.get("swap") and m.get("limit") and not v1:
        sw = res.swap_to_v2(m["swap"], m["limit"])
        if sw is not None:
            props.append(("MemorySwapMax", ("t", U64_MAX if sw < 0 else sw)))
    c = r.get("cpu") or {}
    if v1:
        if c.get("shares"):
            props.append(("CPUShares", ("t", c["shares"])))
    elif c.get("idle") == 1 and version >= 252:
        props.append(("CPUWeight", ("t", 0)))
    elif c.get("shares"):
        props.append(("CPUWeight", ("t", res.shares_to_weight(c["shares"]))))
    if c.get("quota") or c.get("period"):
        qp, q = cpu_quota_props(c.get("quota", 0), c.get("period", 0), version)
        props.extend(qp)
        if c.get("quota", 0) > 0:
            c["quota"] = q
    if version >= 244:
        if c.get("cpus"):
            props.append(("AllowedCPUs", ("ay", range_to_bits(c["cpus"], f"{P}.cpu.cpus"))))
        if c.get("mems"):
            props.append(("AllowedMemoryNodes", ("ay", range_to_bits(c["mems"], f"{P}.cpu.mems"))))
    p = r.get("pids") or {}
    if p.get("limit"):
        props.append(("TasksMax", ("t", U64_MAX if p["limit"] < 0 else max(p["limit"], 1))))
    b = r.get("blockIO") or {}
    if v1:
        if b.get("weight"):
            props.append(("BlockIOWeight", ("t", b["weight"])))
    else:
        props.extend(_io_props(b))
        props.extend(unified_props(r.get("unified") or {}, version))
    if "devices" in r or initial:
        props.extend(device_props(res.device_rules(r)))
    return props


def _io_props(b: dict) -> list[Prop]:
    """blockIO as cgroup v2's IO* properties."""
    props: list[Prop] = []
    if b.get("weight"):
        props.append(("IOWeight", ("t", res.blkio_to_io_weight(b["weight"]))))
    wd = [(_dev_path("b", e["major"], e["minor"]), res.blkio_to_io_weight(e["weight"]))
          for e in b.get("weightDevice", []) if e.get("weight")]
    if wd:
        props.append(("IODeviceWeight", ("a(st)", wd)))
    for key, prop in (("throttleReadBpsDevice", "IOReadBandwidthMax"),
                      ("throttleWriteBpsDevice", "IOWriteBandwidthMax"),
                      ("throttleReadIOPSDevice", "IOReadIOPSMax"),
                      ("throttleWriteIOPSDevice", "IOWriteIOPSMax")):
        ents = [(_dev_path("b", e["major"], e["minor"]), e["rate"] or U64_MAX) for e in b.get(key, [])]
        if ents:
            props.append((prop, ("a(st)", ents)))
    return props


def _u64_or_max(k: str, v: str) -> int:
    v = v.strip()
    if v == "max":
        return U64_MAX
    try:
        n = int(v)
    except ValueError:
        raise ConfigError(f"{P}.unified.{k}", f"invalid value {v!r}") from None
    if n < 0:
        raise ConfigError(f"{P}.unified.{k}", f"invalid value {v!r}")
    return n


def unified_props(u: dict, version: int) -> list[Prop]:
    """linux.resources.unified keys systemd has a property for (runc's list); the rest only go to
    the files."""
    props: list[Prop] = []
    mem = {"memory.high": "MemoryHigh", "memory.low": "MemoryLow", "memory.min": "MemoryMin",
           "memory.max": "MemoryMax", "memory.swap.max": "MemorySwapMax"}
    for k, v in u.items():
        v = str(v).strip()
        if k in mem:
            props.append((mem[k], ("t", _u64_or_max(k, v))))
        elif k == "pids.max":
            props.append(("TasksMax", ("t", max(_u64_or_max(k, v), 1))))
        elif k == "cpu.weight" and not (u.get("cpu.idle", "").strip() == "1" and version >= 252):
            props.append(("CPUWeight", ("t", _u64_or_max(k, v))))
        elif k == "cpu.idle" and v == "1" and version >= 252:
            props.append(("CPUWeight", ("t", 0)))
        elif k == "cpu.max":
            f = v.split()
            if not 1 <= len(f) <= 2:
                raise ConfigError(f"{P}.unified.{k}", f"invalid value {v!r}")
            quota = 0 if f[0] == "max" else _u64_or_max(k, f[0])
            period = _u64_or_max(k, f[1]) if len(f) == 2 else DEFAULT_PERIOD
            props.extend(cpu_quota_props(quota, period, version)[0])
        elif k in ("cpuset.cpus", "cpuset.mems") and version >= 244:
            name = "AllowedCPUs" if k == "cpuset.cpus" else "AllowedMemoryNodes"
            props.append((name, ("ay", range_to_bits(v, f"{P}.unified.{k}"))))
    return props


# --- annotations ------------------------------------------------------------------------------------
_INT_TYPES = {"byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u", "int64": "x",
              "uint64": "t", "double": "d", "boolean": "b", "string": "s"}


def _scalar(sig: str, text: str, field: str) -> object:
    text = text.strip()
    if sig == "b":
        if text not in ("true", "false"):
            raise ConfigError(field, f"expected true or false, got {text!r}")
        return text == "true"
    if sig == "s":
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            return text[1:-1]
        raise ConfigError(field, f"expected a quoted string, got {text!r}")
    if sig == "d":
        try:
            return float(text)
        except ValueError:
            raise ConfigError(field, f"expected a number, got {text!r}") from None
    try:
        n = int(text, 0)
    except ValueError:
        raise ConfigError(field, f"expected an integer, got {text!r}") from None
    bits = {"y": 8, "n": 16, "q": 16, "i": 32, "u": 32, "x": 64, "t": 64}[sig]
    lo, hi = (0, (1 << bits) - 1) if sig in "yqut" else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if not lo <= n <= hi:
        raise ConfigError(field, f"{n} out of range for D-Bus type {sig!r}")
    return n


def parse_variant(text: str, field: str) -> tuple[str, object]:
    """A GVariant text value as runc's annotations take them: ``true``, ``'str'``, ``42`` (int32),
    ``uint64 42``, ``@t 42``, ``['a', 'b']`` (array of strings)."""
    t = text.strip()
    if t.startswith("@"):
        sig, _, rest = t[1:].partition(" ")
        if sig.startswith("a") and len(sig) == 2:
            return sig, _array(sig[1], rest, field)
        if sig not in "ynqiuxtdbs" or len(sig) != 1:
            raise ConfigError(field, f"unsupported D-Bus type {sig!r}")
        return sig, _scalar(sig, rest, field)
    word, _, rest = t.partition(" ")
    if word in _INT_TYPES and rest:
        sig = _INT_TYPES[word]
        return sig, _scalar(sig, rest, field)
    if t in ("true", "false"):
        return "b", t == "true"
    if t[:1] in "'\"":
        return "s", _scalar("s", t, field)
    if t.startswith("["):
        return "as", _array("s", t, field)
    if "." in t or "e" in t.lower() and not t.lower().startswith("0x"):
        return "d", _scalar("d", t, field)
    return "i", _scalar("i", t, field)


def _array(sig: str, text: str, field: str) -> list:
    t = text.strip()
    if not (t.startswith("[") and t.endswith("]")):
        raise ConfigError(field, f"expected an array [...], got {text!r}")
    inner = t[1:-1].strip()
    return [_scalar(sig, x, field) for x in inner.split(",")] if inner else []


def annotation_props(annotations: dict) -> list[Prop]:
    """``org.systemd.property.NAME`` annotations as unit properties (runc): NAME starts with an
    upper-case letter, letters and digits only; ``...Sec`` with a lower-case letter before it is
    converted to ``...USec`` in microseconds."""
    props: list[Prop] = []
    for k, v in (annotations or {}).items():
        if not k.startswith(ANNOTATION_PREFIX):
            continue
        field = f"annotations.{k}"
        name = k[len(ANNOTATION_PREFIX):]
        if not name or not name[0].isupper() or not name.isascii() or not name.isalnum():
            raise ConfigError(field, f"invalid systemd property name {name!r}")
        if not isinstance(v, str):
            raise ConfigError(field, "expected a string value")
        sig, val = parse_variant(v, field)
        if name.endswith("Sec") and len(name) > 3 and name[-4].islower():
            if sig not in "ynqiuxtd" or isinstance(val, bool):
                raise ConfigError(field, f"{name} needs a number of seconds, got {v!r}")
            name, sig = name[:-3] + "USec", "t"
            if val < 0:
                raise ConfigError(field, f"{v!r}: negative duration")
            val = int(val * 1000000) if isinstance(val, float) else int(val) * 1000000
        props.append((name, (sig, val)))
    return props


def cgroup_dir(mount: str, slice_path: str, unit: str) -> str:
    return os.path.join(mount, slice_path.strip("/"), unit) if slice_path.strip("/") else os.path.join(mount, unit)
