"""A private containerd for the e2e lane: own root, state, sockets, config, namespace.

One daemon per runtime.  ctr 1.6 drops ``--runc-binary`` for ``--no-pivot`` and ``--uidmap``
(task options replace the runtime options) and the shim then runs ``runc`` from containerd's
PATH; so pyruntime's daemon gets a directory with ``runc -> pyruntime`` first on its PATH, and
runc's daemon the host PATH.  Everything else passes ``--runc-binary`` explicitly.

What containerd 1.6 puts outside the configured dirs no matter what (shim sockets under
/run/containerd/s, the runtime root /run/containerd/runc/<namespace>) is removed at the end if
this lane created it and it is empty.
"""
from __future__ import annotations

import os
import signal
import subprocess
import uuid

from tests.pyrt_testenv import state_root_leftovers

from .helpers import (Result, StepError, cgroup_dirs, cgroup_procs, kill_pids, mounts_under,
                      processes_mentioning, remove_cgroup_tree, sh, state_entries, unmount_all, wait_for)

IMAGE = "localhost/pyrt-busybox:e2e"
RUNC_ROOT = "/run/containerd/runc"
HOST_DIRS = ("/run/containerd/s", "/run/containerd/fifo", RUNC_ROOT, "/run/containerd")


# what every private containerd here turns off: snapshotters this host has no use for, and the opt plugin
# (it would write /opt/containerd)
DISABLED_PLUGINS = ("io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs")


class ContainerdDaemon:
    """A private containerd: config, root, state, socket and log in ``tmp``, never the host's
    /etc/containerd; started in the background, stopped by its pid.  The e2e lane (one daemon per
    runtime) and the CRI lane (tests/cri/crienv.py) build on it."""

    def __init__(self, tmp: str, sock: str) -> None:
        self.tmp = tmp
        self.sock = sock
        self.root = os.path.join(tmp, "root")
        self.state = os.path.join(tmp, "state")
        self.proc: subprocess.Popen | None = None

    def start_daemon(self, *, disabled: tuple[str, ...] = (), extra_config: str = "",
                     env: dict[str, str] | None = None) -> None:
        """Write config.toml (``extra_config`` appended), start containerd, wait for its socket."""
        plugins = ", ".join(f'"{p}"' for p in (*disabled, *DISABLED_PLUGINS))
        conf = os.path.join(self.tmp, "config.toml")
        with open(conf, "w") as f:
            f.write(f"""version = 2
root = "{self.root}"
state = "{self.state}"
disabled_plugins = [{plugins}]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
{extra_config}""")
        log = open(os.path.join(self.tmp, "containerd.log"), "w")
        self.proc = subprocess.Popen(["containerd", "--config", conf], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=self.tmp)
        log.close()
        wait_for("containerd to serve its socket",
                 lambda: self.proc.poll() is not None or sh(["ctr", "-a", self.sock, "version"]).rc == 0,
                 timeout=30)
        if self.proc.poll() is not None:
            raise StepError(f"containerd exited {self.proc.returncode}: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.tmp, "containerd.log")) as f:
                return f.read()[-1500:]
        except OSError:
            return ""

    def stop_daemon(self) -> list[str]:
        """SIGTERM by pid (SIGKILL after 20 s), then force away shims and mounts it left; what was forced."""
        problems: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("containerd did not stop on SIGTERM")
        self.proc = None
        shims = processes_mentioning(self.sock)
        if shims:
            problems.append(f"shims left: {shims}")
            kill_pids([int(s.split(":")[0]) for s in shims])
        mounts = mounts_under(self.tmp)
        if mounts:
            problems.append(f"mounts left: {mounts}")
            unmount_all(mounts)
        return problems


class Containerd(ContainerdDaemon):
    """One daemon of the e2e lane, for one runtime, in its own namespace."""

    def __init__(self, tmp: str, namespace: str, runtime: str, binary: str, oci_archive: str) -> None:
        super().__init__(tmp, os.path.join(tmp, "c.sock"))
        self.ns = namespace
        self.runtime = runtime
        self.binary = binary
        self.fifo = os.path.join(tmp, "fifo")
        os.makedirs(self.fifo, exist_ok=True)
        self.ids: set[str] = set()
        self.path_dir = os.path.join(tmp, "path")
        os.makedirs(self.path_dir, exist_ok=True)
        # the runtime the shim finds as "runc" when ctr drops --runc-binary
        os.symlink(binary, os.path.join(self.path_dir, "runc"))
        env = dict(os.environ)
        env["PATH"] = self.path_dir + ":" + env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        self.start_daemon(disabled=("io.containerd.grpc.v1.cri",), env=env)
        self.ctr("images", "import", oci_archive, timeout=120).check()

    def ctr(self, *args: str, timeout: float = 60) -> Result:
        return sh(self.ctr_argv(*args), timeout=timeout, cwd=self.tmp)

    def ctr_argv(self, *args: str) -> list[str]:
        """ctr's argv; exec FIFOs go to our dir, not /run/containerd/fifo."""
        if args[:2] == ("task", "exec"):
            args = ("task", "exec", "--fifo-dir", self.fifo, *args[2:])
        return ["ctr", "-a", self.sock, "-n", self.ns, *args]

    def run_args(self, *opts: str, runc_binary: bool = True) -> list[str]:
        """``ctr run`` options: fifo dir in tmp, and the runtime unless ctr would drop it anyway."""
        out = ["run", "--fifo-dir", self.fifo]
        if runc_binary:
            out += ["--runc-binary", self.binary]
        return out + list(opts)

    def cgroup(self, cid: str, controller: str) -> str:
        return f"/sys/fs/cgroup/{controller}/{self.ns}/{cid}"

    def leftovers(self, cid: str) -> list[str]:
        found = [f"cgroup {d}" for d in cgroup_dirs(f"/{self.ns}/{cid}")]
        found += [f"state {d}" for d in state_entries(os.path.join(RUNC_ROOT, self.ns), {cid})]
        found += [f"bundle {d}" for d in
                  state_entries(os.path.join(self.state, "io.containerd.runtime.v2.task", self.ns), {cid})]
        found += [f"process {p}" for p in processes_mentioning(f"-id {cid} ")]
        found += [f"mount {m}" for m in mounts_under(self.tmp) if f"/{cid}/" in m + "/"]
        return found

    def remove(self, cid: str) -> None:
        """Delete task and container whatever state they are in (the test's finalizer)."""
        if self.ctr("task", "ls", "-q").out.split().count(cid):
            self.ctr("task", "delete", "-f", cid, timeout=60)
        if cid in self.ctr("container", "ls", "-q").out.split():
            self.ctr("container", "delete", cid, timeout=60)

    def check_clean(self, cids: list[str]) -> None:
        left: list[str] = []
        for cid in cids:
            try:
                wait_for(f"{cid} to leave nothing behind", lambda: not self.leftovers(cid), timeout=15)
            except StepError:
                left += [f"{cid}: {x}" for x in self.leftovers(cid)]
        if left:
            raise AssertionError("left behind: " + "; ".join(left))

    def close(self) -> list[str]:
        """Stop the daemon by pid, force away whatever tasks are left; returns what was forced."""
        problems: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            tasks = self.ctr("task", "ls", "-q").out.split()
            ctrs = self.ctr("container", "ls", "-q").out.split()
            if tasks or ctrs:
                problems.append(f"{self.runtime} daemon: tasks {tasks} / containers {ctrs} left at the end")
                for c in set(tasks) | set(ctrs):
                    self.remove(c)
            self.ctr("images", "rm", IMAGE)
        return problems + self.stop_daemon()


class ContainerdLane:
    """Both daemons of a session, created on first use; shared namespace name and cgroup parent."""

    def __init__(self, tmp: str, runtimes: dict[str, str], oci_archive: str) -> None:
        self.tmp = tmp
        self.runtimes = runtimes
        self.oci_archive = oci_archive
        self.ns = f"pyrt-e2e-{uuid.uuid4().hex[:8]}"
        self.daemons: dict[str, Containerd] = {}
        self.preexisting = {d for d in HOST_DIRS if os.path.exists(d)}

    def daemon(self, runtime: str) -> Containerd:
        if runtime not in self.daemons:
            d = os.path.join(self.tmp, runtime)
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
            self.daemons[runtime] = Containerd(d, self.ns, runtime, self.runtimes[runtime], self.oci_archive)
        return self.daemons[runtime]

    def close(self) -> list[str]:
        problems: list[str] = []
        for d in self.daemons.values():
            problems += d.close()
        pids = cgroup_procs(f"/{self.ns}")
        if pids:
            problems.append(f"processes still in /{self.ns}: {pids}")
            kill_pids(pids)
            wait_for("stray processes to die", lambda: not cgroup_procs(f"/{self.ns}"), timeout=10)
        stuck = remove_cgroup_tree(f"/{self.ns}")
        if stuck:
            problems.append(f"cgroups that could not be removed: {stuck}")
        nsroot = os.path.join(RUNC_ROOT, self.ns)
        if os.path.isdir(nsroot):
            left = state_root_leftovers(nsroot)
            if left:
                problems.append(f"runtime state left in {nsroot}: {left}")
            sh(["rm", "-rf", nsroot])
        for d in HOST_DIRS:   # deepest first; only what we created, only if empty
            if d not in self.preexisting:
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        return problems
