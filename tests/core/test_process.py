"""process.* and namespaces: env, cwd, user/groups, umask, rlimits, hostname, sysctl, oomScoreAdj,
fds (no runtime fd leaks; --preserve-fds), the console socket, joining namespaces by path.
(User namespaces: tests/security/test_sec_userns.py.)"""
from __future__ import annotations

import array
import os
import socket
import subprocess
import threading
import uuid

import pytest


def test_process_fields(rt, make_bundle):
    def edit(c):
        p = c["process"]
        p["env"] = ["PATH=/bin", "FOO=bar baz"]
        p["cwd"] = "/tmp"
        p["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 7], "umask": 0o027}
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512}]
        p["oomScoreAdj"] = 333
        c["hostname"] = "box"
        c["domainname"] = "example.org"
        c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}
    out = rt.out("run", "--bundle", make_bundle(["sh", "-c", "echo $FOO; pwd; id -u; id -g; id -G; umask; "
                 "ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj; hostname; cat /proc/sys/kernel/domainname; "
                 "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni"], edit=edit), "p")
    assert out.splitlines() == ["bar baz", "/tmp", "1000", "1000", "1000 5 7", "0027", "256", "512", "333", "box",
                                "example.org", "1", "1234"]


def test_no_runtime_fd_leaks(rt, make_bundle):
    out = rt.out("run", "--bundle", make_bundle(["sh", "-c", "ls /proc/$$/fd; true"]), "fd")
    assert out.split() == ["0", "1", "2"]


def test_preserve_fds(rt, make_bundle, tmp_path):
    f = tmp_path / "extra"
    f.write_text("passed-through\n")
    b = make_bundle(["sh", "-c", "cat <&3; ls /proc/$$/fd; true"])
    cp = subprocess.run(["bash", "-c", f'exec 3<"{f}"; exec "$@"', "bash", rt.binary, "--root", rt.root, "run",
                         "--preserve-fds", "1", "--bundle", b, "pf"], stdin=subprocess.DEVNULL,
                        capture_output=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.decode().split() == ["passed-through", "0", "1", "2", "3"]


def test_console_socket(rt, make_bundle, tmp_path):
    """process.terminal: the pty master arrives over the console socket (SCM_RIGHTS) and is the
    container's controlling terminal."""
    path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got = {}

    def accept():
        conn, _ = srv.accept()
        fds = array.array("i")
        msg, anc, _, _ = conn.recvmsg(256, socket.CMSG_SPACE(fds.itemsize))
        for _lvl, _typ, data in anc:
            fds.frombytes(data[:fds.itemsize])
        got["name"], got["fd"] = msg.decode(), fds[0]
        conn.close()
    t = threading.Thread(target=accept)
    t.start()
    b = make_bundle(["sh", "-c", "tty; echo hi-from-tty; sleep 2"],
                    edit=lambda c: c["process"].__setitem__("terminal", True))
    rt("create", "--console-socket", path, "--bundle", b, "tty")
    t.join(10)
    srv.close()
    assert got["name"].startswith("/dev/pts/")
    rt("start", "tty")
    data = b""
    master = got["fd"]
    while b"hi-from-tty" not in data:
        chunk = os.read(master, 1024)
        if not chunk:
            break
        data += chunk
    os.close(master)
    assert b"/dev/pts/0" in data and b"hi-from-tty" in data


def test_join_namespace_by_path(rt, make_bundle):
    rt("run", "-d", "--bundle", make_bundle(["sleep", "30"], edit=lambda c: c.__setitem__("hostname", "a")), "ns-a")
    pid = rt.state("ns-a")["pid"]

    def edit(c):
        for ns in c["linux"]["namespaces"]:
            if ns["type"] in ("network", "uts", "ipc"):
                ns["path"] = f"/proc/{pid}/ns/{ {'network': 'net'}.get(ns['type'], ns['type']) }"
        c.pop("hostname")
    out = rt.out("run", "--bundle", make_bundle(["sh", "-c", "hostname; readlink /proc/self/ns/net"], edit=edit), "ns-b")
    assert out.split() == ["a", os.readlink(f"/proc/{pid}/ns/net")]


def test_pid_namespace_join_by_path(rt, make_bundle):
    rt("run", "-d", "--bundle", make_bundle(["sleep", "30"]), "pa")
    pid = rt.state("pa")["pid"]

    def edit(c):
        for ns in c["linux"]["namespaces"]:
            if ns["type"] == "pid":
                ns["path"] = f"/proc/{pid}/ns/pid"
    out = rt.out("run", "--bundle", make_bundle(["sh", "-c", "cat /proc/1/comm"], edit=edit), "pb")
    assert out.strip() == "sleep"


def test_preserve_fds_not_open(rt, make_bundle):
    cp = subprocess.run([rt.binary, "--root", rt.root, "run", "--preserve-fds", "5", "--bundle", make_bundle(),
                         "pf2"], stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert cp.returncode == 1 and b"--preserve-fds: fd 3 is not open" in cp.stderr


def test_run_terminal_proxies_pty(rt, make_bundle):
    """process.terminal with no console socket: `run` proxies the pty to its own stdio, sized like
    its own terminal before the user program starts (util-linux `script` provides the terminal)."""
    b = make_bundle(["sh", "-c", "tty; stty size; read line; echo got:$line"],
                    edit=lambda c: c["process"].__setitem__("terminal", True))
    cmd = f"stty cols 101 rows 31; {rt.binary} --root {rt.root} run --bundle {b} tp"
    feeder = subprocess.Popen(["sh", "-c", "sleep 1; echo hello"], stdout=subprocess.PIPE)
    try:
        out = subprocess.run(["script", "-qec", cmd, "/dev/null"], stdin=feeder.stdout, capture_output=True,
                             timeout=30).stdout.decode().replace("\r", "")
    finally:
        feeder.kill()
        feeder.wait()
    lines = out.split("\n")
    assert lines[0] == "/dev/pts/0" and lines[1] == "31 101", out
    assert "got:hello" in out


@pytest.mark.parametrize("flag", [None, "--no-new-keyring"])
def test_session_keyring(rt, make_bundle, flag):
    """Each container joins a session keyring named after it (runc), unless --no-new-keyring."""
    b = make_bundle(["sh", "-c", "cat /proc/keys; true"],
                    edit=lambda c: c["linux"]["maskedPaths"].remove("/proc/keys"))
    # /proc/keys lists every keyring root may view (others' too, collected lazily): use a unique id
    cid = f"kr-{uuid.uuid4().hex[:8]}"
    out = rt.out("run", *([flag] if flag else []), "--bundle", b, cid)
    names = [line.split()[-2].rstrip(":") for line in out.splitlines() if " keyring " in line]
    assert (cid in names) == (flag is None), out


@pytest.mark.parametrize("policy,expect", [({"mode": "MPOL_BIND", "nodes": "0"}, "bind:0"),
                                           ({"mode": "MPOL_INTERLEAVE", "nodes": "0",
                                             "flags": ["MPOL_F_STATIC_NODES"]}, "interleave=static:0")])
def test_memory_policy(rt, make_bundle, policy, expect):
    """linux.memoryPolicy (runtime-spec 1.3): the program starts with that NUMA policy."""
    if not os.path.exists("/proc/self/numa_maps"):
        pytest.skip("this kernel has no NUMA support (/proc/self/numa_maps missing)")
    b = make_bundle(["sh", "-c", "head -1 /proc/self/numa_maps"],
                    edit=lambda c: c["linux"].__setitem__("memoryPolicy", policy))
    out = rt.out("run", "--bundle", b, "mp")
    assert out.split()[1] == expect, out


def test_exec_process_oom_score_adj(rt, make_bundle, tmp_path):
    """exec --process with oomScoreAdj, as containerd's CRI plugin sends for every ExecSync: the exec
    intermediate joins the container's mount namespace before its pid namespace, where the container's
    /proc has no /proc/self, so the value must be set before (make test-cri found this)."""
    import json
    rt("run", "-d", "--bundle", make_bundle(["sleep", "30"]), "oomx")
    proc = {"args": ["cat", "/proc/self/oom_score_adj"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin"], "oomScoreAdj": 444}
    (tmp_path / "p.json").write_text(json.dumps(proc))
    assert rt.out("exec", "--process", str(tmp_path / "p.json"), "oomx") == "444\n"
