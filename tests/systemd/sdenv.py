"""Helpers of the systemd lane (a uniquely named module: `from conftest import` is ambiguous when
several conftest.py files are loaded)."""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOTFS = os.path.join(ROOT, "bundles", "busybox", "rootfs")
PYRUNTIME = os.environ.get("PYRUNTIME_BIN") or os.path.join(ROOT, "bin", "pyruntime")
RUNTIMES = {"runc": "runc", "pyruntime": PYRUNTIME}
SLICE = "pyrtsd-test.slice"                       # nested: /pyrtsd.slice/pyrtsd-test.slice
SLICE_PATH = "/pyrtsd.slice/pyrtsd-test.slice"


def systemd_here() -> str | None:
    """None when the lane can run here, else why not."""
    if os.geteuid() != 0:
        return "the systemd lane needs root"
    try:
        with open("/proc/1/comm") as f:
            if f.read().strip() != "systemd":
                return "PID 1 is not systemd here (make test-systemd runs these in a VM where it is)"
    except OSError as e:
        return f"cannot read /proc/1/comm: {e}"
    return None


def cgroup_layout() -> str:
    """The guest's layout (make test-systemd boots it as each): v2, hybrid (v1 controllers + cgroup2
    at /sys/fs/cgroup/unified) or legacy (v1 only)."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "v2"
    return "hybrid" if os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers") else "legacy"


LAYOUT = cgroup_layout()


def cg_dir(ctrl: str, cg: str) -> str:
    """The directory of unit cgroup ``cg`` (systemctl show's ControlGroup) with ``ctrl``'s files."""
    return f"/sys/fs/cgroup{cg}" if LAYOUT == "v2" else f"/sys/fs/cgroup/{ctrl}{cg}"


def cg_dirs(cg: str) -> list[str]:
    """``cg`` in every hierarchy (one on v2; each v1 one, name=systemd and unified on v1 layouts)."""
    if LAYOUT == "v2":
        return [f"/sys/fs/cgroup{cg}"]
    return [f"{e.path}{cg}" for e in os.scandir("/sys/fs/cgroup") if e.is_dir(follow_symlinks=False)]


def sh(*args: str, check: bool = False, timeout: float = 120, capture: bool = True,
       **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(list(args), capture_output=capture, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
    return res


def unit_props(unit: str, *names: str) -> dict[str, str]:
    """systemctl show; a property listed on several lines (DeviceAllow) is joined with ", "."""
    out = sh("systemctl", "show", unit, *[f"--property={n}" for n in names], check=True).stdout
    props: dict[str, str] = {}
    for line in out.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            props[k] = f"{props[k]}, {v}" if props.get(k) else v
    return props


def unit_gone(unit: str) -> bool:
    return unit_props(unit, "LoadState")["LoadState"] == "not-found"


def rd(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def wait_for(what: str, cond, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Lane:
    """Containers of one test with one runtime (always --systemd-cgroup); all removed at teardown
    and checked gone: no unit, no cgroup, no state."""

    def __init__(self, tmp, runtime: str) -> None:
        self.tmp = tmp
        self.runtime = runtime
        self.bin = RUNTIMES[runtime]
        self.root = str(tmp / f"state-{runtime}")
        self.made: list[tuple[str, str]] = []     # (id, unit)

    def config(self, args: list[str], resources: dict | None = None, cgroups_path: str | None = None,
               annotations: dict | None = None) -> tuple[str, str, str]:
        """(bundle, id, unit) for a container running ``args`` in a scope of SLICE."""
        cid = f"sd{self.runtime[0]}{uuid.uuid4().hex[:10]}"
        b = self.tmp / f"bundle-{cid}"
        b.mkdir()
        sh(PYRUNTIME, "spec", cwd=str(b), check=True)
        cfg = json.loads((b / "config.json").read_text())
        cfg["root"] = {"path": ROOTFS, "readonly": True}
        cfg["process"].update(terminal=False, args=args)
        cfg["linux"]["cgroupsPath"] = cgroups_path if cgroups_path is not None else f"{SLICE}:pyrt:{cid}"
        cfg["linux"]["resources"] = dict(cfg["linux"].get("resources") or {}, **(resources or {}))
        if annotations:
            cfg["annotations"] = annotations
        (b / "config.json").write_text(json.dumps(cfg))
        unit = f"pyrt-{cid}.scope" if cgroups_path is None else ""
        self.made.append((cid, unit))
        return str(b), cid, unit

    def cli(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return sh(self.bin, "--root", self.root, "--systemd-cgroup", *args, **kw)

    def create(self, bundle: str, cid: str) -> None:
        with open(self.tmp / f"{cid}.out", "w") as out:
            res = subprocess.run([self.bin, "--root", self.root, "--systemd-cgroup", "create", "--bundle",
                                  bundle, cid], stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=120)
        assert res.returncode == 0, (self.tmp / f"{cid}.out").read_text()

    def status(self, cid: str) -> str:
        return json.loads(self.cli("state", cid, check=True).stdout)["status"]

    def cleanup(self) -> None:
        left = []
        for cid, unit in self.made:
            if os.path.isdir(os.path.join(self.root, cid)):
                self.cli("delete", "--force", cid)
            if unit and not unit_gone(unit):
                left.append(unit)
                sh("systemctl", "stop", unit)
                sh("systemctl", "reset-failed", unit)
        assert not left, f"units left behind: {left}"
