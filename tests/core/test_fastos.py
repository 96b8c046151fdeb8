"""pyruntime/fastos.py answers exactly as os/os.path do (the lifecycle commands use it instead of os),
and its rmtree never follows a symlink out of the directory it removes."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pyrt_testenv import ROOT

sys.path.insert(0, ROOT)
from pyruntime import fastos  # noqa: E402


@pytest.mark.parametrize("parts", [("/run/pyruntime", "c1"), ("/run/pyruntime/", "c1"), ("rel", "c1", "lock"),
                                   ("", "c1"), ("/a", "/b", "c"), ("/a", ""), ("a", "", "b"), ("/", "x")])
def test_join_is_os_path_join(parts):
    assert fastos.join(*parts) == os.path.join(*parts)


def test_path_tests_are_os_path_s(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    (tmp_path / "ld").symlink_to(tmp_path / "d")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    for name in ("d", "f", "ld", "dangling", "fifo", "nowhere", "f/below", "d\x00nul"):
        p = str(tmp_path / name)
        for fn in ("exists", "lexists", "isdir", "islink"):
            assert getattr(fastos, fn)(p) == getattr(os.path, fn)(p), (fn, name)


def test_read_small(tmp_path):
    assert fastos.read_small(f"/proc/{os.getpid()}/stat").startswith(f"{os.getpid()} (".encode())
    with pytest.raises(FileNotFoundError):
        fastos.read_small(str(tmp_path / "nowhere"))


def test_getenv_follows_os_environ_once_os_is_loaded(monkeypatch):
    monkeypatch.setenv("PYRT_FASTOS_PROBE", "é1")
    assert fastos.getenv("PYRT_FASTOS_PROBE") == "é1"
    assert fastos.getenv("PYRT_FASTOS_NOT_SET") is None
    # without os (as in a `start`): the process's own environment, decoded as os.environ decodes it
    code = (f"import sys; sys.path[:0] = [{ROOT!r}]\nfrom pyruntime import fastos\n"
            "assert 'os' not in sys.modules, 'fastos imported os'\n"
            "print(fastos.getenv('PYRT_FASTOS_PROBE'), fastos.getenv('PYRT_FASTOS_NOT_SET'))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=30,
                         env={"PYRT_FASTOS_PROBE": "é1", "LC_ALL": "C.UTF-8"})
    assert out.stdout.split() == ["é1", "None"], out.stderr


def test_rmtree_removes_a_tree_and_follows_no_symlink(tmp_path):
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
    fastos.rmtree(str(d))
    assert not os.path.lexists(d)
    assert (outside / "keep").read_text() == "precious"


def test_rmtree_of_a_symlink_removes_the_link_only(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("x")
    link = tmp_path / "cdir"
    link.symlink_to(target)
    fastos.rmtree(str(link))
    assert not os.path.lexists(link) and (target / "keep").exists()
    fastos.rmtree(str(tmp_path / "nowhere"))     # gone already: nothing to do, no error
