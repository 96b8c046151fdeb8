"""Unpack an image into a runtime bundle: ``BUNDLE/rootfs`` and ``BUNDLE/config.json``.

All or nothing: on any error (a failed check, a hostile entry, Ctrl-C) whatever this call created is
removed again -- the bundle directory if it made it, else the rootfs and config.json inside it.
"""
from __future__ import annotations

import json
import os

from . import convert, idmap
from . import platform as plat
from .apply import Applier
from .errors import ImageError
from .fsops import Root, remove_path, remove_tree
from .layerstream import DEFAULT_MAX_EXPANSION, LayerStream, expansion_limit
from .progress import Progress
from .refs import split_image_ref
from .resolve import Image, open_images
from .tarstream import StreamSource, TarReader


class _Created:
    """What this unpack made, so that a failure can take exactly that away."""

    def __init__(self) -> None:
        self.top: str | None = None       # topmost directory we created (bundle or a parent of it)
        self.inside: list[str] = []       # paths we created inside a bundle dir that already existed

    def undo(self) -> None:
        if self.top:
            remove_path(self.top)
            return
        for p in reversed(self.inside):
            try:
                remove_path(p)
            except FileNotFoundError:
                pass


def _prepare_bundle(bundle: str, made: _Created) -> None:
    bundle = os.path.abspath(bundle)
    if os.path.lexists(bundle):
        if not os.path.isdir(bundle) or os.path.islink(bundle):
            raise ImageError("exists and is not a directory", step="bundle", path=bundle)
        if os.listdir(bundle):
            raise ImageError("bundle directory is not empty", step="bundle", path=bundle)
        return
    top = bundle
    while not os.path.lexists(os.path.dirname(top)):
        top = os.path.dirname(top)
    os.makedirs(bundle, 0o755)
    made.top = top


def open_layer_stream(layer, blob, max_expansion: float | None, progress=None) -> LayerStream:
    """The verified, size-limited stream of one layer (not started)."""
    size = layer.desc.size
    limit = expansion_limit(size, max_expansion)
    hint = "" if limit is None else (
        f"{max_expansion:g}x its {size} compressed bytes, at least {expansion_limit(0, max_expansion)}; "
        f"raise the limit with --max-expansion RATIO, 0 for none")
    return LayerStream(blob, layer.desc.digest, size if layer.desc.digest else None, layer.diff_id,
                       f"layer {layer.number}", progress=progress,
                       max_out=limit, limit_hint=hint)


def apply_layer(applier: Applier, layer, n: int, max_expansion: float | None,
                progress: Progress | None) -> None:
    """Stream layer ``layer`` (of ``n``) through its checks into ``applier``."""
    label = f"layer {layer.number}/{n} ({layer.desc.digest or layer.diff_id})"
    cb = progress.layer(layer.number, n, layer.desc.size) if progress else None
    blob = layer.opener()
    try:
        stream = open_layer_stream(layer, blob, max_expansion, progress=cb).start()
        try:
            applier.apply(TarReader(StreamSource(stream.next_chunk)), label)
            stream.finish()
        except BaseException as e:
            blob_err = stream.abort(diagnose=isinstance(e, Exception))
            if blob_err is not None and blob_err is not e:
                raise blob_err from e
            raise
    finally:
        blob.close()
        if progress:
            progress.end()


def _unpack_layers(img: Image, rootfs: str, *, uid_ranges, gid_ranges, rootless: bool, warn,
                   progress: Progress | None, use_openat2: bool | None,
                   max_expansion: float | None = DEFAULT_MAX_EXPANSION) -> Root:
    umap = idmap.IdMapper(uid_ranges, "uid")
    gmap = idmap.IdMapper(gid_ranges, "gid")
    chown = not rootless
    if chown:
        os.chown(rootfs, umap(0), gmap(0))
    os.utime(rootfs, ns=(0, 0))
    root = Root(rootfs, use_openat2=use_openat2, mkdir_owner=(umap(0), gmap(0)) if chown else None)
    try:
        applier = Applier(root, uid_map=umap, gid_map=gmap, rootless=rootless, warn=warn)
        for layer in img.layers:
            apply_layer(applier, layer, len(img.layers), max_expansion, progress)
        applier.finish()
        return root
    except BaseException:
        root.close()
        raise


def unpack(src: str, bundle: str, *, ref: str | None = None, platform: str | None = None,
           uid_map: list[str] | None = None, gid_map: list[str] | None = None,
           progress: Progress | None = None, warn=None, rootless: bool | None = None,
           use_openat2: bool | None = None, max_expansion: float | None = DEFAULT_MAX_EXPANSION) -> Image:
    """Unpack image ``ref`` of layout/archive ``src`` into bundle directory ``bundle``."""
    warn = warn or (lambda msg: None)
    want = plat.parse(platform) if platform else plat.host()
    uid_ranges = idmap.parse(uid_map, "uid")
    gid_ranges = idmap.parse(gid_map, "gid")
    if rootless is None:
        rootless = os.geteuid() != 0
    images = open_images(src)
    try:
        img = images.resolve(ref, want, platform is not None)
        for w in img.warnings:
            warn(w)
        made = _Created()
        try:
            _prepare_bundle(bundle, made)
            rootfs = os.path.join(bundle, "rootfs")
            os.mkdir(rootfs, 0o755)
            if made.top is None:
                made.inside.append(rootfs)
            root = _unpack_layers(img, rootfs, uid_ranges=uid_ranges, gid_ranges=gid_ranges,
                                  rootless=rootless, warn=warn, progress=progress, use_openat2=use_openat2,
                                  max_expansion=max_expansion)
            try:
                spec = convert.runtime_config(img.config, root, uid_ranges, gid_ranges, warn)
            finally:
                root.close()
            path = os.path.join(bundle, "config.json")
            if made.top is None:
                made.inside.append(path)
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(spec, f, indent="\t")
                f.write("\n")
            os.rename(tmp, path)
        except BaseException:
            made.undo()
            try:
                os.unlink(os.path.join(bundle, "config.json.tmp"))
            except OSError:
                pass
            raise
        return img
    except OSError as e:
        raise ImageError.from_os(e, "unpack", getattr(e, "filename", None) or bundle) from None
    finally:
        images.close()


__all__ = ["unpack", "split_image_ref", "remove_tree"]
