"""Hand-built layers: every entry type, metadata, whiteouts, replacements, id mapping."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from .image_helpers import BLOCK, MTIME, d, f, hard, header, member, sha256, simple_layout, sym, tar

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (owners, devices)")

# a VFS v2 security.capability value granting cap_net_raw (bit 13), effective
CAP_NET_RAW = bytes.fromhex("01000002" "00200000" "00200000" "00000000" "00000000")


def rootfs(bundle: str) -> str:
    return os.path.join(bundle, "rootfs")


def lay(tmp_path, *layers, **kw):
    return simple_layout(tmp_path / "layout", *layers, **kw).path


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_metadata(unpack, tmp_path, compression, inflater):
    layer = tar(
        d("./", mode=0o755, mtime=MTIME - 5),
        d("usr", mode=0o755, mtime=MTIME + 1),
        d("usr/bin", mode=0o755, mtime=MTIME + 2),
        f("usr/bin/suid", "#!/bin/sh\n", mode=0o4755, uid=0, gid=0),
        f("usr/bin/sgid", "x", mode=0o2711, uid=1234, gid=5678),
        f("usr/bin/suid-owned", "y", mode=0o6750, uid=1000, gid=50),
        d("tmp", mode=0o1777, mtime=MTIME + 3),
        f("tmp/nanos", "n", pax={"mtime": f"{MTIME}.123456789", "atime": f"{MTIME - 100}.5"}),
        f("usr/bin/ping", "elf", mode=0o755, pax={"SCHILY.xattr.security.capability": CAP_NET_RAW}),
        d("data", mode=0o700, uid=33, gid=33, pax={"SCHILY.xattr.user.dir": "on-dir"}),
        f("data/x", "x", pax={"SCHILY.xattr.user.one": "1", "SCHILY.xattr.trusted.two": b"\x00\xff"}),
        sym("usr/bin/sh", "busybox", uid=7, gid=8, mtime=MTIME + 9),
        member("dev/null", typ=b"3", mode=0o666, devmajor=1, devminor=3),
        member("dev/loop0", typ=b"4", mode=0o660, gid=6, devmajor=7, devminor=0),
        member("run/fifo", typ=b"6", mode=0o620, uid=5),
        f("empty", b"", mode=0o000),
    )
    r = rootfs(unpack(lay(tmp_path, layer, compression=compression)))
    st = os.lstat(os.path.join(r, "usr/bin/suid"))
    assert stat.S_IMODE(st.st_mode) == 0o4755 and (st.st_uid, st.st_gid) == (0, 0)
    st = os.lstat(os.path.join(r, "usr/bin/sgid"))
    assert stat.S_IMODE(st.st_mode) == 0o2711 and (st.st_uid, st.st_gid) == (1234, 5678)
    st = os.lstat(os.path.join(r, "usr/bin/suid-owned"))
    assert stat.S_IMODE(st.st_mode) == 0o6750 and (st.st_uid, st.st_gid) == (1000, 50)
    assert stat.S_IMODE(os.lstat(os.path.join(r, "tmp")).st_mode) == 0o1777
    st = os.lstat(os.path.join(r, "tmp/nanos"))
    assert st.st_mtime_ns == MTIME * 10**9 + 123456789 and st.st_atime_ns == (MTIME - 100) * 10**9 + 500_000_000
    assert os.getxattr(os.path.join(r, "usr/bin/ping"), "security.capability") == CAP_NET_RAW
    assert os.getxattr(os.path.join(r, "data"), "user.dir") == b"on-dir"
    assert os.getxattr(os.path.join(r, "data/x"), "user.one") == b"1"
    assert os.getxattr(os.path.join(r, "data/x"), "trusted.two") == b"\x00\xff"
    st = os.lstat(os.path.join(r, "data"))
    assert stat.S_IMODE(st.st_mode) == 0o700 and (st.st_uid, st.st_gid) == (33, 33)
    st = os.lstat(os.path.join(r, "usr/bin/sh"))
    assert stat.S_ISLNK(st.st_mode) and (st.st_uid, st.st_gid) == (7, 8) and st.st_mtime == MTIME + 9
    assert os.readlink(os.path.join(r, "usr/bin/sh")) == "busybox"
    st = os.lstat(os.path.join(r, "dev/null"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3) and stat.S_IMODE(st.st_mode) == 0o666
    st = os.lstat(os.path.join(r, "dev/loop0"))
    assert stat.S_ISBLK(st.st_mode) and st.st_rdev == os.makedev(7, 0) and st.st_gid == 6
    st = os.lstat(os.path.join(r, "run/fifo"))
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620 and st.st_uid == 5
    assert stat.S_IMODE(os.lstat(os.path.join(r, "empty")).st_mode) == 0
    # directory times are those of the headers although children were written after them
    assert os.lstat(os.path.join(r, "usr")).st_mtime == MTIME + 1
    assert os.lstat(os.path.join(r, "usr/bin")).st_mtime == MTIME + 2
    assert os.lstat(os.path.join(r, "tmp")).st_mtime == MTIME + 3
    assert os.lstat(r).st_mtime == MTIME - 5
    # implicit parents (dev/, run/) were created
    assert os.path.isdir(os.path.join(r, "run"))


def test_selinux_xattr_skipped(unpack, tmp_path):
    warnings: list[str] = []
    layer = tar(f("a", "x", pax={"SCHILY.xattr.security.selinux": "system_u:object_r:etc_t:s0",
                                 "SCHILY.xattr.user.ok": "1"}))
    r = rootfs(unpack(lay(tmp_path, layer), warnings=warnings))
    assert os.getxattr(os.path.join(r, "a"), "user.ok") == b"1"
    assert any("security.selinux" in w for w in warnings)


def test_hardlinks(unpack, tmp_path):
    l1 = tar(d("a"), f("a/orig", "content", mode=0o750, uid=3), hard("a/link1", "a/orig"),
             d("b"), hard("b/link2", "./a/orig"), sym("a/sl", "orig"), hard("a/hl-to-symlink", "a/sl"))
    l2 = tar(hard("b/link3", "a/orig"), hard("a/orig", "a/orig"))   # a link to itself is a no-op
    r = rootfs(unpack(lay(tmp_path, l1, l2)))
    st = os.lstat(os.path.join(r, "a/orig"))
    assert st.st_nlink == 4 and stat.S_IMODE(st.st_mode) == 0o750 and st.st_uid == 3
    for p in ("a/link1", "b/link2", "b/link3"):
        assert os.lstat(os.path.join(r, p)).st_ino == st.st_ino
    # a hardlink to a symlink is the symlink itself, not its target
    assert os.path.islink(os.path.join(r, "a/hl-to-symlink"))
    assert os.lstat(os.path.join(r, "a/hl-to-symlink")).st_ino == os.lstat(os.path.join(r, "a/sl")).st_ino


def test_whiteouts(unpack, tmp_path):
    l1 = tar(d("etc"), f("etc/keep", "k"), f("etc/gone", "g"), d("dir"), f("dir/a", "a"), d("dir/sub"),
             f("dir/sub/b", "b"), d("opq"), f("opq/lower1", "1"), d("opq/lowerdir"), f("opq/lowerdir/x", "x"),
             d("opq2"), f("opq2/lower", "l"), d("keepdir"), f("keepdir/lower", "l"))
    l2 = tar(
        f("etc/.wh.gone"),                        # a file
        f(".wh.dir"),                             # a whole directory
        f("etc/.wh.never-existed"),               # nothing to remove
        f("nonexistent/.wh.x"),                   # parent does not exist
        f("opq/.wh..wh..opq"), f("opq/new", "n"),  # opaque first (the usual order)
        f("opq2/new", "n"), f("opq2/.wh..wh..opq"),  # opaque after a same-layer entry
        f("keepdir/mine", "m"), f("keepdir/.wh.mine"),  # whiteout after a same-layer entry
    )
    r = rootfs(unpack(lay(tmp_path, l1, l2)))
    assert os.path.exists(os.path.join(r, "etc/keep"))
    assert not os.path.lexists(os.path.join(r, "etc/gone"))
    assert not os.path.lexists(os.path.join(r, "dir"))
    assert sorted(os.listdir(os.path.join(r, "opq"))) == ["new"]
    assert sorted(os.listdir(os.path.join(r, "opq2"))) == ["new"]
    assert sorted(os.listdir(os.path.join(r, "keepdir"))) == ["lower", "mine"]
    assert not os.path.lexists(os.path.join(r, "nonexistent/.wh.x"))
    for dp, dns, fns in os.walk(r):
        assert not [n for n in dns + fns if n.startswith(".wh.")], dp


def test_whiteout_parent_mtime_kept(unpack, tmp_path):
    l1 = tar(d("etc", mtime=MTIME + 50), f("etc/a", "a"), f("etc/b", "b"))
    l2 = tar(f("etc/.wh.a"), f("etc/c", "c"))       # no header for etc/ in layer 2
    r = rootfs(unpack(lay(tmp_path, l1, l2)))
    assert sorted(os.listdir(os.path.join(r, "etc"))) == ["b", "c"]
    assert os.lstat(os.path.join(r, "etc")).st_mtime == MTIME + 50


def test_replacements(unpack, tmp_path):
    l1 = tar(f("f2d", "file"), d("d2f"), f("d2f/child", "c"), d("d2s"), f("d2s/child", "c"),
             d("target"), sym("s2d", "target"), f("f2s", "x"), d("keepdir", mode=0o700), f("keepdir/c", "c"),
             f("f2f", "old", mode=0o600))
    l2 = tar(d("f2d", mode=0o750), f("f2d/new", "n"), f("d2f", "now a file"), sym("d2s", "target"),
             d("s2d"), f("s2d/inside", "i"), sym("f2s", "/etc/passwd"), d("keepdir", mode=0o755),
             f("f2f", "new", mode=0o640))
    r = rootfs(unpack(lay(tmp_path, l1, l2)))
    assert os.path.isdir(os.path.join(r, "f2d")) and os.listdir(os.path.join(r, "f2d")) == ["new"]
    assert open(os.path.join(r, "d2f")).read() == "now a file"
    assert os.readlink(os.path.join(r, "d2s")) == "target"
    assert os.path.isdir(os.path.join(r, "s2d")) and not os.path.islink(os.path.join(r, "s2d"))
    assert os.listdir(os.path.join(r, "target")) == []        # s2d's entry did not go through the link
    assert os.readlink(os.path.join(r, "f2s")) == "/etc/passwd"
    assert os.listdir(os.path.join(r, "keepdir")) == ["c"]      # dir over dir: kept and updated
    assert stat.S_IMODE(os.lstat(os.path.join(r, "keepdir")).st_mode) == 0o755
    assert open(os.path.join(r, "f2f")).read() == "new"
    assert stat.S_IMODE(os.lstat(os.path.join(r, "f2f")).st_mode) == 0o640


def test_write_through_symlinked_parent_stays_inside(unpack, tmp_path):
    """A symlinked directory is followed *inside* the rootfs (like a chroot): merged-/usr images rely
    on this (bin -> usr/bin), and an absolute target lands in the rootfs too."""
    l1 = tar(d("usr"), d("usr/bin"), sym("bin", "usr/bin"), sym("abs", "/usr"))
    l2 = tar(f("bin/tool", "t"), f("abs/lib-file", "l"))
    r = rootfs(unpack(lay(tmp_path, l1, l2)))
    assert open(os.path.join(r, "usr/bin/tool")).read() == "t"
    assert open(os.path.join(r, "usr/lib-file")).read() == "l"
    assert os.path.islink(os.path.join(r, "bin"))


def test_long_names(unpack, tmp_path):
    long_dir = "d" * 120
    long_name = f"{long_dir}/" + "n" * 200
    gnu = header("././@LongLink", b"L", size=len(long_name) + 1) + (long_name + "\0").encode() + \
        bytes(-(len(long_name) + 1) % BLOCK) + header("trunc", b"0", size=3) + b"abc" + bytes(BLOCK - 3)
    layer = tar(d(long_dir), f(long_name.replace("n", "p"), "pax"), gnu,
                sym("ln", "t" * 300), hard("hl", long_name))
    r = rootfs(unpack(lay(tmp_path, layer)))
    assert open(os.path.join(r, long_name.replace("n", "p"))).read() == "pax"
    assert open(os.path.join(r, long_name)).read() == "abc"
    assert os.readlink(os.path.join(r, "ln")) == "t" * 300
    assert os.lstat(os.path.join(r, "hl")).st_ino == os.lstat(os.path.join(r, long_name)).st_ino


@pytest.fixture(params=["stdlib-zlib", "fastest"])
def inflater(request, monkeypatch):
    """Both gzip back-ends: the standard library's zlib and zlib-ng/isal when installed."""
    import zlib

    from pyruntime.image import layerstream
    if request.param == "stdlib-zlib":
        monkeypatch.setattr(layerstream, "_inflater", lambda: zlib)
    return request.param


def test_multi_member_gzip_and_trailing_zeros(unpack, tmp_path, inflater):
    import gzip

    from .image_helpers import LayoutWriter
    raw = tar(f("a", "1"), f("b", "2"))
    blob = gzip.compress(raw[:1024]) + gzip.compress(raw[1024:]) + bytes(100)
    lw = LayoutWriter(tmp_path / "layout")
    lw.add_layers_image([lw.blob(blob, "application/vnd.oci.image.layer.v1.tar+gzip")], [sha256(raw)])
    r = rootfs(unpack(lw.path))
    assert sorted(os.listdir(r)) == ["a", "b"]


def test_uid_gid_map(unpack, tmp_path):
    layer = tar(d("home"), d("home/u", uid=1000, gid=1000), f("home/u/f", "x", mode=0o4755, uid=1000, gid=50),
                f("rootfile", "r"), sym("l", "rootfile", uid=1, gid=1))
    src = lay(tmp_path, layer)
    b = unpack(src, uid_map=["0:100000:65536"], gid_map=["0:200000:65536"])
    r = rootfs(b)
    assert (os.lstat(r).st_uid, os.lstat(r).st_gid) == (100000, 200000)
    assert os.lstat(os.path.join(r, "rootfile")).st_uid == 100000
    st = os.lstat(os.path.join(r, "home/u/f"))
    assert (st.st_uid, st.st_gid) == (101000, 200050) and stat.S_IMODE(st.st_mode) == 0o4755
    assert (os.lstat(os.path.join(r, "l")).st_uid, os.lstat(os.path.join(r, "l")).st_gid) == (100001, 200001)
    cfg = json.load(open(os.path.join(b, "config.json")))
    assert {"type": "user"} in cfg["linux"]["namespaces"]
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert cfg["linux"]["gidMappings"] == [{"containerID": 0, "hostID": 200000, "size": 65536}]
    # an owner outside the map is an error, and nothing is left
    from pyruntime.image.errors import ImageError
    bundle = str(tmp_path / "unmapped")
    with pytest.raises(ImageError, match="uid 1000 is not covered"):
        unpack(src, bundle=bundle, uid_map=["0:100000:1000"], gid_map=["0:200000:65536"])
    assert not os.path.exists(bundle)
    with pytest.raises(ImageError, match="invalid --uid-map"):
        unpack(src, uid_map=["0:1"])


def test_rootless_mode(unpack, tmp_path):
    """What happens for a non-root caller (forced): no chown, devices skipped with a warning,
    directories without owner write permission still filled, then given their mode."""
    l1 = tar(d("ro", mode=0o555), f("ro/a", "a"), member("dev/null", typ=b"3", devmajor=1, devminor=3),
             f("owned", "x", uid=1234))
    l2 = tar(f("ro/b", "b"), f("ro/.wh.a"))
    warnings: list[str] = []
    r = rootfs(unpack(lay(tmp_path, l1, l2), rootless=True, warnings=warnings))
    assert sorted(os.listdir(os.path.join(r, "ro"))) == ["b"]
    assert stat.S_IMODE(os.lstat(os.path.join(r, "ro")).st_mode) == 0o555
    assert not os.path.lexists(os.path.join(r, "dev/null"))
    assert os.lstat(os.path.join(r, "owned")).st_uid == os.geteuid()
    assert any("device node" in w and "dev/null" in w for w in warnings)


def test_devices_in_user_namespace_are_skipped(tmp_path):
    """Root in a user namespace cannot mknod: the device is skipped with a warning, the rest unpacks."""
    if subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot create user namespaces here")
    src = lay(tmp_path, tar(member("dev/null", typ=b"3", mode=0o666, devmajor=1, devminor=3),
                            member("fifo", typ=b"6"), f("file", "x")))
    os.chmod(tmp_path, 0o755)
    b = str(tmp_path / "b")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cp = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-m", "pyruntime", "image",
                         "unpack", src, b], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=root))
    assert cp.returncode == 0, cp.stderr
    assert "device node" in cp.stderr and "dev/null" in cp.stderr
    r = os.path.join(b, "rootfs")
    assert not os.path.lexists(os.path.join(r, "dev/null"))
    assert stat.S_ISFIFO(os.lstat(os.path.join(r, "fifo")).st_mode)
    assert open(os.path.join(r, "file")).read() == "x"


@pytest.mark.parametrize("use_openat2", [True, False])
def test_both_resolvers(unpack, tmp_path, use_openat2):
    """The openat2 path and the pure-Python fallback agree (symlink chains, .., absolute targets)."""
    l1 = tar(d("a"), d("a/b"), sym("a/up", ".."), sym("a/abs", "/a/b"), sym("chain1", "chain2"),
             sym("chain2", "a/b"), sym("dotdot", "../../../../a"))
    l2 = tar(f("a/up/a/b/x1", "1"), f("a/abs/x2", "2"), f("chain1/x3", "3"), f("dotdot/b/x4", "4"))
    r = rootfs(unpack(lay(tmp_path, l1, l2), use_openat2=use_openat2))
    assert sorted(os.listdir(os.path.join(r, "a/b"))) == ["x1", "x2", "x3", "x4"]
