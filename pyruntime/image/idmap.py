"""``--uid-map``/``--gid-map CONTAINER:HOST:SIZE``: shift file owners for user-namespaced containers."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ImageError


@dataclass(frozen=True)
class IdRange:
    container: int
    host: int
    size: int

    def to_json(self) -> dict:
        return {"containerID": self.container, "hostID": self.host, "size": self.size}


def parse(specs: list[str] | None, what: str = "uid") -> list[IdRange]:
    out: list[IdRange] = []
    for spec in specs or []:
        parts = spec.split(":")
        try:
            c, h, n = (int(p, 10) for p in parts)
            ok = len(parts) == 3 and c >= 0 and h >= 0 and n > 0 and max(c, h) + n <= 1 << 32
        except ValueError:
            ok = False
        if not ok:
            raise ImageError(f"invalid --{what}-map {spec!r}: expected CONTAINER:HOST:SIZE", step="options")
        r = IdRange(c, h, n)
        for o in out:
            if r.container < o.container + o.size and o.container < r.container + r.size:
                raise ImageError(f"--{what}-map {spec!r} overlaps another mapping", step="options")
        out.append(r)
    return out


class IdMapper:
    """Container id -> host id; identity without ranges.  Unmapped ids are an error."""

    def __init__(self, ranges: list[IdRange], what: str) -> None:
        self.ranges = ranges
        self.what = what
        self._cache: dict[int, int] = {}

    def __call__(self, cid: int) -> int:
        if not self.ranges:
            return cid
        hid = self._cache.get(cid)
        if hid is None:
            for r in self.ranges:
                if r.container <= cid < r.container + r.size:
                    hid = r.host + cid - r.container
                    break
            else:
                raise ImageError(f"{self.what} {cid} is not covered by --{self.what}-map", step="unpack")
            self._cache[cid] = hid
        return hid
