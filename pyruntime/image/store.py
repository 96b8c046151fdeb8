"""Where image bytes come from: an OCI layout directory, or a member of a tar archive.

A *source* maps relative paths (``index.json``, ``blobs/sha256/<hex>``) to :class:`RangeBlob` readers.
:class:`Layout` adds image-layout.md on top: the ``oci-layout`` version check, ``index.json``, and blobs
addressed by descriptor, each verified against its digest and size.
"""
from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field

from . import digest as dg
from . import mediatypes as mt
from .errors import BlobError, ImageError
from .platform import Platform

#: largest JSON document (index, manifest, config) read into memory
MAX_JSON = 16 << 20


class RangeBlob:
    """``size`` bytes of ``fd`` from ``start``, read sequentially with pread."""

    def __init__(self, fd: int, start: int, size: int, owns_fd: bool) -> None:
        self.fd, self.start, self.size, self.owns_fd = fd, start, size, owns_fd
        self.pos = 0

    def read(self, n: int = 1 << 20) -> bytes:
        n = min(n, self.size - self.pos)
        if n <= 0:
            return b""
        b = os.pread(self.fd, n, self.start + self.pos)
        self.pos += len(b)
        return b

    def readinto(self, buf) -> int:   # for stream readers that prefer it
        b = self.read(len(buf))
        buf[:len(b)] = b
        return len(b)

    def close(self) -> None:
        if self.owns_fd and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> "RangeBlob":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DirSource:
    """Files of a directory (an OCI layout)."""

    def __init__(self, path: str) -> None:
        self.name = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise ImageError.from_os(e, "open layout", path) from None

    def open(self, rel: str) -> RangeBlob:
        fd = os.open(rel, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK, dir_fd=self.fd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise ImageError("not a regular file", step="open", path=os.path.join(self.name, rel))
        return RangeBlob(fd, 0, st.st_size, True)

    def exists(self, rel: str) -> bool:
        try:
            os.stat(rel, dir_fd=self.fd)
            return True
        except OSError:
            return False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _check_dict(obj: object, where: str) -> dict:
    if not isinstance(obj, dict):
        raise ImageError("expected a JSON object", step=where)
    return obj


@dataclass
class Descriptor:
    media_type: str
    digest: str | None
    size: int
    urls: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    raw: dict = field(default_factory=dict)

    @property
    def ref_name(self) -> str | None:
        return self.annotations.get("org.opencontainers.image.ref.name")

    @classmethod
    def parse(cls, obj: object, where: str) -> "Descriptor":
        d = _check_dict(obj, where)
        mtype, size, urls, ann = d.get("mediaType"), d.get("size"), d.get("urls", []), d.get("annotations", {})
        if not isinstance(mtype, str) or not mtype:
            raise ImageError("descriptor has no mediaType", step=where)
        dg.parse(d.get("digest"), where)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ImageError(f"descriptor {d.get('digest')} has an invalid size {size!r}", step=where)
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ImageError("descriptor urls must be a list of strings", step=where)
        if ann is None:
            ann = {}
        if not isinstance(ann, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ann.items()):
            raise ImageError("descriptor annotations must map strings to strings", step=where)
        plat = None
        if d.get("platform") is not None:
            plat = Platform.from_json(d["platform"])
            if plat is None:
                raise ImageError("descriptor platform needs string os and architecture", step=where)
        return cls(mtype, d["digest"], size, urls, ann, plat, d)


def parse_json(data: bytes, where: str) -> dict:
    try:
        return _check_dict(json.loads(data), where)
    except (ValueError, UnicodeDecodeError) as e:
        raise ImageError(f"invalid JSON: {e}", step=where) from None


def parse_index(doc: dict, where: str) -> list[Descriptor]:
    if doc.get("schemaVersion") != 2:
        raise ImageError(f"unsupported schemaVersion {doc.get('schemaVersion')!r} (want 2)", step=where)
    if doc.get("mediaType") not in (None, mt.OCI_INDEX, mt.DOCKER_LIST):
        raise ImageError(f"unexpected mediaType {doc.get('mediaType')!r}", step=where)
    ms = doc.get("manifests")
    if not isinstance(ms, list):
        raise ImageError("'manifests' must be a list", step=where)
    return [Descriptor.parse(m, f"{where} manifests[{i}]") for i, m in enumerate(ms)]


class Layout:
    """An OCI image layout read through a source (a directory or an archive)."""

    def __init__(self, source) -> None:
        self.source = source
        self.name = source.name
        self._check_version()

    def _read_small(self, rel: str) -> bytes:
        try:
            with self.source.open(rel) as b:
                if b.size > MAX_JSON:
                    raise ImageError(f"larger than {MAX_JSON} bytes", step="read", path=f"{self.name}/{rel}")
                return b.read(b.size)
        except FileNotFoundError:
            raise ImageError("no such file (not an OCI image layout?)", step="read",
                             path=f"{self.name}/{rel}") from None
        except ImageError:
            raise
        except OSError as e:
            raise ImageError.from_os(e, "read", f"{self.name}/{rel}") from None

    def _check_version(self) -> None:
        doc = parse_json(self._read_small("oci-layout"), f"{self.name}/oci-layout")
        v = doc.get("imageLayoutVersion")
        if not isinstance(v, str) or v.split(".")[0] != "1":
            raise ImageError(f"unsupported imageLayoutVersion {v!r} (this reader knows 1.x)",
                             step=f"{self.name}/oci-layout")

    def index(self) -> list[Descriptor]:
        where = f"{self.name}/index.json"
        return parse_index(parse_json(self._read_small("index.json"), where), where)

    @staticmethod
    def blob_path(digest: str) -> str:
        alg, enc = dg.parse(digest)
        return f"blobs/{alg}/{enc}"

    def open_blob(self, desc: Descriptor, what: str = "blob") -> RangeBlob:
        try:
            return self.source.open(self.blob_path(desc.digest))
        except FileNotFoundError:
            if mt.LAYERS.get(desc.media_type, ("", False))[1] or desc.urls:
                urls = f" (it is meant to be fetched from {', '.join(desc.urls)})" if desc.urls else ""
                raise BlobError(desc.digest, f"non-distributable layer ({desc.media_type}) is not present "
                                f"in {self.name}{urls}; pyruntime does not download layers: put the blob "
                                f"in the layout first", what=what) from None
            raise BlobError(desc.digest, f"missing from {self.name}", what=what) from None
        except ImageError:
            raise
        except OSError as e:
            raise BlobError(desc.digest, f"cannot open: {e.strerror or e}", what=what) from None

    def read_blob(self, desc: Descriptor, what: str = "blob", limit: int = MAX_JSON) -> bytes:
        if desc.size > limit:
            raise BlobError(desc.digest, f"descriptor size {desc.size} exceeds the {limit} byte limit", what=what)
        v = dg.Verifier(desc.digest, desc.size, what=what)
        with self.open_blob(desc, what) as b:
            data = b.read(desc.size + 1)
        v.update(data)
        v.check()
        return data

    def read_json(self, desc: Descriptor, what: str) -> dict:
        return parse_json(self.read_blob(desc, what), f"{what} {desc.digest}")

    def close(self) -> None:
        self.source.close()
