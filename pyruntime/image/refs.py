"""``LAYOUT[:REF]`` / ``ARCHIVE[:REF]`` splitting, apart from the unpacker so that a cached
``run --image`` imports none of it."""
from __future__ import annotations

import os

from .errors import ImageError


def split_image_ref(image_ref: str) -> tuple[str, str | None]:
    """``LAYOUT``, ``LAYOUT:REF``, ``ARCHIVE.tar[:REF]`` -> (path, ref).  The path is the shortest
    prefix before a ':' that exists (a ref may contain ':' itself: ``img.tar:busybox:latest``)."""
    if os.path.exists(image_ref):
        return image_ref, None
    i = image_ref.find(":")
    while i != -1:
        path = image_ref[:i]
        if path and os.path.exists(path):
            return path, image_ref[i + 1:] or None
        i = image_ref.find(":", i + 1)
    raise ImageError("no such image layout or archive", step="image", path=image_ref)
