"""A layer blob as a verified stream of uncompressed tar bytes.

One producer thread per layer reads the blob, hashes it (digest and size of the descriptor),
decompresses it and hashes the result (the config's ``diff_id``); the applying thread consumes chunks
from a bounded queue.  zlib, zstd, hashlib and file reads all release the GIL, so on two CPUs the
decompression overlaps the writing of files.

Compression is recognised by its magic number (gzip ``1f 8b``, zstd ``28 b5 2f fd``), whatever the media
type claims: ``docker save`` calls uncompressed layers ``.tar``, some registries mislabel, and the digest
and diff_id checks are what guarantee the content anyway.

Decompressed output is produced at most :data:`OUT_CHUNK` bytes at a time, so a decompression bomb
costs time, never memory.

Libraries: gzip uses ``zlib_ng`` (PyPI ``zlib-ng``, python bindings of zlib-ng by the pycompression
project) or ``isal`` (PyPI ``isal``, Intel ISA-L) when installed -- both inflate about 2.5x faster than
zlib, which is the bottleneck of a large unpack -- and the standard library's zlib otherwise.  zstd uses
``zstandard`` (PyPI, python-zstandard) or, on Python 3.14+, the standard library's ``compression.zstd``.
"""
from __future__ import annotations

import queue
import threading
import zlib

from .digest import Verifier
from .errors import BlobError, ImageError

IN_CHUNK = 1 << 20
OUT_CHUNK = 1 << 20
from . import DEFAULT_MAX_EXPANSION  # noqa: E402,F401 - a layer may unpack to this many times its size ...
#: ... but always to at least this much (small layers of zeros compress very well)
EXPANSION_FLOOR = 64 << 20


def expansion_limit(compressed: int | None, ratio: float | None) -> int | None:
    """Most uncompressed bytes a layer of ``compressed`` bytes may produce; None: no limit.

    Real layers expand 2-10x; a decompression bomb (1 MiB of gzip -> 1 GiB) far more.  Counting the
    uncompressed tar stream bounds what the layer can write, since hardlinks are its only way to
    make data without bytes (and sparse members are refused)."""
    if not ratio or ratio <= 0 or compressed is None:
        return None
    return max(int(compressed * ratio), EXPANSION_FLOOR)
_QUEUE_DEPTH = 32
_GZIP_MAGIC = b"\x1f\x8b"


def _inflater():
    """The fastest available zlib-compatible module (same decompressobj/max_length semantics)."""
    try:
        from zlib_ng import zlib_ng as mod  # type: ignore[import-not-found]
        return mod
    except ImportError:
        pass
    try:
        from isal import isal_zlib as mod  # type: ignore[import-not-found]
        return mod
    except ImportError:
        return zlib
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class RawReader:
    """Reads a blob through a :class:`Verifier`; ``peek`` keeps bytes for the next ``read``."""

    def __init__(self, blob, verifier: Verifier, progress=None) -> None:
        self.blob = blob
        self.v = verifier
        self.progress = progress
        self._pushback = b""
        self.eof = False

    def read(self, n: int = IN_CHUNK) -> bytes:
        if self._pushback:
            b, self._pushback = self._pushback, b""
            return b
        if self.eof:
            return b""
        b = self.blob.read(n)
        if not b:
            self.eof = True
            return b""
        self.v.update(b)
        if self.progress is not None:
            self.progress(len(b))
        return b

    def peek(self, n: int) -> bytes:
        while len(self._pushback) < n and not self.eof:
            b = self.blob.read(IN_CHUNK)
            if not b:
                self.eof = True
                break
            self.v.update(b)
            if self.progress is not None:
                self.progress(len(b))
            self._pushback += b
        return self._pushback[:n]

    def drain(self, cancelled=lambda: False) -> None:
        """Read (and hash) whatever is left, so the digest check covers the whole blob."""
        self._pushback = b""
        while not cancelled() and self.read(IN_CHUNK):
            self._pushback = b""


class GzipReader:
    """Multi-member gzip over a raw reader with bounded output (zlib checks each member's CRC)."""

    def __init__(self, raw: RawReader) -> None:
        self.raw = raw
        self.z = _inflater()
        self.d = self.z.decompressobj(wbits=31)
        self.tail = b""          # input the decompressor has not consumed yet
        self.finished = False

    def read(self, n: int = OUT_CHUNK) -> bytes:
        while True:
            if self.finished:
                return b""
            data = self.tail or self.raw.read(IN_CHUNK)
            self.tail = b""
            if not data:
                if not self.d.eof:
                    raise zlib.error("truncated gzip stream")
                self.finished = True
                return b""
            out = self.d.decompress(data, n)
            self.tail = self.d.unconsumed_tail
            if self.d.eof:
                rest = self.d.unused_data + self.tail
                self.tail = b""
                # another member, or trailing zero padding (tolerated, as gzip(1) does)
                while len(rest) < 2 and not self.raw.eof:
                    more = self.raw.read(IN_CHUNK)
                    if not more:
                        break
                    rest += more
                if rest[:2] == _GZIP_MAGIC:
                    self.d = self.z.decompressobj(wbits=31)
                    self.tail = rest
                elif rest.strip(b"\0"):
                    raise zlib.error("trailing garbage after gzip stream")
                else:
                    while True:
                        more = self.raw.read(IN_CHUNK)
                        if not more:
                            break
                        if more.strip(b"\0"):
                            raise zlib.error("trailing garbage after gzip stream")
                    self.finished = True
            if out:
                return out


class _ZstdReader:
    def __init__(self, raw: RawReader) -> None:
        try:
            from compression import zstd as _std  # type: ignore[import-not-found]  # Python >= 3.14
            self._r = _std.ZstdFile(raw, "rb")
        except ImportError:
            try:
                import zstandard
            except ImportError:
                raise ImageError("this layer is zstd-compressed: install the 'zstandard' package "
                                 "(pip install zstandard)", step="unpack") from None
            self._r = zstandard.ZstdDecompressor().stream_reader(raw, read_size=IN_CHUNK,
                                                                 read_across_frames=True)

    def read(self, n: int = OUT_CHUNK) -> bytes:
        return self._r.read(n)


class _Done:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class LayerStream:
    """Start with :meth:`start`; feed :meth:`next_chunk` to a tar reader; end with :meth:`finish`
    (success: raises if any check failed) or :meth:`abort` (the consumer failed)."""

    def __init__(self, blob, digest: str | None, size: int | None, diff_id: str | None,
                 name: str, progress=None, max_out: int | None = None,
                 limit_hint: str = "") -> None:
        self.blob = blob
        self.max_out = max_out
        self.limit_hint = limit_hint
        self.name = name
        self.verifier = Verifier(digest, size, what=name)
        self.diff = Verifier(diff_id, None, what=f"{name} uncompressed content (diff_id)")
        self.progress = progress
        self.compression = "none"
        self._q: queue.Queue = queue.Queue(_QUEUE_DEPTH)
        self._stop = False
        self._cancel = False
        self._thread = threading.Thread(target=self._run, name=f"unpack {name}", daemon=True)
        self._result: _Done | None = None

    def start(self) -> "LayerStream":
        self._thread.start()
        return self

    # -- producer -------------------------------------------------------------------------------
    def _put(self, item) -> bool:
        while not self._stop:
            try:
                self._q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        raw = RawReader(self.blob, self.verifier, self.progress)
        err: BaseException | None = None
        try:
            head = raw.peek(4)
            if head[:2] == _GZIP_MAGIC:
                src, self.compression = GzipReader(raw), "gzip"
            elif head[:4] == _ZSTD_MAGIC:
                src, self.compression = _ZstdReader(raw), "zstd"
            else:
                src = raw
            try:
                update = self.diff.update
                total, limit = 0, self.max_out
                while not self._stop:
                    data = src.read(OUT_CHUNK)
                    if not data:
                        break
                    total += len(data)
                    if limit is not None and total > limit:
                        raise ImageError(f"expands to more than {limit} bytes ({self.limit_hint})",
                                         step="unpack", path=self.name)
                    update(data)
                    if not self._put(data):
                        break
            except Exception as e:   # zlib.error, zstandard.ZstdError, EOFError, ...
                if isinstance(e, ImageError) or (isinstance(e, OSError) and e.errno is not None):
                    raise
                # report a digest mismatch in preference: a corrupt download explains a bad stream
                err = BlobError(self.verifier.name, f"cannot decompress ({self.compression}): {e}",
                                what=self.name)
            raw.drain(lambda: self._cancel)
            if self._cancel:
                return
            self.verifier.check()
            if err is None and not self._stop:
                self.diff.check()
        except BaseException as e:      # noqa: BLE001 - handed to the consumer
            err = e if not isinstance(e, OSError) else BlobError(
                self.verifier.name, f"read error: {e.strerror or e}", what=self.name)
        finally:
            self._result = _Done(err)
            self._put(self._result)

    # -- consumer -------------------------------------------------------------------------------
    def next_chunk(self) -> bytes:
        item = self._q.get()
        if isinstance(item, _Done):
            self._q.put(item)           # later calls see the end too
            if item.error is not None:
                raise item.error
            return b""
        return item

    def finish(self) -> None:
        """Consume the rest of the stream (bytes after the tar end count for the diff_id)."""
        while self.next_chunk():
            pass
        self._thread.join()

    def abort(self, diagnose: bool = True) -> BaseException | None:
        """Stop after a consumer error; returns the blob's own verification error, if any (a
        corrupt blob is the better explanation of a malformed tar stream).  Without ``diagnose``
        (Ctrl-C) the rest of the blob is not read."""
        self._stop = True
        self._cancel = not diagnose
        self._thread.join()
        res = self._result
        if res is not None and isinstance(res.error, BlobError):
            return res.error
        return None
