"""The CRI lane's private world: containerd with its CRI plugin, CNI, images, a loopback registry.

Everything lives under one temp dir (config, root, state, sockets, CNI conf and IPAM data, the
registry's storage, the pod logs); the host's /etc/containerd and /etc/cni are never read, because
containerd gets ``--config`` and the CRI plugin explicit CNI dirs.  What containerd 1.6 and the CNI
plugins put outside that dir no matter what (shim sockets in /run/containerd/s, the runtime root
/run/containerd/runc/k8s.io, pod netns in /run/netns, the bridge) is removed at the end when this
lane created it.
"""
from __future__ import annotations

import io
import os
import tarfile

from tests.e2e.containerd_env import ContainerdDaemon
from tests.e2e.helpers import sh
from tests.e2e.image import MTIME, build_oci_archive, build_rootfs_tar
from tests.image.registry_env import Registry, free_port
from tests.pyrt_testenv import remove_seccomp_cache

HERE = os.path.dirname(os.path.abspath(__file__))
NS = "k8s.io"                              # the CRI plugin's containerd namespace (fixed)
RUNC_ROOT = "/run/containerd/runc"
HOST_DIRS = ("/run/containerd/s", "/run/containerd/fifo", f"{RUNC_ROOT}/{NS}", RUNC_ROOT,
             "/run/containerd", "/run/netns")
PAUSE_IMAGE = "localhost/pyrt-pause:cri"
BUSYBOX_IMAGE = "localhost/pyrt-busybox:cri"
BRIDGE = "pyrtcri0"
SUBNET = "172.31.250.0/24"                 # private, unused here; the bridge is not routed anywhere
GATEWAY = "172.31.250.1"                   # the bridge's address (host-local gives the gateway .1)
CNI_BIN = "/usr/lib/cni"


def build_pause_archive(tmp: str) -> str:
    """gcc -static tests/cri/pause.c, packed as a one-layer OCI archive whose Cmd is /pause."""
    binary = os.path.join(tmp, "pause")
    sh(["gcc", "-static", "-O2", "-Wall", "-o", binary, os.path.join(HERE, "pause.c")], timeout=120).check()
    rootfs = os.path.join(tmp, "pause-rootfs.tar")
    with tarfile.open(rootfs, "w") as tar, open(binary, "rb") as f:
        data = f.read()
        ti = tarfile.TarInfo("pause")
        ti.size, ti.mode, ti.mtime = len(data), 0o755, MTIME
        tar.addfile(ti, io.BytesIO(data))
    return build_oci_archive(rootfs, os.path.join(tmp, "pause-oci.tar"), PAUSE_IMAGE, cmd=["/pause"])


class CriEnv(ContainerdDaemon):
    """containerd (CRI plugin on, handlers runc + pyruntime), the CNI conf, a loopback registry."""

    def __init__(self, tmp: str, runtimes: dict[str, str], systemd_cgroup: bool = False) -> None:
        super().__init__(tmp, os.path.join(tmp, "containerd.sock"))
        self.systemd_cgroup = systemd_cgroup
        self.runtimes = runtimes
        self.cni_conf = os.path.join(tmp, "cni", "net.d")
        self.ipam = os.path.join(tmp, "cni", "ipam")
        self.logs = os.path.join(tmp, "pods")
        for d in (self.cni_conf, self.ipam, self.logs):
            os.makedirs(d, exist_ok=True)
        self.registry_port = free_port()
        self.registry = f"127.0.0.1:{self.registry_port}"
        self.registry_srv: Registry | None = None
        self.preexisting = {d for d in HOST_DIRS if os.path.exists(d)}
        self.netns_before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        self.bridge_before = os.path.exists(f"/sys/class/net/{BRIDGE}")
        # the bridge plugin turns on IPv4 forwarding for a gateway bridge: put it back as it was
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            self.ip_forward_before = f.read().strip()

    # ------------------------------------------------------------------ configuration
    def cri_config(self) -> str:
        """The CNI conflist (written) and the CRI plugin's part of config.toml (returned)."""
        systemd_cgroup = self.systemd_cgroup
        with open(os.path.join(self.cni_conf, "10-pyrt-cri.conflist"), "w") as f:
            f.write('{"cniVersion": "0.4.0", "name": "pyrt-cri", "plugins": [{"type": "bridge", '
                    f'"bridge": "{BRIDGE}", "isGateway": true, "ipMasq": false, "hairpinMode": false, '
                    f'"ipam": {{"type": "host-local", "dataDir": "{self.ipam}", '
                    f'"ranges": [[{{"subnet": "{SUBNET}"}}]]}}}}]}}\n')
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        runtimes = "".join(f"""
[{cri}.containerd.runtimes.{name}]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.{name}.options]
  BinaryName = "{binary}"
  SystemdCgroup = {"true" if systemd_cgroup else "false"}
""" for name, binary in self.runtimes.items())
        return f"""\
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
{runtimes}
[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{self.cni_conf}"
  max_conf_num = 1
[{cri}.registry.mirrors."{self.registry}"]
  endpoint = ["http://{self.registry}"]
"""

    # ------------------------------------------------------------------ daemons
    def start(self) -> None:
        self.start_daemon(extra_config=self.cri_config())

    def start_registry(self) -> None:
        """Debian's docker-registry on 127.0.0.1:<the port in containerd's mirror config>, storage in the
        temp dir (tests/image/registry_env.py: the registry lane's own)."""
        self.registry_srv = Registry(os.path.join(self.tmp, "registry"), port=self.registry_port)

    def ctr(self, *args: str, timeout: float = 120):
        return sh(["ctr", "-a", self.sock, "-n", NS, *args], timeout=timeout, cwd=self.tmp)

    def import_images(self) -> None:
        """The pause image and busybox imported into k8s.io; busybox also pushed to the registry
        under another name (then untagged locally), for PullImage to fetch over loopback HTTP."""
        self.ctr("images", "import", build_pause_archive(self.tmp)).check()
        rootfs = build_rootfs_tar(os.path.join(self.tmp, "busybox-rootfs.tar"))
        self.ctr("images", "import", build_oci_archive(rootfs, os.path.join(self.tmp, "busybox-oci.tar"),
                                                       BUSYBOX_IMAGE)).check()

    def push_for_pull(self, ref: str) -> None:
        self.ctr("images", "tag", BUSYBOX_IMAGE, ref).check()
        self.ctr("images", "push", "--plain-http", ref, ref).check()
        self.ctr("images", "rm", "--sync", ref).check()

    # ------------------------------------------------------------------ the end
    def netns_created(self) -> list[str]:
        now = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        return sorted(now - self.netns_before)

    def close(self) -> list[str]:
        """Stop both daemons by pid; remove what they left outside the temp dir; return what was forced."""
        problems = self.stop_daemon()
        if self.registry_srv is not None:
            self.registry_srv.stop()
        for ns in self.netns_created():
            problems.append(f"netns left: /run/netns/{ns}")
            sh(["ip", "netns", "delete", ns])
        if not self.bridge_before and os.path.exists(f"/sys/class/net/{BRIDGE}"):
            r = sh(["ip", "link", "delete", BRIDGE])   # CNI's bridge plugin never removes it
            if r.rc != 0:
                problems.append(f"bridge {BRIDGE} not removed: {r.err.strip()}")
        with open("/proc/sys/net/ipv4/ip_forward", "r+") as f:
            if f.read().strip() != self.ip_forward_before:
                f.seek(0)
                f.write(self.ip_forward_before)
        if f"{RUNC_ROOT}/{NS}" not in self.preexisting:
            remove_seccomp_cache(f"{RUNC_ROOT}/{NS}")
        for d in HOST_DIRS:   # deepest first; only what this lane created, only if empty
            if d not in self.preexisting:
                try:
                    os.rmdir(d)
                except FileNotFoundError:
                    pass
                except OSError as e:   # the shared dirs may hold another containerd's entries by now
                    if d == f"{RUNC_ROOT}/{NS}" or d == "/run/netns":
                        problems.append(f"{d} not removed: {e.strerror}: {os.listdir(d)}")
        return problems
