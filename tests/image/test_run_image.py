"""`run --image`: layers unpacked once into the store, an overlay rootfs per container (writable, removed
with it), the image config and the user's overrides applied, and the crash-safety of issue 10 item 15
(a full disk, a 3000-level tree, a decompression bomb, hostile ids)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from .image_helpers import d, f, sym, tar, tar_of_dir, LayoutWriter

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (overlay mounts, chown)")


def _overlays(root: str) -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        return [ln for ln in fh if root in ln]


@pytest.fixture
def irt(rt):
    """rt whose image store goes away with it (trees of any depth: not shutil, which recurses)."""
    from pyruntime.image.overlay import remove_bundle
    from pyruntime.fastos import remove_path
    yield rt
    for cid in os.listdir(rt.root) if os.path.isdir(rt.root) else []:
        if not cid.startswith("."):
            subprocess.run([rt.binary, "--root", rt.root, "delete", "--force", cid], capture_output=True)
    b = os.path.join(rt.root, ".bundles")
    for cid in os.listdir(b) if os.path.isdir(b) else []:
        remove_bundle(os.path.join(b, cid))
    remove_path(os.path.join(rt.root, ".images"))
    assert not _overlays(rt.root), "overlay mounts left behind"


@pytest.fixture(scope="module")
def bb_layout(tmp_path_factory, busybox_rootfs) -> LayoutWriter:
    """refs: bb (Cmd echo), bb2 (bb + a layer with whiteouts, an opaque dir, a deep tree absent),
    wd (WorkingDir missing from the rootfs, User app), deep (a 3000-level tree)."""
    lw = LayoutWriter(tmp_path_factory.mktemp("runimg") / "layout")
    base = tar_of_dir(busybox_rootfs)
    lower = tar(d("opq"), f("opq/old", b"old"), d("gone"), f("gone/x", b"x"), f("keep", b"keep"),
                d("redo"), f("redo/lower", b"l"))
    upper = tar(f("opq/.wh..wh..opq"), f("opq/new", b"new"), f(".wh.gone"), f("etc/.wh.motd"),
                f(".wh.redo"), d("redo"), f("redo/upper", b"u"))
    lw.add(lw.image([base], config={"config": {"Cmd": ["/bin/sh", "-c", "echo hello $FOO"], "Env": ["FOO=img"]}}), "bb")
    lw.add(lw.image([base, lower, upper], config={"config": {"Cmd": ["/bin/sh"]}}), "bb2")
    lw.add(lw.image([base], config={"config": {"Cmd": ["/bin/sh", "-c", "pwd; stat -c %u /work/here"],
                                               "WorkingDir": "/work/here", "User": "app"}}), "wd")
    name, deep = "", []
    for _ in range(3000):
        name = f"{name}/d" if name else "d"
        deep.append(d(name))
    deep.append(f(name + "/leaf", b"deep"))
    lw.add(lw.image([base, tar(*deep)], config={"config": {"Cmd": ["/bin/sh", "-c", "test -d /d/d/d/../d/d/d && echo ran"]}}),
           "deep")
    return lw


def test_second_run_reuses_layers_and_rootfs_is_writable(irt, bb_layout):
    img = f"{bb_layout.path}:bb"
    cp = irt("run", "--image", img, "c1", "--", "/bin/sh", "-c", "echo hi > /new && cat /new && echo $FOO")
    assert cp.stdout.decode() == "hi\nimg\n"
    layers = os.path.join(irt.root, ".images", "layers")
    (layer,) = [n for n in os.listdir(layers) if len(n) == 64]
    ino = os.stat(os.path.join(layers, layer)).st_ino
    cp = irt("run", "--image", img, "c2")
    assert cp.stdout.decode() == "hello img\n"            # the image's Cmd and Env
    assert os.stat(os.path.join(layers, layer)).st_ino == ino  # not unpacked again
    assert not os.path.exists(os.path.join(layers, layer, "new"))  # writes went to c1's upper dir
    assert os.listdir(os.path.join(irt.root, ".bundles")) == []
    assert os.listdir(os.path.join(irt.root, ".images", "uses")) == []


def test_overlay_applies_whiteouts_as_the_full_unpack_does(irt, bb_layout, unpack):
    script = ("ls /opq; test -e /gone || echo gone-gone; test -e /etc/motd || echo motd-gone; cat /keep; "
              "echo; ls /redo")
    cp = irt("run", "--image", f"{bb_layout.path}:bb2", "w1", "--", "/bin/sh", "-c", script)
    assert cp.stdout.decode() == "new\ngone-gone\nmotd-gone\nkeep\nupper\n"
    # the same tree as the copying unpacker makes
    b = unpack(bb_layout.path, "bb2")
    r = os.path.join(b, "rootfs")
    assert sorted(os.listdir(os.path.join(r, "opq"))) == ["new"] and sorted(os.listdir(os.path.join(r, "redo"))) == ["upper"]
    assert not os.path.exists(os.path.join(r, "gone")) and not os.path.exists(os.path.join(r, "etc/motd"))


def test_overrides(irt, bb_layout, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "hostfile").write_text("from host\n")
    script = 'echo "$A $FOO $HOME"; pwd; id -u; id -g; cat /data/hostfile; touch /data/x 2>/dev/null || echo ro'
    cp = irt("run", "--image", f"{bb_layout.path}:bb", "--env", "A=1", "-e", "FOO=over", "--workdir", "/made/here",
             "--user", "app", "-v", f"{vol}:/data:ro", "o1", "--", "/bin/sh", "-c", script)
    assert cp.stdout.decode() == "1 over /home/app\n/made/here\n1000\n1000\nfrom host\nro\n"
    assert not (vol / "x").exists()


def test_read_only_and_mount_syntax(irt, bb_layout, tmp_path):
    vol = tmp_path / "v2"
    vol.mkdir()
    cp = irt("run", "--image", f"{bb_layout.path}:bb", "--read-only", "--mount",
             f"type=bind,source={vol},target=/rw", "r1", "--", "/bin/sh", "-c",
             "touch /x 2>/dev/null || echo root-ro; touch /rw/y && echo rw-ok")
    assert cp.stdout.decode() == "root-ro\nrw-ok\n"
    assert (vol / "y").exists()


def test_missing_workdir_is_created_for_the_user(irt, bb_layout):
    cp = irt("run", "--image", f"{bb_layout.path}:wd", "wd1")
    assert cp.stdout.decode() == "/work/here\n1000\n"


def test_bundle_flags_are_refused_without_image(irt, make_bundle):
    cp = irt("run", "--bundle", make_bundle(), "--env", "A=1", "x1", check=False)
    assert cp.returncode == 1 and b"--env applies to run --image only" in cp.stderr


def test_detached_container_delete_unmounts(irt, bb_layout):
    irt("run", "-d", "--image", f"{bb_layout.path}:bb", "d1", "--", "sleep", "60")
    bundle = os.path.join(irt.root, ".bundles", "d1")
    assert any(f"{bundle}/rootfs" in m for m in _overlays(irt.root))
    assert len(os.listdir(os.path.join(irt.root, ".images", "uses"))) == 1
    # the image is in use: rm refuses, prune keeps its layers
    store = ["--image-store", os.path.join(irt.root, ".images")]
    cp = irt("image", "rm", *store, f"{bb_layout.path}:bb", check=False)
    assert cp.returncode == 1 and b"used by container(s) d1" in cp.stderr
    irt("delete", "--force", "d1")
    assert not os.path.exists(bundle) and not _overlays(irt.root)
    assert os.listdir(os.path.join(irt.root, ".images", "uses")) == []
    assert f"{bb_layout.path}:bb" in irt.out("image", "ls", *store)
    irt("image", "rm", *store, f"{bb_layout.path}:bb")
    pruned = irt.out("image", "prune", *store).split()
    assert len(pruned) == 1 and pruned[0].startswith("sha256:")
    assert [n for n in os.listdir(os.path.join(irt.root, ".images", "layers"))] == []


def test_3000_level_tree_runs_and_deletes(irt, bb_layout):
    """issue 10 item 15: no RecursionError in unpack, run, delete --force or the bundle removal."""
    cp = irt("run", "--image", f"{bb_layout.path}:deep", "deep1", timeout=120)
    assert cp.stdout.decode() == "ran\n" and b"Traceback" not in cp.stderr
    irt("run", "-d", "--image", f"{bb_layout.path}:deep", "deep2", "--", "/bin/sh", "-c",
        "cp -a /d /copy && sleep 60", timeout=120)
    irt("delete", "--force", "deep2", timeout=120)
    assert os.listdir(os.path.join(irt.root, ".bundles")) == []


def test_full_disk_is_one_clear_line_and_leaves_nothing(irt, bb_layout, tmp_path):
    lw = LayoutWriter(tmp_path / "big")
    lw.add(lw.image([tar(f("big", bytes(40 << 20)))]), "big")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(small)], check=True)
    try:
        store = str(small / "store")
        log = str(tmp_path / "log.json")
        cp = irt("run", "--image-store", store, "--image", f"{lw.path}:big", "full1", "--", "true",
                 check=False, log=log)
        err = cp.stderr.decode()
        assert cp.returncode == 1 and "no space left on device" in err and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err
        assert json.loads(open(log).read().splitlines()[-1])["level"] == "error"
        assert os.listdir(os.path.join(store, "tmp")) == [] and os.listdir(os.path.join(store, "layers")) == []
        assert os.listdir(os.path.join(irt.root, ".bundles")) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_expansion_limit(irt, tmp_path):
    lw = LayoutWriter(tmp_path / "bomb")
    lw.add(lw.image([tar(f("zeros", bytes(80 << 20)))]), "bomb")     # ~80 KiB of gzip -> 80 MiB
    store = str(tmp_path / "store")
    cp = irt("run", "--image-store", store, "--image", f"{lw.path}:bomb", "b1", "--", "true", check=False)
    err = cp.stderr.decode()
    assert cp.returncode == 1 and "expands to more than 67108864 bytes" in err and "--max-expansion" in err, err
    assert os.listdir(os.path.join(store, "layers")) == [] and os.listdir(os.path.join(store, "tmp")) == []
    # the user raises the limit: it runs (the layer has no shell: the error is the missing command)
    cp = irt("run", "--image-store", store, "--max-expansion", "0", "--image", f"{lw.path}:bomb", "b2", "--",
             "true", check=False)
    assert "expands" not in cp.stderr.decode()
    assert len([n for n in os.listdir(os.path.join(store, "layers")) if len(n) == 64]) == 1
    from pyruntime.fastos import remove_path
    remove_path(store)


@pytest.mark.parametrize("cid", ["../../../tmp/pyrt-escape", "..", "a/b", "-x", "x" * 2000, ""])
def test_hostile_ids_touch_nothing(irt, bb_layout, cid, tmp_path):
    cp = irt("run", "--image", f"{bb_layout.path}:bb", "--", cid, check=False) if cid == "-x" else \
        irt("run", "--image", f"{bb_layout.path}:bb", cid, check=False)
    assert cp.returncode != 0 and b"Traceback" not in cp.stderr
    assert not os.path.exists("/tmp/pyrt-escape")
    assert not os.path.isdir(os.path.join(irt.root, ".bundles")) or os.listdir(os.path.join(irt.root, ".bundles")) == []


def test_existing_container_is_not_touched(irt, bb_layout):
    irt("run", "-d", "--image", f"{bb_layout.path}:bb", "same", "--", "sleep", "60")
    cp = irt("run", "--image", f"{bb_layout.path}:bb", "same", "--", "true", check=False)
    assert cp.returncode == 1 and b"already exists" in cp.stderr
    assert irt.state("same")["status"] == "running"
    assert any("/.bundles/same/rootfs" in m for m in _overlays(irt.root))


def test_concurrent_runs_unpack_each_layer_once(irt, bb_layout):
    ids = [f"par{i}" for i in range(4)]
    procs = [subprocess.Popen([irt.binary, "--root", irt.root, "run", "--image", f"{bb_layout.path}:bb2", i,
                               "--", "/bin/sh", "-c", "cat /keep"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in ids]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    assert all(o[0] == b"keep" for o in outs)
    store = os.path.join(irt.root, ".images")
    assert len([n for n in os.listdir(os.path.join(store, "layers")) if len(n) == 64]) == 3
    assert os.listdir(os.path.join(store, "tmp")) == []


def test_symlinked_workdir_stays_inside(irt, tmp_path, busybox_rootfs, sentinel):
    """A WorkingDir reached through an absolute symlink is made inside the rootfs, never on the host."""
    lw = LayoutWriter(tmp_path / "wdlink")
    esc = sentinel.path + "/made"
    lw.add(lw.image([tar_of_dir(busybox_rootfs), tar(sym("link", sentinel.path))],
                    config={"config": {"Cmd": ["/bin/pwd"], "WorkingDir": "/link/made"}}), "w")
    cp = irt("run", "--image", f"{lw.path}:w", "wl1")
    assert cp.stdout.decode() == esc + "\n"       # the link's target, inside the container
    assert not os.path.exists(esc)


def test_delete_force_clears_a_bundle_whose_run_died(irt, bb_layout):
    """`run --image` killed after mounting but before its container existed: delete --force clears it."""
    from pyruntime.image.runimage import Overrides, prepare
    b = prepare(irt.root, "orphan", f"{bb_layout.path}:bb", Overrides())
    assert any(f"{b}/rootfs" in m for m in _overlays(irt.root))
    irt("delete", "--force", "orphan")
    assert not os.path.exists(b) and not _overlays(irt.root)
    assert os.listdir(os.path.join(irt.root, ".images", "uses")) == []


def test_too_many_layers_for_one_overlay_are_copied(irt, tmp_path, busybox_rootfs):
    lw = LayoutWriter(tmp_path / "many")
    layers = [tar_of_dir(busybox_rootfs)] + [tar(f(f"l{i}", f"{i}\n".encode())) for i in range(70)]
    lw.add(lw.image(layers, config={"config": {"Cmd": ["/bin/sh", "-c", "cat /l0 /l69; ls / | grep -c '^l'"]}}), "m")
    cp = irt("run", "--image", f"{lw.path}:m", "many1", timeout=180)
    assert cp.stdout.decode() == "0\n69\n70\n"
    assert b"do not fit in one overlay mount: copying the layers instead" in cp.stderr


def test_overlay_xattrs_in_a_layer_are_ignored(irt, tmp_path, busybox_rootfs):
    """A layer cannot make overlayfs hide or redirect lower content with trusted.overlay.* xattrs."""
    from .image_helpers import header
    lw = LayoutWriter(tmp_path / "x")
    evil = header("x", b"5", mode=0o755, pax={"SCHILY.xattr.trusted.overlay.opaque": "y"}) + \
        header("y", b"5", mode=0o755, pax={"SCHILY.xattr.trusted.overlay.redirect": "/etc"})
    lw.add(lw.image([tar_of_dir(busybox_rootfs), tar(d("x"), f("x/lower", b"l"), d("y"), f("y/ly", b"y")),
                     tar(evil, f("x/upper", b"u"))],
                    config={"config": {"Cmd": ["/bin/sh", "-c", "ls /x /y"]}}), "x")
    cp = irt("run", "--image", f"{lw.path}:x", "xa1")
    assert cp.stdout.decode().split() == ["/x:", "lower", "upper", "/y:", "ly"]


def test_tty(irt, bb_layout):
    master, slave = os.openpty()          # run -t relays between our terminal and the container's pty
    try:
        cp = irt("run", "--image", f"{bb_layout.path}:bb", "--tty", "tty1", "--", "/bin/sh", "-c",
                 "test -t 0 && test -t 1 && echo has-a-tty", stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert b"has-a-tty" in cp.stdout
