"""Hostile layers: every attack either fails with an error (and leaves no bundle) or is neutralised
(it lands inside the rootfs), and the host sentinel directory is never touched."""
from __future__ import annotations

import os
import stat

import pytest

from pyruntime.image.errors import ImageError

from .image_helpers import BLOCK, d, f, hard, header, member, simple_layout, sym, tar

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
UP = "../" * 12


def lay(tmp_path, *layers, **kw):
    return simple_layout(tmp_path / "layout", *layers, **kw).path


@pytest.fixture(params=[True, False], ids=["openat2", "fallback"])
def resolver(request):
    return request.param


def inside(bundle: str, host_path: str) -> str:
    return os.path.join(bundle, "rootfs", host_path.lstrip("/"))


def fails(unpack, tmp_path, *layers, match: str, resolver=None):
    bundle = str(tmp_path / "failed-bundle")
    with pytest.raises(ImageError, match=match):
        unpack(lay(tmp_path, *layers), bundle=bundle, use_openat2=resolver)
    assert not os.path.exists(bundle), "a failed unpack left a partial bundle"


def test_dotdot_names(unpack, tmp_path, sentinel, resolver):
    rel = os.path.relpath(sentinel.path, str(tmp_path / "bundle1" / "rootfs"))
    b = unpack(lay(tmp_path, tar(f(f"{rel}/pwned", "x"), f(f"{rel}/secret", "overwritten"),
                                 f(f"{UP}etc/pwned-too", "y"), d(f"{rel}/newdir"))), use_openat2=resolver)
    sentinel.assert_untouched()
    assert open(os.path.join(b, "rootfs", "sentinel", "pwned")).read() == "x"   # clamped at the rootfs
    assert os.path.exists(os.path.join(b, "rootfs", "etc", "pwned-too"))


def test_absolute_names(unpack, tmp_path, sentinel, resolver):
    b = unpack(lay(tmp_path, tar(f(sentinel.path + "/pwned", "x"), f(sentinel.file, "overwritten"))),
               use_openat2=resolver)
    sentinel.assert_untouched()
    assert open(inside(b, sentinel.file)).read() == "overwritten"


@pytest.mark.parametrize("same_layer", [True, False])
@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_symlinked_parent(unpack, tmp_path, sentinel, resolver, kind, same_layer):
    target = sentinel.path if kind == "absolute" else UP + sentinel.path.lstrip("/")
    link = sym("evil", target)
    writes = [f("evil/pwned", "x"), f("evil/secret", "overwritten"), d("evil/newdir"),
              f("evil/sub/deeper", "y"), sym("evil/sl", "/"), member("evil/fifo", typ=b"6")]
    layers = [tar(link, *writes)] if same_layer else [tar(link), tar(*writes)]
    b = unpack(lay(tmp_path, *layers), use_openat2=resolver)
    sentinel.assert_untouched()
    assert open(inside(b, sentinel.path + "/pwned")).read() == "x"


def test_symlink_as_last_component_is_replaced(unpack, tmp_path, sentinel):
    l1 = tar(sym("file", sentinel.file), sym("dir", sentinel.path), sym("dev", sentinel.file),
             sym("lnk", sentinel.file))
    l2 = tar(f("file", "overwritten", mode=0o777, uid=1234), d("dir", mode=0o777),
             member("dev", typ=b"6", mode=0o777), sym("lnk", "/elsewhere"))
    b = unpack(lay(tmp_path, l1, l2))
    sentinel.assert_untouched()
    r = os.path.join(b, "rootfs")
    assert open(os.path.join(r, "file")).read() == "overwritten"
    assert os.path.isdir(os.path.join(r, "dir")) and not os.path.islink(os.path.join(r, "dir"))
    assert os.readlink(os.path.join(r, "lnk")) == "/elsewhere"


def test_metadata_never_follows_symlinks(unpack, tmp_path, sentinel):
    """A symlink entry's owner and times go to the link, never to what it points at."""
    b = unpack(lay(tmp_path, tar(sym("s", sentinel.file, uid=4321, gid=4321, mtime=1),
                                 sym("s2", sentinel.path, uid=4321, mtime=1,
                                     pax={"SCHILY.xattr.trusted.x": "v"}))))
    sentinel.assert_untouched()
    assert os.lstat(os.path.join(b, "rootfs", "s")).st_uid == 4321


@pytest.mark.parametrize("target", ["abs", "dotdot", "via-symlink"])
def test_hardlink_outside(unpack, tmp_path, sentinel, target, resolver):
    rel = os.path.relpath(sentinel.file, str(tmp_path / "failed-bundle" / "rootfs"))
    layers = {"abs": [tar(hard("h", sentinel.file))],
              "dotdot": [tar(hard("h", rel))],
              "via-symlink": [tar(sym("p", sentinel.path), hard("h", "p/secret"))]}[target]
    fails(unpack, tmp_path, *layers, match="hardlink target .* does not exist", resolver=resolver)
    sentinel.assert_untouched()


def test_hardlink_to_symlink_pointing_outside(unpack, tmp_path, sentinel):
    l1 = tar(sym("s", sentinel.file), hard("h", "s"))
    l2 = tar(f("h2", "x"), hard("h3", "h"), f("h", "written"))
    b = unpack(lay(tmp_path, l1, l2))
    sentinel.assert_untouched()
    r = os.path.join(b, "rootfs")
    host_ino = os.stat(sentinel.file).st_ino
    for p in ("s", "h3"):
        assert os.path.islink(os.path.join(r, p)) and os.lstat(os.path.join(r, p)).st_ino != host_ino
    assert open(os.path.join(r, "h")).read() == "written"


def test_whiteouts_through_symlinks(unpack, tmp_path, sentinel, resolver):
    rel = os.path.relpath(sentinel.path, str(tmp_path / "bundle1" / "rootfs"))
    l1 = tar(sym("w", sentinel.path), sym("w2", UP + sentinel.path.lstrip("/")), f("keep", "k"))
    l2 = tar(f("w/.wh.secret"), f("w/.wh.sub"), f("w2/.wh..wh..opq"), f(f"{rel}/.wh.secret"),
             f(sentinel.path + "/.wh.sub"))
    b = unpack(lay(tmp_path, l1, l2), use_openat2=resolver)
    sentinel.assert_untouched()
    assert os.path.exists(os.path.join(b, "rootfs", "keep"))


def test_invalid_whiteout_names(unpack, tmp_path, sentinel):
    fails(unpack, tmp_path, tar(d("a"), f("a/.wh..")), match="invalid whiteout")
    fails(unpack, tmp_path, tar(d("a"), f("a/.wh.")), match="invalid whiteout")


@pytest.mark.parametrize("entry", [sym(".", "/"), sym("./", "../.."), f("..", "x"), hard("./", "x")])
def test_root_cannot_change_type(unpack, tmp_path, sentinel, entry):
    fails(unpack, tmp_path, tar(f("x", "x"), entry), match="root directory")


def test_huge_pax_header(unpack, tmp_path, sentinel):
    # announces 8 GiB of PAX records: refused before reading, no memory blow-up
    evil = header("x", pax={"path": "x"}, pax_size=8 << 30)
    fails(unpack, tmp_path, tar(evil), match="PAX header of .* exceeds")


def test_huge_gnu_longname(unpack, tmp_path, sentinel):
    evil = header("././@LongLink", b"L", size=1 << 40) + b"a" * BLOCK
    fails(unpack, tmp_path, tar(evil), match="GNU long name header .* exceeds")


def test_size_beyond_stream(unpack, tmp_path, sentinel):
    evil = header("big", b"0", size=10 << 30) + b"x" * BLOCK
    fails(unpack, tmp_path, tar(evil, end=False), match="unexpected end")


def test_name_longer_than_the_name_limit(unpack, tmp_path, sentinel):
    fails(unpack, tmp_path, tar(f("a/" * 40000 + "x", "x")), match="longer than 65536 bytes")


def test_symlink_target_longer_than_path_max(unpack, tmp_path, sentinel):
    fails(unpack, tmp_path, tar(sym("l", "a/" * 2100)), match="symlink target longer than PATH_MAX")


def _depth(path: str) -> tuple[int, list[str]]:
    """Depth of the d/d/d... chain under path, walked by fd (paths beyond PATH_MAX)."""
    fd, n = os.open(path, os.O_RDONLY), 0
    while True:
        try:
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
        except FileNotFoundError:
            names = os.listdir(fd)
            os.close(fd)
            return n, names
        os.close(fd)
        fd, n = nfd, n + 1


def test_3000_level_tree_unpacks_and_is_removed(unpack, tmp_path, sentinel, resolver):
    """issue 10 item 15: a deep tree (paths far beyond PATH_MAX, through a symlink too) unpacks, and
    the bundle removal has no recursion limit."""
    from pyruntime.image.fsops import remove_path
    name, entries = "", []
    for _ in range(3000):
        name = f"{name}/d" if name else "d"
        entries.append(d(name))
    entries += [f(name + "/leaf", b"deep"), sym("s", "/d/d/d"),
                f("s/" + "/".join(["d"] * 2997) + "/../../../" + "/".join(["d"] * 3) + "/via", b"v")]
    b = str(tmp_path / "deep-bundle")
    try:
        unpack(lay(tmp_path, tar(*entries)), bundle=b, use_openat2=resolver)
        n, names = _depth(os.path.join(b, "rootfs"))
        assert (n, sorted(names)) == (3000, ["leaf", "via"])
    finally:
        remove_path(b)        # pytest's own tmp_path cleanup (shutil, recursive) could not
    assert not os.path.exists(b)


def test_symlink_loop(unpack, tmp_path, sentinel, resolver):
    fails(unpack, tmp_path, tar(sym("l1", "l2"), sym("l2", "l1"), f("l1/x", "x")),
          match="too many levels of symbolic links", resolver=resolver)


def test_parent_is_a_file(unpack, tmp_path, sentinel):
    fails(unpack, tmp_path, tar(f("file", "x"), f("file/x", "y")), match="not a directory")


def test_hardlink_to_directory(unpack, tmp_path, sentinel):
    fails(unpack, tmp_path, tar(d("dir"), hard("h", "dir")), match="hardlink to directory")


def test_devices_when_not_root(unpack, tmp_path, sentinel):
    warnings: list[str] = []
    b = unpack(lay(tmp_path, tar(member("sda", typ=b"4", mode=0o666, devmajor=8, devminor=0),
                                 member("mem", typ=b"3", mode=0o666, devmajor=1, devminor=1))),
               rootless=True, warnings=warnings)
    assert os.listdir(os.path.join(b, "rootfs")) == []
    assert any("skipped 2 device node" in w for w in warnings)


def test_setuid_bits_are_kept_but_only_inside(unpack, tmp_path, sentinel):
    """Unlike tarfile's filters we keep setuid bits (images need them); they stay on rootfs files."""
    b = unpack(lay(tmp_path, tar(f("../../suid", "x", mode=0o4777))))
    st = os.lstat(os.path.join(b, "rootfs", "suid"))
    assert stat.S_IMODE(st.st_mode) == 0o4777


def test_blob_symlink_to_device_in_layout(tmp_path, unpack, sentinel):
    lw = simple_layout(tmp_path / "layout", tar(f("a", "a")))
    import json
    man = json.load(open(os.path.join(lw.path, "index.json")))["manifests"][0]
    layer = json.load(open(lw.blob_path(man["digest"])))["layers"][0]
    os.unlink(lw.blob_path(layer["digest"]))
    os.symlink("/dev/zero", lw.blob_path(layer["digest"]))
    bundle = str(tmp_path / "b")
    with pytest.raises(ImageError, match="not a regular file"):
        unpack(lw.path, bundle=bundle)
    assert not os.path.exists(bundle)


def test_rootless_deferred_mode_never_follows_a_symlink(unpack, tmp_path, sentinel):
    """Rootless: a read-only directory gets its mode at the very end; if a later layer replaced it by
    a symlink to a host directory, that host directory must not be chmod'ed."""
    l1 = tar(d("ro", mode=0o555), f("ro/x", "x"), d("./", mode=0o555))
    l2 = tar(sym("ro", sentinel.path))
    b = unpack(lay(tmp_path, l1, l2), rootless=True)
    sentinel.assert_untouched()
    assert os.path.islink(os.path.join(b, "rootfs", "ro"))
    assert stat.S_IMODE(os.lstat(os.path.join(b, "rootfs")).st_mode) == 0o555
    os.chmod(os.path.join(b, "rootfs"), 0o755)


def test_many_extension_headers(unpack, tmp_path, sentinel):
    one = header("x", pax={"comment": "a" * 1000_000})[:-BLOCK]     # a PAX header alone, ~1 MB
    fails(unpack, tmp_path, tar(one * 6 + f("x", "x")), match="bytes of extension headers")
    g = bytearray(one)
    g[156:157] = b"g"
    g[148:156] = b" " * 8
    g[148:156] = b"%06o\0 " % sum(g[:BLOCK])
    fails(unpack, tmp_path, tar(bytes(g) * 6 + f("x", "x")), match="global PAX headers")


@pytest.mark.parametrize("entry", [
    f("t", "x", pax={"mtime": "99999999999999999999"}),
    f("u", "x", pax={"uid": str(1 << 40)}),
    member("dev", typ=b"3", pax={"SCHILY.devmajor": str(1 << 40)}),
])
def test_absurd_numbers(unpack, tmp_path, sentinel, entry):
    fails(unpack, tmp_path, tar(entry), match="invalid value|invalid argument|out of range|too large")
