"""Fixtures for the cgroup tests: real cgroupfs, real processes, everything removed in finalizers.

Cgroups are created below this test process's own cgroups (relative paths), so a run never touches
anything outside its own subtree and the same tests run on this hybrid host and in the pure v2 VM.
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = os.path.join(ROOT, ".venv", "bin", "python")
if not os.path.exists(PY):
    PY = sys.executable
ROOTFS = os.path.join(ROOT, "bundles", "busybox", "rootfs")
_seq = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _need_root():
    if os.geteuid() != 0:
        pytest.skip("cgroup tests create cgroups and need root")


@pytest.fixture(scope="session")
def layout():
    from pyruntime.cgroups.layout import detect
    return detect()


def v2_controllers(layout) -> set[str]:
    """Controllers a child of our own v2 cgroup can get."""
    from pyruntime.cgroups.layout import host_path
    if layout.unified is None:
        return set()
    d = host_path(layout.unified, layout.unified_root, layout.own.get("", "/"))
    try:
        with open(os.path.join(d, "cgroup.controllers")) as f:
            return set(f.read().split())
    except OSError:
        return set()


def has_controller(layout, name: str) -> bool:
    from pyruntime.cgroups.layout import V2
    if layout.kind == V2:
        return name in v2_controllers(layout)
    return name in layout.v1


def need(layout, name: str, what: str) -> None:
    """Skip with the exact reason when neither a v1 nor a cgroup2 controller is there."""
    if not has_controller(layout, name):
        pytest.skip(f"{what} need the v1 {name} controller or a cgroup2 {name} controller; "
                    "this host has neither")


def unique(prefix: str = "pyrt-test") -> str:
    return f"{prefix}-{os.getpid()}-{next(_seq)}-{uuid.uuid4().hex[:6]}"


def fresh_path(leaf: str) -> str:
    """A fresh cgroupsPath for a test: relative (below this process's cgroups) wherever that can get
    controllers.  On pure v2 a non-root cgroup holding this process cannot enable controllers for
    children (no internal processes rule), so there the path is absolute, below the root."""
    from pyruntime.cgroups.layout import V2, detect
    lay = detect()
    if lay.kind == V2 and lay.own.get("", "/") != "/":
        return f"/{unique()}/{leaf}"
    return f"{unique()}/{leaf}"


def top_dirs(cgroups_path: str) -> list[str]:
    """Host directories of the first component of a test cgroupsPath, in every hierarchy."""
    from pyruntime.cgroups.layout import V2, detect, host_path
    lay = detect()
    top = cgroups_path.strip("/").split("/")[0]
    hier = [(m, lay.v1_root[c], lay.own.get(c, "/")) for c, m in lay.v1.items()]
    if lay.unified:     # pure v2: a relative path goes below the parent of our cgroup (runc)
        own = lay.own.get("", "/")
        base = (os.path.dirname(own.rstrip("/")) or "/") if lay.kind == V2 else own
        hier.append((lay.unified, lay.unified_root, base))
    out = []
    for mnt, mroot, own in hier:
        parent = mnt if cgroups_path.startswith("/") else host_path(mnt, mroot, own)
        d = os.path.join(parent, top)
        if d not in out:
            out.append(d)
    return out


@pytest.fixture
def make_manager(request):
    """Factory: a created manager at a fresh relative path; destroyed (and checked gone) at teardown."""
    from pyruntime.cgroups import open_manager
    from pyruntime.errors import RuntimeFailure
    made = []

    def make(path: str | None = None, cid: str | None = None):
        cid = cid or unique("c")
        m = open_manager(path or fresh_path(cid), cid)
        made.append(m)
        try:
            m.create()
        except RuntimeFailure as e:
            if "no internal processes" in str(e):
                pytest.skip("cgroup v2: this test process's own cgroup holds processes, so no controller "
                            "can be enabled below it (no internal processes rule); run pytest from a "
                            f"cgroup without processes: {e}")
            raise
        return m

    def fin():
        for m in made:
            m.destroy()
        for m in made:
            for d in m.to_state().get("created", []):
                assert not os.path.exists(d), f"leaked cgroup {d}"
    request.addfinalizer(fin)
    return make


@pytest.fixture
def spawn(request):
    """Factory: start a host process (stopped on a pipe until released) and kill it at teardown."""
    procs: list[subprocess.Popen] = []

    def start(script: str = "exec sleep 1000", gate: bool = False) -> tuple[subprocess.Popen, int | None]:
        if gate:
            r, w = os.pipe()
            p = subprocess.Popen(["sh", "-c", f"read _; exec </dev/null; {script}"], stdin=r,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            os.close(r)
            procs.append(p)
            return p, w
        p = subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        procs.append(p)
        return p, None

    def fin():
        for p in procs:
            if p.poll() is None:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
            if p.stdout:
                p.stdout.close()
    request.addfinalizer(fin)
    return start


def release(w: int) -> None:
    os.write(w, b"go\n")
    os.close(w)


# --- containers ------------------------------------------------------------------------------------

def pyruntime(*args: str, root: str, input: str | None = None, timeout: float = 60,
              check: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    res = subprocess.run([PY, "-m", "pyruntime", "--root", root, *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, input=input, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"pyruntime {' '.join(args)} failed ({res.returncode}): {res.stderr}")
    return res


@pytest.fixture(scope="session")
def default_config():
    if not os.path.exists(os.path.join(ROOTFS, "bin", "busybox")):
        pytest.fail(f"busybox rootfs missing at {ROOTFS}: run `make rootfs`")
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, PYTHONPATH=ROOT)
        subprocess.run([PY, "-m", "pyruntime", "spec"], cwd=d, env=env, check=True, capture_output=True)
        with open(os.path.join(d, "config.json")) as f:
            return json.load(f)


class Containers:
    """Bundles and container ids of one test; every container is force-deleted at teardown and its
    cgroup directories checked gone."""

    def __init__(self, tmp_path, default_config) -> None:
        self.tmp = tmp_path
        self.root = str(tmp_path / "state")
        self.default = default_config
        self.ids: list[str] = []
        self.cgroup_paths: list[str] = []

    def bundle(self, args: list[str], resources: dict | None = None, cgroups_path: str | None = None,
               caps: list[str] | None = None, mutate=None) -> tuple[str, str]:
        """A bundle running ``args``; returns (bundle dir, relative cgroupsPath)."""
        cfg = json.loads(json.dumps(self.default))
        cfg["root"] = {"path": ROOTFS, "readonly": True}
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = args
        cgp = cgroups_path or fresh_path("ctr")
        cfg["linux"]["cgroupsPath"] = cgp
        cfg["linux"]["resources"] = dict(cfg["linux"].get("resources") or {}, **(resources or {}))
        if caps is not None:
            for k in ("bounding", "effective", "permitted"):
                cfg["process"]["capabilities"][k] = sorted(set(cfg["process"]["capabilities"][k]) | set(caps))
        if mutate:
            mutate(cfg)
        b = self.tmp / f"bundle-{next(_seq)}"
        b.mkdir()
        (b / "config.json").write_text(json.dumps(cfg))
        self.cgroup_paths.append(cgp)
        return str(b), cgp

    def new_id(self) -> str:
        cid = unique("ctr")
        self.ids.append(cid)
        return cid

    def run(self, bundle: str, *extra: str, timeout: float = 60) -> tuple[str, subprocess.CompletedProcess]:
        cid = self.new_id()
        return cid, pyruntime("run", "--bundle", bundle, *extra, cid, root=self.root, timeout=timeout)

    def cli(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return pyruntime(*args, root=self.root, **kw)

    def cleanup(self) -> None:
        for cid in self.ids:
            if os.path.isdir(os.path.join(self.root, cid)):
                pyruntime("delete", "--force", cid, root=self.root)
        leaked = []
        for cgp in self.cgroup_paths:
            for d in top_dirs(cgp):
                if os.path.isdir(d):
                    leaked.append(d)
                    _force_remove(d)
        assert not leaked, f"cgroup directories left behind: {leaked}"


def _force_remove(d: str) -> None:
    """Last-resort cleanup so one failing test does not leak into the host."""
    for dirpath, dirnames, _ in sorted(os.walk(d), key=lambda t: -t[0].count("/")):
        try:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                for pid in f.read().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        except OSError:
            pass
        for fz, val in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
            try:
                with open(os.path.join(dirpath, fz), "w") as f:
                    f.write(val)
            except OSError:
                pass
        for _ in range(100):
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


@pytest.fixture
def containers(tmp_path, default_config):
    c = Containers(tmp_path, default_config)
    yield c
    c.cleanup()
