"""fastos.remove_path, the one tree removal: a container's state dir (`delete`, a failed `create`) and
the trees images make.  It never follows a symlink out of the tree, removes what a read-only directory
holds, goes through any depth without recursion, never empties another file system, and stays off
:mod:`os` (it runs on every `delete`)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pyrt_testenv import ROOT

sys.path.insert(0, ROOT)
from pyruntime.fastos import remove_path, remove_tree  # noqa: E402


def test_removes_a_tree_and_follows_no_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    d = tmp_path / "cdir"
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / "state.json").write_text("{}")
    (d / "sub" / "deeper" / "f").write_text("x")
    (d / "link-to-outside").symlink_to(outside)
    (d / "sub" / "link-file").symlink_to(outside / "keep")
    os.mkfifo(d / "exec.sock")
    remove_path(str(d))
    assert not os.path.lexists(d)
    assert sorted(os.listdir(outside)) == ["keep"] and (outside / "keep").read_text() == "precious"


def test_a_symlink_in_the_place_of_the_tree_is_removed_itself(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("x")
    link = tmp_path / "cdir"
    link.symlink_to(target)
    remove_path(str(link))
    assert not os.path.lexists(link) and (target / "keep").read_text() == "x"
    remove_path(str(tmp_path / "nowhere"))     # gone already: nothing to do, no error
    remove_path(str(tmp_path / "nowhere" / "below"))


def test_a_symlink_to_a_directory_inside_the_tree_is_not_descended(tmp_path):
    """An entry swapped for a symlink to a directory elsewhere is unlinked, not emptied (by fd, O_NOFOLLOW)."""
    outside = tmp_path / "outside"
    (outside / "d").mkdir(parents=True)
    (outside / "d" / "keep").write_text("x")
    d = tmp_path / "tree"
    (d / "a").mkdir(parents=True)
    (d / "a" / "b").symlink_to(outside / "d", target_is_directory=True)
    remove_path(str(d))
    assert not os.path.lexists(d) and (outside / "d" / "keep").read_text() == "x"


def test_read_only_and_unsearchable_directories_are_emptied(tmp_path):
    """An image layer's (or a rootless run's) modes do not stop the removal: the owner gets rwx back."""
    d = tmp_path / "tree"
    (d / "ro" / "inner").mkdir(parents=True)
    (d / "ro" / "inner" / "f").write_text("x")
    (d / "ro" / "g").write_text("y")
    (d / "none").mkdir()
    (d / "none" / "h").write_text("z")
    os.chmod(d / "ro" / "inner", 0o500)
    os.chmod(d / "ro", 0o500)
    os.chmod(d / "none", 0)
    os.chmod(d, 0o500)
    remove_path(str(d))
    assert not os.path.lexists(d)


def test_a_deep_tree_goes_without_recursion(tmp_path):
    """Deeper than the recursion limit and than PATH_MAX allows to name in one path."""
    d = tmp_path / "deep"
    d.mkdir()
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(3000):
            os.mkdir("d" * 20, dir_fd=fd)
            nxt = os.open("d" * 20, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
        os.symlink("/", "root-link", dir_fd=fd)
    finally:
        os.close(fd)
    remove_path(str(d))
    assert not os.path.lexists(d)


def test_a_mount_inside_is_refused_not_emptied(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    d = tmp_path / "tree"
    (d / "mnt").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "pyrt-rmtree-test", str(d / "mnt")], check=True)
    try:
        (d / "mnt" / "keep").write_text("x")
        with pytest.raises(OSError) as ei:
            remove_path(str(d))
        assert ei.value.errno == 16 and (d / "mnt" / "keep").read_text() == "x"      # EBUSY
    finally:
        subprocess.run(["umount", str(d / "mnt")], check=True)
    remove_path(str(d))
    assert not os.path.lexists(d)


@pytest.mark.parametrize("rel", ["cdir", "./cdir/", "x/../cdir", "cdir//"])
def test_relative_and_unnormal_paths_name_what_os_path_abspath_names(tmp_path, monkeypatch, rel):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cdir" / "sub").mkdir(parents=True)
    (tmp_path / "keep").write_text("x")
    remove_path(rel)
    assert sorted(os.listdir(tmp_path)) == ["keep"]


def test_remove_tree_under_a_dir_fd_and_of_a_plain_file(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d" / "e").mkdir(parents=True)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        remove_tree(fd, "f")
        remove_tree(fd, "d")
        remove_tree(fd, "missing")
    finally:
        os.close(fd)
    assert os.listdir(tmp_path) == []


def test_it_loads_no_os():
    """It runs on every `delete` (tests/test_imports.py checks the command; this, the module alone)."""
    code = (f"import sys; sys.path[:0] = [{ROOT!r}]\nimport pyruntime.fastos\n"
            "print(sorted(m for m in ('os', 'stat', 'posixpath', 'shutil') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "[]", out.stderr


def _bind(src, dst):
    if os.geteuid() != 0:
        pytest.skip("a bind mount needs root")
    subprocess.run(["mount", "--bind", str(src), str(dst)], check=True)


@pytest.mark.parametrize("where", ["inside", "top"])
def test_a_bind_mount_of_the_same_file_system_is_refused_not_emptied(tmp_path, where):
    """Same st_dev as the tree (a host dir bind-mounted into a bundle's rootfs and left there): only the
    mount id tells it apart.  Before: emptied the host directory."""
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "keep").write_text("precious")
    d = tmp_path / "tree"
    mnt = d / "rootfs" / "mnt" if where == "inside" else d
    mnt.mkdir(parents=True)
    _bind(host, mnt)
    try:
        with pytest.raises(OSError) as ei:
            remove_path(str(d))
        assert ei.value.errno == 16                                                          # EBUSY
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert (host / "keep").read_text() == "precious"
    remove_path(str(d))
    assert not os.path.lexists(d)


def test_a_directory_moved_during_the_walk_never_leads_it_outside(tmp_path, monkeypatch):
    """A process sharing the tree (a volume, an overlay upper dir) moves the directory being emptied up
    the tree: the walk climbs by ``..``, so it would come back above the tree and remove the names it
    still had to do there (here ``victim``, next to the tree).  Each climb must check where it landed."""
    import pyruntime.fastos as fastos
    host = tmp_path / "host"
    (host / "victim").mkdir(parents=True)
    (host / "victim" / "keep").write_text("precious")
    (host / "x").mkdir()                   # an empty directory of a name the attacker knows
    tree = host / "tree"
    (tree / "x" / "y").mkdir(parents=True)
    (tree / "victim").mkdir()
    deep = os.stat(tree / "x" / "y").st_ino
    real_scan = fastos._scan_unlink

    def racing_scan(fd):
        if os.fstat(fd).st_ino == deep:
            os.rename(tree / "x" / "y", tree / "y")
        names = real_scan(fd)
        return sorted(names, key=lambda n: n != "victim")      # "victim" last done: x first (pop())

    monkeypatch.setattr(fastos, "_scan_unlink", racing_scan)
    with pytest.raises(OSError):
        remove_path(str(tree))
    assert (host / "victim" / "keep").read_text() == "precious" and (host / "x").is_dir()
    monkeypatch.undo()
    remove_path(str(tree))
    assert sorted(os.listdir(host)) == ["victim", "x"]


def test_entries_swapped_during_the_walk_are_removed_not_fatal(tmp_path, monkeypatch):
    """A file that became a directory, a directory that became a symlink (to outside) since the scan."""
    import pyruntime.fastos as fastos
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    d = tmp_path / "tree"
    (d / "was-dir").mkdir(parents=True)
    (d / "was-file").write_text("f")
    real_scandir = fastos.posix.scandir

    class Swapping:
        def __init__(self, fd):
            self.it = real_scandir(fd)

        def __enter__(self):
            entries = list(self.it.__enter__())
            (d / "was-file").unlink()
            (d / "was-file").mkdir()
            (d / "was-file" / "g").write_text("g")
            (d / "was-dir").rmdir()
            (d / "was-dir").symlink_to(outside)
            monkeypatch.setattr(fastos.posix, "scandir", real_scandir)
            return iter(entries)

        def __exit__(self, *a):
            return self.it.__exit__(*a)

    monkeypatch.setattr(fastos.posix, "scandir", Swapping)
    remove_path(str(d))
    assert not os.path.lexists(d) and os.listdir(outside) == ["keep"]


def test_odd_names_and_hard_links(tmp_path):
    """Names with newlines and bytes that are not UTF-8 (a hostile layer's), directories among them, and
    a hard link to a file outside the tree: the link goes, the file outside keeps its content."""
    outside = tmp_path / "outside"
    outside.write_text("precious")
    d = tmp_path / "tree"
    d.mkdir()
    bd = os.fsencode(d)
    for name in (b"a\nb", b"\xff\xfe", b"-rf", b" ", b"\n"):
        os.mkdir(bd + b"/" + name)
        with open(bd + b"/" + name + b"/" + name, "wb") as f:
            f.write(b"x")
    os.link(outside, d / "hardlink")
    os.link(outside, bd + b"/\xff\xfe/link\n")
    remove_path(str(d))
    assert not os.path.lexists(d) and outside.read_text() == "precious" and os.stat(outside).st_nlink == 1
