"""linux.seccomp in real containers: filter mode, errno and argument rules, the notify listener,
podman's default profile, and clear errors for bad profiles."""
from __future__ import annotations

import errno
import json
import os
import socket
import struct
import threading
import select

import pytest

from pyruntime import seccomp as sc

from .helpers import both, err, out, status_fields
from . import podman_profile

ALLOW = "SCMP_ACT_ALLOW"


def _profile(*rules: dict, default: str = ALLOW, **extra) -> dict:
    return {"defaultAction": default, "architectures": [], "syscalls": list(rules), **extra}


def test_filter_is_loaded(runtime, bundle):
    bundle.linux["seccomp"] = _profile({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"})
    bundle.sh("grep -E '^(Seccomp|NoNewPrivs)' /proc/self/status")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    st = status_fields(out(res))
    assert st["Seccomp"] == "2"
    assert st["Seccomp_filters"] == "1"


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_blocked_syscall_errno(runtime, bundle, nnp):
    """The errnoRet of a rule is what the syscall returns (EXDEV: nothing else would produce it)."""
    bundle.process["noNewPrivileges"] = nnp
    bundle.linux["seccomp"] = _profile(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV})
    bundle.sh("mkdir /tmp/blocked; echo rc=$?; [ -d /tmp/blocked ] && echo exists || echo absent; echo alive")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    assert "rc=1" in out(res)
    assert "absent" in out(res)
    assert os.strerror(errno.EXDEV) in err(res), both(res)


def test_default_errno_ret(runtime, bundle):
    """defaultAction ERRNO with defaultErrnoRet; everything the shell needs explicitly allowed."""
    prof = podman_profile.load(bundle.process["capabilities"]["bounding"])
    allowed = [r for r in prof["syscalls"] if r["action"] == ALLOW and not r.get("args")]
    for r in allowed:
        r["names"] = [n for n in r["names"] if n not in ("mkdir", "mkdirat")]
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOTTY,
                               "syscalls": allowed}
    bundle.sh("mkdir /tmp/x; echo rc=$?")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    assert "rc=1" in out(res)
    assert os.strerror(errno.ENOTTY) in err(res), both(res)


def test_default_errno_is_eperm(runtime, bundle):
    bundle.linux["seccomp"] = _profile({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"})
    bundle.sh("mkdir /tmp/x; echo rc=$?")
    res = runtime.run(bundle)
    assert "rc=1" in out(res), both(res)
    assert os.strerror(errno.EPERM) in err(res), both(res)


def test_argument_filters(runtime, bundle):
    """kill(pid, sig): EQ on the signal, MASKED_EQ on its bits, and two conditions AND-ed."""
    bundle.linux["seccomp"] = _profile(
        # SIGUSR1 (10) -> EDOM
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EDOM,
         "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]},
        # signals with bit 0x10 set (16..31: SIGSTKFLT, SIGCHLD, SIGCONT ...) but only signal 18 = SIGCONT -> ERANGE
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ERANGE,
         "args": [{"index": 1, "value": 0x1F, "valueTwo": 18, "op": "SCMP_CMP_MASKED_EQ"}]},
        # SIGUSR2 (12) only when pid > 1 -> ENOTBLK
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOTBLK,
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GT"}, {"index": 1, "value": 12, "op": "SCMP_CMP_EQ"}]},
    )
    bundle.sh("trap 'echo got-usr2' USR2; sleep 30 & p=$!; "
              "kill -USR1 $p; echo usr1=$?; kill -CONT $p; echo cont=$?; kill -USR2 $p; echo usr2=$?; "
              "kill -USR2 $$; echo self-usr2=$?; kill -0 $p; echo zero=$?; kill -TERM $p; echo term=$?; wait")
    res = runtime.run(bundle)
    o = out(res)
    assert "usr1=1" in o and os.strerror(errno.EDOM) in err(res), both(res)
    assert "cont=1" in o and os.strerror(errno.ERANGE) in err(res), both(res)
    assert "usr2=1" in o and os.strerror(errno.ENOTBLK) in err(res), both(res)
    # pid 1 (the shell) is not > 1: allowed, the trap runs
    assert "got-usr2" in o and "self-usr2=0" in o, both(res)
    assert "zero=0" in o and "term=0" in o, both(res)


def test_same_index_conditions_are_ored(runtime, bundle):
    """Two conditions on one argument cannot both hold: like runc, each becomes its own rule."""
    bundle.linux["seccomp"] = _profile(
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EDOM,
         "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 12, "op": "SCMP_CMP_EQ"}]})
    bundle.sh("sleep 30 & p=$!; kill -USR1 $p; echo usr1=$?; kill -USR2 $p; echo usr2=$?; "
              "kill -0 $p; echo zero=$?; kill -TERM $p; echo term=$?; wait")
    res = runtime.run(bundle)
    o = out(res)
    assert "usr1=1" in o and "usr2=1" in o and "zero=0" in o and "term=0" in o, both(res)


@pytest.mark.parametrize("action,expect", [
    ("SCMP_ACT_TRAP", "sigsys"), ("SCMP_ACT_KILL", "sigsys"), ("SCMP_ACT_KILL_THREAD", "sigsys"),
    ("SCMP_ACT_TRACE", "enosys"), ("SCMP_ACT_LOG", "allowed"),
])
def test_other_actions(runtime, bundle, action, expect):
    """TRAP/KILL deliver SIGSYS; TRACE without a tracer fails the call with ENOSYS; LOG allows it."""
    rule = {"names": ["mkdir", "mkdirat"], "action": action}
    bundle.linux["seccomp"] = _profile(rule)
    bundle.args("/bin/mkdir", "/tmp/x")
    res = runtime.run(bundle)
    if expect == "sigsys":
        assert res.returncode == 128 + 31, both(res)
    elif expect == "enosys":
        assert res.returncode == 1 and os.strerror(errno.ENOSYS) in err(res), both(res)
    else:
        assert res.returncode == 0, both(res)


def test_kill_process_action(runtime, bundle):
    bundle.linux["seccomp"] = _profile({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"})
    bundle.args("/bin/mkdir", "/tmp/x")  # the container's process itself makes the call
    res = runtime.run(bundle)
    assert res.returncode == 128 + 31, both(res)  # killed by SIGSYS, reported like runc


def test_unknown_syscall_names_are_skipped(runtime, bundle):
    bundle.linux["seccomp"] = _profile(
        {"names": ["no_such_syscall_xyz", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV})
    bundle.sh("mkdir /tmp/x; echo rc=$?")
    res = runtime.run(bundle)
    assert res.returncode == 0 and "rc=1" in out(res), both(res)
    assert os.strerror(errno.EXDEV) in err(res)


def test_flags_are_accepted(runtime, bundle):
    bundle.linux["seccomp"] = _profile(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV},
        flags=sc.supported_flags())
    bundle.sh("mkdir /tmp/x; echo rc=$?")
    res = runtime.run(bundle)
    assert res.returncode == 0 and "rc=1" in out(res), both(res)


# ------------------------------------------------------------------------------ podman profile
@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_podman_default_profile_shell_workload(runtime, bundle, nnp):
    if not os.path.exists(podman_profile.PROFILE_PATH):
        pytest.skip(f"{podman_profile.PROFILE_PATH} missing (apt-get install golang-github-containers-common)")
    bundle.process["noNewPrivileges"] = nnp
    bundle.linux["seccomp"] = podman_profile.load(bundle.process["capabilities"]["bounding"])
    bundle.sh("set -e; mkdir -p /tmp/a/b; echo hello > /tmp/a/b/f; cat /tmp/a/b/f; "
              "ls /tmp/a/b | wc -l; sort -r /etc/passwd | head -n 1 | cut -d: -f1; "
              "ps -o pid,comm | grep -c ps; sleep 0.1 & wait; date +%Y >/dev/null; "
              "echo $(( 6 * 7 )); grep '^Seccomp:' /proc/self/status")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    lines = out(res).split()
    assert lines[:5] == ["hello", "1", "user", "1", "42"], both(res)
    assert out(res).strip().endswith("Seccomp:\t2") or "Seccomp:\t2" in out(res)


def test_podman_profile_blocks_what_it_should(runtime, bundle):
    """The profile's ERRNO rules hold even where capabilities would allow the call: the profile is
    resolved as if CAP_SYS_CHROOT were absent, the process has it, chroot still fails with EPERM."""
    if not os.path.exists(podman_profile.PROFILE_PATH):
        pytest.skip(f"{podman_profile.PROFILE_PATH} missing (apt-get install golang-github-containers-common)")
    caps = bundle.process["capabilities"]
    for key in ("bounding", "permitted", "effective"):
        caps[key] = sorted(set(caps.get(key, [])) | {"CAP_SYS_CHROOT"})
    bundle.sh("chroot / /bin/true; echo chroot=$?")
    control = runtime.run(bundle)  # without the profile the capability allows it
    assert "chroot=0" in out(control), both(control)
    bundle.linux["seccomp"] = podman_profile.load([c for c in caps["bounding"] if c != "CAP_SYS_CHROOT"])
    res = runtime.run(bundle)
    assert "chroot=1" in out(res), both(res)
    assert os.strerror(errno.EPERM) in err(res) or "Operation not permitted" in err(res), both(res)


# ------------------------------------------------------------------------------- notify
_NOTIF = struct.Struct("=QII iI Q 6Q")      # struct seccomp_notif: id, pid, flags, data{nr, arch, ip, args[6]}
_RESP = struct.Struct("=Qqi I")             # struct seccomp_notif_resp: id, val, error, flags
_IOC_RECV = (3 << 30) | (_NOTIF.size << 16) | (ord("!") << 8) | 0
_IOC_SEND = (3 << 30) | (_RESP.size << 16) | (ord("!") << 8) | 1


class Listener(threading.Thread):
    """A seccomp agent: receives the fd and state, answers every mkdir with "success" without
    creating anything, so the container can tell the agent (not the kernel) answered."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.message: dict | None = None
        self.nfds = 0
        self.syscalls: list[tuple[int, int]] = []
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        import fcntl
        try:
            conn, _ = self.sock.accept()
            with conn:
                data, fds, _, _ = socket.recv_fds(conn, 65536, 4)
                self.nfds = len(fds)
                self.message = json.loads(data)
            fd = fds[0]
            try:
                while not self.stop.is_set():
                    r, _, _ = select.select([fd], [], [], 0.2)
                    if not r:
                        continue
                    buf = bytearray(_NOTIF.size)
                    try:
                        fcntl.ioctl(fd, _IOC_RECV, buf, True)
                    except OSError as exc:
                        if exc.errno in (errno.ENOENT, errno.EINTR):
                            continue
                        raise
                    nid, pid, _flags, nr, _arch, _ip, *_args = _NOTIF.unpack(buf)
                    self.syscalls.append((nr, pid))
                    resp = bytearray(_RESP.pack(nid, 0, 0, 0))
                    try:
                        fcntl.ioctl(fd, _IOC_SEND, resp, True)
                    except OSError as exc:
                        if exc.errno != errno.ENOENT:  # target died meanwhile
                            raise
            finally:
                for f in fds:
                    os.close(f)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.sock.close()


def test_notify_listener(runtime, bundle, tmp_path):
    path = str(tmp_path / "agent.sock")
    listener = Listener(path)
    listener.start()
    try:
        bundle.linux["seccomp"] = _profile(
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"},
            listenerPath=path, listenerMetadata="hello-agent")
        bundle.sh("mkdir /tmp/notified && echo mkdir-ok; [ -d /tmp/notified ] && echo exists || echo absent")
        cid = runtime.new_id()
        res = runtime.run(bundle, cid, timeout=60)
    finally:
        listener.stop.set()
        listener.join(10)
    assert listener.error is None, repr(listener.error)
    assert res.returncode == 0, both(res)
    assert "mkdir-ok" in out(res) and "absent" in out(res), both(res)
    msg = listener.message
    assert msg is not None
    assert msg["fds"] == ["seccompFd"] and listener.nfds == 1
    assert msg["metadata"] == "hello-agent"
    assert msg["state"]["id"] == cid
    assert msg["pid"] == msg["state"]["pid"] and msg["pid"] > 0
    assert msg["state"]["status"] in ("creating", "created")
    mkdir_nrs = {sc_nr for name in ("mkdir", "mkdirat")
                 if (sc_nr := _syscall_nr(name)) is not None}
    assert listener.syscalls and all(nr in mkdir_nrs for nr, _ in listener.syscalls), listener.syscalls


def _syscall_nr(name: str) -> int | None:
    from pyruntime._core import lib
    nr = lib.pyrt_sc_syscall_resolve(name.encode())
    return nr if nr >= 0 else None


def test_notify_without_listener_path_is_an_error(runtime, bundle):
    bundle.linux["seccomp"] = _profile({"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"})
    cid = runtime.new_id()
    res = runtime.run(bundle, cid)
    assert res.returncode == 1, both(res)
    assert "linux.seccomp.listenerPath" in err(res)
    assert runtime.state(cid) is None


def test_notify_listener_unreachable_fails_cleanly(runtime, bundle, tmp_path):
    bundle.linux["seccomp"] = _profile({"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
                                       listenerPath=str(tmp_path / "nobody-listens.sock"))
    cid = runtime.new_id()
    res = runtime.run(bundle, cid)
    assert res.returncode == 1, both(res)
    assert "nobody-listens.sock" in err(res)
    assert runtime.state(cid) is None
    assert not os.path.exists(os.path.join(runtime.root, cid))


# ---------------------------------------------------------------------------- bad profiles
BAD = {
    "unknown-action": ({"defaultAction": ALLOW, "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}, {"names": ["getcwd"], "action": "SCMP_ACT_FOO"}]},
        "linux.seccomp.syscalls[1].action", "SCMP_ACT_FOO"),
    "unknown-default-action": ({"defaultAction": "SCMP_ACT_NOPE"}, "linux.seccomp.defaultAction", "SCMP_ACT_NOPE"),
    "bad-op": ({"defaultAction": ALLOW, "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 1, "op": "SCMP_CMP_WHATEVER"}]}]},
        "linux.seccomp.syscalls[0].args[1].op", "SCMP_CMP_WHATEVER"),
    "bad-index": ({"defaultAction": ALLOW, "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 6, "value": 9, "op": "SCMP_CMP_EQ"}]}]}, "linux.seccomp.syscalls[0].args[0].index", ""),
    "bad-arch": ({"defaultAction": ALLOW, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]},
                 "linux.seccomp.architectures[1]", "SCMP_ARCH_VAX"),
    "bad-flag": ({"defaultAction": ALLOW, "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}, "linux.seccomp.flags[0]",
                 "SECCOMP_FILTER_FLAG_NOPE"),
    "errno-on-allow": ({"defaultAction": ALLOW, "syscalls": [{"names": ["kill"], "action": ALLOW, "errnoRet": 1}]},
                       "linux.seccomp.syscalls[0].errnoRet", ""),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_profile_is_a_clear_error(runtime, bundle, case):
    profile, field, word = BAD[case]
    bundle.linux["seccomp"] = profile
    cid = runtime.new_id()
    res = runtime.run(bundle, cid)
    assert res.returncode == 1, both(res)
    assert field in err(res), both(res)
    assert word in err(res), both(res)
    assert "Traceback" not in err(res), both(res)
    # nothing left behind: no state, no container
    assert runtime.state(cid) is None
    assert not os.path.exists(os.path.join(runtime.root, cid))
    lst = runtime("list", "--format", "json")
    assert cid not in out(lst)
