"""Compare two unpacked rootfs trees: type, mode, owner, size, contents, link targets, xattrs, mtimes."""
from __future__ import annotations

import hashlib
import os
import stat


def snapshot(root: str, *, mtimes: bool = True, dir_mtimes: bool = True) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    group_of: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames + ([] if dirpath != root else ["."]):
            p = os.path.normpath(os.path.join(dirpath, name))
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            m = st.st_mode
            if stat.S_ISREG(m):
                with open(p, "rb") as f:
                    extra = hashlib.sha256(f.read()).hexdigest()
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
                    group_of[rel] = (st.st_dev, st.st_ino)
            elif stat.S_ISLNK(m):
                extra = os.readlink(p)
            elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                extra = None
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
    # hardlinked files: which group each belongs to (named by its smallest path; walk order varies)
    for rel, key in group_of.items():
        out[rel] = out[rel] + (min(inodes[key]),)
    return out


def diff(a: dict, b: dict, limit: int = 20) -> list[str]:
    msgs = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            msgs.append(f"{k}: {a.get(k)} != {b.get(k)}")
            if len(msgs) >= limit:
                break
    return msgs
