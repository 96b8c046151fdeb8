"""`pip install .` builds the C core (cffi API mode, setuptools' cffi_modules) and installs a working
`pyruntime` command: the package is usable outside this tree's Makefile."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from pyrt_testenv import ROOT


def test_pip_install_builds_the_core(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is needed to list the tracked files")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    src = tmp_path / "src"
    for f in files:
        if os.path.isfile(os.path.join(ROOT, f)):
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.join(ROOT, f), src / f)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["cffi", "setuptools", "wheel"], check=True, timeout=300)
    cp = subprocess.run(pip + ["--no-build-isolation", "--no-deps", str(src)], capture_output=True, text=True,
                        timeout=300)
    assert cp.returncode == 0, cp.stderr[-2000:]
    out = subprocess.run([str(venv / "bin" / "pyruntime"), "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("pyruntime version ") and "spec: 1.3.0" in out
    core = subprocess.run([str(venv / "bin" / "python"), "-c", "from pyruntime._core import lib; print(lib.pyrt_spawn)"],
                          capture_output=True, text=True, cwd=str(tmp_path))
    assert core.returncode == 0 and "pyrt_spawn" in core.stdout, core.stderr
