"""sd_notify (NOTIFY_SOCKET in the runtime's environment), runc's behaviour: the container gets a
socket at /run/notify/notify.sock; READY is relayed to the host socket with MAINPID and a BARRIER;
MAINPID sent by the container itself is never passed on.  A fake manager socket stands for systemd."""
from __future__ import annotations

import array
import json
import os
import socket
import subprocess
import uuid

import pytest
from pyrt_testenv import build_sdsend

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("PYRUNTIME_BIN") or os.path.join(ROOT, "bin", "pyruntime")
ROOTFS = os.path.join(ROOT, "bundles", "busybox", "rootfs")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


def _bundle(tmp, args):
    """The busybox rootfs with the sender bound over /etc/hostname (an existing file: a new mount point
    would be left in the shared build rootfs) and /run a tmpfs."""
    b = tmp / "bundle"
    b.mkdir()
    sdsend = build_sdsend(str(tmp))   # stands in for the service's sd_notify(3)
    subprocess.run([BIN, "spec"], cwd=b, check=True)
    cfg = json.loads((b / "config.json").read_text())
    cfg["root"] = {"path": ROOTFS, "readonly": True}
    cfg["process"].update(terminal=False, args=args)
    cfg["mounts"] += [{"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
                      {"destination": "/etc/hostname", "type": "bind", "source": sdsend,
                       "options": ["bind", "ro"]}]
    cfg["linux"]["cgroupsPath"] = f"/pyrt-notify-{uuid.uuid4().hex[:8]}"
    (b / "config.json").write_text(json.dumps(cfg))
    return str(b)


class FakeManager:
    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(60)

    def receive(self) -> tuple[list[bytes], bool]:
        """(messages up to the barrier, whether a barrier fd came)."""
        msgs = []
        while True:
            fds = array.array("i")
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(4 * fds.itemsize))
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    fds.frombytes(cdata[:len(cdata) - len(cdata) % fds.itemsize])
            for fd in fds:
                os.close(fd)           # releases the barrier
            if data == b"BARRIER=1":
                return msgs, bool(fds)
            msgs.append(data)


@pytest.mark.parametrize("mode", ["create+start", "run-foreground"])
def test_ready_is_relayed_with_mainpid(tmp_path, mode):
    mgr = FakeManager(str(tmp_path / "manager.sock"))
    b = _bundle(tmp_path, ["sh", "-c", "/etc/hostname STATUS=early 'READY=1\nSTATUS=up\nMAINPID=1\nFDSTORE=1' && sleep 30"])
    root = str(tmp_path / "state")
    cid = f"notify-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, NOTIFY_SOCKET=mgr.path)
    try:
        if mode == "create+start":
            with open(tmp_path / "create.err", "w+") as err:
                r = subprocess.run([BIN, "--root", root, "create", "--bundle", b, cid], env=env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
                err.seek(0)
                assert r.returncode == 0, err.read()
            pid = json.loads(subprocess.run([BIN, "--root", root, "state", cid], capture_output=True,
                                            check=True).stdout)["pid"]
            cfg = json.loads(open(os.path.join(b, "config.json")).read())
            assert not any(m["destination"] == "/run/notify" for m in cfg["mounts"])   # bundle untouched
            start = subprocess.Popen([BIN, "--root", root, "start", cid], env=env)
            msgs, barrier = mgr.receive()
            assert start.wait(timeout=60) == 0
            assert msgs == [b"READY=1\nSTATUS=up\n", f"MAINPID={pid}\n".encode()]
        else:
            run = subprocess.Popen([BIN, "--root", root, "run", "--bundle", b, cid], env=env,
                                   stdin=subprocess.DEVNULL)
            msgs, barrier = mgr.receive()
            assert msgs == [b"READY=1\nSTATUS=up\n", f"MAINPID={run.pid}\n".encode()]
            subprocess.run([BIN, "--root", root, "kill", cid, "KILL"], check=True)
            run.wait(timeout=60)
        assert barrier
        assert not os.path.exists(os.path.join(root, cid, "notify", "notify.sock"))
    finally:
        subprocess.run([BIN, "--root", root, "delete", "--force", cid], capture_output=True)
        mgr.sock.close()
    assert not os.path.exists(os.path.join(root, cid))


def test_no_notify_socket_no_mount(tmp_path):
    b = _bundle(tmp_path, ["/bin/sh", "-c", "test -z \"$NOTIFY_SOCKET\" && ! test -e /run/notify"])
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    r = subprocess.run([BIN, "--root", str(tmp_path / "state"), "run", "--bundle", b, "nonotify"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
