"""Compare two unpacked rootfs trees: type, mode, owner, size, contents, link targets, xattrs, mtimes."""
from __future__ import annotations

import hashlib
import os
import stat


def snapshot(root: str, *, mtimes: bool = True, dir_mtimes: bool = True) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames + ([] if dirpath != root else ["."]):
            p = os.path.normpath(os.path.join(dirpath, name))
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            m = st.st_mode
            if stat.S_ISREG(m):
                with open(p, "rb") as f:
                    extra = hashlib.sha256(f.read()).hexdigest()
                key = (st.st_dev, st.st_ino)
                link = inodes.setdefault(key, rel) if st.st_nlink > 1 else None
            elif stat.S_ISLNK(m):
                extra, link = os.readlink(p), None
            elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
                extra, link = (os.major(st.st_rdev), os.minor(st.st_rdev)), None
            else:
                extra, link = None, None
            try:
                xattrs = tuple(sorted((x, os.getxattr(p, x, follow_symlinks=False))
                                      for x in os.listxattr(p, follow_symlinks=False)))
            except OSError:
                xattrs = ()
            t = None
            if mtimes and (dir_mtimes or not stat.S_ISDIR(m)):
                t = st.st_mtime_ns
            out[rel] = (stat.S_IFMT(m), stat.S_IMODE(m), st.st_uid, st.st_gid, extra, xattrs, t,
                        st.st_nlink if not stat.S_ISDIR(m) else None)
    return out


def diff(a: dict, b: dict, limit: int = 20) -> list[str]:
    msgs = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            msgs.append(f"{k}: {a.get(k)} != {b.get(k)}")
            if len(msgs) >= limit:
                break
    return msgs
