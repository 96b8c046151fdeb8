"""podman (via conmon) driving pyruntime, step by step against runc in the same session.

Each test is one user-visible podman behaviour.  It runs for runc first (the control) and then for
pyruntime; both must give the same observation (exit codes, output, cgroup values seen from the
host).  The private podman set-up is described in podman_env.py.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid

import pytest

from .helpers import StepError, freezer_state, lane_dir, memory_limit, need, wait_for
from .podman_env import IMAGE, STATE_ROOTS, PodmanLane

pytestmark = [pytest.mark.e2e]
LANE = "podman"


@pytest.fixture(scope="module")
def lane(e2e_tmp, runtimes, rootfs_tar):
    need("podman", "conmon", "nsenter", "unshare")
    tmp = lane_dir(e2e_tmp, LANE)
    pl = PodmanLane(tmp, runtimes, rootfs_tar)
    yield pl
    problems = pl.close()
    assert not problems, "podman lane teardown: " + "; ".join(problems)


class Containers:
    """The containers one test made; removed (and checked for leftovers) in its teardown."""

    def __init__(self, lane: PodmanLane) -> None:
        self.lane = lane
        self.mine: dict[str, str] = {}

    def name(self, rt: str, what: str) -> str:
        return f"{what}-{rt}-{uuid.uuid4().hex[:6]}"

    def track(self, rt: str, name: str) -> str:
        cid = self.lane.track(rt, name)
        self.mine[cid] = rt
        return cid

    def run_d(self, rt: str, what: str, *args: str, opts: tuple[str, ...] = ()) -> tuple[str, str]:
        """``podman run -d`` a container; returns (name, id)."""
        name = self.name(rt, what)
        res = self.lane.podman(rt, "run", "-d", "--name", name, *self.lane.run_opts(), *opts, IMAGE, *args)
        if res.rc != 0:
            try:
                self.track(rt, name)
            except StepError:
                pass
            res.check()
        return name, self.track(rt, name)

    def finish(self) -> None:
        by_rt: dict[str, list[str]] = {}
        for cid, rt in self.mine.items():
            by_rt.setdefault(rt, []).append(cid)
        for rt, cids in by_rt.items():
            self.lane.remove(rt, cids)
        self.lane.check_clean(self.mine)


@pytest.fixture
def ctrs(lane):
    c = Containers(lane)
    yield c
    c.finish()


def running(lane: PodmanLane, rt: str, name: str) -> str:
    return lane.inspect(rt, name, "{{.State.Status}}")


# ------------------------------------------------------------------------------------ run basics
def test_runtime_really_used(lane, control, runtime, ctrs):
    """The container is held by the runtime under test (its default --root), not by another."""
    def step(rt):
        name, cid = ctrs.run_d(rt, "which", "sleep", "600")
        oci = lane.inspect(rt, name, "{{.OCIRuntime}}")
        held = os.path.exists(os.path.join(STATE_ROOTS[rt], cid, "state.json"))
        assert os.path.basename(oci) == os.path.basename(lane.runtimes[rt]) and held, (oci, held)
        return held
    control.run("runtime really used (state in its --root)", runtime, step)


def test_run_rm_echo(lane, control, runtime):
    def step(rt):
        r = lane.podman(rt, "run", "--rm", *lane.run_opts(), IMAGE, "echo", "hi").check()
        assert r.out == "hi\n", r.out
        return r.out
    control.run("run --rm echo hi", runtime, step)


@pytest.mark.parametrize("cmd,want", [
    (["sh", "-c", "exit 42"], 42),
    (["/etc/passwd"], 126),          # exists, not executable: "permission denied" -> 126
    (["/nonexistent"], 127),         # "no such file or directory" -> 127
    (["nonexistent-cmd"], 127),      # PATH lookup fails
])
def test_exit_codes(lane, control, runtime, cmd, want):
    def step(rt):
        r = lane.podman(rt, "run", "--rm", *lane.run_opts(), IMAGE, *cmd)
        if r.rc != want:
            raise StepError(f"podman run {' '.join(cmd)}: exit {r.rc}, want {want}: {r.err.strip()[-400:]}")
        # 126 is also podman's code for any runtime failure: the runtime's reason must be there
        reason = {126: "permission denied", 127: "no such file or directory|executable file not found"}.get(want)
        if reason and not re.search(reason, r.err):
            raise StepError(f"podman run {' '.join(cmd)}: exit {want} but not for {reason!r}: {r.err.strip()[-400:]}")
        return r.rc
    control.run(f"exit code {want} ({' '.join(cmd)})", runtime, step)


def test_stdin_piped(lane, control, runtime):
    """-i: conmon hands the runtime a pipe as fd 0, which the container process must inherit."""
    def step(rt):
        r = lane.podman(rt, "run", "--rm", "-i", *lane.run_opts(), IMAGE, "sh", "-c", "tr a-z A-Z; echo end",
                        stdin="piped data\n").check()
        assert r.out == "PIPED DATA\nend\n", r.out
        return r.out
    control.run("run -i (stdin pipe)", runtime, step)


def test_env_and_workdir(lane, control, runtime):
    def step(rt):
        r = lane.podman(rt, "run", "--rm", "-e", "FOO=bar baz", "-w", "/tmp", *lane.run_opts(), IMAGE,
                        "sh", "-c", 'echo "$FOO"; pwd').check()
        assert r.out == "bar baz\n/tmp\n", r.out
        return r.out
    control.run("run -e -w", runtime, step)


def test_create_then_start(lane, control, runtime, ctrs):
    def step(rt):
        name = ctrs.name(rt, "created")
        lane.podman(rt, "create", "--name", name, *lane.run_opts(), IMAGE, "echo", "from-create").check()
        ctrs.track(rt, name)
        st = running(lane, rt, name)
        r = lane.podman(rt, "start", "-a", name).check()
        assert r.out == "from-create\n", r.out
        return st, r.out, lane.inspect(rt, name, "{{.State.ExitCode}}")
    control.run("create + start -a", runtime, step)


# ----------------------------------------------------------------------------------------- exec
EXEC_CASES = {
    "exec": (["echo", "hi"], [], 0, "hi\n"),
    "exec -u": (["id"], ["-u", "1000:1000"], 0, "uid=1000(user) gid=1000(user)\n"),
    "exec -e": (["sh", "-c", 'echo "$A"'], ["-e", "A=b c"], 0, "b c\n"),
    "exec -w": (["pwd"], ["-w", "/tmp"], 0, "/tmp\n"),
    "exec exit code": (["sh", "-c", "exit 3"], [], 3, ""),
    "exec not found": (["/nonexistent"], [], 127, None),
}


@pytest.mark.parametrize("case", list(EXEC_CASES))
def test_exec(lane, control, runtime, ctrs, case):
    args, opts, want_rc, want_out = EXEC_CASES[case]

    def step(rt):
        name, _ = ctrs.run_d(rt, "exec", "sleep", "600")
        r = lane.podman(rt, "exec", *opts, name, *args)
        if r.rc != want_rc:
            raise StepError(f"podman exec {' '.join(opts + args)}: exit {r.rc}, want {want_rc}: {r.err.strip()}")
        if want_rc == 127 and not re.search("no such file or directory|executable file not found", r.err):
            raise StepError(f"podman exec {' '.join(args)}: exit 127 without the runtime's reason: {r.err.strip()}")
        if want_out is not None:
            assert r.out == want_out, r.out
        return r.rc, r.out if want_out is not None else None
    control.run(case, runtime, step)


def test_exec_detached(lane, control, runtime, ctrs):
    def step(rt):
        name, _ = ctrs.run_d(rt, "execd", "sleep", "600")
        lane.podman(rt, "exec", "-d", name, "sh", "-c", "echo done > /tmp/marker").check()
        out = wait_for("the detached exec to write its marker",
                       lambda: lane.podman(rt, "exec", name, "cat", "/tmp/marker").out)
        return out
    control.run("exec -d", runtime, step)


# ------------------------------------------------------------------------------------ lifecycle
def test_pause_unpause(lane, control, runtime, ctrs):
    def step(rt):
        name, cid = ctrs.run_d(rt, "pause", "sleep", "600")
        lane.podman(rt, "pause", name).check()
        paused = (running(lane, rt, name), freezer_state(lane, cid))
        lane.podman(rt, "unpause", name).check()
        resumed = (running(lane, rt, name), freezer_state(lane, cid))
        lane.podman(rt, "exec", name, "true").check()
        assert paused == ("paused", "FROZEN") and resumed == ("running", "THAWED"), (paused, resumed)
        return paused, resumed
    control.run("pause / unpause", runtime, step)


def test_update_memory(lane, control, runtime, ctrs):
    def step(rt):
        name, cid = ctrs.run_d(rt, "update", "sleep", "600", opts=("--memory", "64m"))
        before = memory_limit(lane, cid)
        lane.podman(rt, "update", "--memory", "100m", name).check()
        after = memory_limit(lane, cid)
        assert (before, after) == (64 << 20, 100 << 20), (before, after)
        return before, after
    control.run("update --memory", runtime, step)


def test_stop_start_restart(lane, control, runtime, ctrs):
    def step(rt):
        name, _ = ctrs.run_d(rt, "stop", "sleep", "600")
        lane.podman(rt, "stop", "-t", "1", name).check()
        stopped = (running(lane, rt, name), lane.inspect(rt, name, "{{.State.ExitCode}}"))
        lane.podman(rt, "start", name).check()
        started = running(lane, rt, name)
        pid1 = lane.inspect(rt, name, "{{.State.Pid}}")
        lane.podman(rt, "restart", "-t", "0", name).check()
        restarted = running(lane, rt, name)
        pid2 = lane.inspect(rt, name, "{{.State.Pid}}")
        assert stopped == ("exited", "137") and started == restarted == "running", (stopped, started, restarted)
        assert pid1 != pid2
        lane.podman(rt, "exec", name, "true").check()
        return stopped, started, restarted
    control.run("stop / start / restart", runtime, step)


def test_kill(lane, control, runtime, ctrs):
    def step(rt):
        name, _ = ctrs.run_d(rt, "kill", "sh", "-c",
                             'trap "echo got-usr1" USR1; echo ready; while :; do sleep 0.1; done')
        wait_for("the trap to be set", lambda: "ready" in lane.podman(rt, "logs", name).out)
        lane.podman(rt, "kill", "-s", "USR1", name).check()
        wait_for("USR1 to reach the container", lambda: "got-usr1" in lane.podman(rt, "logs", name).out)
        after_usr1 = running(lane, rt, name)
        lane.podman(rt, "kill", name).check()
        wait_for("the container to exit", lambda: running(lane, rt, name) == "exited")
        code = lane.inspect(rt, name, "{{.State.ExitCode}}")
        assert (after_usr1, code) == ("running", "137"), (after_usr1, code)
        return after_usr1, code
    control.run("kill -s USR1, kill", runtime, step)


def test_rm_and_rm_force(lane, control, runtime, ctrs):
    def step(rt):
        done, _ = ctrs.run_d(rt, "rm", "true")
        wait_for("the container to exit", lambda: running(lane, rt, done) == "exited")
        lane.podman(rt, "rm", done).check()
        live, cid = ctrs.run_d(rt, "rmf", "sleep", "600")
        pid = int(lane.inspect(rt, live, "{{.State.Pid}}"))
        lane.podman(rt, "rm", "-f", "-t", "0", live).check()
        gone = lane.podman(rt, "container", "exists", live).rc
        wait_for("the container process to be gone", lambda: not os.path.exists(f"/proc/{pid}"))
        try:   # conmon exits a moment after podman returns: give it a few seconds, not forever
            wait_for("rm -f to leave nothing behind", lambda: not lane.leftovers(cid, rt), timeout=10)
        except StepError:
            pass
        left = lane.leftovers(cid, rt)
        assert gone == 1 and not left, (gone, left)
        return gone
    control.run("rm, rm -f (running)", runtime, step)


# ----------------------------------------------------------------------------------- terminals
def test_run_it(lane, control, runtime, tmux):
    def step(rt):
        cmd, env = lane.shell_command(rt, "run", "-it", "--rm", *lane.run_opts(), IMAGE, "sh")
        return tmux.tty_shell(cmd, 5, env=env)
    control.run("run -it (tmux)", runtime, step)


def test_exec_it(lane, control, runtime, tmux, ctrs):
    def step(rt):
        name, _ = ctrs.run_d(rt, "execit", "sleep", "600")
        cmd, env = lane.shell_command(rt, "exec", "-it", name, "sh")
        return tmux.tty_shell(cmd, 4, env=env)
    control.run("exec -it (tmux)", runtime, step)


# ------------------------------------------------------------------------------ run options
def _run_rm(lane: PodmanLane, rt: str, opts: list[str], *cmd: str) -> str:
    return lane.podman(rt, "run", "--rm", *lane.run_opts(), *opts, IMAGE, *cmd).check().out


def test_memory_limit(lane, control, runtime):
    def step(rt):
        out = _run_rm(lane, rt, ["--memory", "64m"], "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert out.strip() == str(64 << 20), out
        return out
    control.run("--memory 64m", runtime, step)


def test_cgroup_mount_view(lane, control, runtime, ctrs):
    """The "cgroup" mount shows the container its own cgroups, read-only, never the host's roots."""
    def step(rt):
        name, cid = ctrs.run_d(rt, "cgview", "sleep", "600")
        out = lane.podman(rt, "exec", name, "cat", "/proc/self/mountinfo").check().out
        rows = []
        for line in out.splitlines():
            f = line.split()
            if f[4].startswith("/sys/fs/cgroup/"):
                opts = set(f[5].split(","))
                rows.append((f[4], f[3].replace(cid, "<ID>"), "ro" if "ro" in opts else "rw",
                             all(o in opts for o in ("nosuid", "nodev", "noexec"))))
        rows.sort()
        # read from mountinfo only: probing by writing would, on failure, write to the host's cgroups
        bad = [r for r in rows if not (r[1].endswith("/libpod-<ID>") and r[2] == "ro" and r[3])]
        assert rows and not bad, f"(mount point, root, ro/rw, nosuid+nodev+noexec) not the container's own ro: {bad}"
        return rows
    control.run("cgroup mount: own cgroup, ro", runtime, step)


def test_pids_limit(lane, control, runtime):
    def step(rt):
        out = _run_rm(lane, rt, ["--pids-limit", "20"], "cat", "/sys/fs/cgroup/pids/pids.max")
        assert out.strip() == "20", out
        return out
    control.run("--pids-limit 20", runtime, step)


def test_cap_drop_all(lane, control, runtime):
    def step(rt):
        out = _run_rm(lane, rt, ["--cap-drop", "ALL"], "grep", "^Cap", "/proc/self/status")
        caps = dict(line.split(":\t") for line in out.strip().splitlines())
        assert all(int(caps[k], 16) == 0 for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")), caps
        return out
    control.run("--cap-drop ALL", runtime, step)


def test_read_only(lane, control, runtime):
    def step(rt):
        out = _run_rm(lane, rt, ["--read-only"], "sh", "-c",
                      "touch /x 2>&1; echo rc=$?; touch /tmp/x && echo tmp-ok")
        assert "Read-only file system" in out and "rc=1" in out and "tmp-ok" in out, out
        return out
    control.run("--read-only", runtime, step)


def test_user(lane, control, runtime):
    def step(rt):
        out = _run_rm(lane, rt, ["--user", "1000:1000"], "sh", "-c", "id; touch /x 2>&1; echo rc=$?")
        assert out.startswith("uid=1000(user) gid=1000(user)") and "rc=1" in out, out
        return out
    control.run("--user 1000:1000", runtime, step)


def test_volumes(lane, control, runtime, e2e_tmp):
    def step(rt):
        host = os.path.join(e2e_tmp, f"vol-{rt}-{uuid.uuid4().hex[:6]}")
        os.makedirs(host)
        with open(os.path.join(host, "f"), "w") as f:
            f.write("from-host\n")
        rw = _run_rm(lane, rt, ["-v", f"{host}:/data"], "sh", "-c", "cat /data/f; echo new > /data/new")
        ro = _run_rm(lane, rt, ["-v", f"{host}:/data:ro"], "sh", "-c",
                     "cat /data/new; (echo x > /data/ro) 2>&1; echo rc=$?")
        created = open(os.path.join(host, "new")).read()
        assert rw == "from-host\n" and created == "new\n", (rw, created)
        assert ro.startswith("new\n") and "Read-only file system" in ro and "rc=1" in ro, ro
        assert not os.path.exists(os.path.join(host, "ro"))
        shutil.rmtree(host)
        return rw, ro
    control.run("-v host:ctr, -v host:ctr:ro", runtime, step)


def test_uidmap(lane, control, runtime):
    def step(rt):
        out = _run_rm(lane, rt, ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"],
                      "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u")
        rows = [line.split() for line in out.strip().splitlines()]
        assert rows == [["0", "100000", "65536"], ["0", "100000", "65536"], ["0"]], out
        return out
    control.run("--uidmap/--gidmap", runtime, step)


def test_userns_auto(lane, control, runtime):
    def step(rt):
        out = _run_rm(lane, rt, ["--userns=auto"], "cat", "/proc/self/uid_map")
        first = out.split()
        assert len(first) == 3 and first[0] == "0" and int(first[1]) >= 300000, out
        return first[0], first[2]   # the host start depends on what else holds a range right now
    control.run("--userns=auto", runtime, step)


def test_init(lane, control, runtime):
    def step(rt):
        out = _run_rm(lane, rt, ["--init"], "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$")
        lines = out.splitlines()
        assert lines[0].startswith("/run/podman-init -- ") and lines[1] != "1", out
        return lines[0]
    control.run("--init", runtime, step)


def test_nothing_left_behind(lane, control, runtime):
    """After all steps of this runtime: no container, no process in our cgroup parent, no state."""
    def step(rt):
        ps = lane.podman(rt, "ps", "-a", "--format", "{{.ID}} {{.Names}}").check().out.split("\n")
        mine = [line for line in ps if f"-{rt}-" in line]
        left = [x for cid, r in lane.ids.items() if r == rt for x in lane.leftovers(cid, rt)]
        assert not mine and not left, (mine, left)
        return []
    control.run("nothing left behind", runtime, step)
