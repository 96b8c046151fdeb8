"""Rootless podman with pyruntime as its OCI runtime, runc as the control, as the lane's test user.

podman runs as that user with its own config under the user's home: vfs storage there, the cgroupfs
manager (no systemd user session on this host), file events, no network.  It creates its own user
namespace with the user's /etc/subuid range (newuidmap), so the runtime itself runs as root of that
namespace.  Every step runs with runc first, then pyruntime, and both must agree.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

from e2e.podman_env import write_podman_config

IMAGE = "localhost/pyrt-rl-busybox:t"
# a client lane: `make test-rootless-podman` (part of `make test` through test-lanes), not the base run
pytestmark = pytest.mark.e2e


class Podman:
    """podman as the test user, its config under the user's home; ``cgroup_manager`` "systemd" is the
    systemd lane's (tests/systemd/test_systemd_rootless.py: the user's systemd instance)."""

    def __init__(self, rl, cgroup_manager: str = "cgroupfs") -> None:
        self.rl, self.u = rl, rl.owner
        # where rootless podman looks by default (the user's env names no CONTAINERS_* files)
        self.conf = os.path.join(self.u.home, ".config", "containers")
        write_podman_config(self.conf, graphroot=f"{self.u.home}/storage", runroot=f"{self.u.xdg}/containers",
                            cgroup_manager=cgroup_manager,
                            engine_extra=f'[engine.runtimes]\npyruntime = ["{rl.pyruntime}"]\nrunc = ["{rl.runc}"]\n')
        subprocess.run(["chown", "-R", f"{self.u.uid}:{self.u.gid}", self.u.home], check=True)
        tarball = os.path.join(rl.tmp, "rootfs.tar")
        subprocess.run(["tar", "-C", rl.rootfs, "-cf", tarball, "."], check=True)
        os.chmod(tarball, 0o644)
        cp = self("runc", "import", "--change", 'CMD ["/bin/sh"]', tarball, IMAGE, timeout=180)
        assert cp.returncode == 0, cp.stderr

    def __call__(self, runtime: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        return self.u.run(["podman", "--runtime", runtime, *args], timeout=timeout, cwd=self.u.home)


@pytest.fixture(scope="module")
def podman(rl):
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (make e2e-deps installs it)")
    pm = Podman(rl)
    yield pm
    pm("runc", "rm", "-af", "-t", "0")


RUNTIMES = ("runc", "pyruntime")


def _both(podman, *args: str) -> dict:
    out = {}
    for rt in RUNTIMES:
        cp = podman(rt, *args)
        out[rt] = (cp.returncode, cp.stdout.strip())
    return out


def test_run_rm(rl, podman):
    got = _both(podman, "run", "--rm", IMAGE, "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert got["pyruntime"] == got["runc"]
    rc, out = got["pyruntime"]
    assert rc == 0 and out.split()[:4] == ["0", "0", str(rl.owner.uid), "1"]


def test_run_detached_and_exec_stop_rm(rl, podman):
    got = {}
    for rt in RUNTIMES:
        name = f"d-{rt}-{uuid.uuid4().hex[:4]}"
        run = podman(rt, "run", "-d", "--name", name, IMAGE, "sleep", "1000")
        assert run.returncode == 0, f"{rt}: {run.stderr}"
        ex = podman(rt, "exec", name, "sh", "-c", "echo exec-ok; exit 3")
        stop = podman(rt, "stop", "-t", "1", name)
        status = podman(rt, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.strip()
        rm = podman(rt, "rm", "-f", name)
        gone = podman(rt, "ps", "-a", "--filter", f"name={name}", "-q").stdout.strip()
        got[rt] = {"exec": (ex.returncode, ex.stdout.strip()), "exec_err": ex.stderr, "stop": stop.returncode,
                   "status": status, "rm": rm.returncode, "gone": gone == ""}
    for g in got.values():
        g.pop("exec_err")
    assert got["pyruntime"] == got["runc"], got
    # sleep as PID 1 ignores SIGTERM: stop ends it with SIGKILL after the timeout, in both runtimes
    assert got["pyruntime"]["exec"] == (3, "exec-ok") and got["pyruntime"]["status"] == "exited 137"


def test_interactive_tty_through_tmux(rl, podman):
    got = {}
    for rt in RUNTIMES:
        sock = os.path.join(rl.owner.work, f"tmux-{rt}.sock")
        done = os.path.join(rl.owner.work, f"it-{rt}.out")
        session = f"it{uuid.uuid4().hex[:4]}"
        tm = ["tmux", "-S", sock]
        cmd = f"podman --runtime {rt} run --rm -it {IMAGE} sh; echo EXIT-$? > {done}"
        assert rl.owner.run(tm + ["new-session", "-d", "-x", "100", "-y", "30", "-s", session, cmd],
                            cwd=rl.owner.home).returncode == 0
        try:
            pane = ""
            deadline = time.monotonic() + 30
            rl.owner.run(tm + ["send-keys", "-t", session, "tty; echo hello-$((6*7))", "Enter"])
            while "hello-42" not in pane.replace("hello-$((6*7))", "") and time.monotonic() < deadline:
                time.sleep(0.2)
                pane = rl.owner.run(tm + ["capture-pane", "-p", "-t", session]).stdout
            rl.owner.run(tm + ["send-keys", "-t", session, "exit 5", "Enter"])
            while not os.path.exists(done) and time.monotonic() < deadline:
                time.sleep(0.2)
            with open(done) as f:
                code = f.read().strip()
        finally:
            rl.owner.run(tm + ["kill-server"])
        got[rt] = ("/dev/pts/" in pane, "hello-42" in pane.replace("hello-$((6*7))", ""), code)
    assert got["pyruntime"] == got["runc"] == (True, True, "EXIT-5"), got


def test_userns_keep_id(rl, podman):
    got = _both(podman, "run", "--rm", "--userns=keep-id", IMAGE, "id", "-u")
    assert got["pyruntime"] == got["runc"] == (0, str(rl.owner.uid))


def test_volume_and_read_only(rl, podman):
    vol = os.path.join(rl.owner.work, f"vol-{uuid.uuid4().hex[:4]}")
    os.mkdir(vol)
    os.chown(vol, rl.owner.uid, rl.owner.gid)
    for rt in RUNTIMES:
        cp = podman(rt, "run", "--rm", "-v", f"{vol}:/v", IMAGE, "sh", "-c", f"echo hi > /v/{rt}")
        assert cp.returncode == 0, f"{rt}: {cp.stderr}"
        st = os.stat(os.path.join(vol, rt))
        assert (st.st_uid, st.st_gid) == (rl.owner.uid, rl.owner.gid), rt
    got = _both(podman, "run", "--rm", "--read-only", IMAGE, "sh", "-c", "touch /x 2>&1; echo rc=$?")
    assert got["pyruntime"] == got["runc"]
    assert got["pyruntime"][1].endswith("rc=1") and "Read-only file system" in got["pyruntime"][1]


def test_nothing_left_behind(rl, podman):
    """Run last (file order): no containers in podman or in either runtime's state, no mounts."""
    for rt in RUNTIMES:
        cp = podman(rt, "ps", "-a", "-q")
        assert cp.returncode == 0 and cp.stdout.strip() == "", cp.stdout
    for rt in RUNTIMES:
        d = os.path.join(rl.owner.xdg, rt)
        left = [n for n in os.listdir(d) if os.path.isdir(os.path.join(d, n)) and not n.startswith(".")] \
            if os.path.isdir(d) else []
        assert left == [], f"{rt} state left: {left}"
    with open("/proc/self/mountinfo") as f:
        assert rl.tmp not in f.read()
