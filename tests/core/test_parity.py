"""Configs that real clients send and that must behave as the runtime-spec and runc say (issue 11):
seccomp profiles that do not allow the runtime's own last steps, rootfsPropagation, HOME, a missing
cwd, poststart failures, hook state, sysctl and --log validation, no mount namespace, stdio of a
non-root user, exec's session, a listenerPath without notify rules, real-time budgets.

runc (1.1.5 here) runs the same bundle as the control wherever it behaves per spec."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid

import pytest
from pyrt_testenv import ROOT, RUNC, ROOTFS, runc_control

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import client_configs  # noqa: E402


@pytest.fixture
def runc():
    if not RUNC:
        pytest.skip("runc is not installed on this host (the control runtime)")
    with runc_control() as r:
        yield r


def both(rt, runc, bundle: str, *extra: str) -> tuple[str, str]:
    """`run` the bundle with pyruntime and with runc: both outputs."""
    ours = rt.out("run", *extra, "--bundle", bundle, f"p{uuid.uuid4().hex[:6]}")
    theirs = runc.out("run", *extra, "--bundle", bundle, f"r{uuid.uuid4().hex[:6]}")
    return ours, theirs


# --- seccomp must not break the runtime's own last steps --------------------------------------------

def _errno_profile(names: list[str]) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO"}]}


@pytest.mark.parametrize("nnp", [False, True])
def test_seccomp_close_range_denied(rt, runc, make_bundle, nnp):
    """The issue's reproducer: a profile without close_range, noNewPrivileges false (podman's and
    Docker's default).  runc runs it; so must we."""
    def edit(c):
        c["process"]["noNewPrivileges"] = nnp
        c["linux"]["seccomp"] = _errno_profile(["close_range"])
    ours, theirs = both(rt, runc, make_bundle(["echo", "ok"], edit=edit))
    assert ours == theirs == "ok\n"


# every syscall a runtime itself uses at the end of its init (fds, cwd, user switch, capabilities, the
# start handshake, execveat), execve aside
_LAST_STEPS = ["close_range", "close", "getcwd", "chdir", "fchdir", "setresuid", "setresgid", "setgroups",
               "capset", "capget", "prctl", "accept4", "accept", "recvmsg", "sendmsg", "execveat", "access",
               "faccessat", "faccessat2", "newfstatat", "stat", "fstat", "umask", "fchown", "keyctl",
               "socket", "connect", "openat", "open", "read"]
# what pyruntime's init calls under a filter without noNewPrivileges, waiting for start (trampoline.c)
_WAITING_INIT = ["write", "close", "accept4", "read"]


def _user_cwd_seccomp(nnp: bool, profile: dict):
    def edit(c):
        c["process"]["noNewPrivileges"] = nnp
        c["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10]}
        c["process"]["cwd"] = "/tmp"
        c["linux"]["seccomp"] = profile
    return edit


def _refused_by_profile(cp, call: str) -> bool:
    """One line naming linux.seccomp and the syscall, exit 1."""
    err = cp.stderr.decode()
    return cp.returncode == 1 and err.count("\n") == 1 and err.startswith("linux.seccomp: ") and \
        f"does not allow {call}," in err


def test_seccomp_with_nnp_denying_everything_but_execve(rt, runc, make_bundle, capsys):
    """With noNewPrivileges the filter is loaded right before execve, after every step of the runtime's
    own (fds, cwd, user switch, the start handshake): a profile denying all of them but execve still
    starts the container as a non-root user with a cwd.  runc 1.1.5 opens its exec fifo under the
    filter (openat) and fails here: recorded, not asserted."""
    b = make_bundle(["echo", "started"], edit=_user_cwd_seccomp(True, _errno_profile(_LAST_STEPS)))
    assert rt.out("run", "--bundle", b, "sc") == "started\n"
    theirs = runc("run", "--bundle", b, "rsc", check=False)
    with capsys.disabled():
        print(f"\n[control] runc 1.1.5, noNewPrivileges, all but execve denied: exit {theirs.returncode}")


def test_seccomp_without_nnp_denying_everything_but_execve(rt, runc, make_bundle):
    """Without noNewPrivileges loading the filter needs CAP_SYS_ADMIN, so (as runc does) it is loaded
    before the init gives up its privileges and waits for start, and the rest of the init runs under
    it: a profile denying all of the runtime's last steps fails with both runtimes; with pyruntime at
    create, before anything runs, in one line naming linux.seccomp and the first syscall it needs."""
    b = make_bundle(["echo", "started"], edit=_user_cwd_seccomp(False, _errno_profile(_LAST_STEPS)))
    ours = rt("create", "--bundle", b, "sc", check=False)
    assert _refused_by_profile(ours, "close"), ours
    assert "sc" not in rt.out("list", "-q").split()
    assert runc("run", "--bundle", b, "rsc", check=False).returncode != 0


def test_seccomp_without_nnp_needs_only_what_the_waiting_init_calls(rt, runc, make_bundle, capsys):
    """What pyruntime's init still calls under such a filter is only the wait for start (write, close,
    accept4, read) and execve: a profile denying every other last step starts the container.  runc
    1.1.5 switches the user, checks the cwd and closes fds under the filter and fails here: recorded."""
    rest = [c for c in _LAST_STEPS if c not in _WAITING_INIT]
    b = make_bundle(["echo", "started"], edit=_user_cwd_seccomp(False, _errno_profile(rest)))
    assert rt.out("run", "--bundle", b, "sc") == "started\n"
    theirs = runc("run", "--bundle", b, "rsc", check=False)
    with capsys.disabled():
        print(f"\n[control] runc 1.1.5, no noNewPrivileges, all but pyruntime's wait denied: exit {theirs.returncode}")


@pytest.mark.parametrize("call", _WAITING_INIT)
def test_seccomp_without_nnp_denying_the_wait_for_start(rt, runc, make_bundle, capsys, call):
    """Each syscall of the wait for start, denied alone: create fails in one clear line (the init
    could not report it once waiting).  runc 1.1.5 fails on write, close and read as well; it waits on
    a fifo, not a socket, so it needs no accept4 (recorded)."""
    b = make_bundle(["echo", "started"], edit=_user_cwd_seccomp(False, _errno_profile([call])))
    ours = rt("create", "--bundle", b, "sc", check=False)
    assert _refused_by_profile(ours, call), ours
    theirs = runc("run", "--bundle", b, "rsc", check=False)
    if call == "accept4":
        with capsys.disabled():
            print(f"\n[control] runc 1.1.5, no noNewPrivileges, accept4 denied: exit {theirs.returncode}")
    else:
        assert theirs.returncode != 0, theirs


@pytest.mark.parametrize("drop", [None, "read"], ids=["as-sent", "without-read"])
def test_seccomp_podman_profile_without_nnp(rt, runc, make_bundle, drop):
    """podman's own profile (an allow list, several ABIs, no noNewPrivileges) runs; without `read` in
    it, both runtimes fail, pyruntime at create naming it (the check runs the compiled program)."""
    profile = client_configs.create_config("podman", ROOTFS, "/x", ["true"])["linux"]["seccomp"]
    for rule in profile["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n != drop]
    b = make_bundle(["echo", "started"], edit=_user_cwd_seccomp(False, profile))
    if drop is None:
        assert rt.out("run", "--bundle", b, "sc") == "started\n"
        return
    ours = rt("create", "--bundle", b, "sc", check=False)
    assert _refused_by_profile(ours, drop), ours
    assert runc("run", "--bundle", b, "rsc", check=False).returncode != 0


def test_seccomp_filter_applies_to_program(rt, make_bundle):
    """The moved load still filters the program itself (and its children)."""
    def edit(c):
        c["process"]["noNewPrivileges"] = False
        c["linux"]["seccomp"] = _errno_profile(["mkdirat", "mkdir"])
    out = rt.out("run", "--bundle", make_bundle(["sh", "-c", "mkdir /tmp/x 2>&1; echo rc=$?"], edit=edit), "sf")
    assert "rc=1" in out and "not permitted" in out


def test_seccomp_cap_sys_admin_not_leaked(rt, make_bundle):
    """Without noNewPrivileges the filter is loaded with CAP_SYS_ADMIN held: it must not reach the
    program (capabilities as configured, SYS_ADMIN not among them), for root and for a user."""
    def edit(c):
        c["process"]["noNewPrivileges"] = False
        c["linux"]["seccomp"] = _errno_profile(["mkdirat"])
    for user in ({"uid": 0, "gid": 0}, {"uid": 1000, "gid": 1000}):
        def e2(c, user=user):
            edit(c)
            c["process"]["user"] = user
        out = rt.out("run", "--bundle", make_bundle(["grep", "^Cap", "/proc/self/status"], edit=e2),
                     f"cap{user['uid']}")
        caps = {line.split(":")[0]: int(line.split()[1], 16) for line in out.splitlines()}
        for name in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
            assert not caps[name] & (1 << 21), (user, out)


def _cap_eff(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))


@pytest.mark.parametrize("ptrace", [False, True])
def test_created_init_and_cap_sys_admin(rt, make_bundle, ptrace):
    """Without noNewPrivileges the filter needs CAP_SYS_ADMIN: the init holds it from the user switch
    to the load only, before CREATED, and waits for start as the sealed trampoline, whose execve gave
    it the configured capabilities (no SYS_ADMIN), whether or not a container process could trace it
    (CAP_SYS_PTRACE in the host user namespace)."""
    def edit(c):
        c["process"]["noNewPrivileges"] = False
        c["linux"]["seccomp"] = _errno_profile(["close_range", "getcwd"])
        if ptrace:
            for s in ("bounding", "effective", "permitted"):
                c["process"]["capabilities"][s].append("CAP_SYS_PTRACE")
    rt("create", "--bundle", make_bundle(["echo", "ok"], edit=edit), "ci")
    pid = rt.state("ci")["pid"]
    assert not _cap_eff(pid) & (1 << 21)
    assert os.readlink(f"/proc/{pid}/exe").startswith("/memfd:pyruntime-exec")
    assert rt.out("start", "ci") == ""


# --- rootfsPropagation ------------------------------------------------------------------------------

@pytest.mark.parametrize("prop", ["shared", "slave", "private", "unbindable", "rshared", "rslave",
                                  "rprivate", "runbindable"])
def test_rootfs_propagation_values(rt, make_bundle, prop):
    """Every value of linux.rootfsPropagation creates the container; the container's / carries it
    (applied after pivot_root, as runc does), and nothing leaks into the host's mount table."""
    def ours() -> int:
        with open("/proc/self/mountinfo") as f:
            return f.read().count(ROOTFS)
    before = ours()
    b = make_bundle(["sh", "-c", "grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo"],
                    edit=lambda c: c["linux"].__setitem__("rootfsPropagation", prop))
    out = rt.out("run", "--bundle", b, f"rp-{prop}")
    if prop.endswith("shared"):
        assert "shared:" in out, out
    if prop.endswith("unbindable"):
        assert "unbindable" in out, out
    if prop.endswith("private"):
        assert "shared:" not in out and "master:" not in out, out
    assert ours() == before


# --- HOME, cwd ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("uid,home", [(0, "/root"), (1000, "/home"), (4242, "/")])
def test_home_from_passwd(rt, runc, make_bundle, uid, home):
    """process.env without HOME: HOME from the container's /etc/passwd for the uid, else / (runc)."""
    def edit(c):
        c["process"]["env"] = [e for e in c["process"]["env"] if not e.startswith("HOME=")]
        c["process"]["user"] = {"uid": uid, "gid": uid}
    ours, theirs = both(rt, runc, make_bundle(["sh", "-c", "echo $HOME"], edit=edit))
    assert ours == theirs == f"{home}\n"


def test_home_kept_when_given(rt, make_bundle):
    b = make_bundle(["sh", "-c", "echo $HOME"],
                    edit=lambda c: c["process"]["env"].append("HOME=/custom"))
    assert rt.out("run", "--bundle", b, "hk") == "/custom\n"


def test_home_in_exec(rt, make_bundle, tmp_path):
    """exec's process gets HOME the same way (process.json without HOME, uid 1000 -> /home)."""
    b = make_bundle(["sleep", "30"])
    rt("run", "-d", "--bundle", b, "he")
    proc = {"args": ["sh", "-c", "echo $HOME"], "cwd": "/", "user": {"uid": 1000, "gid": 1000},
            "env": ["PATH=/bin:/usr/bin"]}
    (tmp_path / "p.json").write_text(json.dumps(proc))
    assert rt.out("exec", "--process", str(tmp_path / "p.json"), "he") == "/home\n"
    assert rt.out("exec", "--user", "0", "he", "sh", "-c", "echo $HOME") == "/root\n"


def test_missing_cwd_created(rt, runc, make_bundle, tmp_path):
    """runc and crun create a missing process.cwd (0755, owned by the container's root).  Each runtime
    gets its own copy of the rootfs, so each really has to create it."""
    outs = []
    for name, r in (("ours", rt), ("runc", runc)):
        root = tmp_path / f"rootfs-{name}"
        shutil.copytree(ROOTFS, root, symlinks=True)

        def edit(c, root=root):
            c["root"]["path"] = str(root)
            c["process"]["cwd"] = "/pyrt-missing-cwd/deep/dir"    # a name no other test mounts on
            c["process"]["user"] = {"uid": 1000, "gid": 1000}
        assert not (root / "pyrt-missing-cwd").exists()
        outs.append(r.out("run", "--bundle", make_bundle(["sh", "-c", "pwd; stat -c '%u %a' ."], edit=edit),
                          f"cwd-{name}"))
        assert (root / "pyrt-missing-cwd" / "deep" / "dir").is_dir()
    assert outs[0] == outs[1] == "/pyrt-missing-cwd/deep/dir\n0 755\n", outs


# --- hooks ----------------------------------------------------------------------------------------

def test_poststart_failure_fails_start(rt, make_bundle, tmp_path):
    """runtime.md step 9: a failing poststart hook fails `start` with the hook's error, and the
    container is stopped."""
    hook = tmp_path / "hook.sh"
    hook.write_text("#!/bin/sh\necho poststart-broke >&2\nexit 3\n")
    hook.chmod(0o755)
    b = make_bundle(["sleep", "30"], edit=lambda c: c.__setitem__("hooks", {"poststart": [{"path": str(hook)}]}))
    rt("create", "--bundle", b, "ps")
    cp = rt("start", "ps", check=False)
    err = cp.stderr.decode()
    assert cp.returncode == 1 and "poststart" in err and "not running" not in err, err
    assert rt.state("ps")["status"] == "stopped"


def test_poststart_failure_after_program_exited(rt, make_bundle, tmp_path):
    """The program already exited when the hook fails: still the hook's error, not 'not running'."""
    hook = tmp_path / "hook.sh"
    hook.write_text("#!/bin/sh\nsleep 0.3\nexit 3\n")
    hook.chmod(0o755)
    b = make_bundle(["true"], edit=lambda c: c.__setitem__("hooks", {"poststart": [{"path": str(hook)}]}))
    cp = rt("run", "--bundle", b, "ps2", check=False)
    err = cp.stderr.decode()
    assert cp.returncode != 0 and "poststart" in err and "not running" not in err, err


def test_hook_state_per_spec(rt, make_bundle, tmp_path):
    """The state on the hooks' stdin (runtime.md "State"): the runtime's spec version, id, status
    creating for prestart/createRuntime, the init's pid, bundle, annotations."""
    out = tmp_path / "states"
    out.mkdir()
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ncat > {out}/$1\n")
    hook.chmod(0o755)

    def edit(c):
        c["ociVersion"] = "1.0.2"
        c["annotations"] = {"a": "b"}
        c["hooks"] = {k: [{"path": str(hook), "args": ["hook.sh", k]}] for k in ("prestart", "createRuntime")}
    b = make_bundle(["true"], edit=edit)
    rt("create", "--bundle", b, "hs")
    pid = rt.state("hs")["pid"]
    for k in ("prestart", "createRuntime"):
        s = json.loads((out / k).read_text())
        assert s["ociVersion"] == "1.3.0" and s["id"] == "hs" and s["status"] == "creating"
        assert s["pid"] == pid and s["bundle"] == b and s["annotations"] == {"a": "b"}


# --- validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("edit,field", [
    (lambda c: (c.__setitem__("hostname", "h"), c["linux"].__setitem__("sysctl", {"kernel.hostname": "x"})),
     "linux.sysctl.kernel.hostname"),
    (lambda c: (c.__setitem__("domainname", "d"), c["linux"].__setitem__("sysctl", {"kernel.domainname": "x"})),
     "linux.sysctl.kernel.domainname"),
    (lambda c: (c["linux"].__setitem__("namespaces", [n if n["type"] != "network" else
                                                      {"type": "network", "path": "/proc/self/ns/net"}
                                                      for n in c["linux"]["namespaces"]]),
                c["linux"].__setitem__("sysctl", {"net.ipv4.ip_forward": "1"})),
     "linux.sysctl.net.ipv4.ip_forward"),
])
def test_sysctl_refused(rt, make_bundle, edit, field):
    cp = rt("create", "--bundle", make_bundle(["true"], edit=edit), "sy", check=False)
    err = cp.stderr.decode()
    assert cp.returncode == 1 and field in err and "Traceback" not in err, err
    assert not os.path.exists(os.path.join(rt.root, "sy"))


def test_unusable_log_is_an_error(rt, make_bundle, tmp_path):
    cp = subprocess.run([rt.binary, "--root", rt.root, "--log", str(tmp_path / "no" / "such" / "log"),
                         "state", "x"], capture_output=True)
    assert cp.returncode == 1 and b"--log" in cp.stderr and b"no such file" in cp.stderr, cp.stderr


def test_device_path_trailing_slash(rt, make_bundle):
    def edit(c):
        c["linux"]["devices"] = [{"path": "/dev/mynull/", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]
    out = rt.out("run", "--bundle", make_bundle(["sh", "-c", "ls -l /dev/mynull; echo x > /dev/mynull"],
                                                edit=edit), "ds")
    assert out.startswith("crw-rw-rw-") and "1,   3" in out


# --- no mount namespace ---------------------------------------------------------------------------

def test_no_mount_namespace(rt, make_bundle):
    """Decided (docs/ARCHITECTURE.md): without a mount namespace pyruntime never mounts into the
    host's namespace.  Fields that need mounting are refused by name; without them the container
    runs chrooted into its rootfs, sharing the host's mount table."""
    def no_mnt(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"]
    cp = rt("run", "--bundle", make_bundle(["true"], edit=no_mnt), "nm", check=False)
    assert cp.returncode == 1 and b"mounts: needs a mount namespace" in cp.stderr, cp.stderr

    def bare(c):
        no_mnt(c)
        c["mounts"] = []
        c["root"]["readonly"] = False
        c["linux"].pop("maskedPaths", None)
        c["linux"].pop("readonlyPaths", None)
    host_mnt = os.readlink("/proc/self/ns/mnt")
    out = rt.out("run", "--bundle", make_bundle(["sh", "-c", "ls /; readlink /proc/1/ns/mnt 2>&1; echo end"],
                                                edit=bare), "nm2")
    assert "bin" in out.split() and out.endswith("end\n")
    with open("/proc/self/mountinfo") as f:
        assert "/bundles/busybox/rootfs" not in f.read()
    assert host_mnt  # the container saw no /proc (nothing mounted), so nothing else to compare


# --- stdio of a non-root user, exec session ---------------------------------------------------------

def test_stdio_pipes_usable_by_user(rt, runc, make_bundle):
    """runc gives stdio pipes to the process user: uid 1000 can reopen /proc/self/fd/1."""
    b = make_bundle(["sh", "-c", "echo via-reopen > /proc/self/fd/1"],
                    edit=lambda c: c["process"].__setitem__("user", {"uid": 1000, "gid": 1000}))
    for r, cid in ((rt, "sp"), (runc, "spr")):
        cp = subprocess.run([r.binary, "--root", r.root, "run", "--bundle", b, cid], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=60)
        assert cp.stdout == b"via-reopen\n", (r.binary, cp.stderr)


def test_exec_own_session_and_group(rt, make_bundle):
    """exec'd process: its own session and process group (runc's nsexec setsid)."""
    rt("run", "-d", "--bundle", make_bundle(["sleep", "30"]), "es")
    out = rt.out("exec", "es", "sh", "-c", "cut -d' ' -f1,5,6 /proc/$$/stat")
    pid, pgrp, sid = out.split()
    assert pid == pgrp == sid and pgrp != "0"


# --- seccomp listenerPath without notify rules -------------------------------------------------------

def test_listener_path_without_notify_rule(rt, make_bundle, tmp_path):
    """runc 1.2+: no SCMP_ACT_NOTIFY rule means nothing is sent to listenerPath and nothing blocks."""
    path = str(tmp_path / "agent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(0.5)
    got = []

    def accept():
        try:
            conn, _ = srv.accept()
            got.append(conn)
        except OSError:
            pass
    t = threading.Thread(target=accept)
    t.start()

    def edit(c):
        c["linux"]["seccomp"] = dict(_errno_profile(["mkdirat"]), listenerPath=path)
    try:
        out = rt.out("run", "--bundle", make_bundle(["echo", "ran"], edit=edit), "ln", timeout=20)
    finally:
        t.join()
        srv.close()
        for c in got:
            c.close()
    assert out == "ran\n" and not got


# --- real-time scheduling on cgroup v1 ----------------------------------------------------------------

def _rt_group_sched() -> str | None:
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if "cpu" in ctrls.split(","):
                for c in ("cpu", "cpu,cpuacct"):
                    d = f"/sys/fs/cgroup/{c}{path}"
                    if os.path.exists(f"{d}/cpu.rt_runtime_us"):
                        return d
    return None


def test_sched_fifo_with_realtime_runtime(rt, make_bundle):
    """SCHED_FIFO in a cgroup v1 cpu hierarchy with RT group scheduling: the budget given as
    linux.resources.cpu.realtimeRuntime is set along the intermediate cgroups the runtime made."""
    d = _rt_group_sched()
    if not d:
        pytest.skip("no cgroup v1 cpu controller with RT group scheduling (cpu.rt_runtime_us) here")
    if int(open(f"{d}/cpu.rt_runtime_us").read()) < 20000:
        pytest.skip(f"{d} has less than 20 ms real-time budget to hand down")

    def edit(c):
        c["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 5}
        c["linux"]["resources"] = {"cpu": {"realtimeRuntime": 10000, "realtimePeriod": 1000000}}
    out = rt.out("run", "--bundle", make_bundle(["sh", "-c", "cut -d' ' -f41 /proc/self/stat"], edit=edit), "rt")
    assert out.strip() == "1"       # SCHED_FIFO

    def no_budget(c):
        c["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 5}
    cp = rt("run", "--bundle", make_bundle(["true"], edit=no_budget), "rt2", check=False)
    assert cp.returncode == 1 and b"realtimeRuntime" in cp.stderr, cp.stderr

    def too_much(c):
        c["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 5}
        c["linux"]["resources"] = {"cpu": {"realtimeRuntime": 5_000_000, "realtimePeriod": 1000000}}
    cp = rt("run", "--bundle", make_bundle(["true"], edit=too_much), "rt3", check=False)
    assert cp.returncode == 1 and b"linux.resources.cpu.realtime" in cp.stderr, cp.stderr
