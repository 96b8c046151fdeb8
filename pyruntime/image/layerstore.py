"""A content-addressed store of unpacked layers and of the images made of them.

``run --image`` unpacks each layer once, by its diff_id (the digest of its uncompressed tar, the same
whatever the compression), and mounts a container's rootfs as an overlay of those directories::

    STORE/                 <state root>/.images, or --image-store DIR (0700)
      store.lock           shared by users of layers (run), exclusive for rm/prune
      locks/<hex>.lock     one per layer: the first runtime unpacks, the others wait and reuse
      tmp/<hex>.<pid>.<n>  layers being unpacked; renamed into layers/ only when complete
      layers/<hex>/        an unpacked layer, whiteouts in overlayfs form (0/0 device, opaque xattr)
      layers/<hex>.json    its size and where it came from
      images/<hex>.json    image record (by manifest digest): names, config, diff_ids, source layout
      uses/<key>.json      one per container rootfs built from the store (removed with it)
      oci/                 an OCI layout that `image pull` fills when no LAYOUT is given

Nothing half-written is ever visible: layers and records appear by rename(2).  A runtime killed in
the middle leaves at most a ``tmp/`` entry, removed by ``image prune``.
"""
from __future__ import annotations

import fcntl
import os
import time

from .. import fastjson as json
from .errors import ImageError
from ..fastos import remove_path

STORE_DIR = ".images"


def default_path(state_root: str) -> str:
    return os.path.join(state_root, STORE_DIR)


def _hex(digest: str) -> str:
    alg, _, enc = digest.partition(":")
    if alg != "sha256" or len(enc) != 64 or not all(c in "0123456789abcdef" for c in enc):
        raise ImageError(f"not a sha256 digest: {digest!r}", step="image store")
    return enc


def _write_json(path: str, obj: object) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(json.dumps(obj, indent=1) + "\n")
    os.rename(tmp, path)


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            obj = json.loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ImageError(f"unreadable record: {e}", step="image store", path=path) from None
    if not isinstance(obj, dict):
        raise ImageError("record is not a JSON object", step="image store", path=path)
    return obj


class _Flock:
    def __init__(self, path: str, exclusive: bool) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except BaseException:
            os.close(self.fd)
            raise

    def __enter__(self) -> "_Flock":
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)          # releases the lock


class Store:
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        try:
            os.makedirs(self.path, 0o700, exist_ok=True)
            for d in ("locks", "tmp", "layers", "images", "uses", "refs"):
                os.makedirs(os.path.join(self.path, d), 0o700, exist_ok=True)
        except OSError as e:
            raise ImageError.from_os(e, "image store", self.path) from None

    # -- locks ----------------------------------------------------------------------------------
    def shared(self) -> _Flock:
        """Held while layers are looked up, unpacked and mounted: prune waits for it."""
        return _Flock(os.path.join(self.path, "store.lock"), False)

    def exclusive(self) -> _Flock:
        return _Flock(os.path.join(self.path, "store.lock"), True)

    # -- layers ---------------------------------------------------------------------------------
    def layer_dir(self, diff_id: str) -> str:
        return os.path.join(self.path, "layers", _hex(diff_id))

    def has_layer(self, diff_id: str) -> bool:
        return os.path.isdir(self.layer_dir(diff_id))

    def ensure_layer(self, diff_id: str, unpack_into, meta: dict) -> bool:
        """Make ``layers/<diff_id>`` exist: ``unpack_into(tmpdir)`` fills a fresh directory, which is
        then renamed into place.  Returns True when this call unpacked it.  Concurrent callers for the
        same layer wait for the first one (a per-layer flock) and reuse its result."""
        final = self.layer_dir(diff_id)
        if os.path.isdir(final):
            return False
        h = _hex(diff_id)
        with _Flock(os.path.join(self.path, "locks", h + ".lock"), True):
            if os.path.isdir(final):
                return False
            tmp = os.path.join(self.path, "tmp", f"{h}.{os.getpid()}.{time.monotonic_ns()}")
            os.mkdir(tmp, 0o755)
            try:
                unpack_into(tmp)
                _write_json(final + ".json", dict(meta, diffID=diff_id, unpacked=time.time()))
                os.rename(tmp, final)
            except BaseException:
                try:
                    remove_path(tmp)
                except OSError:
                    pass
                raise
        return True

    def layers(self) -> list[str]:
        """diff_ids of the complete layers."""
        d = os.path.join(self.path, "layers")
        return sorted("sha256:" + n for n in os.listdir(d) if len(n) == 64 and os.path.isdir(os.path.join(d, n)))

    def layer_meta(self, diff_id: str) -> dict:
        return _read_json(self.layer_dir(diff_id) + ".json") or {}

    # -- images ---------------------------------------------------------------------------------
    def _image_path(self, manifest_digest: str) -> str:
        return os.path.join(self.path, "images", _hex(manifest_digest) + ".json")

    def add_image(self, rec: dict) -> dict:
        """Record an image (merging names with an existing record of the same manifest)."""
        path = self._image_path(rec["manifestDigest"])
        old = _read_json(path)
        if old is not None:
            names = list(old.get("names") or [])
            for n in rec.get("names") or []:
                if n not in names:
                    names.append(n)
            rec = dict(old, **{k: v for k, v in rec.items() if k != "names"}, names=names)
        # a name points at one image: take it away from the others
        for other in self.images():
            if other["manifestDigest"] != rec["manifestDigest"] and \
                    set(other.get("names") or []) & set(rec.get("names") or []):
                other["names"] = [n for n in other["names"] if n not in rec["names"]]
                _write_json(self._image_path(other["manifestDigest"]), other)
        _write_json(path, rec)
        return rec

    def images(self) -> list[dict]:
        d = os.path.join(self.path, "images")
        out = []
        for n in sorted(os.listdir(d)):
            if n.endswith(".json") and len(n) == 69:
                rec = _read_json(os.path.join(d, n))
                if rec is not None and isinstance(rec.get("manifestDigest"), str):
                    out.append(rec)
        return out

    def find(self, ref: str) -> dict | None:
        """An image by name, full manifest digest or a unique digest prefix (>= 6 hex digits)."""
        recs = self.images()
        for r in recs:
            if ref in (r.get("names") or []) or ref == r["manifestDigest"]:
                return r
        h = ref[7:] if ref.startswith("sha256:") else ref
        if len(h) >= 6 and all(c in "0123456789abcdef" for c in h):
            hits = [r for r in recs if r["manifestDigest"][7:].startswith(h)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise ImageError(f"digest prefix {ref!r} is ambiguous", step="image")
        return None

    # -- source fingerprints: LAYOUT:REF -> manifest digest without reading the layout ----------------
    def _ref_path(self, key: str) -> str:
        return os.path.join(self.path, "refs", key + ".json")

    def cached_ref(self, key: str, fingerprint: list) -> dict | None:
        """The image recorded for source ``key`` if the source is unchanged since (same fingerprint)
        and all its layers are here."""
        try:
            hit = _read_json(self._ref_path(key))
        except ImageError:
            return None
        if not hit or hit.get("fingerprint") != fingerprint:
            return None
        try:
            rec = _read_json(self._image_path(str(hit.get("manifestDigest"))))
        except ImageError:
            return None
        if rec is None or not all(self.has_layer(d) for d in rec.get("diffIDs") or []):
            return None
        return rec

    def remember_ref(self, key: str, fingerprint: list, manifest_digest: str) -> None:
        _write_json(self._ref_path(key), {"fingerprint": fingerprint, "manifestDigest": manifest_digest})

    # -- containers using the store --------------------------------------------------------------
    def add_use(self, key: str, rec: dict) -> str:
        path = os.path.join(self.path, "uses", key + ".json")
        _write_json(path, rec)
        return path

    def uses(self) -> list[dict]:
        d = os.path.join(self.path, "uses")
        out = []
        for n in os.listdir(d):
            if not n.endswith(".json"):
                continue
            p = os.path.join(d, n)
            try:
                rec = _read_json(p)
            except ImageError:
                continue
            if rec is None:
                continue
            if not os.path.isdir(rec.get("bundle") or "/nonexistent"):
                os.unlink(p)              # its bundle is gone (a crash): forget it
                continue
            out.append(rec)
        return out

    # -- removal --------------------------------------------------------------------------------
    def remove_image(self, ref: str, force: bool = False) -> dict:
        with self.exclusive():
            rec = self.find(ref)
            if rec is None:
                raise ImageError(f"no such image in {self.path}", step="image rm", path=ref)
            users = [u for u in self.uses() if u.get("manifestDigest") == rec["manifestDigest"]]
            if users and not force:
                raise ImageError(f"image is used by container(s) {', '.join(u.get('id', '?') for u in users)}"
                                 "; delete them first (or --force: their layers stay until they are gone)",
                                 step="image rm", path=ref)
            os.unlink(self._image_path(rec["manifestDigest"]))
            if rec.get("source") == os.path.join(self.path, "oci") and rec.get("sourceRef"):
                from .pull import remove_ref
                remove_ref(rec["source"], rec["sourceRef"])
            for n in os.listdir(os.path.join(self.path, "refs")):
                try:
                    hit = _read_json(os.path.join(self.path, "refs", n))
                except ImageError:
                    hit = None
                if hit is None or hit.get("manifestDigest") == rec["manifestDigest"]:
                    os.unlink(os.path.join(self.path, "refs", n))
            return rec

    def prune(self) -> tuple[list[str], int]:
        """Remove layers no image and no container uses, and leftovers of interrupted unpacks.
        Returns (removed diff_ids, bytes freed by their uncompressed tars, as recorded)."""
        removed, freed = [], 0
        with self.exclusive():
            keep = set()
            for r in self.images():
                keep.update(r.get("diffIDs") or [])
            for u in self.uses():
                keep.update(u.get("diffIDs") or [])
            for diff_id in self.layers():
                if diff_id in keep:
                    continue
                meta = self.layer_meta(diff_id)
                d = self.layer_dir(diff_id)
                # rename first: the layer disappears at once, the slow removal happens out of sight
                gone = os.path.join(self.path, "tmp", f"{diff_id[7:]}.gone.{time.monotonic_ns()}")
                os.rename(d, gone)
                try:
                    os.unlink(d + ".json")
                except FileNotFoundError:
                    pass
                remove_path(gone)
                removed.append(diff_id)
                freed += int(meta.get("size") or 0)
            if os.path.isdir(os.path.join(self.path, "oci")):
                from .pull import gc_layout
                gc_layout(os.path.join(self.path, "oci"))
            tmpd = os.path.join(self.path, "tmp")
            for n in os.listdir(tmpd):
                parts = n.split(".")
                if len(parts) >= 3 and parts[1].isdigit() and _alive(int(parts[1])):
                    continue         # an unpack in progress (its layer lock is held anyway)
                remove_path(os.path.join(tmpd, n))
            locks = os.path.join(self.path, "locks")
            for n in os.listdir(locks):
                if n.endswith(".lock") and not os.path.isdir(os.path.join(self.path, "layers", n[:-5])):
                    try:
                        fd = os.open(os.path.join(locks, n), os.O_RDWR | os.O_CLOEXEC)
                    except FileNotFoundError:
                        continue
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        os.unlink(os.path.join(locks, n))
                    except OSError:
                        pass
                    finally:
                        os.close(fd)
        return removed, freed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
