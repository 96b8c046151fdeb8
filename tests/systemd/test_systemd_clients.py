"""Real clients on a systemd host, each step with runc (control) and pyruntime in the same run:
podman with cgroup_manager=systemd (run, exec, --memory, --pids-limit, stop, rm -f, and
--sdnotify=container under a systemd-run Type=notify service) and containerd's runc shim with
systemd cgroups (ctr run --runc-systemd-cgroup: SystemdCgroup=true for the shim) and a memory limit.
Limits are read back from the units (systemctl show) and the scopes' cgroup files; after removal
no unit is left."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest

from sdenv import RUNTIMES, SLICE, SLICE_PATH, rd, sh, unit_gone, unit_props, wait_for

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from e2e.image import build_oci_archive, build_rootfs_tar  # noqa: E402
from e2e.podman_env import write_podman_config  # noqa: E402
from pyrt_testenv import build_sdsend  # noqa: E402

pytestmark = pytest.mark.systemd_vm
IMAGE = "localhost/pyrt-busybox:sd"
MiB = 1 << 20


def _need(*tools: str) -> None:
    for t in tools:
        if not shutil.which(t):
            pytest.skip(f"{t} is not installed (make test-systemd installs it with e2e-deps)")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    tar = build_rootfs_tar(str(d / "rootfs.tar"))
    oci = build_oci_archive(tar, str(d / "oci.tar"), IMAGE)
    return {"rootfs": tar, "oci": oci, "sdsend": build_sdsend(str(d))}


class Podman:
    """One podman configuration and storage (the image imported once); ``runtime`` is chosen per
    test (podman --runtime)."""

    def __init__(self, tmp, images: dict) -> None:
        self.tmp = tmp
        self.runtime = "runc"
        self.env = dict(os.environ, **write_podman_config(str(tmp), graphroot=f"{tmp}/root", runroot=f"{tmp}/run",
                                                          cgroup_manager="systemd", work_dir=str(tmp)))
        self.ids: list[str] = []
        self("import", "--change", 'CMD ["/bin/sh"]', images["rootfs"], IMAGE, check=True, timeout=180)

    def argv(self, *args: str) -> list[str]:
        return ["podman", "--runtime", RUNTIMES[self.runtime], "--cgroup-manager", "systemd", *args]

    def __call__(self, *args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        return sh(*self.argv(*args), check=check, timeout=timeout, env=self.env, stdin=subprocess.DEVNULL)

    def cleanup(self) -> None:
        """After each test: no container, no libpod unit left."""
        left = self("ps", "-a", "-q", "--no-trunc").stdout.split()
        if left:
            self("rm", "-f", "-t", "0", *left, timeout=180)
        bad = [f"libpod-{c}.scope" for c in self.ids if not unit_gone(f"libpod-{c}.scope")]
        self.ids = []
        assert not left, f"containers left: {left}"
        assert not bad, f"units left: {bad}"


@pytest.fixture(scope="module")
def podman_env(tmp_path_factory, images):
    _need("podman", "conmon")
    p = Podman(tmp_path_factory.mktemp("podman"), images)
    yield p
    p("system", "reset", "-f", timeout=180)


@pytest.fixture
def podman(podman_env, runtime):
    podman_env.runtime = runtime
    yield podman_env
    podman_env.cleanup()


def test_podman_run_exec_limits_stop_rm(podman):
    r = podman("run", "--rm", "--pull=never", IMAGE, "echo", "hi", check=True)
    assert r.stdout.strip() == "hi"
    cid = podman("run", "-d", "--pull=never", "--memory", "64m", "--pids-limit", "40", IMAGE,
                 "sleep", "300", check=True).stdout.strip()
    podman.ids.append(cid)
    unit = f"libpod-{cid}.scope"
    p = unit_props(unit, "ActiveState", "MemoryMax", "TasksMax", "ControlGroup", "Delegate")
    assert p["ActiveState"] == "active" and p["Delegate"] == "yes"
    assert (p["MemoryMax"], p["TasksMax"]) == (str(64 * MiB), "40")
    d = f"/sys/fs/cgroup{p['ControlGroup']}"
    assert rd(f"{d}/memory.max") == str(64 * MiB) and rd(f"{d}/pids.max") == "40"
    assert podman("exec", cid, "sh", "-c", "echo $((6*7))", check=True).stdout.strip() == "42"
    podman("stop", "-t", "2", cid, check=True, timeout=180)
    assert podman("inspect", "-f", "{{.State.Status}}", cid, check=True).stdout.strip() == "exited"
    wait_for(f"{unit} to go after stop", lambda: unit_gone(unit))
    podman("start", cid, check=True)
    assert unit_props(unit, "ActiveState")["ActiveState"] == "active"
    podman("rm", "-f", "-t", "0", cid, check=True, timeout=180)
    wait_for(f"{unit} to go after rm -f", lambda: unit_gone(unit))
    assert not os.path.exists(d)
    assert cid not in podman("ps", "-a", "-q", "--no-trunc").stdout


def test_podman_sdnotify_container(podman, images, tmp_path):
    """A Type=notify service running `podman run --sdnotify=container`: the service becomes active
    only when the container itself says READY=1 (relayed by the OCI runtime).  The container says it
    only once the test opens a gate: until then, with the container running, the service must still
    be activating (an order, observed; no duration)."""
    _need("systemd-run")
    svc = f"pyrt-sdnotify-{podman.runtime}-{uuid.uuid4().hex[:6]}.service"
    gate = tmp_path / "gate"
    gate.mkdir()
    envs = [f"--setenv={k}={v}" for k, v in podman.env.items() if k.startswith("CONTAINERS_")]
    cmd = podman.argv("run", "--rm", "--pull=never", "--sdnotify=container", "--name", svc[:-8],
                      "-v", f"{images['sdsend']}:/sdsend:ro", "-v", f"{gate}:/gate", IMAGE,
                      "sh", "-c", "touch /gate/running; while [ ! -e /gate/open ]; do sleep 0.1; done; "
                      "/sdsend 'READY=1' 'STATUS=up'; exec sleep 300")
    try:
        r = sh("systemd-run", "--no-block", f"--unit={svc}", "--property=Type=notify",
               "--property=NotifyAccess=all", "--property=TimeoutStartSec=150", *envs, *cmd, timeout=200)
        assert r.returncode == 0, r.stderr
        wait_for("the container to run", lambda: (gate / "running").exists(), timeout=150)
        assert unit_props(svc, "ActiveState")["ActiveState"] == "activating", \
            "the service was active before the container said READY"
        (gate / "open").touch()
        wait_for("the service to become active",
                 lambda: unit_props(svc, "ActiveState")["ActiveState"] == "active", timeout=150)
        p = unit_props(svc, "ActiveState", "SubState", "MainPID")
        assert p["ActiveState"] == "active", p
        assert int(p["MainPID"]) > 0
    finally:
        sh("systemctl", "stop", svc, timeout=120)
        sh("systemctl", "reset-failed", svc)
        podman("rm", "-f", "-t", "0", svc[:-8], timeout=120)
    assert unit_gone(svc)


class Containerd:
    def __init__(self, tmp, images: dict) -> None:
        self.tmp = tmp
        self.sock = str(tmp / "c.sock")
        conf = tmp / "config.toml"
        conf.write_text(f"""version = 2
root = "{tmp}/root"
state = "{tmp}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
""")
        self.log = open(tmp / "containerd.log", "w")
        self.proc = subprocess.Popen(["containerd", "--config", str(conf)], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for("containerd", lambda: self.proc.poll() is not None or
                 sh("ctr", "-a", self.sock, "version").returncode == 0, timeout=60)
        assert self.proc.poll() is None, (tmp / "containerd.log").read_text()[-1500:]
        self.ctr("images", "import", images["oci"], check=True, timeout=180)

    def ctr(self, *args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        return sh("ctr", "-a", self.sock, "-n", "pyrtsd", *args, check=check, timeout=timeout,
                  stdin=subprocess.DEVNULL)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def containerd(tmp_path_factory, images):
    _need("containerd", "ctr")
    c = Containerd(tmp_path_factory.mktemp("containerd"), images)
    yield c
    c.close()


def test_containerd_shim_systemd_cgroup_memory_limit(containerd, runtime, tmp_path):
    cid = f"ctr{runtime[0]}{uuid.uuid4().hex[:8]}"
    unit = f"ctr-{cid}.scope"
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    try:
        containerd.ctr("run", "-d", "--fifo-dir", str(fifo), "--runc-binary", RUNTIMES[runtime],
                       "--runc-systemd-cgroup", "--cgroup", f"{SLICE}:ctr:{cid}", "--memory-limit",
                       str(48 * MiB), IMAGE, cid, "sleep", "300", check=True)
        p = unit_props(unit, "ActiveState", "MemoryMax", "ControlGroup", "Delegate")
        assert p["ActiveState"] == "active" and p["Delegate"] == "yes" and p["MemoryMax"] == str(48 * MiB)
        assert p["ControlGroup"] == f"{SLICE_PATH}/{unit}"
        d = f"/sys/fs/cgroup{p['ControlGroup']}"
        assert rd(f"{d}/memory.max") == str(48 * MiB)
        r = containerd.ctr("task", "exec", "--fifo-dir", str(fifo), "--exec-id", "e1", cid, "sh", "-c",
                           "echo $((6*7))", check=True)
        assert r.stdout.strip() == "42"
        pids = rd(f"{d}/cgroup.procs").split()
        assert len(pids) == 1, pids         # the exec has ended; the init is in the scope
        containerd.ctr("task", "kill", "-s", "KILL", cid, check=True)
        wait_for("the task to stop", lambda: "STOPPED" in containerd.ctr("task", "ls").stdout)
        containerd.ctr("task", "delete", cid, check=True)
        containerd.ctr("container", "delete", cid, check=True)
        wait_for(f"{unit} to go", lambda: unit_gone(unit))
        assert not os.path.exists(d)
    finally:
        containerd.ctr("task", "delete", "-f", cid)
        containerd.ctr("container", "delete", cid)
    assert unit_gone(unit)
