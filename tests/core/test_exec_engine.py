"""exec follows create's process path (issue 11): the process attributes of the container's config
(ioPriority, scheduler, execCPUAffinity, session keyring, AppArmor) and exec's flags (--cap,
--no-new-privs, --additional-gids, --apparmor, --pidfd-socket) reach the exec'd process, and a
seccomp notify listener made for it is handed to the agent, as for create.  Each is read back from
inside the exec'd process."""
from __future__ import annotations

import array
import json
import os
import socket
import threading
import uuid

import pytest


def _run_d(rt, make_bundle, cid: str, edit=None) -> None:
    rt("run", "-d", "--bundle", make_bundle(["sleep", "60"], edit=edit), cid)


def _status(rt, cid: str, *extra: str) -> dict:
    out = rt.out("exec", *extra, cid, "cat", "/proc/self/status")
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def test_exec_io_priority(rt, make_bundle):
    """process.ioPriority idle: create's init and an exec'd shell both report it (ionice)."""
    _run_d(rt, make_bundle, "eio", lambda c: c["process"].__setitem__(
        "ioPriority", {"class": "IOPRIO_CLASS_IDLE", "priority": 0}))
    assert rt.out("exec", "eio", "ionice", "-p", "1").strip() == "idle"
    assert rt.out("exec", "eio", "sh", "-c", "ionice -p $$").strip() == "idle"


def test_exec_scheduler(rt, make_bundle):
    """process.scheduler (SCHED_BATCH, nice 7): /proc/self/stat policy (field 41) and nice (19)."""
    _run_d(rt, make_bundle, "esc", lambda c: c["process"].__setitem__(
        "scheduler", {"policy": "SCHED_BATCH", "nice": 7}))
    fields = rt.out("exec", "esc", "sh", "-c", "cat /proc/$$/stat").rsplit(")", 1)[1].split()
    assert fields[41 - 3] == "3" and fields[19 - 3] == "7", fields


def test_exec_cpu_affinity(rt, make_bundle):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs two CPUs to tell a chosen affinity from the default")
    _run_d(rt, make_bundle, "eaf", lambda c: c["process"].__setitem__("execCPUAffinity", {"final": "1"}))
    assert _status(rt, "eaf")["Cpus_allowed_list"].strip() == "1"
    assert rt.out("exec", "eaf", "sh", "-c", "grep Cpus_allowed_list /proc/1/status").split()[-1] == "1"


@pytest.mark.parametrize("flag", [None, "--no-new-keyring"])
def test_exec_session_keyring(rt, make_bundle, flag):
    """runc: an exec'd process joins the session keyring named after the container (the kernel joins
    the existing one of that name), unless the container was created with --no-new-keyring.  Seen
    from inside: every live process holding it counts in the keyring's usage.  Exited holders drop
    their references lazily, so a difference of two readings is not exact (under load it even went
    down, 48 -> 11); the live holders are a lower bound that holds at any moment: the init and four
    exec'd sleepers make at least five, where an exec that did not join would leave the init alone."""
    cid = f"eky-{uuid.uuid4().hex[:8]}"
    extra = [flag] if flag else []
    b = make_bundle(["sleep", "60"], edit=lambda c: c["linux"]["maskedPaths"].remove("/proc/keys"))
    rt("run", "-d", *extra, "--bundle", b, cid)

    def usage() -> list[int]:
        keys = rt.out("exec", cid, "cat", "/proc/keys")
        return [int(line.split()[2]) for line in keys.splitlines()
                if " keyring " in line and line.split()[-2].rstrip(":") == cid]
    if flag:
        assert usage() == []
        return
    for _ in range(4):
        rt("exec", "-d", cid, "sleep", "60")
    now = usage()
    assert len(now) == 1 and now[0] >= 5, now


def test_exec_flags_groups_caps_nnp(rt, make_bundle):
    _run_d(rt, make_bundle, "efl", lambda c: c["process"].__setitem__("noNewPrivileges", False))
    st = _status(rt, "efl", "--additional-gids", "10", "--additional-gids", "20", "--cap", "CAP_NET_ADMIN",
                 "--no-new-privs")
    assert st["Groups"].split() == ["10", "20"], st["Groups"]
    assert int(st["CapEff"], 16) & (1 << 12) and int(st["CapBnd"], 16) & (1 << 12)
    assert st["NoNewPrivs"].strip() == "1"
    plain = _status(rt, "efl")
    assert not int(plain["CapBnd"], 16) & (1 << 12) and plain["NoNewPrivs"].strip() == "0"


def _apparmor() -> bool:
    try:
        return open("/sys/module/apparmor/parameters/enabled").read().strip() == "Y"
    except OSError:
        return False


def test_exec_apparmor(rt, make_bundle):
    """--apparmor reaches the process.  Without AppArmor on the host it is an error naming the field
    (a profile asked for must never silently not confine)."""
    _run_d(rt, make_bundle, "eaa")
    cp = rt("exec", "--apparmor", "unconfined", "eaa", "cat", "/proc/self/attr/current", check=False)
    if _apparmor():
        assert cp.returncode == 0 and cp.stdout.decode().strip() == "unconfined", cp.stderr
    else:
        assert cp.returncode != 0 and b"process.apparmorProfile" in cp.stderr and b"not enabled" in cp.stderr


def test_exec_pidfd_socket(rt, make_bundle, tmp_path):
    """--pidfd-socket (runc 1.2): a pidfd of the exec'd process arrives over the socket."""
    _run_d(rt, make_bundle, "epf")
    path = str(tmp_path / "pidfd.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got: dict = {}

    def serve():
        conn, _ = srv.accept()
        fds = array.array("i")
        msg, anc, _, _ = conn.recvmsg(64, socket.CMSG_SPACE(4))
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds.frombytes(data[:4])
        got["fds"] = list(fds)
        got["info"] = open(f"/proc/self/fdinfo/{fds[0]}").read() if fds else ""
        conn.close()
    t = threading.Thread(target=serve)
    t.start()
    try:
        out = rt.out("exec", "--pidfd-socket", path, "epf", "sh", "-c", "sleep 0.5; echo done")
    finally:
        t.join(10)
        srv.close()
    assert out == "done\n" and got.get("fds"), got
    assert "Pid:" in got["info"]
    os.close(got["fds"][0])


def test_exec_notify_listener_forwarded(rt, make_bundle, tmp_path):
    """A notify filter: the listener of create's init and of every exec'd process reaches
    seccomp.listenerPath with the container state (runc), instead of being closed."""
    path = str(tmp_path / "agent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    srv.settimeout(20)
    got: list = []

    def serve():
        for _ in range(2):
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            msg, anc, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(4 * 4))
            fds = [int.from_bytes(d[i:i + 4], "little") for lv, ty, d in anc for i in range(0, len(d) - 3, 4)]
            got.append((json.loads(msg.decode()), fds))
            for fd in fds:
                os.close(fd)
            conn.close()
    t = threading.Thread(target=serve)
    t.start()

    def edit(c):
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
                                 "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_NOTIFY"}]}
    try:
        _run_d(rt, make_bundle, "enl", edit)
        assert rt.out("exec", "enl", "echo", "ok") == "ok\n"
    finally:
        t.join(25)
        srv.close()
    assert len(got) == 2, got
    for st, fds in got:
        assert st["state"]["id"] == "enl" and fds, st


def test_exec_cpu_affinity_initial_only(rt, make_bundle, tmp_path):
    """execCPUAffinity.initial alone: the process starts there (inherited at clone) and then gets
    every CPU the cgroup allows (runc's reset), instead of staying pinned."""
    n = os.cpu_count() or 1
    if n < 2:
        pytest.skip("needs two CPUs to tell a chosen affinity from the default")
    _run_d(rt, make_bundle, "eai")
    proc = {"args": ["grep", "Cpus_allowed_list", "/proc/self/status"], "cwd": "/",
            "env": ["PATH=/bin"], "execCPUAffinity": {"initial": "0"}}
    (tmp_path / "p.json").write_text(json.dumps(proc))
    assert rt.out("exec", "--process", str(tmp_path / "p.json"), "eai").split()[-1] == f"0-{n - 1}"
