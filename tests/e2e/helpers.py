"""Shared machinery of the e2e lanes: commands, the runc control, polling, tmux, leak checks.

The lanes prove that a real client (podman via conmon, containerd via its runc shim) sees
pyruntime exactly as it sees runc.  Every step therefore runs twice in one session: first with
runc (the control), then with pyruntime, and the two observations must be equal.  A step that
fails with runc on this host says nothing about pyruntime, so it is reported as skipped -- with
the runc error as the reason -- never as a pass.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

RUNTIMES = ("runc", "pyruntime")
PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_PY = os.path.join(PROJECT, ".venv", "bin", "python")
BUSYBOX = "/bin/busybox"


class StepError(AssertionError):
    """A command of a step did not do what the client expects; the text is shown in the report."""


@dataclass
class Result:
    args: list[str]
    rc: int
    out: str
    err: str

    def check(self, rc: int = 0) -> "Result":
        if self.rc != rc:
            raise StepError(f"{shlex.join(self.args[-8:])}: exit {self.rc} (want {rc}): "
                            f"{(self.err or self.out).strip()[-600:]}")
        return self


def sh(args: list[str], *, timeout: float = 60, env: dict | None = None, cwd: str | None = None,
       stdin: str | None = None) -> Result:
    """Run a command and capture everything; a hang becomes a StepError, not a stuck session."""
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
                           input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise StepError(f"{shlex.join(args[-8:])}: timed out after {timeout}s") from e
    return Result(list(args), p.returncode, p.stdout, p.stderr)


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll until fn() is truthy (no fixed sleeps: the lanes must stay fast on 2 shared cores)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise StepError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# --------------------------------------------------------------------------- the pyruntime binary
def pyruntime_binary(tmp_root: str) -> str:
    """The installed ``pyruntime`` (make install), else a wrapper named ``pyruntime`` in tmp_root.

    The wrapper keeps the file name, because podman passes ``--log-format=json --log`` only to
    runtimes whose basename is listed in runtime_supports_json.
    """
    installed = os.environ.get("PYRUNTIME_BIN", "/usr/local/bin/pyruntime")
    if os.access(installed, os.X_OK):
        return installed
    if not os.access(VENV_PY, os.X_OK):
        pytest.fail(f"pyruntime is not installed ({installed}) and {VENV_PY} is missing: run make install")
    d = os.path.join(tmp_root, "pyruntime-bin")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "pyruntime")
    with open(path, "w") as f:   # any cwd: conmon runs it in podman's cwd, the shim in the bundle
        f.write(f'#!/bin/sh\nPYTHONPATH={PROJECT} exec {VENV_PY} -m pyruntime "$@"\n')
    os.chmod(path, 0o755)
    return path


def need(*tools: str) -> None:
    """Skip, naming them, when client tools of a lane are not installed."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (make e2e-deps installs them)")


def lane_dir(e2e_tmp: str, lane: str) -> str:
    """A lane's own dir in the session's temp dir (0755: user-namespaced container roots traverse it)."""
    d = os.path.join(e2e_tmp, lane)
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    return d


def runtime_paths(pyruntime: str) -> dict[str, str]:
    runc = shutil.which("runc")
    if runc is None:
        pytest.fail("runc (the control runtime) is not installed: apt-get install runc")
    return {"runc": runc, "pyruntime": pyruntime}


# ------------------------------------------------------------------------------- the runc control
@dataclass
class Outcome:
    ok: bool
    value: Any = None
    error: str = ""


@dataclass
class Control:
    """Per-lane record of what each step gave with runc, so pyruntime is judged against it."""
    lane: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    report: list[tuple[str, str, str]] = field(default_factory=list)   # (step, runtime, result)

    def run(self, step: str, runtime: str, fn: Callable[[str], Any]) -> Any:
        """Run one step for one runtime and apply the control rules.

        runc: an exception means the host cannot do this step -> skip with the runc error.
        pyruntime: skip likewise if runc failed; otherwise the observation must equal runc's.
        """
        if runtime == "runc":
            try:
                value = fn(runtime)
            except (AssertionError, OSError, subprocess.SubprocessError) as e:
                self.outcomes[step] = Outcome(False, error=_one_line(e))
                self.report.append((step, runtime, "skip: " + _one_line(e)))
                pytest.skip(f"fails with runc on this host too: {_one_line(e)}")
            self.outcomes[step] = Outcome(True, value)
            self.report.append((step, runtime, "pass"))
            return value
        ctl = self.outcomes.get(step)
        if ctl is None:
            # pyruntime selected alone (-k): the control has not run in this session yet
            try:
                ctl = Outcome(True, fn("runc"))
            except (AssertionError, OSError, subprocess.SubprocessError) as e:
                ctl = Outcome(False, error=_one_line(e))
            self.outcomes[step] = ctl
        if not ctl.ok:
            self.report.append((step, runtime, "skip (runc fails)"))
            pytest.skip(f"fails with runc on this host too: {ctl.error}")
        try:
            value = fn(runtime)
            assert value == ctl.value, (f"{step}: pyruntime observed {value!r}, "
                                            f"runc observed {ctl.value!r}")
        except BaseException as e:
            self.report.append((step, runtime, "FAIL: " + _one_line(e)))
            raise
        self.report.append((step, runtime, "pass"))
        return value


def _one_line(e: BaseException) -> str:
    return re.sub(r"\s+", " ", str(e) or type(e).__name__).strip()[:900]


# ------------------------------------------------------------------------------------------ tmux
class Tmux:
    """A private tmux server (own socket, own config) to drive ``-it`` sessions like a user.

    remain-on-exit keeps a finished pane readable, so the exit status printed by the wrapper
    shell can be read after the client has exited.
    """

    def __init__(self, tmp: str) -> None:
        self.sock = os.path.join(tmp, "tmux.sock")
        self.conf = os.path.join(tmp, "tmux.conf")
        with open(self.conf, "w") as f:
            # exit-empty off: the server outlives a killed session, so the next new-session cannot
            # race a server that is shutting down ("server exited unexpectedly")
            f.write("set -g remain-on-exit on\nset -g exit-empty off\nset -g history-limit 2000\n"
                    "set -g status off\n")
        self.n = 0

    def _tmux(self, *args: str) -> Result:
        return sh(["tmux", "-S", self.sock, "-f", self.conf, *args], timeout=20)

    def start(self, command: str, env: dict[str, str] | None = None) -> str:
        """Start ``command`` in a 120x30 window; ``__rc=N`` is printed when it exits."""
        self.n += 1
        name = f"s{self.n}"
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in (env or {}).items())
        wrapped = f"{exports}{command}; echo __rc=$?"
        res = self._tmux("new-session", "-d", "-s", name, "-x", "120", "-y", "30", "sh", "-c", wrapped)
        if res.rc != 0 and "server exited unexpectedly" in res.err:
            res = self._tmux("new-session", "-d", "-s", name, "-x", "120", "-y", "30", "sh", "-c", wrapped)
        res.check()
        return name

    def screen(self, name: str) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", name).out

    def type(self, name: str, text: str) -> None:
        self._tmux("send-keys", "-t", name, "-l", text).check()
        self._tmux("send-keys", "-t", name, "Enter").check()

    def wait(self, name: str, pattern: str, timeout: float = 20) -> re.Match:
        rx = re.compile(pattern, re.M)
        return wait_for(f"{pattern!r} on the tmux screen", lambda: rx.search(self.screen(name)), timeout)

    def exit_code(self, name: str, timeout: float = 20) -> int:
        return int(self.wait(name, r"^__rc=(\d+)", timeout).group(1))

    def kill(self, name: str) -> None:
        self._tmux("kill-session", "-t", name)

    def tty_shell(self, command: str, exit_rc: int, *, env: dict[str, str] | None = None,
                  size: bool = True) -> tuple:
        """Use ``command`` (an interactive ``sh`` in a container) as a user would: at the prompt type
        ``tty`` (and ``stty size``) and a sum, then ``exit <exit_rc>``.  Returns what a client must show
        the same with either runtime: (tty device, [rows cols,] exit code), each asserted present."""
        s = self.start(command, env)
        try:
            self.wait(s, r"# $")
            self.type(s, "tty; " + ("stty size; " if size else "") + "echo $((6*7))z")
            self.wait(s, r"^42z")
            screen = self.screen(s)
            self.type(s, f"exit {exit_rc}")
            rc = self.exit_code(s)
        finally:
            self.kill(s)
        tty = re.search(r"^(/dev/\S+)\s*$", screen, re.M)
        rows_cols = re.search(r"^(\d+ \d+)\s*$", screen, re.M)
        assert tty and (rows_cols or not size) and rc == exit_rc, screen
        return (tty.group(1), rows_cols.group(1), rc) if size else (tty.group(1), rc)

    def close(self) -> None:
        if os.path.exists(self.sock):
            self._tmux("kill-server")


# ----------------------------------------------------------------------------------- leak checks
def mounts_under(prefix: str, pid: int | str = "self") -> list[str]:
    """Mount points below prefix in the mount namespace of pid."""
    out = []
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            for line in f:
                mp = line.split()[4].replace("\\040", " ")
                if mp == prefix or mp.startswith(prefix.rstrip("/") + "/"):
                    out.append(mp)
    except OSError:
        pass
    return out


def unmount_all(paths: list[str], pid: int | str = "self") -> None:
    """Lazy-unmount, deepest first, in the mount namespace of pid (ours or a helper's)."""
    for mp in sorted(set(paths), key=len, reverse=True):
        cmd = ["umount", "-l", mp]
        if pid != "self":
            cmd = ["nsenter", "-t", str(pid), "-m", "--"] + cmd
        sh(cmd, timeout=20)


def cgroup_dirs(rel: str) -> list[str]:
    """Existing directories for cgroup path ``rel`` in every v1 hierarchy and the unified one."""
    out = []
    base = "/sys/fs/cgroup"
    for ctrl in sorted(os.listdir(base)):
        d = os.path.join(base, ctrl, rel.lstrip("/"))
        if os.path.isdir(d):
            out.append(d)
    return out


def cgroup_children(rel: str) -> list[str]:
    """All cgroup directories below ``rel`` (any hierarchy), deepest first."""
    found = []
    for top in cgroup_dirs(rel):
        for dirpath, dirnames, _ in os.walk(top):
            for d in dirnames:
                found.append(os.path.join(dirpath, d))
    return sorted(found, key=len, reverse=True)


def cgroup_procs(rel: str) -> list[int]:
    pids: set[int] = set()
    for top in cgroup_dirs(rel):
        for dirpath, _, files in os.walk(top):
            if "cgroup.procs" in files:
                try:
                    with open(os.path.join(dirpath, "cgroup.procs")) as f:
                        pids.update(int(x) for x in f.read().split())
                except OSError:
                    pass
    return sorted(pids)


def remove_cgroup_tree(rel: str) -> list[str]:
    """rmdir a cgroup subtree everywhere; returns what could not be removed (still has tasks)."""
    left = []
    for d in cgroup_children(rel) + sorted(cgroup_dirs(rel), key=len, reverse=True):
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError as e:
            left.append(f"{d}: {e.strerror}")
    return left


def memory_limit(client: Any, cid: str) -> int:
    """memory.limit_in_bytes of a container, as the host sees it (``client.cgroup(cid, controller)``:
    the podman lane or a containerd daemon)."""
    with open(os.path.join(client.cgroup(cid, "memory"), "memory.limit_in_bytes")) as f:
        return int(f.read())


def freezer_state(client: Any, cid: str) -> str:
    """freezer.state of a container (FROZEN, THAWED), as the host sees it."""
    with open(os.path.join(client.cgroup(cid, "freezer"), "freezer.state")) as f:
        return f.read().strip()


def processes_mentioning(needle: str) -> list[str]:
    """Processes whose command line mentions needle (a temp dir, a container id)."""
    out = []
    me = os.getpid()
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == me:
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmd:
            out.append(f"{p}: {cmd[:200]}")
    return out


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def state_entries(root: str, ids: set[str]) -> list[str]:
    """Runtime state directories left for our container ids under a runtime's --root."""
    try:
        return sorted(os.path.join(root, n) for n in os.listdir(root) if n in ids)
    except FileNotFoundError:
        return []
