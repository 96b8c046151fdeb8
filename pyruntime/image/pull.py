"""``pyruntime image pull REF [LAYOUT]``: a registry image into an OCI layout, every byte verified.

1. REF -> candidates (:mod:`.reference`, registries.conf short-name search); the first registry that
   has the manifest wins;
2. an index / manifest list -> the manifest for the platform (host or ``--platform``), as for layouts;
3. config and layers are downloaded in parallel into ``LAYOUT/.pyruntime-partial/<hex>``, hashed as
   they arrive, and renamed to ``blobs/sha256/<hex>`` only when digest and size match; a blob already in
   the layout is not fetched again; an interrupted transfer resumes with ``Range`` (also in a later pull);
   5xx and connection errors are retried with backoff; a corrupt blob is deleted, never kept;
4. the manifest is stored as received (its digest is what was asked for), then ``index.json`` gets its
   descriptor with ``org.opencontainers.image.ref.name`` = the tag (exactly skopeo's ``oci:LAYOUT:TAG`` entry),
   replacing an older entry of that name, under a lock, by rename.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from . import mediatypes as mt
from . import platform as plat
from .errors import BlobError, ImageError
from .reference import Reference, RegistriesConf
from .registry import RegistryClient

PARTIAL = ".pyruntime-partial"
WORKERS = 4


def _hex(digest: str) -> str:
    alg, _, enc = digest.partition(":")
    if alg != "sha256" or len(enc) != 64 or not all(c in "0123456789abcdef" for c in enc):
        raise ImageError(f"unsupported digest {digest!r} (sha256 only)", step="pull")
    return enc


def init_layout(layout: str) -> None:
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    p = os.path.join(layout, "oci-layout")
    if not os.path.exists(p):
        with open(p + ".tmp", "w") as f:
            f.write('{"imageLayoutVersion": "1.0.0"}')
        os.rename(p + ".tmp", p)
    if not os.path.exists(os.path.join(layout, "index.json")):
        _write_index(layout, {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []})


def _write_index(layout: str, doc: dict) -> None:
    p = os.path.join(layout, "index.json")
    tmp = f"{p}.tmp{os.getpid()}.{threading.get_ident()}"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, p)


class Progress:
    """One status line for the whole pull on a terminal (bytes and blobs done, all downloads together),
    redrawn at most ten times a second; nothing when stderr is not a terminal."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.lock = threading.Lock()
        self.total = self.got = 0
        self.blobs = self.done_blobs = 0
        self.name = ""
        self._last = 0.0

    def start(self, name: str, total: int, blobs: int) -> None:
        self.name, self.total, self.blobs = name, total, blobs

    def add(self, n: int) -> None:
        with self.lock:
            self.got += n
            self._draw()

    def done(self, what: str, size: int, fetched: bool) -> None:
        with self.lock:
            self.done_blobs += 1
            if not fetched:
                self.got += size
            self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        import time
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        mb = 1 << 20
        sys.stderr.write(f"\rpulling {self.name}: {self.got / mb:.1f}/{self.total / mb:.1f} MiB, "
                         f"{self.done_blobs}/{self.blobs} blobs\x1b[K")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled and self.blobs:
            sys.stderr.write("\n")
            sys.stderr.flush()


def fetch_blob(client: RegistryClient, layout: str, digest: str, size: int, what: str,
               progress: Progress | None = None) -> bool:
    """Make ``blobs/sha256/<hex>`` hold the verified blob.  Returns True when it was downloaded."""
    h = _hex(digest)
    final = os.path.join(layout, "blobs", "sha256", h)
    if os.path.exists(final) and os.path.getsize(final) == size:
        if progress:
            progress.done(what, size, False)
        return False
    pdir = os.path.join(layout, PARTIAL)
    os.makedirs(pdir, exist_ok=True)
    part = os.path.join(pdir, h)
    lockfd = os.open(part + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lockfd, fcntl.LOCK_EX)             # another pull of the same blob: wait for it
        if os.path.exists(final) and os.path.getsize(final) == size:
            return False
        fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _download(client, fd, digest, size, what, progress.add if progress else None)
            os.fsync(fd)
        except BlobError:
            os.unlink(part)                              # corrupt: never kept, never resumed
            raise
        finally:
            os.close(fd)
        os.rename(part, final)
        if progress:
            progress.done(what, size, True)
        return True
    finally:
        try:
            os.unlink(part + ".lock")
        except FileNotFoundError:
            pass
        os.close(lockfd)


def _download(client: RegistryClient, fd: int, digest: str, size: int, what: str, tick=None) -> None:
    hasher = hashlib.sha256()
    have = os.fstat(fd).st_size
    if have > size:
        os.ftruncate(fd, 0)
        have = 0
    os.lseek(fd, 0, os.SEEK_SET)
    while True:                                  # hash what an earlier attempt left
        b = os.read(fd, 1 << 20)
        if not b:
            break
        hasher.update(b)
    attempts = 0
    while have < size:
        r = client.blob(digest, have)
        try:
            if have and r.status == 200:             # no Range support: start again
                os.ftruncate(fd, 0)
                hasher = hashlib.sha256()
                have = 0
            os.lseek(fd, have, os.SEEK_SET)
            try:
                while True:
                    b = r.read(1 << 20)
                    if not b:
                        break
                    have += len(b)
                    if have > size:
                        raise BlobError(digest, f"more data than the {size} bytes its descriptor states", what=what)
                    hasher.update(b)
                    os.write(fd, b)
                    if tick is not None:
                        tick(len(b))
            except client.u3.exceptions.HTTPError as e:
                attempts += 1
                if attempts >= 5:
                    raise ImageError(f"{what} {digest}: transfer interrupted {attempts} times ({e}); run the "
                                     "pull again to resume", step="pull") from None
                continue                              # resume with Range from `have`
        finally:
            r.release()
        if have < size:
            attempts += 1
            if attempts >= 5:
                raise ImageError(f"{what} {digest}: transfer ended early {attempts} times; run the pull "
                                 "again to resume", step="pull")
            continue
        break
    actual = "sha256:" + hasher.hexdigest()
    if have != size:
        raise BlobError(digest, f"size mismatch: descriptor says {size} bytes, got {have}", what=what)
    if actual != digest:
        raise BlobError(digest, f"digest mismatch: the registry sent content with digest {actual}", what=what)


def _choose(index: dict, want: plat.Platform, explicit: bool, where: str) -> dict:
    from .resolve import rank
    best = None
    for i, m in enumerate(index.get("manifests") or []):
        if not isinstance(m, dict) or m.get("mediaType") not in mt.MANIFESTS | mt.INDEXES:
            continue
        p = plat.Platform.from_json(m.get("platform"))
        r = rank(want, p) if p is not None else None
        if r is not None and (best is None or (r, i) < best[0]):
            best = ((r, i), m)
    if best is None:
        avail = ", ".join(sorted({str(plat.Platform.from_json(m.get("platform")))
                                  for m in index.get("manifests") or [] if isinstance(m, dict)
                                  and plat.Platform.from_json(m.get("platform"))})) or "none"
        raise ImageError(f"no image for platform {want} (available: {avail}); choose one with --platform",
                         step="pull", path=where)
    return best[1]


def _verified_json(data: bytes, digest: str | None, what: str) -> dict:
    if digest is not None:
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise BlobError(digest, f"digest mismatch: got content with digest {actual}", what=what)
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise ImageError(f"invalid JSON: {e}", step="pull", path=what) from None
    if not isinstance(doc, dict):
        raise ImageError("not a JSON object", step="pull", path=what)
    return doc


def _save_blob(layout: str, data: bytes, digest: str) -> None:
    final = os.path.join(layout, "blobs", "sha256", _hex(digest))
    if os.path.exists(final):
        return
    tmp = f"{final}.tmp{os.getpid()}.{threading.get_ident()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, final)


class Pulled:
    def __init__(self, ref: Reference, manifest_digest: str, manifest: dict, media_type: str, size: int,
                 platform: plat.Platform | None, ref_name: str) -> None:
        self.ref, self.manifest_digest, self.manifest = ref, manifest_digest, manifest
        self.media_type, self.size, self.platform, self.ref_name = media_type, size, platform, ref_name


def pull(text: str, layout: str, *, platform: str | None = None, tls_verify: bool | None = None,
         cert_dir: str | None = None, creds: str | None = None, authfile: str | None = None,
         registries_conf: str | None = None, ref_name: str | None = None, progress: Progress | None = None,
         warn=None) -> Pulled:
    warn = warn or (lambda m: None)
    conf = RegistriesConf(registries_conf)
    cands = conf.candidates(text)
    want = plat.parse(platform) if platform else plat.host()
    last: ImageError | None = None
    for ref in cands:
        insecure = (tls_verify is False) or (tls_verify is None and conf.is_insecure(ref.registry))
        client = RegistryClient(ref.api_host, ref.repository, insecure=insecure, cert_dir=cert_dir, creds=creds,
                                authfile=authfile, registry_name=ref.registry, warn=warn)
        try:
            data, mtype, _ = client.manifest(ref.reference)
        except ImageError as e:
            if len(cands) > 1 and "manifest unknown" in str(e):
                last = e
                continue
            raise
        return _pull_from(client, ref, data, mtype, layout, want, platform is not None,
                          ref_name or ref.tag or ref.digest or "latest", progress)
    assert last is not None
    raise ImageError(f"not found in any of {', '.join(r.registry for r in cands)}: {last}", step="pull", path=text)


def _pull_from(client: RegistryClient, ref: Reference, data: bytes, mtype: str, layout: str,
               want: plat.Platform, explicit: bool, ref_name: str, progress: Progress | None) -> Pulled:
    where = str(ref)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if ref.digest and ref.digest != digest:
        raise BlobError(ref.digest, f"digest mismatch: the registry sent a manifest with digest {digest}",
                        what="manifest")
    doc = _verified_json(data, None, where)
    mtype = doc.get("mediaType") or mtype
    chosen_platform = None
    depth = 0
    while mtype in mt.INDEXES:
        depth += 1
        if depth > 4:
            raise ImageError("indexes nested too deep", step="pull", path=where)
        m = _choose(doc, want, explicit, where)
        chosen_platform = plat.Platform.from_json(m.get("platform"))
        digest = m.get("digest")
        _hex(digest)
        data, mtype2, _ = client.manifest(digest)
        doc = _verified_json(data, digest, f"manifest {digest}")
        mtype = doc.get("mediaType") or m.get("mediaType") or mtype2
    if mtype not in mt.MANIFESTS:
        raise ImageError(f"unsupported manifest media type {mtype!r}", step="pull", path=where)
    if doc.get("schemaVersion") != 2:
        raise ImageError(f"unsupported schemaVersion {doc.get('schemaVersion')!r}", step="pull", path=where)
    config = doc.get("config") or {}
    layers = doc.get("layers")
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise ImageError("manifest lacks config or layers", step="pull", path=where)
    blobs = [(config, "config")] + [(la, f"layer {i}") for i, la in enumerate(layers, 1)]
    for d, what in blobs:
        if not isinstance(d, dict) or not isinstance(d.get("size"), int) or d["size"] < 0:
            raise ImageError(f"{what}: invalid descriptor", step="pull", path=where)
        _hex(d.get("digest") or "")
        if what != "config" and d.get("mediaType") not in mt.LAYERS:
            raise ImageError(f"{what}: unsupported media type {d.get('mediaType')!r}", step="pull", path=where)
    init_layout(layout)
    if progress:
        progress.start(where, sum(d["size"] for d, _ in blobs), len(blobs))
    with ThreadPoolExecutor(max_workers=WORKERS) as ex:
        futs = [ex.submit(fetch_blob, client, layout, d["digest"], d["size"], what, progress) for d, what in blobs]
        errors = []
        for f in futs:
            try:
                f.result()
            except ImageError as e:
                errors.append(e)
    if progress:
        progress.finish()
    if errors:
        raise errors[0]
    if not explicit and chosen_platform is None:
        try:
            cfg = json.load(open(os.path.join(layout, "blobs", "sha256", _hex(config["digest"]))))
            chosen_platform = plat.Platform(str(cfg.get("os", "")), str(cfg.get("architecture", "")),
                                            str(cfg.get("variant", "") or ""))
        except (OSError, ValueError):
            pass
    _save_blob(layout, data, digest)
    desc = {"mediaType": mtype, "digest": digest, "size": len(data),
            "annotations": {"org.opencontainers.image.ref.name": ref_name}}
    _add_to_index(layout, desc, ref_name)
    try:
        os.rmdir(os.path.join(layout, PARTIAL))
    except OSError:
        pass
    return Pulled(ref, digest, doc, mtype, len(data), chosen_platform, ref_name)


def _add_to_index(layout: str, desc: dict, ref_name: str) -> None:
    path = os.path.join(layout, "index.json")
    while True:                      # lock the index.json that is current (writers replace it by rename)
        lock = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.fstat(lock).st_ino == os.stat(path).st_ino:
            break
        os.close(lock)
    try:
        with open(os.path.join(layout, "index.json")) as f:
            doc = json.load(f)
        ms = [m for m in doc.get("manifests") or []
              if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") != ref_name]
        ms.append(desc)
        doc["manifests"] = ms
        doc.setdefault("schemaVersion", 2)
        _write_index(layout, doc)
    finally:
        os.close(lock)


def remove_ref(layout: str, ref_name: str) -> None:
    """Drop the index.json entries named ``ref_name`` (their blobs go with :func:`gc_layout`)."""
    path = os.path.join(layout, "index.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        doc = json.load(f)
    doc["manifests"] = [m for m in doc.get("manifests") or []
                        if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") != ref_name]
    _write_index(layout, doc)


def gc_layout(layout: str) -> list[str]:
    """Remove the blobs of ``layout`` that no index.json entry reaches (the caller excludes pulls)."""
    blobs = os.path.join(layout, "blobs", "sha256")
    if not os.path.isdir(blobs):
        return []
    with open(os.path.join(layout, "index.json")) as f:
        todo = list(json.load(f).get("manifests") or [])
    keep: set[str] = set()
    while todo:
        d = todo.pop()
        dg = d.get("digest") if isinstance(d, dict) else None
        if not isinstance(dg, str) or not dg.startswith("sha256:") or dg[7:] in keep:
            continue
        keep.add(dg[7:])
        if d.get("mediaType") in mt.INDEXES | mt.MANIFESTS:
            try:
                with open(os.path.join(blobs, dg[7:])) as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                continue
            todo += list(doc.get("manifests") or []) + [doc.get("config") or {}] + list(doc.get("layers") or [])
    removed = []
    for n in os.listdir(blobs):
        if n not in keep:
            os.unlink(os.path.join(blobs, n))
            removed.append("sha256:" + n)
    return removed
