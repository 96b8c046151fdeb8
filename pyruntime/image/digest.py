"""Content digests (image-spec descriptor.md): ``algorithm:encoded``, sha256 and sha512.

:class:`Verifier` hashes bytes as they stream past and checks size and digest at the end, so a blob is
never read twice.
"""
from __future__ import annotations

import hashlib
import re

from .errors import BlobError, ImageError

#: registered algorithms and the length of their lower-case hex encoding
ALGORITHMS = {"sha256": 64, "sha512": 128}

_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


def parse(digest: object, where: str = "descriptor") -> tuple[str, str]:
    """Split and validate a digest; only registered algorithms are accepted (we must verify it)."""
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise ImageError(f"invalid digest {digest!r}", step=where)
    alg, _, enc = digest.partition(":")
    want = ALGORITHMS.get(alg)
    if want is None:
        raise ImageError(f"unsupported digest algorithm {alg!r} in {digest}", step=where)
    if len(enc) != want or not re.fullmatch(r"[0-9a-f]+", enc):
        raise ImageError(f"invalid {alg} digest {digest!r}", step=where)
    return alg, enc


def of(data: bytes, alg: str = "sha256") -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


class Verifier:
    """Incremental size + digest check for one blob (``expected`` may be None: size only)."""

    __slots__ = ("expected", "size", "what", "_h", "n")

    def __init__(self, expected: str | None, size: int | None, what: str = "blob",
                 alg: str | None = None) -> None:
        self.expected = expected
        self.size = size
        self.what = what
        if expected is not None:
            alg = parse(expected)[0]
        self._h = hashlib.new(alg or "sha256")
        self.n = 0

    def update(self, data) -> None:
        self._h.update(data)
        self.n += len(data)
        if self.size is not None and self.n > self.size:
            raise BlobError(self.name, f"more data than the {self.size} bytes its descriptor states",
                            what=self.what)

    @property
    def name(self) -> str:
        return self.expected or "(no digest)"

    def actual(self) -> str:
        return f"{self._h.name}:{self._h.hexdigest()}"

    def check(self) -> None:
        if self.size is not None and self.n != self.size:
            raise BlobError(self.name, f"size mismatch: descriptor says {self.size} bytes, "
                                       f"got {self.n}", what=self.what)
        if self.expected is not None:
            got = self.actual()
            if got != self.expected:
                raise BlobError(self.name, f"digest mismatch: content hashes to {got}", what=self.what)
