"""Errors of the image module: every one is a :class:`~pyruntime.errors.RuntimeFailure`.

The CLI prints ``str(err)``; the text names the object at fault (a blob digest, a layer number and
entry name, a file of the layout) so that a user can tell a corrupt download from a hostile layer.
"""
from __future__ import annotations

from ..errors import RuntimeFailure


class ImageError(RuntimeFailure):
    """Anything wrong with an image or with unpacking it."""

    def __init__(self, message: str, *, step: str = "image", path: str = "", errno: int = 0) -> None:
        super().__init__(message, step=step, path=path, errno=errno)


class BlobError(ImageError):
    """A blob is missing, has the wrong size or digest, or cannot be decoded."""

    def __init__(self, digest: str, message: str, *, what: str = "blob") -> None:
        super().__init__(f"{what} {digest}: {message}", step="verify")
        self.digest = digest


class LayerError(ImageError):
    """A layer's tar stream is malformed or an entry cannot be applied."""

    def __init__(self, message: str, *, layer: str = "", entry: str = "", errno: int = 0) -> None:
        where = " ".join(p for p in (layer, f"entry {entry!r}" if entry else "") if p)
        super().__init__(message, step="unpack", path=where, errno=errno)
        self.entry = entry
