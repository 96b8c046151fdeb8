"""Unit-level tests of pyruntime.hooks.run_hooks / validate_hooks: real processes, no container.

Every hook here is a small /bin/sh script in tmp_path; the runtime's log goes to a file in tmp_path.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from pyruntime import hooks, log
from pyruntime.errors import ConfigError, RuntimeFailure

STATE = {"ociVersion": "1.2.0", "id": "hk1", "status": "creating", "pid": 4242,
         "bundle": "/nonexistent-bundle", "annotations": {"a": "b"}}


@pytest.fixture
def logfile(tmp_path):
    path = tmp_path / "runtime.log"
    log.configure(str(path), "json")
    yield path
    log.configure(None)


def script(tmp_path, name: str, body: str) -> str:
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return str(p)


def pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] in "ZX"
    except FileNotFoundError:
        return True


def test_state_on_stdin_and_cwd_is_bundle(tmp_path, logfile):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    out = tmp_path / "stdin.json"
    h = script(tmp_path, "h", f'cat > {out}\npwd > {tmp_path}/cwd\n')
    state = dict(STATE, bundle=str(bundle))
    hooks.run_hooks("prestart", [{"path": h}], state)
    assert json.loads(out.read_text()) == state
    assert (tmp_path / "cwd").read_text().strip() == str(bundle)


def test_order_args_env(tmp_path, logfile):
    rec = tmp_path / "rec"
    # busybox picks its applet from argv[0]: running it proves argv[0] is passed verbatim
    h1 = {"path": "/usr/bin/busybox", "args": ["sh", "-c", f'echo "one $0 $1 $2" >> {rec}', "zero", "x", "y z"]}
    # env is exactly the given list: /usr/bin/env prints it (to the runtime log) and nothing else leaks in
    h2 = {"path": "/usr/bin/env", "env": ["FOO=bar", "X=y=z"]}
    h3 = script(tmp_path, "h3", f'echo "three $# FOO=${{FOO:-unset}}" >> {rec}\n')
    hooks.run_hooks("createRuntime", [h1, h2, {"path": h3}], STATE)
    lines = rec.read_text().splitlines()
    assert lines[0] == "one zero x y z"
    # no args -> argv = [path]; no env -> the runtime's environment is inherited (runc behaviour)
    assert lines[1] == f"three 0 FOO={os.environ.get('FOO', 'unset')}"
    assert len(lines) == 2
    env_lines = [json.loads(x)["msg"] for x in logfile.read_text().splitlines()]
    env_lines = [m.split(" stdout: ", 1)[1] for m in env_lines if "/usr/bin/env stdout: " in m]
    assert env_lines == ["FOO=bar", "X=y=z"]


def test_env_absent_inherits_runtime_environment(tmp_path, logfile, monkeypatch):
    monkeypatch.setenv("PYRT_TEST_MARK", "inherited")
    rec = tmp_path / "rec"
    h = script(tmp_path, "h", f'echo "$PYRT_TEST_MARK" > {rec}\n')
    hooks.run_hooks("poststart", [{"path": h}], STATE)
    assert rec.read_text().strip() == "inherited"
    hooks.run_hooks("poststart", [{"path": h, "env": []}], STATE)
    assert rec.read_text().strip() == ""


def test_output_goes_to_log_not_stdio(tmp_path, logfile, capfd):
    h = script(tmp_path, "h", 'echo to-stdout\necho to-stderr >&2\n')
    hooks.run_hooks("prestart", [{"path": h}], STATE)
    cap = capfd.readouterr()
    assert "to-stdout" not in cap.out + cap.err
    entries = [json.loads(line) for line in logfile.read_text().splitlines()]
    msgs = [e["msg"] for e in entries if e["level"] == "info"]
    assert any("to-stdout" in m and "stdout" in m and h in m for m in msgs), msgs
    assert any("to-stderr" in m and "stderr" in m for m in msgs), msgs


def test_failure_names_path_status_and_stderr_tail(tmp_path, logfile):
    ran = tmp_path / "ran"
    bad = script(tmp_path, "bad", 'echo line1 >&2\necho "the reason" >&2\nexit 3\n')
    after = script(tmp_path, "after", f"touch {ran}\n")
    with pytest.raises(RuntimeFailure) as ei:
        hooks.run_hooks("createRuntime", [{"path": bad}, {"path": after}], STATE)
    text = str(ei.value)
    assert bad in text and "exit status 3" in text and "the reason" in text and "createRuntime" in text
    assert not ran.exists(), "hooks after a failing createRuntime hook must not run"


def test_killed_by_signal(tmp_path, logfile):
    h = script(tmp_path, "h", "kill -TERM $$\n")
    with pytest.raises(RuntimeFailure, match="killed by SIGTERM"):
        hooks.run_hooks("prestart", [{"path": h}], STATE)


def test_timeout_kills_hook_and_its_children(tmp_path, logfile):
    pids = tmp_path / "pids"
    # the hook and its child would sleep 600 s: run_hooks returning with both gone means the timeout
    # killed them (a hang is caught by pytest's own guard, not by a duration assertion)
    h = script(tmp_path, "h", f"sleep 600 & echo $! > {pids}\necho $$ >> {pids}\nwait\n")
    with pytest.raises(RuntimeFailure) as ei:
        hooks.run_hooks("prestart", [{"path": h, "timeout": 1}], STATE)
    assert "timed out after 1s" in str(ei.value) and h in str(ei.value)
    assert len(pids.read_text().split()) == 2, "the hook was killed before it started its child"
    for pid in map(int, pids.read_text().split()):
        for _ in range(50):
            if pid_gone(pid):
                break
            time.sleep(0.02)
        assert pid_gone(pid), f"hook process {pid} survived its timeout"


def test_daemon_holding_stdout_does_not_block(tmp_path, logfile):
    pidf = tmp_path / "daemon"
    # the hook exits at once but leaves a child holding its stdout/stderr open
    h = script(tmp_path, "h", f"sleep 30 & echo $! > {pidf}\nexit 0\n")
    try:
        hooks.run_hooks("poststart", [{"path": h}], STATE)
        # run_hooks returned while the child still holds the hook's stdout: it did not wait for EOF
        assert not pid_gone(int(pidf.read_text())), "run_hooks waited for the hook's daemon child"
    finally:
        os.kill(int(pidf.read_text()), signal.SIGKILL)


def test_missing_and_not_executable(tmp_path, logfile):
    with pytest.raises(RuntimeFailure, match="no such file") as ei:
        hooks.run_hooks("prestart", [{"path": str(tmp_path / "nope")}], STATE)
    assert str(tmp_path / "nope") in str(ei.value)
    p = tmp_path / "noexec"
    p.write_text("#!/bin/sh\n")
    p.chmod(0o644)
    with pytest.raises(RuntimeFailure, match="permission denied"):
        hooks.run_hooks("prestart", [{"path": str(p)}], STATE)


def test_poststop_runs_every_hook_then_reports(tmp_path, logfile):
    rec = tmp_path / "rec"
    b1 = script(tmp_path, "b1", f"echo b1 >> {rec}\nexit 1\n")
    ok = script(tmp_path, "ok", f"echo ok >> {rec}\n")
    b2 = script(tmp_path, "b2", f"echo b2 >> {rec}\nexit 2\n")
    with pytest.raises(RuntimeFailure) as ei:
        hooks.run_hooks("poststop", [{"path": b1}, {"path": ok}, {"path": b2}], STATE)
    assert rec.read_text().split() == ["b1", "ok", "b2"]
    assert b1 in str(ei.value) and b2 in str(ei.value)


@pytest.fixture
def other_mntns(tmp_path):
    """A sleeping process in its own mount namespace with a tmpfs (holding a marker) on tmp_path/mnt."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                             f"mount -t tmpfs t {mnt} && echo inside > {mnt}/marker && "
                             f"echo ready && exec sleep 60"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        fd = os.open(f"/proc/{proc.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        yield proc.pid, fd, mnt
        os.close(fd)
    finally:
        proc.kill()
        proc.wait()


def test_create_container_hook_runs_in_given_mount_namespace(tmp_path, logfile, other_mntns):
    pid, fd, mnt = other_mntns
    rec = tmp_path / "rec"   # tmp_path itself is not covered by the tmpfs, so the file is visible here
    h = script(tmp_path, "h", f"cat {mnt}/marker > {rec}\nreadlink /proc/self/ns/mnt >> {rec}\n")
    hooks.run_hooks("createContainer", [{"path": h}], STATE, mntns_fd=fd)
    marker, ns = rec.read_text().split()
    assert marker == "inside"
    assert ns == os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert not (mnt / "marker").exists()  # and the runtime itself never left its own namespace


@pytest.mark.parametrize("section, field", [
    ([], "hooks"),
    ({"prestart": {}}, "hooks.prestart"),
    ({"prestart": ["x"]}, "hooks.prestart[0]"),
    ({"poststop": [{"path": "/bin/true"}, {}]}, "hooks.poststop[1].path"),
    ({"createRuntime": [{"path": "relative/hook"}]}, "hooks.createRuntime[0].path"),
    ({"poststart": [{"path": "/bin/true", "args": "x"}]}, "hooks.poststart[0].args"),
    ({"poststart": [{"path": "/bin/true", "args": ["a", 1]}]}, "hooks.poststart[0].args[1]"),
    ({"startContainer": [{"path": "/bin/true", "env": ["NOEQUALS"]}]}, "hooks.startContainer[0].env[0]"),
    ({"prestart": [{"path": "/bin/true", "timeout": 0}]}, "hooks.prestart[0].timeout"),
    ({"prestart": [{"path": "/bin/true", "timeout": "5"}]}, "hooks.prestart[0].timeout"),
    ({"prestart": [{"path": "/bin/true", "timeout": True}]}, "hooks.prestart[0].timeout"),
])
def test_validate_names_json_path(section, field):
    with pytest.raises(ConfigError) as ei:
        hooks.validate_hooks(section)
    assert ei.value.field == field
    assert field in str(ei.value)


def test_validate_accepts_full_section():
    hooks.validate_hooks({k: [{"path": "/bin/true", "args": ["true"], "env": ["A=1"], "timeout": 3}]
                          for k in hooks.KINDS})
    hooks.validate_hooks(None)
    hooks.validate_hooks({"futureKind": [{"whatever": 1}]})  # unknown kinds are ignored, like runc


def test_run_hooks_validates_too(tmp_path):
    with pytest.raises(ConfigError) as ei:
        hooks.run_hooks("prestart", [{"path": "/bin/true"}, {"path": "x"}], STATE)
    assert ei.value.field == "hooks.prestart[1].path"
