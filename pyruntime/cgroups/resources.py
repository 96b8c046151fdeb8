"""linux.resources: validation (errors name the JSON field) and the unit conversions runc applies.

Drivers receive the dict this module returns: the same keys as config.json, every value checked for
type and range, so a driver only maps values to files.  Validation happens in full before any file is
written, so a bad field never leaves a half-configured cgroup behind.
"""
from __future__ import annotations

from ..errors import ConfigError

P = "linux.resources"
U64_MAX = (1 << 64) - 1
I64_MAX = (1 << 63) - 1
_CPUSET_RE = r"^\s*\d+(-\d+)?(\s*,\s*\d+(-\d+)?)*\s*$"
_PAGESIZE_RE = r"^(\d+)(KB|MB|GB|TB|PB)$"


def _match(pattern: str, text: str):
    """re, imported only when a cpuset, hugepage size or size string is really given: importing it
    costs more than the rest of a `create` on the common path."""
    import re
    return re.match(pattern, text)


def _int(v: object, field: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(field, f"expected an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise ConfigError(field, f"{v} is out of range [{lo}, {hi}]")
    return v


def _opt_int(d: dict, key: str, base: str, lo: int, hi: int, out: dict) -> None:
    if key in d and d[key] is not None:
        out[key] = _int(d[key], f"{base}.{key}", lo, hi)


def _obj(v: object, field: str) -> dict:
    if not isinstance(v, dict):
        raise ConfigError(field, f"expected an object, got {type(v).__name__}")
    return v


def _list(v: object, field: str) -> list:
    if not isinstance(v, list):
        raise ConfigError(field, f"expected an array, got {type(v).__name__}")
    return v


def _cpuset(v: object, field: str) -> str:
    if not isinstance(v, str):
        raise ConfigError(field, f"expected a string, got {type(v).__name__}")
    if v.strip() and not _match(_CPUSET_RE, v):
        raise ConfigError(field, f"invalid cpu/memory-node list {v!r} (expected a list like \"0-2,4\")")
    return v.replace(" ", "")


class DeviceRule:
    """One device cgroup rule; major/minor -1 is the wildcard '*'.  Immutable value (a slotted class,
    not a frozen dataclass, to keep dataclasses off the create path)."""

    __slots__ = ("allow", "type", "major", "minor", "access")

    def __init__(self, allow: bool, type: str, major: int, minor: int, access: str) -> None:
        for k, v in (("allow", allow), ("type", type), ("major", major), ("minor", minor), ("access", access)):
            object.__setattr__(self, k, v)     # type: a | b | c; access: subset of "rwm"

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError("DeviceRule is immutable")

    def _key(self) -> tuple:
        return (self.allow, self.type, self.major, self.minor, self.access)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeviceRule) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "DeviceRule(allow=%r, type=%r, major=%r, minor=%r, access=%r)" % self._key()

    def v1_text(self) -> str:
        if self.type == "a":
            return "a"
        mj = "*" if self.major < 0 else str(self.major)
        mn = "*" if self.minor < 0 else str(self.minor)
        return f"{self.type} {mj}:{mn} {self.access}"


# runc's default allowed devices, appended after linux.resources.devices so a config that denies
# everything first still gets a working /dev (null, zero, full, tty, random, urandom, ptmx, pts, tun).
DEFAULT_DEVICES: tuple[DeviceRule, ...] = (
    DeviceRule(True, "c", -1, -1, "m"),
    DeviceRule(True, "b", -1, -1, "m"),
    DeviceRule(True, "c", 1, 3, "rwm"),     # /dev/null
    DeviceRule(True, "c", 1, 8, "rwm"),     # /dev/random
    DeviceRule(True, "c", 1, 7, "rwm"),     # /dev/full
    DeviceRule(True, "c", 5, 0, "rwm"),     # /dev/tty
    DeviceRule(True, "c", 1, 5, "rwm"),     # /dev/zero
    DeviceRule(True, "c", 1, 9, "rwm"),     # /dev/urandom
    DeviceRule(True, "c", 136, -1, "rwm"),  # /dev/pts/*
    DeviceRule(True, "c", 5, 2, "rwm"),     # /dev/ptmx
    DeviceRule(True, "c", 10, 200, "rwm"),  # /dev/net/tun
)


def _device_rules(v: object) -> list[DeviceRule]:
    rules = []
    for i, d in enumerate(_list(v, f"{P}.devices")):
        f = f"{P}.devices[{i}]"
        d = _obj(d, f)
        if not isinstance(d.get("allow"), bool):
            raise ConfigError(f"{f}.allow", "required boolean")
        t = d.get("type") or "a"
        if t not in ("a", "b", "c"):
            raise ConfigError(f"{f}.type", f"invalid device type {t!r} (expected a, b or c)")
        mj = -1 if d.get("major") is None else _int(d["major"], f"{f}.major", -1, (1 << 32) - 1)
        mn = -1 if d.get("minor") is None else _int(d["minor"], f"{f}.minor", -1, (1 << 32) - 1)
        acc = d.get("access") or "rwm"
        if not isinstance(acc, str) or not acc or set(acc) - set("rwm") or len(set(acc)) != len(acc):
            raise ConfigError(f"{f}.access", f"invalid access {acc!r} (a combination of r, w, m)")
        acc = "".join(c for c in "rwm" if c in acc)
        if t == "a":
            mj, mn, acc = -1, -1, "rwm"   # "a" means every device, every access
        rules.append(DeviceRule(d["allow"], t, mj, mn, acc))
    return rules


def device_rules(resources: dict) -> list[DeviceRule]:
    """The effective rule list: the config's rules, then runc's defaults (last matching rule wins)."""
    return list(resources.get("devices", [])) + list(DEFAULT_DEVICES)


def _throttle(v: object, field: str) -> list[dict]:
    out = []
    for i, e in enumerate(_list(v, field)):
        f = f"{field}[{i}]"
        e = _obj(e, f)
        out.append({"major": _int(e.get("major"), f"{f}.major", 0, (1 << 32) - 1),
                    "minor": _int(e.get("minor"), f"{f}.minor", 0, (1 << 32) - 1),
                    "rate": _int(e.get("rate", 0), f"{f}.rate", 0, U64_MAX)})
    return out


def validate(resources: object) -> dict:
    """Checked copy of linux.resources; raises ConfigError naming the first bad field."""
    if resources is None:
        return {}
    r = _obj(resources, P)
    out: dict[str, object] = {}
    if r.get("memory") is not None:
        m, b, o = _obj(r["memory"], f"{P}.memory"), f"{P}.memory", {}
        for k in ("limit", "reservation", "swap", "kernel", "kernelTCP"):
            _opt_int(m, k, b, -1, I64_MAX, o)
        _opt_int(m, "swappiness", b, -1, 100, o)   # the spec says uint64; the kernel takes 0-100
        for k in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate"):
            if m.get(k) is not None:
                if not isinstance(m[k], bool):
                    raise ConfigError(f"{b}.{k}", "expected a boolean")
                o[k] = m[k]
        if o.get("limit", 0) > 0 and o.get("swap", 0) > 0 and o["swap"] < o["limit"]:
            raise ConfigError(f"{b}.swap", f"memory+swap limit {o['swap']} should be >= memory limit "
                                           f"{o['limit']}")
        out["memory"] = o
    if r.get("cpu") is not None:
        c, b, o = _obj(r["cpu"], f"{P}.cpu"), f"{P}.cpu", {}
        _opt_int(c, "shares", b, 0, U64_MAX, o)
        _opt_int(c, "quota", b, -1, I64_MAX, o)
        _opt_int(c, "burst", b, 0, U64_MAX, o)
        _opt_int(c, "period", b, 0, U64_MAX, o)
        _opt_int(c, "realtimeRuntime", b, -1, I64_MAX, o)
        _opt_int(c, "realtimePeriod", b, 0, U64_MAX, o)
        _opt_int(c, "idle", b, 0, 1, o)
        for k in ("cpus", "mems"):
            if c.get(k) is not None:
                o[k] = _cpuset(c[k], f"{b}.{k}")
        if o.get("period") and not 1000 <= o["period"] <= 1000000:
            raise ConfigError(f"{b}.period", f"{o['period']} is out of range [1000, 1000000] microseconds")
        if o.get("quota", 0) > 0 and o["quota"] < 1000:
            raise ConfigError(f"{b}.quota", f"{o['quota']} is below the kernel's minimum of 1000 microseconds")
        out["cpu"] = o
    if r.get("pids") is not None:
        p, o = _obj(r["pids"], f"{P}.pids"), {}
        _opt_int(p, "limit", f"{P}.pids", -1 << 63, I64_MAX, o)
        out["pids"] = o
    if r.get("blockIO") is not None:
        bio, b, o = _obj(r["blockIO"], f"{P}.blockIO"), f"{P}.blockIO", {}
        for k in ("weight", "leafWeight"):
            if bio.get(k) is not None:
                w = _int(bio[k], f"{b}.{k}", 0, 1000)
                if w and w < 10:
                    raise ConfigError(f"{b}.{k}", f"{w} is out of range [10, 1000]")
                o[k] = w
        if bio.get("weightDevice") is not None:
            wd = []
            for i, e in enumerate(_list(bio["weightDevice"], f"{b}.weightDevice")):
                f = f"{b}.weightDevice[{i}]"
                e = _obj(e, f)
                ent = {"major": _int(e.get("major"), f"{f}.major", 0, (1 << 32) - 1),
                       "minor": _int(e.get("minor"), f"{f}.minor", 0, (1 << 32) - 1)}
                for k in ("weight", "leafWeight"):
                    if e.get(k) is not None:
                        ent[k] = _int(e[k], f"{f}.{k}", 10, 1000)
                wd.append(ent)
            o["weightDevice"] = wd
        for k in ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                  "throttleWriteIOPSDevice"):
            if bio.get(k) is not None:
                o[k] = _throttle(bio[k], f"{b}.{k}")
        out["blockIO"] = o
    if r.get("hugepageLimits") is not None:
        hl = []
        for i, e in enumerate(_list(r["hugepageLimits"], f"{P}.hugepageLimits")):
            f = f"{P}.hugepageLimits[{i}]"
            e = _obj(e, f)
            ps = e.get("pageSize")
            if not isinstance(ps, str) or not _match(_PAGESIZE_RE, ps):
                raise ConfigError(f"{f}.pageSize", f"invalid page size {ps!r} (expected e.g. \"2MB\")")
            hl.append({"pageSize": ps, "limit": _int(e.get("limit"), f"{f}.limit", 0, U64_MAX)})
        out["hugepageLimits"] = hl
    if r.get("network") is not None:
        n, o = _obj(r["network"], f"{P}.network"), {}
        _opt_int(n, "classID", f"{P}.network", 0, (1 << 32) - 1, o)
        if n.get("priorities") is not None:
            pr = []
            for i, e in enumerate(_list(n["priorities"], f"{P}.network.priorities")):
                f = f"{P}.network.priorities[{i}]"
                e = _obj(e, f)
                if not isinstance(e.get("name"), str) or not e["name"]:
                    raise ConfigError(f"{f}.name", "required interface name")
                pr.append({"name": e["name"], "priority": _int(e.get("priority"), f"{f}.priority", 0,
                                                               (1 << 32) - 1)})
            o["priorities"] = pr
        out["network"] = o
    if r.get("rdma") is not None:
        rd = {}
        for dev, lim in _obj(r["rdma"], f"{P}.rdma").items():
            f = f"{P}.rdma.{dev}"
            if not dev or any(ch.isspace() for ch in dev):
                raise ConfigError(f, "invalid rdma device name")
            lim = _obj(lim, f)
            o = {}
            _opt_int(lim, "hcaHandles", f, 0, (1 << 32) - 1, o)
            _opt_int(lim, "hcaObjects", f, 0, (1 << 32) - 1, o)
            rd[dev] = o
        out["rdma"] = rd
    if r.get("unified") is not None:
        un = {}
        for k, v in _obj(r["unified"], f"{P}.unified").items():
            f = f"{P}.unified.{k}"
            if not k or "/" in k or ".." in k or k.startswith("."):
                raise ConfigError(f, "invalid key: must be a plain cgroup file name (no '/', no '..')")
            if "." not in k:
                raise ConfigError(f, "invalid key: expected <controller>.<file>")
            if not isinstance(v, str):
                raise ConfigError(f, f"expected a string, got {type(v).__name__}")
            un[k] = v
        out["unified"] = un
    if r.get("devices") is not None:
        out["devices"] = _device_rules(r["devices"])
    return out


# --- runc's conversions -----------------------------------------------------------------------------

def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000]; 0 stays unset.

    Current runc and crun use a curve through the three points that matter (2 -> 1, 1024 -> 100,
    262144 -> 10000) instead of the old straight line, which mapped the default 1024 shares to weight
    39 and so starved containers next to default-weight (100) system services.  The exponent is
    quadratic in log2(shares); same inputs, same results as theirs.
    """
    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    import math         # here: a v1 host (and most configs) never convert shares; ~0.3 ms per create
    l = math.log2(shares)
    return math.ceil(10 ** ((l * l + 125 * l) / 612.0 - 7.0 / 34.0))


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000], runc's linear mapping; 0 stays unset."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap: int, limit: int, field: str = f"{P}.memory.swap") -> int | None:
    """v1 memory+swap total -> v2 memory.swap.max (swap only); None = leave, -1 = max."""
    if limit == -1 and swap == 0:
        return -1           # memory unlimited and swap unset: both unlimited, as on v1
    if swap == -1:
        return -1
    if swap == 0:
        return None
    if limit in (0, -1):
        raise ConfigError(field, "unable to set a swap limit without a memory limit")
    if swap < limit:
        raise ConfigError(field, "memory+swap limit should be >= memory limit")
    return swap - limit


def parse_size(text: str) -> int:
    """runc update's sizes: plain bytes or k/m/g/t suffixes (binary, as docker's RAMInBytes); -1 ok."""
    s = text.strip().lower()
    if s == "-1":
        return -1
    import re
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?", s)
    if not m:
        raise ValueError(f"invalid size: {text!r}")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}[m.group(2)]
    return int(float(m.group(1)) * mult)
