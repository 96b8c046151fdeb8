"""A private podman for the e2e lane: own config, storage, cgroup parent and mount namespace.

Why a mount namespace: podman's overlay driver makes mounts (its storage home, every container's
merged rootfs) that must not leak into the host, and ``--userns=auto`` needs /etc/subuid entries
we may not write into the host's files.  One long-lived helper process holds a namespace whose
/etc/subuid and /etc/subgid are bind mounts of files in the temp dir; every podman call enters it
with nsenter, so podman, conmon, the runtime and the containers all see the same mounts, and
killing the helper at the end drops every mount podman made.  /var/lib is an overlay there too
(upper layer in the temp dir): ``podman import`` writes its blob-info cache to
/var/lib/containers/cache whatever --root says, and that must not land on the host.  /run stays
the host's, so runtime state (/run/runc, /run/pyruntime) is checked where the runtimes keep it.

Why these config values (learned running the lane with runc on this host):
* runtime_supports_json must name "pyruntime", or podman never passes ``--log-format=json --log``
  to it and the JSON error path is not exercised;
* default_ulimits pins nofile/nproc to values the host allows: podman's default (1048576) cannot
  be set without CAP_SYS_RESOURCE and every create would fail with EPERM;
* cgroupfs manager, file events logger, no network: there is no systemd and no network here;
  the "cni" network backend, because netavark's creates /run/containers/networks on the host.
"""
from __future__ import annotations

import json
import os
import resource
import shlex
import subprocess
import uuid

from tests.pyrt_testenv import SECCOMP_CACHE, remove_seccomp_cache

from .helpers import (Result, StepError, cgroup_dirs, cgroup_procs, kill_pids, mounts_under,
                      processes_mentioning, remove_cgroup_tree, sh, state_entries, unmount_all, wait_for)

IMAGE = "localhost/pyrt-busybox:e2e"
STATE_ROOTS = {"runc": "/run/runc", "pyruntime": "/run/pyruntime"}


def write_podman_config(conf_dir: str, *, graphroot: str, runroot: str, driver: str = "vfs",
                        cgroup_manager: str = "cgroupfs", work_dir: str | None = None,
                        containers_extra: str = "", engine_extra: str = "") -> dict[str, str]:
    """containers.conf, storage.conf and registries.conf for a private podman in ``conf_dir``; returns
    the CONTAINERS_* variables that point podman at them.  Every lane's podman: no network, k8s-file
    logs, file events, no search registries, pyruntime among the runtimes that get ``--log-format=json``.
    ``work_dir``: events log, CNI config dir (and, with ``engine_extra``, tmp/volume dirs) there, not in
    podman's defaults under /var or the user's home."""
    os.makedirs(conf_dir, exist_ok=True)
    events = f'events_logfile_path = "{work_dir}/events.log"\n' if work_dir else ""
    network = f'\n[network]\nnetwork_backend = "cni"\nnetwork_config_dir = "{work_dir}/net"\n' if work_dir else ""
    conf = {"CONTAINERS_CONF": os.path.join(conf_dir, "containers.conf"),
            "CONTAINERS_STORAGE_CONF": os.path.join(conf_dir, "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": os.path.join(conf_dir, "registries.conf")}
    with open(conf["CONTAINERS_CONF"], "w") as f:
        f.write(f"""[containers]
netns = "none"
log_driver = "k8s-file"
{containers_extra}
[engine]
cgroup_manager = "{cgroup_manager}"
events_logger = "file"
{events}runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "pyruntime"]
{engine_extra}{network}""")
    with open(conf["CONTAINERS_STORAGE_CONF"], "w") as f:
        f.write(f'[storage]\ndriver = "{driver}"\ngraphroot = "{graphroot}"\nrunroot = "{runroot}"\n')
    with open(conf["CONTAINERS_REGISTRIES_CONF"], "w") as f:
        f.write("unqualified-search-registries = []\n")
    return conf


class PodmanLane:
    def __init__(self, tmp: str, runtimes: dict[str, str], rootfs_tar: str) -> None:
        self.tmp = tmp
        self.runtimes = runtimes
        self.parent = f"/pyrt-e2e-{uuid.uuid4().hex[:8]}"
        self.root = os.path.join(tmp, "root")
        self.runroot = os.path.join(tmp, "run")
        self.holder: subprocess.Popen | None = None
        self.ids: dict[str, str] = {}        # container id -> runtime that ran it
        # pyruntime's compiled-filter cache lands in podman's runtime root (the default --root): the
        # lane removes it at the end unless it was there before
        self.cache_before = os.path.isdir(os.path.join(STATE_ROOTS["pyruntime"], SECCOMP_CACHE))
        self._write_config()
        self._start_namespace()
        self.podman("runc", "import", "--change", 'CMD ["/bin/sh"]', rootfs_tar, IMAGE, timeout=120).check()

    # ------------------------------------------------------------------------------ set-up
    def _write_config(self) -> None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
        for d in ("tmp", "volumes", "net", "etc"):
            os.makedirs(os.path.join(self.tmp, d), exist_ok=True)
        self.conf_env = write_podman_config(
            self.tmp, graphroot=self.root, runroot=self.runroot, driver="overlay", work_dir=self.tmp,
            containers_extra=f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n',
            engine_extra=f'tmp_dir = "{self.tmp}/tmp"\nvolume_path = "{self.tmp}/volumes"\n')
        for name in ("subuid", "subgid"):
            with open(os.path.join(self.tmp, "etc", name), "w") as f:
                f.write("containers:300000:200000\n")

    def _start_namespace(self) -> None:
        etc = os.path.join(self.tmp, "etc")
        upper, work = os.path.join(self.tmp, "varlib", "upper"), os.path.join(self.tmp, "varlib", "work")
        os.makedirs(upper)
        os.makedirs(work)
        script = (f"mount --bind {etc}/subuid /etc/subuid && mount --bind {etc}/subgid /etc/subgid "
                  f"&& mount -t overlay overlay -o lowerdir=/var/lib,upperdir={upper},workdir={work} /var/lib "
                  "&& echo ready && exec sleep infinity")
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "slave", "sh", "-c", script],
                                       stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline().strip()
        if line != "ready":
            self.holder.kill()
            self.holder.wait()
            raise StepError(f"cannot set up the private mount namespace for podman: {line!r}")

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTAINERS_", "XDG_RUNTIME"))}
        env.update(self.conf_env, TMPDIR=os.path.join(self.tmp, "tmp"))
        return env

    def argv(self, runtime: str, *args: str) -> list[str]:
        assert self.holder is not None
        return ["nsenter", "-t", str(self.holder.pid), "-m", f"--wd={self.tmp}", "--",
                "podman", "--root", self.root, "--runroot", self.runroot, "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", "--runtime", self.runtimes[runtime], *args]

    def podman(self, runtime: str, *args: str, timeout: float = 60, stdin: str | None = None) -> Result:
        return sh(self.argv(runtime, *args), timeout=timeout, env=self.env, stdin=stdin)

    def shell_command(self, runtime: str, *args: str) -> tuple[str, dict[str, str]]:
        """The podman command as a shell string plus its env, for tmux panes."""
        env = {k: v for k, v in self.env.items() if k.startswith(("CONTAINERS_", "TMPDIR"))}
        return shlex.join(self.argv(runtime, *args)), env

    def run_opts(self) -> list[str]:
        """Options every container of the lane gets: no pull, no network, our cgroup parent."""
        return ["--pull=never", "--network", "none", "--cgroup-parent", self.parent]

    # ------------------------------------------------------------------------ containers
    def track(self, runtime: str, name_or_id: str) -> str:
        """Remember a container so the test's finalizer removes it and checks what it left."""
        cid = self.podman(runtime, "inspect", "-f", "{{.Id}}", name_or_id).check().out.strip()
        self.ids[cid] = runtime
        return cid

    def inspect(self, runtime: str, name: str, fmt: str) -> str:
        return self.podman(runtime, "inspect", "-f", fmt, name).check().out.strip()

    def cgroup(self, cid: str, controller: str) -> str:
        return f"/sys/fs/cgroup/{controller}{self.parent}/libpod-{cid}"

    def remove(self, runtime: str, cids: list[str]) -> None:
        if cids:
            self.podman(runtime, "rm", "-f", "-t", "0", *cids, timeout=120)

    def leftovers(self, cid: str, runtime: str) -> list[str]:
        """What a removed container left behind: cgroups, runtime state, processes, mounts."""
        found = [f"cgroup {d}" for d in cgroup_dirs(f"{self.parent}/libpod-{cid}")]
        found += [f"state {d}" for d in state_entries(STATE_ROOTS[runtime], {cid})]
        found += [f"process {p}" for p in processes_mentioning(cid)]
        if self.holder is not None:
            found += [f"mount {m}" for m in mounts_under(self.root, self.holder.pid) if cid in m]
        return found

    def check_clean(self, cids: dict[str, str]) -> None:
        """Fail (in the test's teardown) if removed containers left anything behind."""
        left: list[str] = []
        for cid, runtime in cids.items():
            try:
                wait_for(f"container {cid[:12]} ({runtime}) to leave nothing behind",
                         lambda: not self.leftovers(cid, runtime), timeout=15)
            except StepError:
                left += [f"{runtime} {cid[:12]}: {x}" for x in self.leftovers(cid, runtime)]
        ps = self.podman("runc", "ps", "-a", "--format", "{{.ID}}").out.split()
        left += [f"podman still lists container {c}" for c in ps if any(i.startswith(c) for i in cids)]
        if left:
            raise AssertionError("left behind: " + "; ".join(left))

    # ---------------------------------------------------------------------------- teardown
    def close(self) -> list[str]:
        """Remove everything (by force if needed); returns what had to be forced."""
        problems: list[str] = []
        if self.holder is not None:
            ps = self.podman("runc", "ps", "-a", "--format", "{{.ID}}").out.split()
            if ps:
                problems.append(f"containers still present at the end: {ps}")
                self.podman("runc", "rm", "-a", "-f", "-t", "0", timeout=120)
        pids = cgroup_procs(self.parent)
        if pids:
            problems.append(f"processes still in {self.parent}: {pids}")
            kill_pids(pids)
            wait_for("stray processes to die", lambda: not cgroup_procs(self.parent), timeout=10)
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()
            self.holder = None
        stuck = remove_cgroup_tree(self.parent)
        if stuck:
            problems.append(f"cgroups that could not be removed: {stuck}")
        for runtime, root in STATE_ROOTS.items():
            left = state_entries(root, set(self.ids))
            if left:
                problems.append(f"{runtime} state left: {left}")
                for d in left:
                    sh(["rm", "-rf", d])
        host = mounts_under(self.tmp)
        if host:
            problems.append(f"mounts leaked into the host namespace: {host}")
            unmount_all(host)
        if not self.cache_before:
            remove_seccomp_cache(STATE_ROOTS["pyruntime"])
        return problems


def podman_json(res: Result) -> object:
    return json.loads(res.check().out)
