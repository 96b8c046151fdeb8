"""pyruntime/fastos.py answers exactly as os/os.path do (the lifecycle commands use it instead of os).
Its tree removal, remove_path, is tested in tests/core/test_rmtree.py."""
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

