"""A streaming tar reader for layers and archives: ustar, GNU (long names, base-256) and PAX.

Why not :mod:`tarfile`: it reads every PAX/GNU extension header whole into memory (a hostile layer can
announce gigabytes), it has no hook to stream member data straight into a file descriptor, and in stream
mode it cannot tell us where a member's data starts in a seekable archive.  This reader bounds extension
headers (:data:`MAX_EXT_HEADER`), hands out entries one at a time, and leaves the data to the caller
(:meth:`TarReader.copy_to_fd`, :meth:`TarReader.read_data`); whatever the caller does not consume is
skipped before the next header.

Names are decoded from bytes with ``surrogateescape`` (``os.fsdecode``), so any byte string survives the
round trip to the filesystem.
"""
from __future__ import annotations

import base64
import os
from urllib.parse import unquote_to_bytes

from .errors import LayerError

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
#: largest PAX / GNU long-name header accepted (xattr values are at most 64 KiB on Linux)
MAX_EXT_HEADER = 1 << 20
#: most extension-header bytes before one entry, and in all global PAX headers together
MAX_EXT_TOTAL = 4 << 20
#: longest entry name accepted: beyond PATH_MAX, since a deep tree (3000 levels) is a valid image and the
#: applier resolves long paths itself; bounded so that names stay cheap to hold
MAX_NAME = 64 << 10
#: longest symlink target (the kernel's own limit, PATH_MAX including the NUL)
MAX_SYMLINK = 4095

# entry types we hand out (GNU 'D' dump-dir is a directory, '7' contiguous is a regular file)
REG, LINK, SYMLINK, CHR, BLK, DIR, FIFO = "0", "1", "2", "3", "4", "5", "6"
_TYPEMAP = {b"0": REG, b"\0": REG, b"7": REG, b"1": LINK, b"2": SYMLINK, b"3": CHR, b"4": BLK,
            b"5": DIR, b"D": DIR, b"6": FIFO}


class TarEntry:
    """One member.  ``mtime_ns``/``atime_ns`` are nanoseconds; ``xattrs`` maps name -> bytes."""

    __slots__ = ("name", "type", "mode", "uid", "gid", "size", "mtime_ns", "atime_ns", "linkname",
                 "devmajor", "devminor", "xattrs", "offset")

    def __repr__(self) -> str:
        return f"<TarEntry {self.type} {self.name!r} size={self.size}>"


class StreamSource:
    """Sequential bytes from ``next_chunk()`` (returns b"" at the end)."""

    def __init__(self, next_chunk) -> None:
        self._next = next_chunk
        self._buf = b""
        self._pos = 0
        self.offset = 0   # bytes handed out so far

    def read(self, n: int) -> bytes:
        buf, pos = self._buf, self._pos
        end = pos + n
        if end <= len(buf):
            self._pos = end
            self.offset += n
            return buf[pos:end]
        parts = [buf[pos:]]
        need = n - (len(buf) - pos)
        self._buf, self._pos = b"", 0
        while need > 0:
            c = self._next()
            if not c:
                break
            if len(c) > need:
                parts.append(c[:need])
                self._buf, self._pos = c, need
                need = 0
            else:
                parts.append(c)
                need -= len(c)
        out = b"".join(parts)
        self.offset += len(out)
        return out

    def _chunks(self, n: int):
        """Yield memoryviews covering the next ``n`` bytes (fewer at EOF)."""
        while n > 0:
            buf, pos = self._buf, self._pos
            if pos >= len(buf):
                buf = self._next()
                if not buf:
                    return
                self._buf, pos = buf, 0
            k = min(n, len(buf) - pos)
            self._pos = pos + k
            self.offset += k
            n -= k
            yield memoryview(buf)[pos:pos + k]

    def skip(self, n: int) -> int:
        done = 0
        for mv in self._chunks(n):
            done += len(mv)
        return done

    def copy_to_fd(self, fd: int, n: int) -> int:
        done = 0
        write = os.write
        for mv in self._chunks(n):
            while mv:
                w = write(fd, mv)
                mv = mv[w:]
                done += w
        return done


class FileSource:
    """Random-access bytes of a regular file (an archive): skipping is free, data is never read."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.offset = 0

    def read(self, n: int) -> bytes:
        n = max(0, min(n, self.size - self.offset))
        out = os.pread(self.fd, n, self.offset) if n else b""
        self.offset += len(out)
        return out

    def skip(self, n: int) -> int:
        n = max(0, min(n, self.size - self.offset))
        self.offset += n
        return n

    def copy_to_fd(self, fd: int, n: int) -> int:  # pragma: no cover - archives are only indexed
        done = 0
        while done < n:
            b = self.read(min(1 << 20, n - done))
            if not b:
                break
            os.write(fd, b)
            done += len(b)
        return done


def _octal(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:           # GNU base-256
        v = int.from_bytes(field[1:], "big")
        if field[0] == 0xFF:
            v -= 1 << (8 * (len(field) - 1))
        return v
    s = field.split(b"\0", 1)[0].strip(b" ")
    if not s:
        return 0
    try:
        return int(s, 8)
    except ValueError:
        raise LayerError(f"invalid {what} field {field!r} in tar header") from None


def _cstr(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def _pax_time(v: bytes) -> int:
    s = v.decode("ascii", "replace").strip()
    neg = s.startswith("-")
    if neg:
        s = s[1:]
    whole, _, frac = s.partition(".")
    try:
        ns = int(whole or "0") * 1_000_000_000 + int((frac + "000000000")[:9] or "0")
    except ValueError:
        raise LayerError(f"invalid PAX time {v!r}") from None
    return -ns if neg else ns


def parse_pax(data: bytes) -> dict[str, bytes]:
    recs: dict[str, bytes] = {}
    pos, n = 0, len(data)
    while pos < n:
        if data[pos] == 0:
            break
        sp = data.find(b" ", pos, pos + 21)
        if sp < 0:
            raise LayerError("malformed PAX record")
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise LayerError("malformed PAX record length") from None
        end = pos + length
        if length <= sp - pos + 1 or end > n or data[end - 1] != 0x0A:
            raise LayerError("malformed PAX record")
        key, eq, val = data[sp + 1:end - 1].partition(b"=")
        if not eq:
            raise LayerError("malformed PAX record (no '=')")
        recs[key.decode("utf-8", "surrogateescape")] = val
        pos = end
    return recs


class TarReader:
    """Iterate entries of a tar stream; the caller may consume each entry's data before the next."""

    def __init__(self, src) -> None:
        self.src = src
        self._pending = 0          # data + padding of the current entry not consumed yet
        self._remaining = 0        # data of the current entry not consumed yet
        self._globals: dict[str, bytes] = {}
        self._globals_size = 0
        self.done = False

    # -- data of the current entry --------------------------------------------------------------
    def copy_to_fd(self, fd: int, n: int) -> None:
        n = min(n, self._remaining)
        got = self.src.copy_to_fd(fd, n)
        self._remaining -= got
        self._pending -= got
        if got != n:
            raise LayerError("unexpected end of tar stream inside file data")

    def read_data(self, n: int, limit: int = MAX_EXT_HEADER) -> bytes:
        n = min(n, self._remaining)
        if n > limit:
            raise LayerError(f"tar member of {n} bytes is too large to read into memory")
        b = self.src.read(n)
        self._remaining -= len(b)
        self._pending -= len(b)
        if len(b) != n:
            raise LayerError("unexpected end of tar stream inside file data")
        return b

    # -- headers --------------------------------------------------------------------------------
    def _read_block(self) -> bytes:
        if self._pending:
            if self.src.skip(self._pending) != self._pending:
                raise LayerError("unexpected end of tar stream inside file data")
            self._pending = self._remaining = 0
        return self.src.read(BLOCK)

    def _read_ext(self, size: int, what: str) -> bytes:
        if size < 0 or size > MAX_EXT_HEADER:
            raise LayerError(f"{what} header of {size} bytes exceeds the {MAX_EXT_HEADER} byte limit")
        data = self.src.read(size)
        if len(data) != size:
            raise LayerError(f"unexpected end of tar stream inside {what} header")
        pad = -size % BLOCK
        if pad and len(self.src.read(pad)) != pad:
            raise LayerError(f"unexpected end of tar stream inside {what} header")
        return data

    def __iter__(self):
        return self

    def __next__(self) -> TarEntry:
        e = self.next()
        if e is None:
            raise StopIteration
        return e

    def next(self) -> TarEntry | None:
        if self.done:
            return None
        pax: dict[str, bytes] = {}
        longname = longlink = None
        ext_total = 0
        while True:
            block = self._read_block()
            if len(block) < BLOCK:
                if not block and not pax and longname is None and longlink is None:
                    self.done = True      # tolerated: end of stream without the zero blocks
                    return None
                raise LayerError("unexpected end of tar stream inside a header")
            if block == ZERO_BLOCK:
                self.done = True
                return None
            chk = _octal(block[148:156], "checksum")
            s = sum(block) - sum(block[148:156]) + 256
            if chk != s:
                # some old writers summed signed chars
                high = sum(1 for b in block[:148] if b > 127) + sum(1 for b in block[156:] if b > 127)
                if chk != s - 256 * high:
                    raise LayerError("tar header checksum mismatch (not a tar stream, or corrupt)")
            tflag = block[156:157]
            size = _octal(block[124:136], "size")
            if tflag in (b"x", b"X", b"g", b"L", b"K") and 0 <= size <= MAX_EXT_HEADER:
                # each header is bounded by _read_ext; bound their number too
                if tflag == b"g":
                    self._globals_size += size
                    if self._globals_size > MAX_EXT_TOTAL:
                        raise LayerError(f"more than {MAX_EXT_TOTAL} bytes of global PAX headers")
                ext_total += size
                if ext_total > MAX_EXT_TOTAL:
                    raise LayerError(f"more than {MAX_EXT_TOTAL} bytes of extension headers for one entry")
            if tflag in (b"x", b"X"):
                pax.update(parse_pax(self._read_ext(size, "PAX")))
                continue
            if tflag == b"g":
                self._globals.update(parse_pax(self._read_ext(size, "PAX global")))
                continue
            if tflag == b"L":
                longname = _cstr(self._read_ext(size, "GNU long name"))
                continue
            if tflag == b"K":
                longlink = _cstr(self._read_ext(size, "GNU long link"))
                continue
            break

        if self._globals:
            pax = {**self._globals, **pax}
        magic = block[257:265]
        name = _cstr(block[0:100])
        if magic[:6] == b"ustar\0":   # POSIX: prefix field
            prefix = _cstr(block[345:500])
            if prefix:
                name = prefix + b"/" + name
        e = TarEntry()
        t = _TYPEMAP.get(tflag)
        if t is None:
            if tflag == b"S" or any(k.startswith("GNU.sparse.") for k in pax):
                raise LayerError("sparse tar members are not supported",
                                 entry=os.fsdecode(longname or name))
            if tflag == b"V":       # volume label: no file
                self._remaining = size
                self._pending = size + (-size % BLOCK)
                return self.next()
            raise LayerError(f"unsupported tar entry type {tflag!r}", entry=os.fsdecode(longname or name))
        if tflag == b"\0" and name.endswith(b"/"):
            t = DIR                      # old (v7) archives mark directories with a slash only
        e.type = t
        e.mode = _octal(block[100:108], "mode") & 0o7777
        e.uid = _octal(block[108:116], "uid")
        e.gid = _octal(block[116:124], "gid")
        e.mtime_ns = _octal(block[136:148], "mtime") * 1_000_000_000
        e.atime_ns = None
        link = _cstr(block[157:257])
        e.devmajor = _octal(block[329:337], "devmajor") if t in (CHR, BLK) else 0
        e.devminor = _octal(block[337:345], "devminor") if t in (CHR, BLK) else 0
        e.xattrs = None
        if longname is not None:
            name = longname
        if longlink is not None:
            link = longlink
        if pax:
            v = pax.get("path")
            if v is not None:
                name = v
            v = pax.get("linkpath")
            if v is not None:
                link = v
            try:
                if "size" in pax:
                    size = int(pax["size"])
                if "uid" in pax:
                    e.uid = int(pax["uid"])
                if "gid" in pax:
                    e.gid = int(pax["gid"])
                if "SCHILY.devmajor" in pax:
                    e.devmajor = int(pax["SCHILY.devmajor"])
                if "SCHILY.devminor" in pax:
                    e.devminor = int(pax["SCHILY.devminor"])
            except ValueError:
                raise LayerError("invalid number in PAX header", entry=os.fsdecode(name)) from None
            if "mtime" in pax:
                e.mtime_ns = _pax_time(pax["mtime"])
            if "atime" in pax:
                e.atime_ns = _pax_time(pax["atime"])
            for k, v in pax.items():
                if k.startswith("SCHILY.xattr."):
                    if e.xattrs is None:
                        e.xattrs = {}
                    e.xattrs[k[13:]] = v
                elif k.startswith("LIBARCHIVE.xattr."):
                    if e.xattrs is None:
                        e.xattrs = {}
                    try:
                        xname = os.fsdecode(unquote_to_bytes(k[17:]))
                        e.xattrs[xname] = base64.b64decode(v + b"=" * (-len(v) % 4))
                    except ValueError:
                        raise LayerError(f"invalid xattr record {k!r}", entry=os.fsdecode(name)) from None
        if len(name) > MAX_NAME or len(link) > MAX_NAME:
            raise LayerError(f"entry or link name longer than {MAX_NAME} bytes",
                             entry=os.fsdecode(name[:200]) + "...")
        if tflag == b"2" and len(link) > MAX_SYMLINK:
            raise LayerError("symlink target longer than PATH_MAX", entry=os.fsdecode(name[:200]))
        if size < 0:
            raise LayerError("negative size in tar header", entry=os.fsdecode(name))
        e.name = os.fsdecode(name)
        e.linkname = os.fsdecode(link)
        # links, directories, devices and fifos are header-only whatever their size field says
        # (as in Go's archive/tar and Python's tarfile)
        if t != REG:
            size = 0
        e.size = size
        self._remaining = size
        self._pending = size + (-size % BLOCK)
        e.offset = getattr(self.src, "offset", 0)
        return e
