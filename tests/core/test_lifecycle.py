"""Lifecycle (runtime.md): create/start/state/kill/delete, run, exit statuses, pid files, liveness."""
from __future__ import annotations

import json
import os
import time

import pytest


# PID 1 of a pid namespace ignores signals it has no handler for, so TERM needs a trap.
TRAP_TERM = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"]


def wait_status(rt, cid, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        s = rt.state(cid)["status"]
        if s == want or time.monotonic() > deadline:
            return s
        time.sleep(0.02)


def test_run_shows_isolation(rt, make_bundle):
    b = make_bundle(["sh", "-c", "hostname; ps -o pid,comm; cat /proc/self/mounts"])
    out = rt.out("run", "--bundle", b, "iso")
    lines = out.splitlines()
    assert lines[0] == "pyruntime"
    assert lines[2].split() == ["1", "sh"], out         # the container's init is PID 1
    assert any(line.startswith("proc /proc proc") for line in lines)
    assert any(" / " in line and " ro," in line for line in lines)  # root.readonly
    assert not os.path.exists(os.path.join(rt.root, "iso"))       # run deletes afterwards


def test_create_start_state_delete(rt, make_bundle, tmp_path):
    b = make_bundle(["sleep", "30"])
    pidfile = tmp_path / "pid"
    rt("create", "--bundle", b, "--pid-file", str(pidfile), "c1")
    st = rt.state("c1")
    assert st["status"] == "created" and st["id"] == "c1" and st["bundle"] == b
    assert int(pidfile.read_text()) == st["pid"] > 0
    # created: the init waits before the user program
    assert os.readlink(f"/proc/{st['pid']}/exe") != "/bin/sleep"
    rt("start", "c1")
    assert rt.state("c1")["status"] == "running"
    assert "sleep" in open(f"/proc/{st['pid']}/cmdline").read()
    cp = rt("delete", "c1", check=False)
    assert cp.returncode == 1 and b"not stopped" in cp.stderr
    rt("kill", "c1", "KILL")
    assert wait_status(rt, "c1", "stopped") == "stopped"
    assert rt.state("c1")["pid"] == 0
    rt("delete", "c1")
    assert not os.path.exists(os.path.join(rt.root, "c1"))
    cp = rt("state", "c1", check=False)
    assert cp.returncode == 1 and b"does not exist" in cp.stderr


@pytest.mark.parametrize("sig", ["TERM", "SIGTERM", "15", "term"])
def test_kill_signal_spellings(rt, make_bundle, sig):
    b = make_bundle(TRAP_TERM)
    rt("run", "--detach", "--bundle", b, "k")
    rt("kill", "k", sig)
    assert wait_status(rt, "k", "stopped") == "stopped"


def test_kill_default_and_unknown_signal(rt, make_bundle):
    rt("run", "-d", "--bundle", make_bundle(TRAP_TERM), "k")
    cp = rt("kill", "k", "SIGNOPE", check=False)
    assert cp.returncode == 1 and b"unknown signal" in cp.stderr
    rt("kill", "k")
    assert wait_status(rt, "k", "stopped") == "stopped"
    cp = rt("kill", "k", check=False)
    assert cp.returncode == 1 and b"container not running" in cp.stderr


def test_run_exit_status(rt, make_bundle):
    assert rt("run", "--bundle", make_bundle(["sh", "-c", "exit 7"]), "x", check=False).returncode == 7
    # killed from outside (PID 1 cannot SIGKILL itself from inside its namespace): 128 + 9
    import subprocess
    proc = subprocess.Popen([rt.binary, "--root", rt.root, "run", "--bundle", make_bundle(["sleep", "30"]), "y"])
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(rt.root, "y", "state.json")) or rt.state("y")["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        rt("kill", "y", "KILL")
        assert proc.wait(timeout=10) == 137
    finally:
        proc.kill()
        proc.wait()


def test_run_keep_and_force_delete(rt, make_bundle):
    rt("run", "--keep", "--bundle", make_bundle(["true"]), "kp")
    assert rt.state("kp")["status"] == "stopped"
    rt("delete", "kp")
    # containerd's shim deletes twice: the second `delete --force` must succeed quietly
    cp = rt("delete", "--force", "kp", check=False)
    assert cp.returncode == 0, cp.stderr
    cp = rt("delete", "kp", check=False)
    assert cp.returncode == 1 and b"does not exist" in cp.stderr


def test_delete_force_running(rt, make_bundle):
    rt("run", "-d", "--bundle", make_bundle(["sleep", "30"]), "f")
    pid = rt.state("f")["pid"]
    rt("delete", "--force", "f")
    assert not os.path.exists(os.path.join(rt.root, "f"))
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except FileNotFoundError:
        stat = ""
    assert stat == "" or stat.split(") ")[1][0] in "ZX"     # gone, or a zombie awaiting its reaper


def test_start_twice_and_start_stopped(rt, make_bundle):
    rt("run", "-d", "--bundle", make_bundle(["sleep", "30"]), "s")
    cp = rt("start", "s", check=False)
    assert cp.returncode == 1 and b"already running" in cp.stderr
    rt("kill", "s", "9")
    wait_status(rt, "s", "stopped")
    cp = rt("start", "s", check=False)
    assert cp.returncode == 1 and b"stopped" in cp.stderr


def test_reused_pid_is_not_the_container(rt, make_bundle):
    """A state whose pid now belongs to another process (other start time) reads as stopped."""
    rt("create", "--bundle", make_bundle(["sleep", "30"]), "r")
    path = os.path.join(rt.root, "r", "state.json")
    data = json.load(open(path))
    real = data["pid"]
    data["pid"] = os.getpid()                     # alive, but not the container
    json.dump(data, open(path, "w"))
    try:
        assert rt.state("r")["status"] == "stopped"
    finally:
        data["pid"] = real
        json.dump(data, open(path, "w"))


def test_list(rt, make_bundle):
    rt("create", "--bundle", make_bundle(["sleep", "30"]), "l1")
    rows = json.loads(rt.out("list", "--format", "json"))
    assert [(r["id"], r["status"]) for r in rows] == [("l1", "created")]
    assert rt.out("list", "-q").split() == ["l1"]
    assert "l1" in rt.out("list")


def test_spec_writes_default_and_refuses_overwrite(rt, tmp_path):
    rt("spec", "--bundle", str(tmp_path))
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["root"]["path"] == "rootfs" and cfg["process"]["args"] == ["sh"]
    cp = rt("spec", "--bundle", str(tmp_path), check=False)
    assert cp.returncode == 1 and b"exists" in cp.stderr


def test_exec(rt, make_bundle):
    rt("run", "-d", "--bundle", make_bundle(["sleep", "30"]), "e")
    out = rt.out("exec", "--env", "FOO=bar", "e", "sh", "-c", "echo $FOO; cat /proc/1/comm")
    assert out.split() == ["bar", "sleep"]
    assert rt("exec", "e", "sh", "-c", "exit 5", check=False).returncode == 5
    out = rt.out("exec", "--user", "1000:1000", "--cwd", "/tmp", "e", "sh", "-c", "id -u; id -g; pwd")
    assert out.split() == ["1000", "1000", "/tmp"]
    cp = rt("exec", "e", "/no/such/binary", check=False)
    assert cp.returncode == 255 and b"exec: /no/such/binary: no such file or directory" in cp.stderr


def test_version():
    import subprocess
    from pyrt_testenv import LAUNCHER
    out = subprocess.run([LAUNCHER, "--version"], capture_output=True, text=True).stdout
    assert out.startswith("pyruntime version ") and "\nspec: " in out


def test_run_forwards_signals(rt, make_bundle):
    """A signal sent to the foreground `run` reaches the container's init (which traps it here)."""
    import signal
    import subprocess
    b = make_bundle(["sh", "-c", "trap 'echo got-usr1; exit 3' USR1; echo ready; while :; do sleep 0.05; done"])
    proc = subprocess.Popen([rt.binary, "--root", rt.root, "run", "--bundle", b, "fw"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"     # the trap is in place
        proc.send_signal(signal.SIGUSR1)
        assert proc.wait(timeout=10) == 3
        assert proc.stdout.read().strip() == b"got-usr1"
    finally:
        proc.kill()
        proc.wait()


def test_exec_terminal_proxies_pty(rt, make_bundle):
    """exec -t without a console socket: the pty is sized like ours before the program starts."""
    import subprocess
    rt("run", "-d", "--bundle", make_bundle(["sleep", "30"]), "et")
    cmd = f"stty cols 99 rows 33; {rt.binary} --root {rt.root} exec -t et sh -c 'tty; stty size'"
    out = subprocess.run(["script", "-qec", cmd, "/dev/null"], stdin=subprocess.DEVNULL, capture_output=True,
                         timeout=30).stdout.decode().replace("\r", "")
    assert out.split("\n")[:2] == ["/dev/pts/0", "33 99"], out
