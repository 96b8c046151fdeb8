"""Image archives: an OCI layout in a tar (``oci-archive``) and ``docker save`` output.

The archive is indexed once (member name -> offset and size) and blobs are then read in place with
``pread``; nothing is extracted to a temporary directory.  A gzip- or zstd-compressed archive is first
decompressed to an anonymous temporary file (it cannot be read at random offsets otherwise).
"""
from __future__ import annotations

import os
import posixpath
import re
import tempfile

from . import tarstream as ts
from .apply import clean
from .errors import ImageError
from .store import RangeBlob

_MAX_MEMBERS = 1_000_000


class TarSource:
    """Members of a tar archive as a source (see :class:`~.store.DirSource`)."""

    def __init__(self, path: str) -> None:
        self.name = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise ImageError.from_os(e, "open archive", path) from None
        try:
            self._decompress_if_needed()
            self.members: dict[str, tuple[int, int]] = {}
            self.links: dict[str, str] = {}
            self._index()
        except BaseException:
            self.close()
            raise

    def _decompress_if_needed(self) -> None:
        head = os.pread(self.fd, 4, 0)
        if head[:2] != b"\x1f\x8b" and head != b"\x28\xb5\x2f\xfd":
            return
        from .layerstream import LayerStream
        tmp = tempfile.TemporaryFile(prefix="pyruntime-archive-")
        src = RangeBlob(self.fd, 0, os.fstat(self.fd).st_size, False)
        stream = LayerStream(src, None, None, None, f"archive {self.name}").start()
        try:
            while True:
                chunk = stream.next_chunk()
                if not chunk:
                    break
                tmp.write(chunk)
            stream.finish()
        except BaseException:
            stream.abort()
            tmp.close()
            raise
        tmp.flush()
        os.close(self.fd)
        self.fd = os.dup(tmp.fileno())
        tmp.close()

    def _index(self) -> None:
        size = os.fstat(self.fd).st_size
        rd = ts.TarReader(ts.FileSource(self.fd, size))
        try:
            for n, e in enumerate(rd):
                if n > _MAX_MEMBERS:
                    raise ImageError("too many members", step="archive", path=self.name)
                name = clean(e.name)
                if e.type == ts.REG:
                    self.members[name] = (e.offset, e.size)
                    self.links.pop(name, None)
                elif e.type == ts.SYMLINK:
                    self.links[name] = e.linkname
                elif e.type == ts.LINK:
                    target = self.members.get(clean(e.linkname))
                    if target is not None:
                        self.members[name] = target
        except ImageError as err:
            raise ImageError(f"not a readable tar archive: {err.message}", step="archive",
                             path=self.name) from None
        if not self.members:
            raise ImageError("not an image archive (no files in it)", step="archive", path=self.name)

    def _lookup(self, rel: str) -> tuple[int, int]:
        name = clean(rel)
        for _ in range(16):
            if name in self.members:
                return self.members[name]
            target = self.links.get(name)
            if target is None:
                break
            base = "" if target.startswith("/") else posixpath.dirname(name)
            name = clean(posixpath.join(base, target))
        raise FileNotFoundError(2, "no such member", f"{self.name}:{rel}")

    def open(self, rel: str) -> RangeBlob:
        off, size = self._lookup(rel)
        return RangeBlob(self.fd, off, size, False)

    def exists(self, rel: str) -> bool:
        try:
            self._lookup(rel)
            return True
        except FileNotFoundError:
            return False

    def close(self) -> None:
        if getattr(self, "fd", -1) >= 0:
            os.close(self.fd)
            self.fd = -1


_HEX_PATH = re.compile(r"^(?:blobs/(sha256|sha512)/)?([0-9a-f]{64}|[0-9a-f]{128})(?:\.json)?$")


def digest_from_path(path: str) -> str | None:
    """``blobs/sha256/<hex>`` or ``<hex>.json`` (docker save names files by their digest)."""
    m = _HEX_PATH.match(clean(path))
    if not m:
        return None
    alg = m.group(1) or ("sha256" if len(m.group(2)) == 64 else "sha512")
    return f"{alg}:{m.group(2)}"


def normalize_tag(ref: str) -> str:
    """docker.io/library/busybox -> busybox:latest (the spelling ``docker save`` records)."""
    name, tag = ref, "latest"
    if "@" in name:
        return name
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return f"{name}:{tag}"
