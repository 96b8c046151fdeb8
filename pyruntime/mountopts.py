"""config.json mount options → what the C core does with them.  One table, read by the planner and by
the features document, so that what ``pyruntime features`` claims is exactly what is implemented.

Every option of config.md's table is here except none: mount(2) flags, propagation, the recursive
``r*`` attributes (mount_setattr with AT_RECURSIVE, Linux 5.12), ``idmap``/``ridmap``
(mount_setattr MOUNT_ATTR_IDMAP with a user namespace holding the mount's mappings) and ``tmpcopyup``.
Anything else is filesystem data (``mode=755``, ``size=64m``) for a filesystem mount, and an error
naming it for a bind mount, which takes no data: never silently dropped.
"""
from __future__ import annotations

from .errors import ConfigError

# MS_* (linux/mount.h)
MS = {"ro": 1, "nosuid": 2, "nodev": 4, "noexec": 8, "sync": 16, "remount": 32, "mand": 64,
      "dirsync": 128, "nosymfollow": 256, "noatime": 1024, "nodiratime": 2048, "bind": 4096,
      "rec": 16384, "silent": 32768, "relatime": 1 << 21, "iversion": 1 << 23, "strictatime": 1 << 24,
      "lazytime": 1 << 25}
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 1 << 17, 1 << 18, 1 << 19, 1 << 20

# option -> (MS flags to set, MS flags to clear)
FLAG_OPTS = {
    "ro": (MS["ro"], 0), "rw": (0, MS["ro"]), "nosuid": (MS["nosuid"], 0), "suid": (0, MS["nosuid"]),
    "nodev": (MS["nodev"], 0), "dev": (0, MS["nodev"]), "noexec": (MS["noexec"], 0),
    "exec": (0, MS["noexec"]), "sync": (MS["sync"], 0), "async": (0, MS["sync"]),
    "dirsync": (MS["dirsync"], 0), "remount": (MS["remount"], 0), "mand": (MS["mand"], 0),
    "nomand": (0, MS["mand"]), "noatime": (MS["noatime"], 0), "atime": (0, MS["noatime"]),
    "nodiratime": (MS["nodiratime"], 0), "diratime": (0, MS["nodiratime"]),
    "relatime": (MS["relatime"], 0), "norelatime": (0, MS["relatime"]),
    "strictatime": (MS["strictatime"], 0), "nostrictatime": (0, MS["strictatime"]),
    "nosymfollow": (MS["nosymfollow"], 0), "symfollow": (0, MS["nosymfollow"]),
    "iversion": (MS["iversion"], 0), "noiversion": (0, MS["iversion"]),
    "lazytime": (MS["lazytime"], 0), "nolazytime": (0, MS["lazytime"]),
    "silent": (MS["silent"], 0), "loud": (0, MS["silent"]),
    "bind": (MS["bind"], 0), "rbind": (MS["bind"] | MS["rec"], 0),
    "defaults": (0, 0),
}
PROP_OPTS = {"private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS["rec"], "shared": MS_SHARED,
             "rshared": MS_SHARED | MS["rec"], "slave": MS_SLAVE, "rslave": MS_SLAVE | MS["rec"],
             "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS["rec"]}

# MOUNT_ATTR_* (linux/mount.h) for mount_setattr(AT_RECURSIVE)
ATTR_RDONLY, ATTR_NOSUID, ATTR_NODEV, ATTR_NOEXEC = 0x1, 0x2, 0x4, 0x8
ATTR__ATIME, ATTR_RELATIME, ATTR_NOATIME, ATTR_STRICTATIME = 0x70, 0x0, 0x10, 0x20
ATTR_NODIRATIME, ATTR_NOSYMFOLLOW = 0x80, 0x200000
# option -> (attr_set, attr_clr), applied to the mount and every mount below it
REC_ATTR_OPTS = {
    "rro": (ATTR_RDONLY, 0), "rrw": (0, ATTR_RDONLY),
    "rnosuid": (ATTR_NOSUID, 0), "rsuid": (0, ATTR_NOSUID),
    "rnodev": (ATTR_NODEV, 0), "rdev": (0, ATTR_NODEV),
    "rnoexec": (ATTR_NOEXEC, 0), "rexec": (0, ATTR_NOEXEC),
    "rnodiratime": (ATTR_NODIRATIME, 0), "rdiratime": (0, ATTR_NODIRATIME),
    "rrelatime": (ATTR_RELATIME, ATTR__ATIME), "rnorelatime": (0, 0),
    "rnoatime": (ATTR_NOATIME, ATTR__ATIME), "ratime": (0, 0),
    "rstrictatime": (ATTR_STRICTATIME, ATTR__ATIME), "rnostrictatime": (0, 0),
    "rnosymfollow": (ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, ATTR_NOSYMFOLLOW),
}
# options with an effect of their own (see fill_mounts in plan.py)
SPECIAL_OPTS = {"idmap": "id-mapped bind mount", "ridmap": "recursively id-mapped bind mount",
                "tmpcopyup": "tmpfs filled with the destination's contents"}

MOUNT_OPTIONS = sorted({*FLAG_OPTS, *PROP_OPTS, *REC_ATTR_OPTS, *SPECIAL_OPTS})


class Parsed:
    """One mount's options, decided."""

    def __init__(self) -> None:
        self.flags = 0
        self.prop = 0
        self.data: list[str] = []
        self.attr_set = 0
        self.attr_clr = 0
        self.idmap = 0          # 1 idmap, 2 ridmap
        self.tmpcopyup = False


def parse(opts: list[str], field: str, bind: bool) -> Parsed:
    """Options of mounts[i] (``field`` names it).  For a bind mount an unknown option is an error; for a
    filesystem mount it is data for the filesystem, which the kernel checks at mount time."""
    p = Parsed()
    for o in opts:
        if o in FLAG_OPTS:
            s, c = FLAG_OPTS[o]
            p.flags = (p.flags | s) & ~c
        elif o in PROP_OPTS:
            p.prop |= PROP_OPTS[o]
        elif o in REC_ATTR_OPTS:
            s, c = REC_ATTR_OPTS[o]
            if o in ("rnorelatime", "ratime", "rnostrictatime"):
                # back to the kernel's default atime handling (relatime) below this mount
                s, c = ATTR_RELATIME, ATTR__ATIME
            if c == ATTR__ATIME:        # the atime mode is one field: clear it, then set one value
                p.attr_set = (p.attr_set & ~ATTR__ATIME) | s
                p.attr_clr |= ATTR__ATIME
            else:
                p.attr_set = (p.attr_set | s) & ~c
                p.attr_clr = (p.attr_clr | c) & ~s
        elif o in ("idmap", "ridmap"):
            p.idmap = 2 if o == "ridmap" else max(p.idmap, 1)
        elif o == "tmpcopyup":
            p.tmpcopyup = True
        elif bind or not o or "\0" in o:
            raise ConfigError(f"{field}.options", f'"{o}" is not supported')
        else:
            p.data.append(o)
    return p
