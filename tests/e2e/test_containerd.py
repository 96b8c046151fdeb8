"""containerd (containerd-shim-runc-v2, driven by ctr 1.6) with pyruntime as its runc, against runc.

Every step runs first on a daemon using runc, then on one using pyruntime; both must show the
same thing to ctr.  Set-up details (private daemon, PATH trick for --no-pivot/--uidmap) are in
containerd_env.py.
"""
from __future__ import annotations

import os
import re
import shlex
import uuid

import pytest

from .containerd_env import IMAGE, RUNC_ROOT, ContainerdLane
from .helpers import StepError, freezer_state, lane_dir, memory_limit, need, sh, wait_for
from .image import build_oci_archive

pytestmark = [pytest.mark.e2e]
LANE = "containerd"


@pytest.fixture(scope="module")
def lane(e2e_tmp, runtimes, rootfs_tar):
    need("containerd", "ctr", "containerd-shim-runc-v2")
    tmp = lane_dir(e2e_tmp, LANE)
    archive = build_oci_archive(rootfs_tar, os.path.join(tmp, "busybox-oci.tar"), IMAGE)
    cl = ContainerdLane(tmp, runtimes, archive)
    yield cl
    problems = cl.close()
    assert not problems, "containerd lane teardown: " + "; ".join(problems)


class Tasks:
    """Container ids one test used; deleted and checked for leftovers in its teardown."""

    def __init__(self, lane: ContainerdLane) -> None:
        self.lane = lane
        self.mine: list[tuple[str, str]] = []

    def new(self, rt: str, what: str) -> str:
        cid = f"{what}-{rt}-{uuid.uuid4().hex[:6]}"
        self.mine.append((rt, cid))
        self.lane.daemon(rt).ids.add(cid)
        return cid

    def run_d(self, rt: str, what: str, *cmd: str, opts: tuple[str, ...] = ()):
        """``ctr run -d`` a new task (default command ``sleep 600``); returns (its daemon, its id)."""
        d = self.lane.daemon(rt)
        cid = self.new(rt, what)
        d.ctr(*d.run_args("-d", *opts), IMAGE, cid, *(cmd or ("sleep", "600"))).check()
        return d, cid

    def finish(self) -> None:
        for rt, cid in self.mine:
            self.lane.daemon(rt).remove(cid)
        for rt, cid in self.mine:
            self.lane.daemon(rt).check_clean([cid])


@pytest.fixture
def tasks(lane):
    t = Tasks(lane)
    yield t
    t.finish()


def _status(d, cid: str) -> str:
    for line in d.ctr("task", "ls").out.splitlines()[1:]:
        parts = line.split()
        if parts and parts[0] == cid:
            return parts[-1]
    return "absent"


def _delete_exit(d, cid: str) -> str:
    """``ctr task delete`` of a stopped task; the exit status it reports (warning text) or 0."""
    r = d.ctr("task", "delete", cid).check()
    m = re.search(r"exit code (\d+)", r.err)
    return m.group(1) if m else "0"


def _cleanup_complaints(d, cid: str) -> list[str]:
    """Warnings/errors containerd logged about this container (the shim's second delete --force)."""
    try:
        with open(os.path.join(d.tmp, "containerd.log")) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    # "cleaning up after shim disconnected" is containerd's normal note when a shim exits; what
    # matters is the output of the runtime's delete calls ("cleanup warnings ...") and errors
    return [re.sub(r'time="[^"]*"', "", x) for x in lines
            if cid in x and re.search(r"level=error|cleanup warnings|failed to", x)]


# --------------------------------------------------------------------------------------- steps
def test_run_rm_echo(lane, control, runtime, tasks):
    def step(rt):
        d = lane.daemon(rt)
        cid = tasks.new(rt, "echo")
        r = d.ctr(*d.run_args("--rm"), IMAGE, cid, "echo", "hi").check()
        assert r.out == "hi\n", r.out
        complaints = wait_for_log_settled(d, cid)
        assert not complaints, complaints
        return r.out, complaints
    control.run("run --rm echo hi (+ quiet delete --force)", runtime, step)


def wait_for_log_settled(d, cid: str) -> list[str]:
    """Give the shim's cleanup (delete, delete --force) time to finish, then read its complaints."""
    wait_for("the shim of the finished task to exit", lambda: not d.leftovers(cid), timeout=15)
    return _cleanup_complaints(d, cid)


def test_delete_force_of_gone_container_is_quiet(lane, control, runtime, tasks):
    """The shim's second call (``delete --force`` after ``delete``) must succeed and say nothing."""
    def step(rt):
        d = lane.daemon(rt)
        cid = tasks.new(rt, "gone")
        d.ctr(*d.run_args("--rm"), IMAGE, cid, "true").check()
        log = os.path.join(d.tmp, f"{cid}-log.json")
        r = sh([d.binary, "--root", os.path.join(RUNC_ROOT, d.ns), "--log", log, "--log-format", "json",
                "delete", "--force", cid])
        logged = open(log).read() if os.path.exists(log) else ""
        assert (r.rc, r.out, r.err, logged) == (0, "", "", ""), (r.rc, r.out, r.err, logged)
        return r.rc
    control.run("delete --force of a deleted container: rc 0, silent", runtime, step)


@pytest.mark.parametrize("cmd,want", [(["sh", "-c", "exit 42"], 42), (["/nonexistent"], 1)], ids=["exit42", "notfound"])
def test_exit_codes(lane, control, runtime, tasks, cmd, want):
    def step(rt):
        d = lane.daemon(rt)
        cid = tasks.new(rt, "exit")
        r = d.ctr(*d.run_args("--rm"), IMAGE, cid, *cmd)
        if r.rc != want:
            raise StepError(f"ctr run {' '.join(cmd)}: exit {r.rc}, want {want}: {r.err.strip()}")
        if want == 1:   # the runtime's own error must reach ctr (not "unable to retrieve OCI runtime error")
            assert re.search(r"/nonexistent.*no such file or directory", r.err) and \
                "unable to retrieve" not in r.err, r.err
        return r.rc
    control.run(f"ctr run exit code ({' '.join(cmd)})", runtime, step)


def test_run_d_exec_ps(lane, control, runtime, tasks):
    def step(rt):
        d, cid = tasks.run_d(rt, "exec")
        hi = d.ctr("task", "exec", "--exec-id", "e1", cid, "sh", "-c", "echo hi; id -u").check().out
        r3 = d.ctr("task", "exec", "--exec-id", "e2", cid, "sh", "-c", "exit 3")
        envcwd = d.ctr("task", "exec", "--exec-id", "e3", "--cwd", "/tmp", "--user", "1000", cid,
                       "sh", "-c", 'echo "$(id -u) $(pwd)"').check().out
        ps = d.ctr("task", "ps", cid).check().out.split()[2::2]
        pid = d.ctr("task", "ls").out
        assert hi == "hi\n0\n" and r3.rc == 3 and envcwd == "1000 /tmp\n", (hi, r3.rc, envcwd)
        assert len(ps) == 1 and ps[0] in pid, (ps, pid)
        return hi, r3.rc, envcwd, len(ps)
    control.run("run -d, task exec, task ps", runtime, step)


def test_pause_resume(lane, control, runtime, tasks):
    def step(rt):
        d, cid = tasks.run_d(rt, "pause")
        d.ctr("task", "pause", cid).check()
        paused = (_status(d, cid), freezer_state(d, cid))
        d.ctr("task", "resume", cid).check()
        resumed = (_status(d, cid), freezer_state(d, cid))
        d.ctr("task", "exec", "--exec-id", "p1", cid, "true").check()
        assert paused == ("PAUSED", "FROZEN") and resumed == ("RUNNING", "THAWED"), (paused, resumed)
        return paused, resumed
    control.run("task pause / resume", runtime, step)


def test_kill_and_delete(lane, control, runtime, tasks):
    def step(rt):
        d, trap = tasks.run_d(rt, "killterm", "sh", "-c", 'trap "exit 7" TERM; while :; do sleep 0.1; done')
        d.ctr("task", "kill", trap).check()                       # SIGTERM
        wait_for("the task to stop", lambda: _status(d, trap) == "STOPPED")
        code_term = _delete_exit(d, trap)
        d.ctr("container", "delete", trap).check()
        _, hard = tasks.run_d(rt, "killkill")
        d.ctr("task", "kill", "-s", "SIGKILL", hard).check()
        wait_for("the task to stop", lambda: _status(d, hard) == "STOPPED")
        code_kill = _delete_exit(d, hard)
        d.ctr("container", "delete", hard).check()
        complaints = wait_for_log_settled(d, trap) + wait_for_log_settled(d, hard)
        assert (code_term, code_kill, complaints) == ("7", "137", []), (code_term, code_kill, complaints)
        return code_term, code_kill
    control.run("task kill (TERM, KILL), task delete", runtime, step)


def test_delete_force_running(lane, control, runtime, tasks):
    def step(rt):
        d, cid = tasks.run_d(rt, "delf")
        d.ctr("task", "delete", "-f", cid).check()
        d.ctr("container", "delete", cid).check()
        complaints = wait_for_log_settled(d, cid)
        assert not complaints and _status(d, cid) == "absent", complaints
        return complaints
    control.run("task delete -f (running)", runtime, step)


def test_memory_limit(lane, control, runtime, tasks):
    def step(rt):
        d, cid = tasks.run_d(rt, "mem", opts=("--memory-limit", str(64 << 20)))
        limit = memory_limit(d, cid)
        assert limit == 64 << 20, limit
        return limit
    control.run("--memory-limit 64m", runtime, step)


def test_run_tty(lane, control, runtime, tasks, tmux):
    def step(rt):
        d = lane.daemon(rt)
        cid = tasks.new(rt, "tty")
        return tmux.tty_shell(shlex.join(d.ctr_argv(*d.run_args("-t", "--rm"), IMAGE, cid, "sh")), 6)
    control.run("ctr run --tty (tmux)", runtime, step)


def test_exec_tty(lane, control, runtime, tasks, tmux):
    def step(rt):
        d, cid = tasks.run_d(rt, "exectty")
        return tmux.tty_shell(shlex.join(d.ctr_argv("task", "exec", "-t", "--exec-id", "t1", cid, "sh")), 2,
                              size=False)
    control.run("ctr task exec --tty (tmux)", runtime, step)


def _created_by(d, rt: str, runtimes: dict[str, str], cid: str) -> str:
    """Who holds the container's state under the shim's --root: ``rt`` if its ``state`` knows the
    container and (for pyruntime) runc's does not -- runc itself is never asked to judge pyruntime."""
    root = os.path.join(RUNC_ROOT, d.ns)
    mine = sh([runtimes[rt], "--root", root, "state", cid])
    if mine.rc != 0:
        return f"not {rt} ({rt} state: {mine.err.strip()[-200:]})"
    if rt != "runc" and sh([runtimes["runc"], "--root", root, "state", cid]).rc == 0:
        return "runc"
    return rt


@pytest.mark.parametrize("opts", [["--no-pivot"], ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"]],
                         ids=["no-pivot", "uidmap"])
def test_runtime_from_path(lane, control, runtime, tasks, runtimes, opts):
    """ctr drops --runc-binary here: the shim runs the daemon's PATH "runc" (runc -> pyruntime)."""
    def step(rt):
        d = lane.daemon(rt)
        cid = tasks.new(rt, "path")
        d.ctr(*d.run_args("-d", *opts, runc_binary=False), IMAGE, cid, "sleep", "600").check()
        by = _created_by(d, rt, runtimes, cid)
        pid = wait_for("the task pid", lambda: d.ctr("task", "ls").out.split(cid)[1].split()[0]
                       if cid in d.ctr("task", "ls").out else None)
        with open(f"/proc/{pid}/uid_map") as f:
            uid_map = " ".join(f.read().split())
        out = d.ctr("task", "exec", "--exec-id", "x", cid, "sh", "-c", "echo in; id -u").check().out
        assert by == rt, f"container was created by {by}, not by {rt}"
        assert out == "in\n0\n", out
        return uid_map, out
    control.run(f"ctr run {' '.join(opts[:2])} (PATH runc)", runtime, step)
