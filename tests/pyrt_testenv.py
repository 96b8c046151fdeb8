"""Paths and helpers shared by the test suites.  A uniquely named module (not `conftest`): with
several conftest.py files in the tree, `from conftest import` picks whichever pytest loaded last."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from typing import Iterator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "bin", "pyruntime")
ROOTFS = os.path.join(ROOT, "bundles", "busybox", "rootfs")
# one parent cgroup per test session, so concurrent sessions never see (or remove) each other's
CG_PARENT = f"pyrt-tests-{os.getpid()}"
RUNC = shutil.which("runc")   # the control runtime (runc 1.1.5 here), None when not installed
# pyruntime's compiled-filter cache in a state root (pyruntime/seccomp_cache.py): the only entry of a
# root that is not a container (container ids cannot start with ".")
SECCOMP_CACHE = ".seccomp-cache"


def state_root_leftovers(root: str) -> list[str]:
    """What a runtime left in its state root (--root), the seccomp cache aside: for leak checks."""
    try:
        return sorted(n for n in os.listdir(root) if n != SECCOMP_CACHE)
    except FileNotFoundError:
        return []


def remove_seccomp_cache(root: str) -> None:
    """Remove the seccomp cache pyruntime made in a shared state root (a client's runtime root)."""
    shutil.rmtree(os.path.join(root, SECCOMP_CACHE), ignore_errors=True)


def build_sdsend(out_dir: str) -> str:
    """tests/sdsend.c linked static into out_dir: the sd_notify sender the notify tests run in containers."""
    out = os.path.join(out_dir, "sdsend")
    subprocess.run(["gcc", "-static", "-O", "-o", out, os.path.join(ROOT, "tests", "sdsend.c")], check=True)
    return out


def run_captured(argv: list[str], *, timeout: float, input: bytes | None = None,
                 **kw) -> subprocess.CompletedProcess:
    """subprocess.run with stdout/stderr captured through files, not pipes: a created container's init
    inherits the runtime's stdio and may outlive the call, holding a pipe open."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        cp = subprocess.run(argv, stdout=kw.pop("stdout", out), stderr=err, timeout=timeout, input=input, **kw)
        out.seek(0)
        err.seek(0)
        cp.stdout, cp.stderr = out.read(), err.read()
    return cp


def pure_v2() -> bool:
    """A pure cgroup v2 host: /sys/fs/cgroup is the cgroup2 mount and no v1 controller is mounted."""
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers") and not os.path.isdir("/sys/fs/cgroup/memory")


def cgroup_dirs(rel: str, pid: int | str = "self") -> list[str]:
    """Where a relative cgroupsPath lands (if it exists), as runc puts it: under this process's cgroup in
    every hierarchy, on a pure v2 host under that cgroup's parent (with pid: that process's cgroups, rel "")."""
    found = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if pid == "self" and not ctrls and pure_v2():
                path = os.path.dirname(path.rstrip("/")) or "/"
            for c in (ctrls.split(",") if ctrls else ["unified"]):
                c = c.replace("name=", "")
                base = f"/sys/fs/cgroup/{c}" if os.path.isdir(f"/sys/fs/cgroup/{c}") else "/sys/fs/cgroup"
                d = os.path.normpath(f"{base}/{path}/{rel}")
                if os.path.isdir(d) and d not in found:
                    found.append(d)
    return found


_cgroup_dirs = cgroup_dirs


def _rm_cgroup_tree(d: str) -> None:
    for sub, dirs, _ in sorted(os.walk(d), key=lambda t: -len(t[0])):
        try:
            os.rmdir(sub)
        except OSError:
            pass


class Runtime:
    """Runs the pyruntime command with a private --root."""

    def __init__(self, root: str, binary: str = LAUNCHER) -> None:
        self.root = root
        self.binary = binary

    def __call__(self, *args: str, check: bool = True, timeout: float = 60, input: bytes | None = None,
                 log: str | None = None, **kw) -> subprocess.CompletedProcess:
        glob = ["--root", self.root]
        if log:
            glob += ["--log", log, "--log-format", "json"]
        cp = run_captured([self.binary, *glob, *args], timeout=timeout, input=input, **kw)
        if check and cp.returncode != 0:
            raise AssertionError(f"pyruntime {' '.join(args)} -> {cp.returncode}\nstdout: {cp.stdout.decode()}\n"
                                 f"stderr: {cp.stderr.decode()}")
        return cp

    def out(self, *args: str, **kw) -> str:
        return self(*args, **kw).stdout.decode()

    def state(self, cid: str) -> dict:
        return json.loads(self.out("state", cid))

    def cleanup(self) -> None:
        if not os.path.isdir(self.root):
            return
        for cid in state_root_leftovers(self.root):     # every container dir, half-made ones too
            subprocess.run([self.binary, "--root", self.root, "delete", "--force", cid], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def runc_control(root: str | None = None) -> Iterator[Runtime]:
    """runc (the control) with a private --root (default a new dir under /run); every container in it
    deleted and the root removed at the end.  Callers skip first when RUNC is None."""
    r = Runtime(root or f"/run/runc-test-{uuid.uuid4().hex[:8]}", binary=RUNC or "runc")
    try:
        yield r
    finally:
        r.cleanup()


def pyruntime_or_runc(which: str, rt: Runtime) -> Iterator[Runtime]:
    """The body of a fixture parametrized over ["pyruntime", "runc"]: ``rt``, or runc (the control) with a
    private root, cleaned up after; a skip with the reason when runc is not installed."""
    if which == "pyruntime":
        yield rt
        return
    if not RUNC:
        import pytest
        pytest.skip("runc is not installed on this host (the control runtime)")
    with runc_control() as r:
        yield r
