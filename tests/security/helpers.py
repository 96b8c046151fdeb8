"""Helpers shared by the security tests: the CLI runner, bundles, output parsing."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTFS = REPO / "bundles" / "busybox" / "rootfs"
PYTHON = sys.executable
CGROUP_PARENT = "pyrt-sec-tests"


from pyrt_testenv import cgroup_dirs, run_captured, state_root_leftovers  # noqa: E402  (shared with the other suites)


class Runtime:
    """The pyruntime CLI with a private state root; remembers container ids for cleanup."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.ids: set[str] = set()
        self.cgroups: set[str] = set()

    def new_id(self, prefix: str = "sec") -> str:
        cid = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.ids.add(cid)
        return cid

    def cmd(self, *args: str) -> list[str]:
        return [PYTHON, "-m", "pyruntime", "--root", self.root, *args]

    @staticmethod
    def env() -> dict[str, str]:
        return dict(os.environ, PYTHONPATH=str(REPO))

    def __call__(self, *args: str, timeout: float = 60, input: bytes | None = None,
                 check: bool = False) -> subprocess.CompletedProcess:
        res = run_captured(self.cmd(*args), cwd=str(REPO), env=self.env(), timeout=timeout, input=input)
        if check and res.returncode != 0:
            raise AssertionError(f"pyruntime {' '.join(args)} failed ({res.returncode}):\n"
                                 f"stdout: {out(res)}\nstderr: {err(res)}")
        return res

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen:
        return subprocess.Popen(self.cmd(*args), cwd=str(REPO), env=self.env(), **kw)

    def run(self, bundle: "Bundle", cid: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """`pyruntime run` of the bundle as it is now (config written first)."""
        self._track(bundle)
        bundle.write()
        cid = cid or self.new_id()
        self.ids.add(cid)
        return self("run", "--bundle", str(bundle.path), cid, timeout=timeout)

    def create(self, bundle: "Bundle", cid: str | None = None, **kw: Any) -> tuple[str, subprocess.CompletedProcess]:
        self._track(bundle)
        bundle.write()
        cid = cid or self.new_id()
        self.ids.add(cid)
        return cid, self("create", "--bundle", str(bundle.path), cid, **kw)

    def _track(self, bundle: "Bundle") -> None:
        cg = bundle.config.get("linux", {}).get("cgroupsPath")
        if cg:
            self.cgroups.add(cg)

    def state(self, cid: str) -> dict | None:
        res = self("state", cid, timeout=30)
        return json.loads(res.stdout) if res.returncode == 0 else None

    def container_pids(self) -> list[int]:
        """Init pids recorded in state files under our root (for the last-resort kill)."""
        pids = []
        for state in Path(self.root).glob("*/state.json"):
            try:
                pid = int(json.loads(state.read_text()).get("pid") or 0)
            except (OSError, ValueError):
                continue
            if pid > 0:
                pids.append(pid)
        return pids

    def cleanup(self) -> list[str]:
        """Force-delete every container; report (and kill) anything that survived."""
        problems = []
        for cid in sorted(self.ids):
            try:
                self("delete", "--force", cid, timeout=30)
            except subprocess.TimeoutExpired:
                problems.append(f"delete --force {cid} timed out")
        for pid in self.container_pids():
            try:
                os.kill(pid, signal.SIGKILL)
                problems.append(f"container init {pid} survived delete --force")
            except ProcessLookupError:
                pass
        for cg in sorted(self.cgroups):
            for d in cgroup_dirs(cg):
                try:
                    os.rmdir(d)
                    problems.append(f"cgroup left behind: {d}")
                except OSError as exc:
                    problems.append(f"cgroup left behind and busy: {d}: {exc}")
        leftovers = state_root_leftovers(self.root)
        if leftovers:
            problems.append(f"state left behind in {self.root}: {leftovers}")
        shutil.rmtree(self.root, ignore_errors=True)
        return problems


def runtime_for_test(request: Any, cls: type[Runtime] = Runtime, prefix: str = "pyruntime-test-") -> Runtime:
    """A ``cls`` runtime with a fresh state root under /run, cleaned up when the test ends: a leak fails
    the test, but never hides the test's own failure (the conftest marks a failed call)."""
    rt = cls(tempfile.mkdtemp(prefix=prefix, dir="/run"))

    def fin() -> None:
        problems = rt.cleanup()
        if problems and not getattr(request.node, "_sec_failed", False):
            pytest.fail(f"cleanup of {rt.root}: " + "; ".join(problems), pytrace=False)
    request.addfinalizer(fin)
    return rt


class Bundle:
    """A bundle directory with a mutable ``config`` dict; ``write()`` stores config.json."""

    def __init__(self, path: Path, config: dict) -> None:
        self.path = path
        self.config = config

    @property
    def process(self) -> dict:
        return self.config["process"]

    @property
    def linux(self) -> dict:
        return self.config.setdefault("linux", {})

    def args(self, *argv: str) -> "Bundle":
        self.process["args"] = list(argv)
        return self

    def sh(self, script: str) -> "Bundle":
        return self.args("/bin/sh", "-c", script)

    def add_mount(self, dest: str, source: str, mtype: str = "bind", options: list[str] | None = None) -> None:
        opts = options if options is not None else (["rbind", "rw"] if mtype == "bind" else [])
        self.config.setdefault("mounts", []).append(
            {"destination": dest, "type": mtype, "source": source, "options": opts})

    def namespaces(self) -> list[str]:
        return [ns["type"] for ns in self.linux.get("namespaces", [])]

    def add_namespace(self, nstype: str) -> None:
        if nstype not in self.namespaces():
            self.linux.setdefault("namespaces", []).append({"type": nstype})

    def write(self) -> None:
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))


def default_config(directory: Path) -> dict:
    """config.json exactly as `pyruntime spec` writes it."""
    res = subprocess.run([PYTHON, "-m", "pyruntime", "spec"], cwd=str(directory), env=Runtime.env(),
                         capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr.decode()
    return json.loads((directory / "config.json").read_text())


def out(res: subprocess.CompletedProcess) -> str:
    return res.stdout.decode(errors="replace") if isinstance(res.stdout, bytes) else (res.stdout or "")


def err(res: subprocess.CompletedProcess) -> str:
    return res.stderr.decode(errors="replace") if isinstance(res.stderr, bytes) else (res.stderr or "")


def both(res: subprocess.CompletedProcess) -> str:
    return f"--- stdout\n{out(res)}--- stderr\n{err(res)}"


def status_fields(text: str) -> dict[str, str]:
    """/proc/PID/status text -> {"CapEff": "0000...", ...}."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def wait_for(pred: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()
