"""From "a layout (or archive) and maybe a ref" to one image: manifest, config and layers.

Reference lookup (image-layout.md): ``org.opencontainers.image.ref.name`` of the descriptors of
``index.json`` (``io.containerd.image.name`` is accepted too, as ``ctr export`` writes it); without a ref,
the layout must hold a single name.  Indexes (OCI index, Docker manifest list), nested or not, are
expanded and the manifest that best suits the platform is picked (:func:`.platform.rank`).
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from . import digest as dg
from . import mediatypes as mt
from .archive import TarSource, digest_from_path, normalize_tag
from .errors import BlobError, ImageError
from .platform import Platform, rank
from .store import MAX_JSON, Descriptor, DirSource, Layout, parse_json

MAX_INDEX_DEPTH = 8
MAX_MANIFESTS = 4096


@dataclass
class Layer:
    number: int                 # 1-based
    desc: Descriptor            # digest None: no compressed digest (docker save), diff_id checks it
    diff_id: str
    opener: object              # () -> RangeBlob

    @property
    def label(self) -> str:
        return f"layer {self.number} ({self.desc.digest or self.diff_id})"


@dataclass
class Image:
    source: str
    ref: str | None
    manifest_desc: Descriptor | None
    manifest: dict
    config_desc: Descriptor
    config: dict
    layers: list[Layer]
    platform: Platform | None
    warnings: list[str] = field(default_factory=list)


def _config_platform(config: dict) -> Platform:
    return Platform(str(config.get("os", "")), str(config.get("architecture", "")),
                    str(config.get("variant", "") or ""))


def _check_config(config: dict, nlayers: int, where: str) -> list[str]:
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise ImageError("config rootfs.type must be \"layers\"", step=where)
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list):
        raise ImageError("config rootfs.diff_ids must be a list", step=where)
    for d in diff_ids:
        dg.parse(d, f"{where} rootfs.diff_ids")
    if len(diff_ids) != nlayers:
        raise ImageError(f"config lists {len(diff_ids)} diff_ids but the manifest has {nlayers} layers",
                         step=where)
    if config.get("os") not in (None, "linux"):
        raise ImageError(f"image is for os {config.get('os')!r}; only linux images can be unpacked",
                         step=where)
    cfg = config.get("config")
    if cfg is not None and not isinstance(cfg, dict):
        raise ImageError("config.config must be an object", step=where)
    return diff_ids


def _platform_warning(img: Image, want: Platform, explicit: bool) -> None:
    have = _config_platform(img.config)
    if not have.architecture or rank(want, have) is not None:
        return
    msg = f"image is for {have}, not {want}"
    if explicit:
        raise ImageError(msg, step="platform")
    img.warnings.append(msg + " (it may not run on this host)")


class LayoutImages:
    """Images of an OCI layout (directory or oci-archive); also a docker-save manifest.json if present."""

    def __init__(self, layout: Layout, docker: "DockerImages | None" = None) -> None:
        self.layout = layout
        self.docker = docker
        self.name = layout.name

    def close(self) -> None:
        self.layout.close()

    # -- listing --------------------------------------------------------------------------------
    def refs(self) -> list[dict]:
        rows = []
        for d in self.layout.index():
            row = {"ref": d.ref_name or d.annotations.get("io.containerd.image.name") or "",
                   "mediaType": d.media_type, "digest": d.digest, "platforms": []}
            try:
                row["platforms"] = [str(p) if p else "?" for _, p in self._leaves([d], fill=True)]
            except ImageError as e:
                row["error"] = str(e)
            rows.append(row)
        if self.docker is not None:
            known = {r["ref"] for r in rows}
            rows.extend(r for r in self.docker.refs() if r["ref"] not in known)
        return rows

    def _leaves(self, descs: list[Descriptor], fill: bool = False) -> list[tuple[Descriptor, Platform | None]]:
        """Expand indexes; manifests with the platform their descriptor (or config) states."""
        out: list[tuple[Descriptor, Platform | None]] = []
        unsupported: list[Descriptor] = []
        budget = [MAX_MANIFESTS]

        def walk(ds: list[Descriptor], depth: int) -> None:
            for d in ds:
                budget[0] -= 1
                if budget[0] < 0:
                    raise ImageError(f"more than {MAX_MANIFESTS} manifests", step="index")
                if d.media_type in mt.INDEXES:
                    if depth >= MAX_INDEX_DEPTH:
                        raise ImageError(f"indexes nested more than {MAX_INDEX_DEPTH} deep", step="index")
                    where = f"index {d.digest}"
                    walk(_parse_index_blob(self.layout, d, where), depth + 1)
                elif d.media_type in mt.MANIFESTS:
                    out.append((d, d.platform))
                else:
                    unsupported.append(d)

        walk(descs, 0)
        if not out and unsupported:
            d = unsupported[0]
            raise ImageError(f"unsupported media type {d.media_type!r} (descriptor {d.digest}); "
                             "expected an OCI or Docker image manifest or index", step="resolve")
        # manifests without a platform: take it from their config, cheaply, for ranking and listing
        filled = []
        for d, p in out:
            if p is None and (fill or len(out) > 1):
                try:
                    m = self.layout.read_json(d, "manifest")
                    cd = Descriptor.parse(m.get("config"), f"manifest {d.digest} config")
                    p = _config_platform(self.layout.read_json(cd, "config")) if cd.media_type in mt.CONFIGS else None
                except ImageError:
                    p = None
            filled.append((d, p))
        return filled

    # -- resolution -----------------------------------------------------------------------------
    def resolve(self, ref: str | None, want: Platform, explicit: bool) -> Image:
        index = self.layout.index()
        if ref is not None:
            cands = [d for d in index if ref in (d.ref_name, d.annotations.get("io.containerd.image.name"))
                     or ref == d.digest]
            if not cands and self.docker is not None and self.docker.has(ref):
                return self.docker.resolve(ref, want, explicit)
            if not cands:
                raise ImageError(f"reference {ref!r} not found in {self.name} "
                                 f"(available: {_names(index) or 'none'})", step="resolve")
        else:
            if not index:
                raise ImageError(f"{self.name} contains no images (index.json lists no manifests)",
                                 step="resolve")
            names = {d.ref_name for d in index}
            if len(names) > 1:
                raise ImageError(f"{self.name} holds several images ({_names(index)}); choose one with "
                                 f"--ref NAME or LAYOUT:NAME", step="resolve")
            cands = index
        leaves = self._leaves(cands)
        ranked = [(r, i, d, p) for i, (d, p) in enumerate(leaves) if (r := rank(want, p)) is not None]
        if not ranked:
            avail = ", ".join(sorted({str(p) for _, p in leaves if p})) or "none"
            raise ImageError(f"no image for platform {want} in {self.name}{':' + ref if ref else ''} "
                             f"(available: {avail}); choose one with --platform", step="resolve")
        ranked.sort(key=lambda x: (x[0], x[1]))
        _, _, desc, plat = ranked[0]
        img = self._load(desc, ref)
        img.platform = plat or _config_platform(img.config)
        _platform_warning(img, want, explicit)
        return img

    def _load(self, desc: Descriptor, ref: str | None) -> Image:
        where = f"manifest {desc.digest}"
        m = self.layout.read_json(desc, "manifest")
        if m.get("schemaVersion") != 2:
            raise ImageError(f"unsupported schemaVersion {m.get('schemaVersion')!r}", step=where)
        if m.get("mediaType") not in (None, desc.media_type):
            raise ImageError(f"manifest says mediaType {m.get('mediaType')!r} but its descriptor says "
                             f"{desc.media_type!r}", step=where)
        cdesc = Descriptor.parse(m.get("config"), f"{where} config")
        if cdesc.media_type not in mt.CONFIGS:
            raise ImageError(f"not a container image: config media type {cdesc.media_type!r}", step=where)
        raw_layers = m.get("layers")
        if not isinstance(raw_layers, list):
            raise ImageError("'layers' must be a list", step=where)
        ldescs = [Descriptor.parse(x, f"{where} layers[{i}]") for i, x in enumerate(raw_layers)]
        for i, ld in enumerate(ldescs, 1):
            if ld.media_type not in mt.LAYERS:
                raise ImageError(f"layer {i} ({ld.digest}) has unsupported media type {ld.media_type!r}",
                                 step=where)
        config = self.layout.read_json(cdesc, "config")
        diff_ids = _check_config(config, len(ldescs), f"config {cdesc.digest}")
        layers = [Layer(i, ld, diff_ids[i - 1], (lambda d=ld, n=i: self.layout.open_blob(d, f"layer {n}")))
                  for i, ld in enumerate(ldescs, 1)]
        return Image(self.name, ref, desc, m, cdesc, config, layers, None)


def _parse_index_blob(layout: Layout, d: Descriptor, where: str) -> list[Descriptor]:
    from .store import parse_index
    doc = layout.read_json(d, "index")
    if doc.get("mediaType") not in (None, d.media_type):
        raise ImageError(f"index says mediaType {doc.get('mediaType')!r} but its descriptor says "
                         f"{d.media_type!r}", step=where)
    return parse_index(doc, where)


def _names(index: list[Descriptor]) -> str:
    seen: list[str] = []
    for d in index:
        n = d.ref_name or d.annotations.get("io.containerd.image.name")
        if n and n not in seen:
            seen.append(n)
    return ", ".join(seen)


class DockerImages:
    """``docker save`` archives: manifest.json lists Config, RepoTags and Layers (paths in the tar)."""

    def __init__(self, source) -> None:
        self.source = source
        self.name = source.name
        with source.open("manifest.json") as b:
            if b.size > MAX_JSON:
                raise ImageError("manifest.json is too large", step="archive", path=self.name)
            data = b.read(b.size)
        try:
            import json
            doc = json.loads(data)
        except ValueError as e:
            raise ImageError(f"invalid manifest.json: {e}", step="archive", path=self.name) from None
        if not isinstance(doc, list) or not all(isinstance(x, dict) for x in doc):
            raise ImageError("manifest.json must be a list of objects", step="archive", path=self.name)
        self.entries = doc

    def close(self) -> None:
        self.source.close()

    def _tags(self, e: dict) -> list[str]:
        tags = e.get("RepoTags") or []
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []

    def has(self, ref: str) -> bool:
        want = normalize_tag(ref)
        return any(normalize_tag(t) == want for e in self.entries for t in self._tags(e))

    def refs(self) -> list[dict]:
        rows = []
        for e in self.entries:
            plat: list[str] = []
            try:
                cfg = self._config(e)[1]
                plat = [str(_config_platform(cfg))]
            except ImageError:
                plat = ["?"]
            for t in self._tags(e) or [""]:
                rows.append({"ref": t, "mediaType": "docker-save", "digest": digest_from_path(str(e.get("Config"))),
                             "platforms": plat})
        return rows

    def _config(self, e: dict) -> tuple[str | None, dict]:
        path = e.get("Config")
        if not isinstance(path, str):
            raise ImageError("manifest.json entry has no Config", step="archive", path=self.name)
        expected = digest_from_path(path)
        try:
            with self.source.open(path) as b:
                if b.size > MAX_JSON:
                    raise ImageError("config is too large", step="archive", path=path)
                data = b.read(b.size)
        except FileNotFoundError:
            raise BlobError(expected or path, f"config missing from {self.name}", what="config") from None
        if expected:
            v = dg.Verifier(expected, None, what="config")
            v.update(data)
            v.check()
        return expected, parse_json(data, f"config {path}")

    def resolve(self, ref: str | None, want: Platform, explicit: bool) -> Image:
        if ref is None:
            if len(self.entries) != 1:
                tags = ", ".join(t for e in self.entries for t in self._tags(e))
                raise ImageError(f"{self.name} holds {len(self.entries)} images ({tags or 'untagged'}); "
                                 "choose one with --ref NAME or ARCHIVE:NAME", step="resolve")
            entry = self.entries[0]
        else:
            want_tag = normalize_tag(ref)
            matches = [e for e in self.entries if any(normalize_tag(t) == want_tag for t in self._tags(e))]
            if not matches:
                tags = ", ".join(t for e in self.entries for t in self._tags(e))
                raise ImageError(f"reference {ref!r} not found in {self.name} (available: {tags or 'none'})",
                                 step="resolve")
            entry = matches[0]
        cdigest, config = self._config(entry)
        paths = entry.get("Layers")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ImageError("manifest.json entry has no Layers list", step="archive", path=self.name)
        diff_ids = _check_config(config, len(paths), f"config {entry.get('Config')}")
        foreign = entry.get("LayerSources") if isinstance(entry.get("LayerSources"), dict) else {}
        layers = []
        for i, (p, diff_id) in enumerate(zip(paths, diff_ids, strict=True), 1):
            try:
                with self.source.open(p) as b:
                    size = b.size
            except FileNotFoundError:
                src = foreign.get(diff_id)
                if isinstance(src, dict):
                    raise BlobError(diff_id, f"non-distributable (foreign) layer is not in {self.name}; "
                                    "pyruntime does not download layers", what=f"layer {i}") from None
                raise BlobError(digest_from_path(p) or p, f"missing from {self.name}", what=f"layer {i}") from None
            desc = Descriptor(mt.DOCKER_LAYER, digest_from_path(p), size)
            layers.append(Layer(i, desc, diff_id, (lambda path=p: self.source.open(path))))
        cdesc = Descriptor(mt.DOCKER_CONFIG, cdigest, 0)
        img = Image(self.name, ref, None, entry, cdesc, config, layers, _config_platform(config))
        _platform_warning(img, want, explicit)
        return img


def open_images(path: str):
    """A layout directory, an OCI archive or a docker-save archive -> an object with
    ``resolve(ref, platform, explicit)``, ``refs()`` and ``close()``."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise ImageError.from_os(e, "open image", path) from None
    if stat.S_ISDIR(st.st_mode):
        return LayoutImages(Layout(DirSource(path)))
    if not stat.S_ISREG(st.st_mode):
        raise ImageError("not a directory or an archive file", step="open image", path=path)
    src = TarSource(path)
    try:
        docker = DockerImages(src) if src.exists("manifest.json") else None
        if src.exists("oci-layout") and src.exists("index.json"):
            return LayoutImages(Layout(src), docker)
        if docker is not None:
            return docker
        raise ImageError("archive holds neither an OCI layout (oci-layout, index.json) nor docker save "
                         "output (manifest.json)", step="open image", path=path)
    except BaseException:
        src.close()
        raise
