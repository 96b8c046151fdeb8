"""Apply layer changesets to a rootfs (image-spec layer.md).

Order of work for one entry:

1. its name is cleaned lexically and rooted (``../../x`` -> ``x``, ``/etc/x`` -> ``etc/x``);
2. its parent directory is resolved *inside* the rootfs (:class:`~.fsops.Root`), created if missing;
3. the entry is created relative to that parent fd with ``O_EXCL``/``O_NOFOLLOW``-style calls; if
   something is already there it is removed first (a directory over a directory is kept and updated);
4. metadata: owner (through ``--uid-map``/``--gid-map``), then mode (after chown, which clears
   setuid/setgid), then xattrs (after chown and writes, which clear ``security.capability``), then times.

Directory times are applied when the layer is complete, since adding children changes them; parents
that the layer only modified get their previous times back.

Whiteouts (``.wh.NAME``, ``.wh..wh..opq``) remove what lower layers put there but never what this
layer itself extracted (``self.upper``), whichever order the entries come in.
"""
from __future__ import annotations

import errno as _errno
import os
import posixpath
import stat

from . import tarstream as ts
from .errors import ImageError, LayerError
from .fsops import Root, remove_tree
from .idmap import IdMapper

WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"
#: xattrs that are host-specific or would change how an overlay mount reads this rootfs
_SKIP_XATTRS = ("security.selinux", "trusted.overlay.", "user.overlay.")
OVL_OPAQUE = "trusted.overlay.opaque"
_WFLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def clean(name: str) -> str:
    """Lexically clean a member name and root it: the result never starts with '/' or contains '..'."""
    if not name.startswith(("/", ".")) and "/." not in name and "//" not in name \
            and not name.endswith("/"):
        return name
    p = posixpath.normpath("/" + name.lstrip("/"))
    return p[1:]


class Applier:
    def __init__(self, root: Root, *, uid_map: IdMapper, gid_map: IdMapper, rootless: bool,
                 warn=None, overlay: bool = False) -> None:
        self.root = root
        #: write whiteouts the way overlayfs reads them (a 0/0 char device, an opaque xattr) instead of
        #: applying them: the layer is unpacked alone, to be a lower directory of an overlay mount
        self.overlay = overlay
        self.whited: set[str] = set()
        self.uid_map = uid_map
        self.gid_map = gid_map
        self.rootless = rootless
        self.chown = not rootless
        self.warn = warn or (lambda msg: None)
        self.deferred_modes: dict[str, int] = {}
        self._warned: set[str] = set()
        self.label = ""

    # -- one layer ------------------------------------------------------------------------------
    def apply(self, reader: ts.TarReader, label: str) -> None:
        self.label = label
        self.upper: set[str] = set()
        self.dir_times: dict[str, tuple[int, int]] = {}
        self.parent_times: dict[str, tuple[int, int]] = {}
        self.skipped_devices: list[str] = []
        trim = self.root.trim
        while True:
            try:
                e = reader.next()
            except LayerError as err:
                err.path = label if not err.path else f"{label} {err.path}"
                raise
            if e is None:
                break
            trim()
            try:
                self._entry(e, reader)
            except ImageError as err:
                if isinstance(err, LayerError) and not err.path.startswith(label):
                    err.path = f"{label} {err.path}".strip()
                elif not err.path:
                    err.path = f"{label} entry {e.name!r}"
                raise
            except OSError as err:
                code = err.errno or _errno.EIO
                raise LayerError(os.strerror(code).lower(), layer=label, entry=e.name, errno=code) from err
            except (OverflowError, ValueError) as err:   # absurd times, ids or device numbers
                raise LayerError(f"invalid value in tar header: {err}", layer=label, entry=e.name) from err
        self._restore_times()
        if self.skipped_devices:
            shown = ", ".join(self.skipped_devices[:5]) + (" ..." if len(self.skipped_devices) > 5 else "")
            self.warn(f"{label}: skipped {len(self.skipped_devices)} device node(s) "
                      f"(creating devices needs CAP_MKNOD): {shown}")

    def finish(self) -> None:
        """After the last layer: give rootless-deferred directories their real modes.

        Each is opened O_NOFOLLOW|O_DIRECTORY: a later layer may have replaced it by a symlink, and
        a chmod by name would then follow that link out of the rootfs."""
        for path in sorted(self.deferred_modes, key=lambda p: p.count("/"), reverse=True):
            mode = self.deferred_modes[path]
            self.root.trim()
            if not path:
                os.fchmod(self.root.fd, mode)
                continue
            parent, _, base = path.rpartition("/")
            try:
                pfd = self.root.dir(parent)
                fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            except (FileNotFoundError, NotADirectoryError, OSError) as err:
                if isinstance(err, (FileNotFoundError, NotADirectoryError)) or err.errno == _errno.ELOOP:
                    continue
                raise
            try:
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
        self.deferred_modes.clear()

    # -- helpers --------------------------------------------------------------------------------
    def _warn_once(self, key: str, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warn(msg)

    def _mark(self, path: str) -> None:
        up = self.upper
        while path and path not in up:
            up.add(path)
            path = path.rpartition("/")[0]

    def _note_parent(self, parent: str, pfd: int) -> None:
        if parent not in self.parent_times:
            st = os.fstat(pfd)
            self.parent_times[parent] = (st.st_atime_ns, st.st_mtime_ns)

    def _clear(self, pfd: int, parent: str, base: str) -> None:
        """Remove whatever is at ``base`` so a new entry can take its place."""
        st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            remove_tree(pfd, base)
            self.root.invalidate(keep=parent)
        else:
            os.unlink(base, dir_fd=pfd)
            if stat.S_ISLNK(st.st_mode):
                self.root.invalidate(keep=parent)

    def _ids(self, e: ts.TarEntry) -> tuple[int, int]:
        return self.uid_map(e.uid), self.gid_map(e.gid)

    def _xattrs(self, target, e: ts.TarEntry, *, follow: bool, clear: bool = False) -> None:
        want = e.xattrs or {}
        if clear:
            try:
                for name in os.listxattr(target, follow_symlinks=follow):
                    if name not in want and not name.startswith(_SKIP_XATTRS):
                        os.removexattr(target, name, follow_symlinks=follow)
            except OSError as err:
                if err.errno not in (_errno.ENOTSUP, _errno.EOPNOTSUPP, _errno.EPERM):
                    raise
        for name, value in want.items():
            if name.startswith(_SKIP_XATTRS):
                self._warn_once("x:" + name, f"{self.label}: ignoring host-specific xattr {name!r} "
                                             f"(first on {e.name!r})")
                continue
            try:
                os.setxattr(target, name, value, follow_symlinks=follow)
            except OSError as err:
                if err.errno in (_errno.ENOTSUP, _errno.EOPNOTSUPP):
                    self._warn_once("xattr-unsupported", f"{self.label}: the filesystem of the bundle "
                                    f"does not support xattr {name!r}; xattrs are not restored")
                    continue
                if err.errno in (_errno.EPERM, _errno.EACCES) and (self.rootless or os.geteuid() != 0):
                    self._warn_once("xp:" + name, f"{self.label}: no permission to set xattr {name!r} "
                                                  f"(first on {e.name!r}); skipped")
                    continue
                raise

    # -- entries --------------------------------------------------------------------------------
    def _entry(self, e: ts.TarEntry, rd: ts.TarReader) -> None:
        path = clean(e.name)
        if not path:
            return self._root_entry(e)
        parent, _, base = path.rpartition("/")
        if base.startswith(WH_PREFIX):
            return self._whiteout(parent, base, e)
        pfd = self.root.dir(parent, create=True)
        self._note_parent(parent, pfd)
        t = e.type
        if t == ts.REG:
            self._regular(pfd, parent, base, e, rd)
        elif t == ts.DIR:
            self._directory(pfd, parent, base, path, e)
        elif t == ts.SYMLINK:
            self._symlink(pfd, parent, base, e)
        elif t == ts.LINK:
            self._hardlink(pfd, parent, base, path, e)
        else:
            self._special(pfd, parent, base, path, e)
        self._mark(path)

    def _root_entry(self, e: ts.TarEntry) -> None:
        if e.type != ts.DIR:
            raise LayerError("refusing to change the type of the root directory", entry=e.name)
        fd = self.root.fd
        if self.chown:
            os.fchown(fd, *self._ids(e))
        mode = e.mode
        if self.rootless and mode & 0o700 != 0o700:
            self.deferred_modes[""] = mode
            mode |= 0o700
        os.fchmod(fd, mode)
        if e.xattrs:
            self._xattrs(fd, e, follow=True)
        self.dir_times[""] = (e.mtime_ns if e.atime_ns is None else e.atime_ns, e.mtime_ns)

    def _regular(self, pfd: int, parent: str, base: str, e: ts.TarEntry, rd: ts.TarReader) -> None:
        try:
            fd = os.open(base, _WFLAGS, 0o600, dir_fd=pfd)
        except FileExistsError:
            self._clear(pfd, parent, base)
            fd = os.open(base, _WFLAGS, 0o600, dir_fd=pfd)
        try:
            if e.size:
                rd.copy_to_fd(fd, e.size)
            if self.chown:
                os.fchown(fd, self.uid_map(e.uid), self.gid_map(e.gid))
            os.fchmod(fd, e.mode)
            if e.xattrs:
                self._xattrs(fd, e, follow=True)
            os.utime(fd, ns=(e.mtime_ns if e.atime_ns is None else e.atime_ns, e.mtime_ns))
        finally:
            os.close(fd)

    def _directory(self, pfd: int, parent: str, base: str, path: str, e: ts.TarEntry) -> None:
        existed = False
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                existed = True
            else:
                self._clear(pfd, parent, base)
                os.mkdir(base, 0o700, dir_fd=pfd)
        if self.chown:
            os.chown(base, *self._ids(e), dir_fd=pfd, follow_symlinks=False)
        if self.overlay and path in self.whited:
            # whited out and made again in this layer: nothing of the lower layers' shows through
            os.setxattr(f"/proc/self/fd/{pfd}/{base}", OVL_OPAQUE, b"y", follow_symlinks=False)
        mode = e.mode
        if self.rootless and mode & 0o700 != 0o700:
            self.deferred_modes[path] = mode
            mode |= 0o700
        else:
            self.deferred_modes.pop(path, None)
        # a directory we created or checked just now: chmod cannot be led astray by a symlink
        os.chmod(base, mode, dir_fd=pfd)
        if e.xattrs or existed:
            self._xattrs(f"/proc/self/fd/{pfd}/{base}", e, follow=False, clear=existed)
        self.dir_times[path] = (e.mtime_ns if e.atime_ns is None else e.atime_ns, e.mtime_ns)

    def _symlink(self, pfd: int, parent: str, base: str, e: ts.TarEntry) -> None:
        try:
            os.symlink(e.linkname, base, dir_fd=pfd)
        except FileExistsError:
            self._clear(pfd, parent, base)
            os.symlink(e.linkname, base, dir_fd=pfd)
        if self.chown:
            os.chown(base, *self._ids(e), dir_fd=pfd, follow_symlinks=False)
        if e.xattrs:
            self._xattrs(f"/proc/self/fd/{pfd}/{base}", e, follow=False)
        os.utime(base, ns=(e.mtime_ns if e.atime_ns is None else e.atime_ns, e.mtime_ns),
                 dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, pfd: int, parent: str, base: str, path: str, e: ts.TarEntry) -> None:
        target = clean(e.linkname)
        if not target:
            raise LayerError("hardlink to the root directory", entry=e.name)
        tparent, _, tbase = target.rpartition("/")
        try:
            tpfd = self.root.dir(tparent)
            tst = os.stat(tbase, dir_fd=tpfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            raise LayerError(f"hardlink target {e.linkname!r} does not exist", entry=e.name) from None
        if stat.S_ISDIR(tst.st_mode):
            raise LayerError(f"hardlink to directory {e.linkname!r}", entry=e.name)
        try:
            # no AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself, never its target
            os.link(tbase, base, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == (tst.st_dev, tst.st_ino):
                return                   # already that file (e.g. a link to itself)
            self._clear(pfd, parent, base)
            tpfd = self.root.dir(tparent)        # the cache may have been reset by _clear
            os.link(tbase, base, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)

    def _special(self, pfd: int, parent: str, base: str, path: str, e: ts.TarEntry) -> None:
        t = e.type
        if t == ts.FIFO:
            make = lambda: os.mkfifo(base, 0o600, dir_fd=pfd)  # noqa: E731
        else:
            if self.rootless:
                self.skipped_devices.append(path)
                return
            kind = stat.S_IFCHR if t == ts.CHR else stat.S_IFBLK
            dev = os.makedev(e.devmajor, e.devminor)
            make = lambda: os.mknod(base, kind | 0o600, dev, dir_fd=pfd)  # noqa: E731
        try:
            make()
        except FileExistsError:
            self._clear(pfd, parent, base)
            make()
        except PermissionError:
            if t == ts.FIFO:
                raise
            self.skipped_devices.append(path)   # e.g. root in a user namespace
            return
        if self.chown:
            os.chown(base, *self._ids(e), dir_fd=pfd, follow_symlinks=False)
        os.chmod(base, e.mode, dir_fd=pfd)       # just created: not a symlink
        if e.xattrs:
            self._xattrs(f"/proc/self/fd/{pfd}/{base}", e, follow=False)
        os.utime(base, ns=(e.mtime_ns if e.atime_ns is None else e.atime_ns, e.mtime_ns),
                 dir_fd=pfd, follow_symlinks=False)

    # -- whiteouts ------------------------------------------------------------------------------
    def _whiteout(self, parent: str, base: str, e: ts.TarEntry) -> None:
        opaque = base == WH_OPAQUE
        if not opaque:
            if base.startswith(WH_PREFIX + WH_PREFIX):
                return                    # other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): nothing
            name = base[len(WH_PREFIX):]
            if name in ("", ".", ".."):
                raise LayerError("invalid whiteout name", entry=e.name)
        if self.overlay:
            return self._overlay_whiteout(parent, None if opaque else name)
        try:
            pfd = self.root.dir(parent)
        except (FileNotFoundError, NotADirectoryError):
            return                        # nothing below to hide
        self._note_parent(parent, pfd)
        if opaque:
            self._prune(parent, keep_self=True)
        else:
            target = f"{parent}/{name}" if parent else name
            if target in self.upper:
                self._prune(target, keep_self=True)     # only what lower layers put below it
            else:
                try:
                    st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                except FileNotFoundError:
                    return
                if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
                    remove_tree(pfd, name)
                    self.root.invalidate(keep=parent)
                else:
                    os.unlink(name, dir_fd=pfd)

    def _overlay_whiteout(self, parent: str, name: str | None) -> None:
        """Whiteout ``name`` in ``parent`` (None: make ``parent`` opaque) for overlayfs."""
        pfd = self.root.dir(parent, create=True)
        self._note_parent(parent, pfd)
        if name is None:
            os.setxattr(f"/proc/self/fd/{pfd}", OVL_OPAQUE, b"y")    # the fd itself (a magic link)
            return
        target = f"{parent}/{name}" if parent else name
        if target in self.upper:
            # this layer has its own entry there: it hides the lower one anyway; a directory must
            # also hide the lower directory's contents
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                os.setxattr(f"/proc/self/fd/{pfd}/{name}", OVL_OPAQUE, b"y", follow_symlinks=False)
            return
        try:
            os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=pfd)
        except FileExistsError:
            return
        self.whited.add(target)

    def _prune(self, top: str, keep_self: bool) -> None:
        """Remove everything under directory ``top`` that this layer did not extract."""
        stack = [top]
        while stack:
            d = stack.pop()
            try:
                dfd = self.root.open(d, os.O_RDONLY | os.O_DIRECTORY)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                with os.scandir(dfd) as it:
                    children = [(c.name, c.is_dir(follow_symlinks=False)) for c in it]
                changed = False
                for name, is_dir in children:
                    child = f"{d}/{name}" if d else name
                    if child in self.upper:
                        if is_dir:
                            stack.append(child)
                        continue
                    remove_tree(dfd, name)
                    changed = True
                if changed:
                    self.root.invalidate()
            finally:
                os.close(dfd)

    # -- times ----------------------------------------------------------------------------------
    def _restore_times(self) -> None:
        times = {p: t for p, t in self.parent_times.items() if p not in self.dir_times}
        times.update(self.dir_times)
        for path, ns in times.items():
            self.root.trim()
            if not path:
                os.utime(self.root.fd, ns=ns)
                continue
            parent, _, base = path.rpartition("/")
            try:
                pfd = self.root.dir(parent)
                os.utime(base, ns=ns, dir_fd=pfd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                pass                      # removed later in the layer
