"""The Kubernetes CRI lane: a CRI v1 client (PyPI's container-runtime-interface-api stubs over gRPC)
drives a private containerd's CRI plugin as a kubelet would, once with the runtime handler ``runc``
(the control) and once with ``pyruntime``, in the same run and the same daemon.

Every step checks what Kubernetes relies on (pod IP on the CNI bridge, the host's netns for
hostNetwork, exec exit codes, the limit in the cgroup file after UpdateContainerResources, the log
file in CRI format, nothing left behind).  A step that fails with runc too is reported as not
applicable with runc's error, never as a pass.  The step table is printed at the end and written to
$CRI_REPORT; the last line is the verdict:

    test-cri: PASSED | test-cri: FAILED: <steps> | test-cri: SKIPPED: <why the lane cannot run here>

Run: ``.venv/bin/python -m tests.cri.lane`` (``make test-cri``); PYRUNTIME_BIN picks the pyruntime
under test (default: the installed /usr/local/bin/pyruntime).
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from typing import Any, Callable

CRI_STEPS = ("Version", "Status", "PullImage", "RunPodSandbox (pod network)", "RunPodSandbox (hostNetwork)",
             "CreateContainer", "StartContainer", "ContainerStatus", "ExecSync (exit code)", "ContainerStats",
             "UpdateContainerResources", "Container logs (CRI format)", "StopContainer", "RemoveContainer",
             "StopPodSandbox", "RemovePodSandbox", "Nothing left behind")
HANDLERS = ("runc", "pyruntime")
MiB = 1024 * 1024
# client deadlines: a TCG VM (tests/vm) runs every runtime invocation many times slower
SLOW = 5 if os.environ.get("PYRUNTIME_TEST_VM") == "1" else 1
SYSTEMD = os.environ.get("CRI_SYSTEMD_CGROUP") == "1"   # SystemdCgroup = true: a kubeadm node's configuration


def slice_path(name: str) -> str:
    """systemd's cgroup path of a slice unit: ``a-b.slice`` -> ``/a.slice/a-b.slice``."""
    if name in ("", "-.slice"):
        return ""
    parts = name[:-len(".slice")].split("-")
    return "".join("/" + "-".join(parts[:i + 1]) + ".slice" for i in range(len(parts)))


def cgroup_rel(cgroups_path: str) -> str:
    """The cgroup directory (relative to the hierarchy) a spec's cgroupsPath names, either driver."""
    if SYSTEMD:
        sl, prefix, name = cgroups_path.split(":")
        return f"{slice_path(sl)}/{prefix}-{name}.scope"
    return cgroups_path
OOM_ADJ = 555


def say(msg: str) -> None:
    print(msg, flush=True)


def skip(reason: str) -> None:
    say(f"test-cri: SKIPPED: {reason}")
    sys.exit(1 if os.environ.get("CRI_REQUIRED") == "1" else 0)


def prerequisites() -> tuple[dict[str, str], Any, Any]:
    """The runtimes and the CRI stubs, or a SKIPPED line naming what this host lacks."""
    for b in ("containerd", "ctr", "gcc", "docker-registry", "ip"):
        if not shutil.which(b):
            skip(f"{b} not installed (make test-cri installs containerd, containernetworking-plugins, "
                 "docker-registry, gcc, iproute2 through apt)")
    for p in ("bridge", "host-local", "loopback"):
        if not os.access(f"/usr/lib/cni/{p}", os.X_OK):
            skip(f"/usr/lib/cni/{p} missing (apt-get install containernetworking-plugins)")
    if os.geteuid() != 0:
        skip("the CRI plugin needs root (netns, mounts, cgroups)")
    pyrt = os.environ.get("PYRUNTIME_BIN", "/usr/local/bin/pyruntime")
    runc = shutil.which("runc")
    if not os.access(pyrt, os.X_OK):
        skip(f"{pyrt} not executable (make install, or set PYRUNTIME_BIN)")
    if not runc:
        skip("runc (the control) not installed")
    try:
        import grpc  # noqa: F401
        from cri_api.v1 import api_pb2, api_pb2_grpc  # noqa: F401
    except ImportError as e:
        skip(f"CRI v1 stubs not importable ({e}); make test-cri installs container-runtime-interface-api")
    return {"runc": runc, "pyruntime": pyrt}, api_pb2, api_pb2_grpc


class Lane:
    """One run: the client, the results table, the per-handler pod and container ids."""

    def __init__(self, env: Any, pb: Any, grpc_mod: Any, stubs: Any, runtimes: dict[str, str]) -> None:
        self.env, self.pb, self.grpc = env, pb, grpc_mod
        self.runtimes = runtimes
        channel = grpc_mod.insecure_channel(f"unix://{env.sock}")
        self.rt = stubs.RuntimeServiceStub(channel)
        self.img = stubs.ImageServiceStub(channel)
        self.results: dict[str, dict[str, tuple[str, str]]] = {s: {} for s in CRI_STEPS}
        self.tag = uuid.uuid4().hex[:8]
        self.parent = f"/pyrtcri{self.tag}.slice" if SYSTEMD else f"/pyrt-cri-{self.tag}"
        self.pull_ref = f"{env.registry}/pyrt/busybox:cri"
        self.image = ""

    # ------------------------------------------------------------------ plumbing
    def call(self, method: Callable, req: Any, timeout: float = 60) -> Any:
        try:
            return method(req, timeout=timeout * SLOW)
        except self.grpc.RpcError as e:
            raise AssertionError(f"{method._method.decode().rsplit('/', 1)[-1]}: "
                                 f"{e.code().name}: {e.details()}") from None

    def record(self, step: str, handler: str, fn: Callable[[], str | None]) -> bool:
        start = time.monotonic()
        try:
            note = fn() or ""
            self.results[step][handler] = ("ok", note)
            ok = True
        except Exception as e:   # every failure becomes a row of the table with its reason
            msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            if not isinstance(e, AssertionError):
                msg = f"{type(e).__name__}: {msg}"
                traceback.print_exc()
            self.results[step][handler] = ("FAIL", msg)
            ok = False
        say(f"   {step:<30} {handler:<10} {self.results[step][handler][0]:<5} "
            f"{self.results[step][handler][1]} ({time.monotonic() - start:.1f}s)")
        return ok

    def not_run(self, steps: list[str], handler: str, why: str) -> None:
        for s in steps:
            self.results[s].setdefault(handler, ("not run", why))

    # ------------------------------------------------------------------ handler-independent steps
    def version(self) -> str:
        v = self.call(self.rt.Version, self.pb.VersionRequest(version="v1"))
        assert v.runtime_name == "containerd" and v.runtime_api_version == "v1", v
        return f"{v.runtime_name} {v.runtime_version}, CRI {v.runtime_api_version}"

    def status(self) -> str:
        st = self.call(self.rt.Status, self.pb.StatusRequest(verbose=True))
        conds = {c.type: c.status for c in st.status.conditions}
        assert conds.get("RuntimeReady") and conds.get("NetworkReady"), f"conditions {conds}"
        cfg = json.loads(st.info.get("config", "{}"))
        handlers = set(cfg.get("containerd", {}).get("runtimes", {}))
        assert set(HANDLERS) <= handlers, f"runtime handlers {handlers}"
        return "RuntimeReady, NetworkReady; handlers " + ", ".join(sorted(handlers))

    def pull(self) -> str:
        self.env.push_for_pull(self.pull_ref)
        r = self.call(self.img.PullImage, self.pb.PullImageRequest(image=self.pb.ImageSpec(image=self.pull_ref)),
                      timeout=120)
        st = self.call(self.img.ImageStatus, self.pb.ImageStatusRequest(image=self.pb.ImageSpec(image=self.pull_ref)))
        assert st.image.id and self.pull_ref in st.image.repo_tags, st
        self.image = r.image_ref
        return f"{self.pull_ref} from the loopback registry ({r.image_ref[:19]})"

    # ------------------------------------------------------------------ per-handler steps
    def sandbox_config(self, handler: str, name: str, host_net: bool) -> Any:
        pb = self.pb
        uid = uuid.uuid4().hex
        logdir = os.path.join(self.env.logs, f"{handler}-{name}")
        os.makedirs(logdir, exist_ok=True)
        ns = pb.NamespaceOption(network=pb.NODE if host_net else pb.POD, pid=pb.CONTAINER, ipc=pb.POD)
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=f"{name}-{handler}", uid=uid, namespace="pyrt-cri", attempt=0),
            # a kubelet sets no hostname for a hostNetwork pod: it shares the host's UTS namespace
            hostname="" if host_net else f"{name}-{handler}", log_directory=logdir,
            labels={"pyrt-cri": handler},
            linux=pb.LinuxPodSandboxConfig(cgroup_parent=self.pod_parent(handler, name),
                                           security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns)))

    def pod_parent(self, handler: str, name: str) -> str:
        """The pod's cgroup parent as a kubelet passes it: a path (cgroupfs) or a slice (systemd)."""
        if SYSTEMD:
            return f"pyrtcri{self.tag}-{handler}{name}.slice"
        return f"{self.parent}/{handler}-{name}"

    def pod_parent_rel(self, handler: str, name: str) -> str:
        return slice_path(self.pod_parent(handler, name)) if SYSTEMD else self.pod_parent(handler, name)

    def sandbox_pid(self, pod: str) -> int:
        st = self.call(self.rt.PodSandboxStatus, self.pb.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True))
        return int(json.loads(st.info["info"])["pid"])

    def runtime_state(self, handler: str, cid: str, pid: int) -> None:
        """The handler's own runtime knows the container (proves the shim ran BinaryName)."""
        from tests.e2e.helpers import sh
        r = sh([self.runtimes[handler], "--root", "/run/containerd/runc/k8s.io", "state", cid])
        assert r.rc == 0, f"{handler} state {cid[:12]}: exit {r.rc}: {r.err.strip()[-200:]}"
        st = json.loads(r.out)
        assert st["status"] == "running" and st["pid"] == pid, f"{handler} state: {st['status']} pid {st['pid']}"
        # and it was that runtime which created it: the two write different state.json records
        with open(f"/run/containerd/runc/k8s.io/{cid}/state.json") as f:
            keys = set(json.load(f))
        mark = "init_process_pid" if handler == "runc" else "start_time"
        assert mark in keys, f"state.json of {cid[:12]} was not written by {handler} (no {mark!r})"

    def run_pod(self, handler: str, ctx: dict, host_net: bool) -> str:
        key = "hostpod" if host_net else "pod"
        cfg = self.sandbox_config(handler, key, host_net)
        ctx[key + "_cfg"] = cfg
        r = self.call(self.rt.RunPodSandbox, self.pb.RunPodSandboxRequest(config=cfg, runtime_handler=handler),
                      timeout=120)
        ctx[key] = r.pod_sandbox_id
        st = self.call(self.rt.PodSandboxStatus, self.pb.PodSandboxStatusRequest(pod_sandbox_id=r.pod_sandbox_id))
        assert st.status.state == self.pb.SANDBOX_READY, f"state {st.status.state}"
        assert st.status.runtime_handler == handler, f"runtime_handler {st.status.runtime_handler!r}"
        pid = self.sandbox_pid(r.pod_sandbox_id)
        self.runtime_state(handler, r.pod_sandbox_id, pid)
        netns = os.readlink(f"/proc/{pid}/ns/net")
        if host_net:
            assert netns == os.readlink("/proc/self/ns/net"), f"pause netns {netns}: not the host's"
            return f"host netns {netns}; {handler} state running"
        ip = st.status.network.ip
        from tests.cri.crienv import SUBNET
        assert ip and ipaddress.ip_address(ip) in ipaddress.ip_network(SUBNET), f"pod IP {ip!r} not in {SUBNET}"
        assert netns != os.readlink("/proc/self/ns/net"), "pod shares the host's netns"
        return f"pod IP {ip} on the CNI bridge; {handler} state running"

    def create(self, handler: str, ctx: dict) -> str:
        pb = self.pb
        cfg = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="box", attempt=0),
            image=pb.ImageSpec(image=self.image or self.pull_ref),
            command=["/bin/sh", "-c", "echo hello-cri; echo oops-cri >&2; trap 'exit 0' TERM; "
                     "while :; do sleep 0.2; done"],
            log_path="box/0.log",
            # RuntimeDefault: containerd's default seccomp profile, as clusters with SeccompDefault run pods
            linux=pb.LinuxContainerConfig(
                # a kubelet gives a Burstable pod's containers an oom_score_adj between 2 and 999
                resources=pb.LinuxContainerResources(memory_limit_in_bytes=64 * MiB, oom_score_adj=OOM_ADJ),
                security_context=pb.LinuxContainerSecurityContext(
                    seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault))))
        r = self.call(self.rt.CreateContainer, pb.CreateContainerRequest(
            pod_sandbox_id=ctx["pod"], config=cfg, sandbox_config=ctx["pod_cfg"]), timeout=120)
        ctx["cid"] = r.container_id
        st = self.call(self.rt.ContainerStatus, pb.ContainerStatusRequest(container_id=r.container_id))
        assert st.status.state == pb.CONTAINER_CREATED, f"state {st.status.state}"
        return f"{r.container_id[:12]} CREATED"

    def start(self, handler: str, ctx: dict) -> str:
        self.call(self.rt.StartContainer, self.pb.StartContainerRequest(container_id=ctx["cid"]), timeout=120)
        return "started"

    def status_step(self, handler: str, ctx: dict) -> str:
        pb = self.pb
        st = self.call(self.rt.ContainerStatus, pb.ContainerStatusRequest(container_id=ctx["cid"], verbose=True))
        assert st.status.state == pb.CONTAINER_RUNNING, f"state {st.status.state}"
        info = json.loads(st.info["info"])
        pid = int(info["pid"])
        ctx["cgroup"] = cgroup_rel(info["runtimeSpec"]["linux"]["cgroupsPath"])
        self.runtime_state(handler, ctx["cid"], pid)
        with open(f"/proc/{pid}/cgroup") as f:
            assert any(line.rstrip().endswith(ctx["cgroup"]) for line in f), f"pid {pid} not in {ctx['cgroup']}"
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        assert status["Seccomp"].strip() == "2", f"Seccomp {status['Seccomp'].strip()} (RuntimeDefault asked)"
        assert status["NoNewPrivs"].strip() == "0", f"NoNewPrivs {status['NoNewPrivs'].strip()}"
        with open(f"/proc/{pid}/oom_score_adj") as f:
            adj = f.read().strip()
        assert adj == str(OOM_ADJ), f"oom_score_adj {adj}, want {OOM_ADJ}"
        return f"RUNNING pid {pid} in {ctx['cgroup']}, seccomp filter on, oom_score_adj {adj}"

    def exec_sync(self, handler: str, ctx: dict) -> str:
        r = self.call(self.rt.ExecSync, self.pb.ExecSyncRequest(
            container_id=ctx["cid"],
            cmd=["/bin/sh", "-c", "echo out-$(hostname)-$(cat /proc/self/oom_score_adj); echo err >&2; exit 3"],
            timeout=30), timeout=60)
        want = f"out-pod-{handler}-{OOM_ADJ}\n".encode()   # the exec runs with the container's oom_score_adj
        assert r.exit_code == 3 and r.stdout == want and r.stderr == b"err\n", \
            f"exit {r.exit_code} stdout {r.stdout!r} stderr {r.stderr!r}"
        r0 = self.call(self.rt.ExecSync, self.pb.ExecSyncRequest(container_id=ctx["cid"], cmd=["true"], timeout=30))
        assert r0.exit_code == 0, f"true: exit {r0.exit_code}"
        from tests.cri.crienv import GATEWAY
        ping = self.call(self.rt.ExecSync, self.pb.ExecSyncRequest(
            container_id=ctx["cid"], cmd=["ping", "-c", "1", "-W", "5", GATEWAY], timeout=30), timeout=60)
        assert ping.exit_code == 0, f"ping {GATEWAY} from the pod: exit {ping.exit_code} {ping.stdout[-200:]!r}"
        return (f"exit 3, stdout/stderr apart, oom_score_adj {OOM_ADJ} kept; true -> 0; "
                f"the pod pings its gateway {GATEWAY}")

    def stats(self, handler: str, ctx: dict) -> str:
        r = self.call(self.rt.ContainerStats, self.pb.ContainerStatsRequest(container_id=ctx["cid"]))
        s = r.stats
        assert s.attributes.id == ctx["cid"], s.attributes.id
        mem, cpu = s.memory.working_set_bytes.value, s.cpu.usage_core_nano_seconds.value
        assert mem > 0 and cpu > 0, f"working set {mem}, cpu {cpu}"
        return f"working set {mem // 1024} KiB, cpu {cpu // 1000} us"

    def update(self, handler: str, ctx: dict) -> str:
        pb = self.pb
        self.call(self.rt.UpdateContainerResources, pb.UpdateContainerResourcesRequest(
            container_id=ctx["cid"], linux=pb.LinuxContainerResources(
                memory_limit_in_bytes=96 * MiB, cpu_period=100000, cpu_quota=50000, cpu_shares=512)))
        mem = self.cgroup_file_v(ctx, "memory", "memory.limit_in_bytes", "memory.max")
        quota = self.cgroup_file_v(ctx, "cpu", "cpu.cfs_quota_us", "cpu.max")
        assert mem == str(96 * MiB), f"memory limit {mem}, want {96 * MiB}"
        assert quota.split()[0] == "50000", f"cpu quota {quota}, want 50000"
        return f"memory limit {mem}, cpu quota {quota} in the cgroup"

    def cgroup_file_v(self, ctx: dict, ctrl: str, v1: str, v2: str) -> str:
        rel = ctx["cgroup"]
        for path in (f"/sys/fs/cgroup/{ctrl}{rel}/{v1}", f"/sys/fs/cgroup{rel}/{v2}"):
            if os.path.exists(path):
                with open(path) as f:
                    return f.read().strip()
        raise AssertionError(f"neither /sys/fs/cgroup/{ctrl}{rel}/{v1} nor /sys/fs/cgroup{rel}/{v2}")

    def logs(self, handler: str, ctx: dict) -> str:
        path = os.path.join(ctx["pod_cfg"].log_directory, "box/0.log")
        from tests.e2e.helpers import wait_for

        def lines() -> list[str]:
            try:
                with open(path) as f:
                    got = f.read().splitlines()
            except FileNotFoundError:
                return []
            return got if len(got) >= 2 else []
        got = wait_for(f"two lines in {path}", lines, timeout=10 * SLOW)
        parsed = sorted((ln.split(" ", 3)[1], ln.split(" ", 3)[2], ln.split(" ", 3)[3]) for ln in got)
        assert parsed == [("stderr", "F", "oops-cri"), ("stdout", "F", "hello-cri")], f"log lines {got}"
        for ln in got:   # RFC 3339 nano timestamp first
            ts = ln.split(" ", 1)[0]
            assert ts[4] == "-" and "T" in ts and (ts.endswith("Z") or "+" in ts or ts[-6] == "-"), ts
        return f"{len(got)} lines '<RFC3339Nano> stdout|stderr F <text>'"

    def stop(self, handler: str, ctx: dict) -> str:
        pb = self.pb
        self.call(self.rt.StopContainer, pb.StopContainerRequest(container_id=ctx["cid"], timeout=10), timeout=60)
        st = self.call(self.rt.ContainerStatus, pb.ContainerStatusRequest(container_id=ctx["cid"]))
        assert st.status.state == pb.CONTAINER_EXITED and st.status.exit_code == 0, \
            f"state {st.status.state} exit {st.status.exit_code}"
        return "EXITED 0 (SIGTERM trapped)"

    def remove(self, handler: str, ctx: dict) -> str:
        self.call(self.rt.RemoveContainer, self.pb.RemoveContainerRequest(container_id=ctx["cid"]), timeout=60)
        left = self.call(self.rt.ListContainers, self.pb.ListContainersRequest(
            filter=self.pb.ContainerFilter(id=ctx["cid"]))).containers
        assert not left, f"still listed: {left}"
        from tests.e2e.helpers import cgroup_dirs
        dirs = cgroup_dirs(ctx["cgroup"])
        assert not dirs, f"cgroup left: {dirs}"
        return "gone from ListContainers and the cgroups"

    def stop_pods(self, handler: str, ctx: dict) -> str:
        pb = self.pb
        for key in ("pod", "hostpod"):
            if key in ctx:
                self.call(self.rt.StopPodSandbox, pb.StopPodSandboxRequest(pod_sandbox_id=ctx[key]), timeout=60)
                st = self.call(self.rt.PodSandboxStatus, pb.PodSandboxStatusRequest(pod_sandbox_id=ctx[key]))
                assert st.status.state == pb.SANDBOX_NOTREADY, f"{key} state {st.status.state}"
        return "both pods NOTREADY"

    def remove_pods(self, handler: str, ctx: dict) -> str:
        pb = self.pb
        for key in ("pod", "hostpod"):
            if key in ctx:
                self.call(self.rt.RemovePodSandbox, pb.RemovePodSandboxRequest(pod_sandbox_id=ctx[key]), timeout=60)
        left = [p.id for p in self.call(self.rt.ListPodSandbox, pb.ListPodSandboxRequest()).items
                if p.labels.get("pyrt-cri") == handler]
        assert not left, f"still listed: {left}"
        return "gone from ListPodSandbox"

    def leftovers(self, handler: str, ctx: dict) -> str:
        from tests.e2e.helpers import cgroup_dirs, cgroup_children, mounts_under, processes_mentioning
        ids = [ctx[k] for k in ("pod", "hostpod", "cid") if k in ctx]
        found: list[str] = []
        from tests.e2e.helpers import wait_for, StepError

        def scan() -> list[str]:
            out = [f"mount {m}" for m in mounts_under(self.env.tmp) if any(i in m for i in ids)]
            out += [f"process {p}" for i in ids for p in processes_mentioning(i)]
            out += [f"cgroup {d}" for d in cgroup_children(self.pod_parent_rel(handler, "pod"))
                    + cgroup_children(self.pod_parent_rel(handler, "hostpod"))]
            out += [f"runtime state {i[:12]}" for i in ids if os.path.exists(f"/run/containerd/runc/k8s.io/{i}")]
            out += [f"netns {n}" for n in self.env.netns_created()]
            return out
        try:
            # a wait, not a deadline on speed: a shim exits only after containerd's Shutdown, which on a
            # loaded machine under TCG came >50 s after RemovePodSandbox once (make test-systemd)
            wait_for("nothing left", lambda: not scan(), timeout=30 * SLOW)
        except StepError:
            found = scan()
        # the pod cgroup parents are the client's (the kubelet creates and removes them): ours to remove
        from tests.e2e.helpers import remove_cgroup_tree, sh
        for key in ("pod", "hostpod"):
            if SYSTEMD:   # the kubelet's pod slices: stopped as a unit, systemd removes their cgroups
                sh(["systemctl", "stop", self.pod_parent(handler, key)])
            else:
                remove_cgroup_tree(self.pod_parent_rel(handler, key))
        del cgroup_dirs
        assert not found, "left behind: " + "; ".join(found)
        return "no container, mount, process, runtime state, cgroup or netns"

    # ------------------------------------------------------------------ the run
    def force_cleanup(self, ctx: dict) -> None:
        """After a failed step: remove what the handler's steps created, quietly."""
        pb = self.pb
        for call, req in (
                (self.rt.StopContainer, pb.StopContainerRequest(container_id=ctx.get("cid", ""), timeout=2)),
                (self.rt.RemoveContainer, pb.RemoveContainerRequest(container_id=ctx.get("cid", ""))),
                (self.rt.StopPodSandbox, pb.StopPodSandboxRequest(pod_sandbox_id=ctx.get("pod", ""))),
                (self.rt.RemovePodSandbox, pb.RemovePodSandboxRequest(pod_sandbox_id=ctx.get("pod", ""))),
                (self.rt.StopPodSandbox, pb.StopPodSandboxRequest(pod_sandbox_id=ctx.get("hostpod", ""))),
                (self.rt.RemovePodSandbox, pb.RemovePodSandboxRequest(pod_sandbox_id=ctx.get("hostpod", "")))):
            try:
                call(req, timeout=60 * SLOW)
            except self.grpc.RpcError:
                pass

    def run_handler(self, handler: str) -> None:
        ctx: dict = {}
        chain: list[tuple[str, Callable[[str, dict], str]]] = [
            ("RunPodSandbox (pod network)", lambda h, c: self.run_pod(h, c, False)),
            ("RunPodSandbox (hostNetwork)", lambda h, c: self.run_pod(h, c, True)),
            ("CreateContainer", self.create), ("StartContainer", self.start),
            ("ContainerStatus", self.status_step), ("ExecSync (exit code)", self.exec_sync),
            ("ContainerStats", self.stats), ("UpdateContainerResources", self.update),
            ("Container logs (CRI format)", self.logs), ("StopContainer", self.stop),
            ("RemoveContainer", self.remove), ("StopPodSandbox", self.stop_pods),
            ("RemovePodSandbox", self.remove_pods)]
        failed = ""
        for step, fn in chain:
            if failed:
                self.results[step][handler] = ("not run", f"after {failed} failed")
                continue
            if not self.record(step, handler, lambda fn=fn: fn(handler, ctx)) and "hostNetwork" not in step:
                failed = step   # the hostNetwork pod is not needed by the steps after it
        if failed:
            self.force_cleanup(ctx)
        self.record("Nothing left behind", handler, lambda: self.leftovers(handler, ctx))

    def run(self) -> None:
        for step, fn in (("Version", self.version), ("Status", self.status), ("PullImage", self.pull)):
            ok = self.record(step, "runc", fn)
            st, note = self.results[step]["runc"]   # one daemon, no handler involved: the same for both
            self.results[step]["pyruntime"] = (st, note + " (daemon-wide)" if st == "ok" else note)
            if not ok and step != "PullImage":
                for s in CRI_STEPS:
                    for h in HANDLERS:
                        self.results[s].setdefault(h, ("not run", f"after {step} failed"))
                return
        for h in HANDLERS:
            self.run_handler(h)

    def table(self) -> tuple[list[str], list[str]]:
        """The step table; returns (table lines, failed steps).  runc failing makes a step n/a."""
        rows = [f"{'step':<30} | {'runc':<8} | {'pyruntime':<8} | note"]
        rows.append("-" * 100)
        failed: list[str] = []
        for step in CRI_STEPS:
            (rs, rn), (ps, pn) = (self.results[step].get(h, ("not run", "")) for h in HANDLERS)
            if rs != "ok":
                verdict = f"n/a: fails with runc too: {rn}" if rs == "FAIL" else f"not run with runc: {rn}"
                rows.append(f"{step:<30} | {rs:<8} | {ps:<8} | {verdict}")
                continue
            if ps != "ok":
                failed.append(step)
            rows.append(f"{step:<30} | {rs:<8} | {ps:<8} | {pn if ps != 'ok' else pn or rn}")
        return rows, failed


def main() -> None:
    runtimes, pb, stubs = prerequisites()
    import grpc
    from tests.cri.crienv import CriEnv
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="pyrt-cri-")
    os.chmod(tmp, 0o755)
    env = CriEnv(tmp, runtimes, systemd_cgroup=SYSTEMD)
    lane: Lane | None = None
    problems: list[str] = []
    cant_run = ""
    try:
        say(f"test-cri: containerd + CRI in {tmp}; handlers runc={runtimes['runc']} "
            f"pyruntime={runtimes['pyruntime']}; cgroup driver {'systemd' if SYSTEMD else 'cgroupfs'}")
        try:
            env.start()
            env.start_registry()
            env.import_images()
        except Exception as e:   # the lane's world could not be built: say why, that is the verdict
            cant_run = f"{type(e).__name__}: {str(e).strip()[:400]}"
        if not cant_run:
            lane = Lane(env, pb, grpc, stubs, runtimes)
            lane.run()
            # what a run leaves for the client to delete: the images it imported/pulled
            for ref in (lane.pull_ref,):
                env.ctr("images", "rm", "--sync", ref)
    finally:
        problems = env.close()
        from tests.e2e.helpers import remove_cgroup_tree
        if lane is not None:
            if SYSTEMD:
                from tests.e2e.helpers import sh
                sh(["systemctl", "stop", lane.parent.lstrip("/")])
            stuck = remove_cgroup_tree(lane.parent)
            if stuck:
                problems.append(f"cgroups not removable: {stuck}")
        if os.environ.get("CRI_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
    if cant_run:
        say(f"test-cri: FAILED: the lane's containerd/registry/images could not be set up: {cant_run}")
        sys.exit(1)
    assert lane is not None
    rows, failed = lane.table()
    report = "\n".join(rows)
    say("\n" + report)
    if problems:
        say("cleanup at the end: " + "; ".join(problems))
    out = os.environ.get("CRI_REPORT")
    if out:
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            f.write(report + "\n")
    took = time.monotonic() - started
    if failed or problems:
        say(f"test-cri: FAILED ({took:.0f}s): pyruntime failed {failed}" + (f"; left behind {problems}" if problems else ""))
        sys.exit(1)
    na = [s for s in CRI_STEPS if lane.results[s].get("runc", ("",))[0] != "ok"]
    say(f"test-cri: PASSED ({took:.0f}s): {len(CRI_STEPS) - len(na)} CRI steps equal with runc and pyruntime"
        + (f"; not applicable here (fail with runc too): {na}" if na else ""))


if __name__ == "__main__":
    main()
