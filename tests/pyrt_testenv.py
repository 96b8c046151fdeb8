"""Paths and helpers shared by the test suites.  A uniquely named module (not `conftest`): with
several conftest.py files in the tree, `from conftest import` picks whichever pytest loaded last."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "bin", "pyruntime")
ROOTFS = os.path.join(ROOT, "bundles", "busybox", "rootfs")
# one parent cgroup per test session, so concurrent sessions never see (or remove) each other's
CG_PARENT = f"pyrt-tests-{os.getpid()}"


def cgroup_dirs(rel: str) -> list[str]:
    """Where a relative cgroupsPath lands (if it exists): under this process's cgroup in every hierarchy."""
    found = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
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
        # Files, not pipes: a created container's init inherits our stdio and may outlive this call.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            cp = subprocess.run([self.binary, *glob, *args], stdout=kw.pop("stdout", out), stderr=err,
                                timeout=timeout, input=input, **kw)
            out.seek(0)
            err.seek(0)
            cp.stdout, cp.stderr = out.read(), err.read()
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
        for cid in os.listdir(self.root):
            if not cid.startswith("."):     # every container dir, half-made ones too
                subprocess.run([self.binary, "--root", self.root, "delete", "--force", cid], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
