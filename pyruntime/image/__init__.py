"""OCI images -> runtime bundles: read layouts and archives, verify, unpack safely, convert the config.

Modules (one idea each):

- :mod:`.digest`, :mod:`.mediatypes`, :mod:`.platform`: vocabulary of image-spec;
- :mod:`.store` (layout directory, descriptors), :mod:`.archive` (oci-archive, docker save),
  :mod:`.resolve` (refs, indexes, platform choice, manifest and config checks);
- :mod:`.layerstream` (verified decompression thread), :mod:`.tarstream` (bounded tar parser);
- :mod:`.fsops` (in-root path resolution: openat2 RESOLVE_IN_ROOT), :mod:`.apply` (layer changesets,
  whiteouts, metadata), :mod:`.idmap` (uid/gid shifting);
- :mod:`.convert` (image config -> config.json), :mod:`.bundle` (all-or-nothing orchestration).
"""
from __future__ import annotations

#: default expansion limit of a layer: RATIO x its compressed size (at least layerstream.EXPANSION_FLOOR)
DEFAULT_MAX_EXPANSION = 50


def make_bundle(image_ref: str, bundle_dir: str) -> str:
    """Unpack ``LAYOUT[:REF]`` or ``ARCHIVE[:REF]`` into ``bundle_dir`` (rootfs + config.json).

    Returns ``bundle_dir``.  Raises :class:`~pyruntime.image.errors.ImageError` (a RuntimeFailure);
    on any error nothing this call created is left behind.
    """
    from .. import log
    from .bundle import split_image_ref, unpack
    from .progress import Progress
    path, ref = split_image_ref(image_ref)
    unpack(path, bundle_dir, ref=ref, progress=Progress(), warn=log.warning)
    return bundle_dir
