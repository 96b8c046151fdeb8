"""Rootless with the user's systemd instance, as rootless podman with cgroup_manager=systemd uses it.

A test user (the rootless lane's: tests/rootless/conftest.py's Env, with a subuid/subgid range) gets
its user manager (``systemctl start user@UID``, what lingering or a login starts) and so its session
bus /run/user/UID/bus.  As that user, with runc as the control in the same run:

- ``--systemd-cgroup`` create/start/state/ps/kill/delete with a memory and a pids limit: the scope
  is a unit of the user's instance in the user's delegated subtree, the limits read back from the
  unit (``systemctl --user show``) and from the scope's cgroup files, and the unit is gone after
  delete;
- rootless podman with cgroup_manager=systemd: run, exec, --memory/--pids-limit read back the same
  way, rm -f leaving no unit.  podman runs the runtime as uid 0 of its own user namespace: the
  runtime must still pick the user's instance and authenticate to the user's bus from there.

Only in the systemd VM (it adds a user and starts its systemd; the guest's /etc vanishes at power-off).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import uuid

import pytest

from sdenv import rd, sh, wait_for

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rootless.conftest import RT, Env  # noqa: E402  (the rootless lane's test user)
from rootless.test_podman_rootless import IMAGE, Podman  # noqa: E402

pytestmark = pytest.mark.systemd_vm
MiB = 1 << 20
NEEDED = ("memory", "pids")        # what the tests limit: the user's instance must have them delegated


class UserSession:
    """The test user with its systemd instance running, and how to reach it."""

    def __init__(self, env: Env) -> None:
        self.env, self.u = env, env.owner
        self.uid = self.u.uid
        self.service = f"user@{self.uid}.service"
        self.cgroup = f"/sys/fs/cgroup/user.slice/user-{self.uid}.slice/{self.service}"
        self.dropin = ""
        # every command of the user sees its runtime dir and bus, as in a login session
        self.u.xdg = f"/run/user/{self.uid}"

    def start(self) -> None:
        sh("systemctl", "start", self.service, check=True, timeout=300)
        bus = f"{self.u.xdg}/bus"
        wait_for(f"the user's bus {bus}", lambda: os.path.exists(bus), timeout=120)
        missing = [c for c in NEEDED if c not in self.delegated()]
        if missing:     # what distributions ship (Debian's user@.service has it): in the guest only
            self.dropin = "/run/systemd/system/user@.service.d/pyrt-delegate.conf"
            os.makedirs(os.path.dirname(self.dropin), exist_ok=True)
            with open(self.dropin, "w") as f:
                f.write("[Service]\nDelegate=pids memory cpu\n")
            sh("systemctl", "daemon-reload", check=True)
            sh("systemctl", "restart", self.service, check=True, timeout=300)
            wait_for(f"the user's bus {bus}", lambda: os.path.exists(bus), timeout=120)
        print(f"user manager {self.service}: delegated {self.delegated()}"
              + (f" (after the drop-in {self.dropin}; missing before: {missing})" if missing else ""))

    def delegated(self) -> list[str]:
        return rd(f"{self.cgroup}/cgroup.controllers").split()

    def stop(self) -> None:
        sh("systemctl", "stop", self.service, f"user-runtime-dir@{self.uid}.service", timeout=300)
        if self.dropin:
            os.unlink(self.dropin)
            sh("systemctl", "daemon-reload")

    def run(self, *argv: str, check: bool = False, timeout: float = 120):
        cp = self.u.run(list(argv), timeout=timeout)
        if check:
            assert cp.returncode == 0, f"{' '.join(argv)} -> {cp.returncode}\n{cp.stdout}\n{cp.stderr}"
        return cp

    def unit(self, unit: str, *names: str) -> dict[str, str]:
        """``systemctl --user show`` as the user: the unit as the user's instance has it."""
        out = self.run("systemctl", "--user", "show", unit, *[f"--property={n}" for n in names],
                       check=True).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def unit_gone(self, unit: str) -> bool:
        return self.unit(unit, "LoadState")["LoadState"] == "not-found"


@pytest.fixture(scope="module")
def session():
    if os.environ.get("PYRUNTIME_TEST_VM") != "1":
        pytest.skip("adds a test user and starts its systemd instance: only in the systemd VM (make test-systemd)")
    for tool in ("useradd", "newuidmap", "newgidmap"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} missing: `make rootless-deps` installs passwd and uidmap")
    env = Env()
    s = None
    try:
        env.setup()
        s = UserSession(env)
        s.start()
        yield s
    finally:
        for r in env.runtimes:      # while the user's instance still runs: delete stops the units
            r.cleanup()
        if s is not None:
            s.stop()
        env.teardown()


def _bundle(s: UserSession, args: list[str], resources: dict, cgroups_path: str) -> str:
    """A bundle of the user's, from `pyruntime spec --rootless`, the rootfs the user's own copy."""
    env, u = s.env, s.u
    b = os.path.join(u.work, f"b-{uuid.uuid4().hex[:8]}")
    os.mkdir(b)
    os.chown(b, u.uid, u.gid)
    s.run(env.pyruntime, "spec", "--rootless", "--bundle", b, check=True)
    with open(os.path.join(b, "config.json")) as f:
        cfg = json.load(f)
    cfg["root"] = {"path": env.rootfs, "readonly": True}
    cfg["process"].update(terminal=False, args=args)
    cfg["linux"]["resources"] = resources
    cfg["linux"]["cgroupsPath"] = cgroups_path
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(cfg, f)
    return b


def test_rootless_scope_in_user_instance(session, runtime):
    s = session
    binary = s.env.pyruntime if runtime == "pyruntime" else s.env.runc
    rt = RT(runtime, binary, s.u)
    s.env.runtimes.append(rt)
    cid = f"sdu{runtime[0]}{uuid.uuid4().hex[:8]}"
    unit = f"pyrtsd-{cid}.scope"
    b = _bundle(s, ["sleep", "300"], {"memory": {"limit": 64 * MiB}, "pids": {"limit": 40}},
                f"user.slice:pyrtsd:{cid}")
    rt.ok("--systemd-cgroup", "create", "--bundle", b, cid)
    p = s.unit(unit, "ActiveState", "ControlGroup", "MemoryMax", "TasksMax", "Slice")
    assert p["ActiveState"] == "active" and p["Slice"] == "user.slice", p
    assert (p["MemoryMax"], p["TasksMax"]) == (str(64 * MiB), "40"), p
    assert p["ControlGroup"] == f"/user.slice/user-{s.uid}.slice/{s.service}/user.slice/{unit}", p
    d = f"/sys/fs/cgroup{p['ControlGroup']}"
    assert rd(f"{d}/memory.max") == str(64 * MiB) and rd(f"{d}/pids.max") == "40"
    st = rt.state(cid)
    assert st["status"] == "created" and rd(f"{d}/cgroup.procs").split() == [str(st["pid"])]

    rt.ok("--systemd-cgroup", "start", cid)
    assert rt.wait_status(cid, "running") == "running"
    assert json.loads(rt.ok("--systemd-cgroup", "ps", "--format", "json", cid)) == [st["pid"]]
    rt.ok("--systemd-cgroup", "kill", cid, "KILL")
    assert rt.wait_status(cid, "stopped", timeout=60) == "stopped"
    rt.ok("--systemd-cgroup", "delete", cid)
    wait_for(f"{unit} to go", lambda: s.unit_gone(unit))
    assert not os.path.exists(d)
    assert rt.status(cid) == "gone"


@pytest.fixture(scope="module")
def podman(session):
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (make e2e-deps installs it)")
    pm = Podman(session.env, cgroup_manager="systemd")
    yield pm
    pm("runc", "rm", "-af", "-t", "0", timeout=300)


def test_rootless_podman_systemd_cgroups(session, podman, runtime):
    s = session
    r = podman(runtime, "run", "--rm", "--pull=never", IMAGE, "echo", "hi", timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "hi", r.stderr
    r = podman(runtime, "run", "-d", "--pull=never", "--memory", "64m", "--pids-limit", "40", IMAGE,
               "sleep", "300", timeout=300)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    unit = f"libpod-{cid}.scope"
    try:
        p = s.unit(unit, "ActiveState", "ControlGroup", "MemoryMax", "TasksMax")
        assert p["ActiveState"] == "active" and (p["MemoryMax"], p["TasksMax"]) == (str(64 * MiB), "40"), p
        assert p["ControlGroup"].startswith(f"/user.slice/user-{s.uid}.slice/{s.service}/"), p
        d = f"/sys/fs/cgroup{p['ControlGroup']}"
        assert rd(f"{d}/memory.max") == str(64 * MiB) and rd(f"{d}/pids.max") == "40"
        r = podman(runtime, "exec", cid, "sh", "-c", "echo $((6*7))", timeout=300)
        assert r.returncode == 0 and r.stdout.strip() == "42", r.stderr
        r = podman(runtime, "rm", "-f", "-t", "0", cid, timeout=300)
        assert r.returncode == 0, r.stderr
        wait_for(f"{unit} to go after rm -f", lambda: s.unit_gone(unit))
        assert not os.path.exists(d)
    finally:
        podman(runtime, "rm", "-f", "-t", "0", cid, timeout=300)
    assert cid not in podman(runtime, "ps", "-a", "-q", "--no-trunc").stdout
