"""Hand-built layers and layouts for the image tests.

A tiny tar writer of our own (not :mod:`tarfile`) so tests can write exactly the bytes an attacker
would: names with ``..``, absolute names, headers announcing more data than follows, any PAX record.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess

import pytest

BLOCK = 512


def need(*tools: str) -> None:
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"{t} is not installed (make image-deps)")


def sh(*cmd: str, **kw) -> str:
    cp = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if cp.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {cp.returncode}\n{cp.stdout}\n{cp.stderr}")
    return cp.stdout

MTIME = 1_600_000_000


def _octal(n: int, width: int) -> bytes:
    return (b"%0*o" % (width - 1, n)) + b"\0"


def _pax(records: dict[str, bytes | str]) -> bytes:
    out = b""
    for k, v in records.items():
        v = v.encode("utf-8", "surrogateescape") if isinstance(v, str) else v
        body = b" " + k.encode() + b"=" + v + b"\n"
        n = len(body)
        while len(str(n)) + len(body) != n:
            n = len(str(n)) + len(body)
        out += str(n).encode() + body
    return out


def header(name: str, typ: bytes = b"0", *, size: int = 0, mode: int = 0o644, uid: int = 0, gid: int = 0,
           mtime: int = MTIME, linkname: str = "", devmajor: int = 0, devminor: int = 0,
           pax: dict | None = None, pax_size: int | None = None) -> bytes:
    """One member header (preceded by a PAX header when ``pax`` is given or a field does not fit)."""
    pre = b""
    bname, blink = name.encode("utf-8", "surrogateescape"), linkname.encode("utf-8", "surrogateescape")
    pax = dict(pax or {})
    if len(bname) > 99:
        pax.setdefault("path", name)
        bname = bname[:99]
    if len(blink) > 99:
        pax.setdefault("linkpath", linkname)
        blink = blink[:99]
    if pax:
        body = _pax(pax)
        psize = len(body) if pax_size is None else pax_size
        pre = _raw_header(b"././@PaxHeader", b"x", psize, 0o644, 0, 0, mtime, b"", 0, 0) + body + \
            bytes(-len(body) % BLOCK)
    return pre + _raw_header(bname, typ, size, mode, uid, gid, mtime, blink, devmajor, devminor)


def _raw_header(bname: bytes, typ: bytes, size: int, mode: int, uid: int, gid: int, mtime: int,
                blink: bytes, devmajor: int, devminor: int) -> bytes:
    h = bytearray(BLOCK)
    h[0:len(bname)] = bname
    h[100:108] = _octal(mode, 8)
    h[108:116] = _octal(uid, 8)
    h[116:124] = _octal(gid, 8)
    if size >= 8 ** 11:
        h[124:136] = b"\x80" + size.to_bytes(11, "big")
    else:
        h[124:136] = _octal(size, 12)
    h[136:148] = _octal(mtime, 12)
    h[148:156] = b" " * 8
    h[156:157] = typ
    h[157:157 + len(blink)] = blink
    h[257:265] = b"ustar\x0000"
    h[329:337] = _octal(devmajor, 8)
    h[337:345] = _octal(devminor, 8)
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def member(name: str, data: bytes = b"", typ: bytes = b"0", **kw) -> bytes:
    return header(name, typ, size=len(data), **kw) + data + bytes(-len(data) % BLOCK)


def d(name, mode=0o755, **kw):
    return member(name, typ=b"5", mode=mode, **kw)


def f(name, data=b"", mode=0o644, **kw):
    return member(name, data if isinstance(data, bytes) else data.encode(), mode=mode, **kw)


def sym(name, target, **kw):
    return member(name, typ=b"2", linkname=target, mode=0o777, **kw)


def hard(name, target, **kw):
    return member(name, typ=b"1", linkname=target, **kw)


def tar(*members: bytes, end: bool = True) -> bytes:
    return b"".join(members) + (bytes(2 * BLOCK) if end else b"")


def sha256(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def compress(raw: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(raw, 1, mtime=0)
    if how == "zstd":
        import zstandard
        return zstandard.ZstdCompressor(level=1).compress(raw)
    return raw


LAYER_MT = {"none": "application/vnd.oci.image.layer.v1.tar",
            "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
            "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}


class LayoutWriter:
    """Write blobs and an index.json into ``path`` (an OCI layout)."""

    def __init__(self, path: str, version: str = "1.0.0") -> None:
        self.path = str(path)
        os.makedirs(os.path.join(self.path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(self.path, "oci-layout"), "w") as fh:
            json.dump({"imageLayoutVersion": version}, fh)
        self.index: list[dict] = []

    def blob(self, data: bytes, media_type: str, **extra) -> dict:
        dg = sha256(data)
        with open(os.path.join(self.path, "blobs", "sha256", dg[7:]), "wb") as fh:
            fh.write(data)
        return {"mediaType": media_type, "digest": dg, "size": len(data), **extra}

    def json_blob(self, obj: dict, media_type: str, **extra) -> dict:
        return self.blob(json.dumps(obj).encode(), media_type, **extra)

    def image(self, layers: list[bytes], *, compression: str = "gzip", config: dict | None = None,
              arch: str = "amd64", os_: str = "linux", variant: str | None = None,
              layer_media_types: list[str] | None = None, diff_ids: list[str] | None = None,
              docker: bool = False) -> dict:
        """Write layers, config and manifest; return the manifest descriptor (not yet in the index)."""
        ldescs = []
        for i, raw in enumerate(layers):
            mtype = (layer_media_types or [None] * len(layers))[i]
            if mtype is None:
                mtype = ("application/vnd.docker.image.rootfs.diff.tar.gzip" if docker
                         else LAYER_MT[compression])
            ldescs.append(self.blob(compress(raw, compression), mtype))
        cfg = {"architecture": arch, "os": os_, "config": {},
               "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha256(raw) for raw in layers]}}
        if variant:
            cfg["variant"] = variant
        for k, v in (config or {}).items():
            cfg[k] = v
        cdesc = self.json_blob(cfg, "application/vnd.docker.container.image.v1+json" if docker
                               else "application/vnd.oci.image.config.v1+json")
        mt = ("application/vnd.docker.distribution.manifest.v2+json" if docker
              else "application/vnd.oci.image.manifest.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": mt, "config": cdesc, "layers": ldescs}
        return self.json_blob(manifest, mt)

    def add_layers_image(self, layers: list[dict], diff_ids: list[str], ref: str = "t",
                         docker: bool = False) -> None:
        """An image of hand-made layer descriptors (corrupt, foreign, other digest algorithms): its config
        (linux/amd64 with those diff_ids) and manifest, added to the index as ``ref``."""
        rootfs = {"type": "layers", "diff_ids": diff_ids}
        if docker:
            cfg = self.json_blob({"os": "linux", "architecture": "amd64", "rootfs": rootfs},
                                 "application/vnd.docker.container.image.v1+json")
            mt = "application/vnd.docker.distribution.manifest.v2+json"
            self.add(self.json_blob({"schemaVersion": 2, "mediaType": mt, "config": cfg, "layers": layers}, mt), ref)
            return
        cfg = self.json_blob({"os": "linux", "architecture": "amd64", "rootfs": rootfs},
                             "application/vnd.oci.image.config.v1+json")
        self.add(self.json_blob({"schemaVersion": 2, "config": cfg, "layers": layers},
                                "application/vnd.oci.image.manifest.v1+json"), ref)

    def index_blob(self, manifests: list[dict], docker: bool = False) -> dict:
        mt = ("application/vnd.docker.distribution.manifest.list.v2+json" if docker
              else "application/vnd.oci.image.index.v1+json")
        return self.json_blob({"schemaVersion": 2, "mediaType": mt, "manifests": manifests}, mt)

    def add(self, desc: dict, ref: str | None = None, **extra) -> "LayoutWriter":
        desc = dict(desc, **extra)
        if ref is not None:
            desc["annotations"] = {**desc.get("annotations", {}), "org.opencontainers.image.ref.name": ref}
        self.index.append(desc)
        self.write_index()
        return self

    def write_index(self, doc: dict | None = None) -> None:
        doc = doc or {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                      "manifests": self.index}
        with open(os.path.join(self.path, "index.json"), "w") as fh:
            json.dump(doc, fh)

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.path, "blobs", "sha256", digest.split(":", 1)[1])


def simple_layout(path, *layers: bytes, ref: str = "t", **kw) -> LayoutWriter:
    lw = LayoutWriter(path)
    lw.add(lw.image(list(layers), **kw), ref)
    return lw


def tar_of_dir(src: str) -> bytes:
    """A tar of a directory (for OCI archives built by hand)."""
    import tarfile
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name in sorted(os.listdir(src)):
            t.add(os.path.join(src, name), arcname=name)
    return bio.getvalue()
