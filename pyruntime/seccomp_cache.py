"""Compiled seccomp programs, cached under the state root: podman and containerd send the same profile
with every container, and compiling podman's (~430 syscall names, three ABIs) is most of a `create`.

An entry is ``<root>/.seccomp-cache/<key>.bpf`` where ``key`` is the SHA-256 of the profile's canonical
JSON together with every fact that can change the program or the flags compiled from it: the linked
libseccomp version, the kernel (release, build, machine: its filter flags and actions are probed while
compiling) and the identity of the compiler itself (this package's seccomp module and C core).  On a
hit nothing is validated or compiled again: the same bytes under the same facts gave that program.

Safety of the cache itself:

* the entry holds the profile bytes it was compiled from and they are compared byte for byte, so even a
  hash collision cannot hand a container another profile's filter;
* a SHA-256 over the whole entry detects corruption (a torn write, a flipped bit): such an entry is
  ignored, the profile compiled again and the entry rewritten;
* entries are written to a temporary file and renamed, so readers see a whole entry or none;
* the directory must be ours and not writable by others (else the cache is not used: whoever can
  write it could weaken every later container's filter); container ids cannot start with ".", so the
  directory never clashes with a container;
* at most ``MAX_ENTRIES`` entries (a BPF program is at most 4096 instructions, 32 KiB): the least
  recently used ones are evicted when a new one is written.

``PYRUNTIME_SECCOMP_CACHE=0`` in the environment turns the cache off (benchmarks, tests, debugging).
"""
from __future__ import annotations

import posix   # not os: exec with podman's profile imports no os (~1 ms with _collections_abc)

from . import fastjson as json
from .seccomp_prog import Compiled, libseccomp_version

try:                                   # the C module directly: hashlib imports ~2.5 ms of wrappers
    from _sha256 import sha256         # CPython <= 3.11
except ImportError:                    # pragma: no cover - newer CPython
    try:
        from _sha2 import sha256       # type: ignore[no-redef]  # CPython >= 3.12
    except ImportError:
        from hashlib import sha256     # type: ignore[no-redef]

DIRNAME = ".seccomp-cache"
MAX_ENTRIES = 32
MAGIC = b"PYRTSC1\n"
_FORMAT = b"pyruntime seccomp cache 1\0"


def enabled() -> bool:
    return posix.environ.get(b"PYRUNTIME_SECCOMP_CACHE", b"1") not in (b"0", b"off", b"no", b"false")


def _facts() -> bytes:
    """What, besides the profile, decides the compiled program and flags."""
    from . import _core
    u = posix.uname()
    parts = [libseccomp_version() or "?", u.release, u.version, u.machine]
    # the compiler's file, found without importing it (a hit never needs seccomp.py)
    for path in (__file__.rsplit("/", 1)[0] + "/seccomp.py", _core.__file__):
        try:
            st = posix.stat(path)
            parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
        except (OSError, TypeError):
            parts.append(f"{path}:?")
    return "\0".join(parts).encode()


def key_of(profile: bytes) -> str:
    return sha256(_FORMAT + _facts() + b"\0" + profile).hexdigest()


def _open_dir(root: str) -> int | None:
    """An fd of the cache directory, or None when it cannot be used safely."""
    path = f"{root.rstrip('/')}/{DIRNAME}" if root else DIRNAME
    flags = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC
    try:
        # opened first, made only when missing: a mkdir of an existing name still takes the state root's
        # inode lock exclusively, which every create, delete and cache hit of the root contends for
        fd = posix.open(path, flags)
    except FileNotFoundError:
        try:
            posix.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return None
        try:
            fd = posix.open(path, flags)
        except OSError:
            return None
    except OSError:
        return None
    st = posix.fstat(fd)
    if st.st_uid != posix.geteuid() or st.st_mode & 0o022:
        posix.close(fd)
        return None
    return fd


def encode(key: str, profile: bytes, comp: Compiled) -> bytes:
    meta = json.dumps({"key": key, "profile": len(profile), "n": comp.n, "flags": comp.flags,
                       "notify": bool(comp.notify), "listenerPath": comp.listener_path,
                       "listenerMetadata": comp.listener_metadata, "skipped": comp.skipped,
                       "dropped": comp.dropped_flags}).encode()
    body = meta + b"\n" + profile + comp.prog
    return MAGIC + sha256(body).hexdigest().encode() + b"\n" + body


def decode(data: bytes, key: str, profile: bytes) -> Compiled | None:
    """The entry's program if it is whole and was compiled from exactly ``profile``, else None."""
    try:
        if not data.startswith(MAGIC):
            return None
        digest_end = data.index(b"\n", len(MAGIC))
        body = data[digest_end + 1:]
        if sha256(body).hexdigest().encode() != data[len(MAGIC):digest_end]:
            return None
        meta_end = body.index(b"\n")
        meta = json.loads(body[:meta_end])
        if not isinstance(meta, dict) or meta.get("key") != key:
            return None
        plen, n = meta["profile"], meta["n"]
        rest = body[meta_end + 1:]
        if rest[:plen] != profile or not isinstance(n, int) or n <= 0 or len(rest) - plen != 8 * n:
            return None
        return Compiled(prog=rest[plen:], n=n, flags=int(meta["flags"]), notify=bool(meta["notify"]),
                        listener_path=meta.get("listenerPath"), listener_metadata=meta.get("listenerMetadata"),
                        skipped=list(meta.get("skipped") or []), dropped_flags=list(meta.get("dropped") or []))
    except (ValueError, KeyError, TypeError):
        return None


def _read(dfd: int, name: str) -> bytes | None:
    try:
        fd = posix.open(name, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return None
    try:
        chunks = []
        while True:
            chunk = posix.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        posix.close(fd)


def _write(dfd: int, name: str, data: bytes) -> None:
    """Atomically (temp + rename); a failure only costs the next create a compile."""
    tmp = f".tmp.{posix.getpid()}.{name}"
    try:
        fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600, dir_fd=dfd)
    except OSError:
        return
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[posix.write(fd, view):]
        finally:
            posix.close(fd)
        posix.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except OSError:
        try:
            posix.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass


def _evict(dfd: int, keep: str) -> None:
    """Keep at most MAX_ENTRIES entries, dropping the least recently used (mtime is touched on a hit)."""
    try:
        names = posix.listdir(dfd)
    except OSError:
        return
    entries = []
    for n in names:
        try:
            st = posix.stat(n, dir_fd=dfd, follow_symlinks=False)
        except OSError:
            continue
        if n.startswith(".tmp."):
            if n != keep:        # a writer that died between create and rename
                import time
                if time.time() - st.st_mtime > 60:
                    _unlink(dfd, n)
            continue
        entries.append((st.st_mtime_ns, n))
    if len(entries) <= MAX_ENTRIES:
        return
    entries.sort()
    for _, n in entries[:len(entries) - MAX_ENTRIES]:
        if n != keep:
            _unlink(dfd, n)


def _unlink(dfd: int, name: str) -> None:
    try:
        posix.unlink(name, dir_fd=dfd)
    except OSError:
        pass


def compile(seccomp: dict, field: str, root: str | None) -> Compiled:  # noqa: A001 (seccomp.compile's twin)
    """``seccomp.compile(seccomp, field)``, through the cache under ``root`` when it can be used (the
    compiler, seccomp.py, is imported only when there is something to compile)."""
    if root is None or not enabled() or not isinstance(seccomp, dict):
        return _compile(seccomp, field)
    try:
        profile = json.dumps(seccomp).encode()
    except (TypeError, ValueError):
        return _compile(seccomp, field)
    dfd = _open_dir(root)
    if dfd is None:
        return _compile(seccomp, field)
    try:
        key = key_of(profile)
        name = key + ".bpf"
        data = _read(dfd, name)
        if data is not None:
            comp = decode(data, key, profile)
            if comp is not None:
                try:
                    posix.utime(name, dir_fd=dfd, follow_symlinks=False)   # recently used: evicted last
                except OSError:
                    pass
                return comp
        comp = _compile(seccomp, field)
        _write(dfd, name, encode(key, profile, comp))
        _evict(dfd, name)
        return comp
    finally:
        posix.close(dfd)


def _compile(seccomp: dict, field: str) -> Compiled:
    from . import seccomp as sc
    return sc.compile(seccomp, field)
