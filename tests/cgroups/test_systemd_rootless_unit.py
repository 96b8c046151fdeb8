"""Host-side checks of what rootless with the user's systemd instance relies on (the live path runs
in the systemd VM: tests/systemd/test_systemd_rootless.py): the D-Bus handshake that lets the bus
take our uid from the socket (uid 0 of a user namespace is not the uid the bus sees), the choice of
systemd instance, and the cgroup mount of a rootless container whose /sys is the host's."""
from __future__ import annotations

import os
import socket
import threading

import pytest

from pyruntime import plan, rootless
from pyruntime.cgroups import sdbus, systemd
from pyruntime.errors import RuntimeFailure


def _fake_bus(tmp_path, replies: list[bytes]) -> tuple[str, list[bytes]]:
    """A unix socket answering each line the client sends with the next reply; returns (address,
    the lines received)."""
    path = str(tmp_path / "bus")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = srv.accept()
        with conn, srv:
            buf = b""
            for reply in replies + [None]:
                while b"\r\n" not in buf:
                    chunk = conn.recv(512)
                    if not chunk:
                        return
                    buf += chunk
                line, buf = buf.split(b"\r\n", 1)
                got.append(line)
                if reply is not None:
                    conn.sendall(reply)
    threading.Thread(target=serve, daemon=True).start()
    return f"unix:path={path}", got


def test_external_auth_without_a_claimed_uid(tmp_path):
    """sd-bus's handshake: EXTERNAL with no initial response, then an empty DATA; no uid is claimed."""
    addr, got = _fake_bus(tmp_path, [b"DATA\r\n", b"OK 0123456789abcdef\r\n"])
    sock = sdbus._authenticated_socket(addr)
    sock.settimeout(5)
    sock.recv(1)                        # the server closes after BEGIN
    sock.close()
    assert got == [b"\0AUTH EXTERNAL", b"DATA", b"BEGIN"]


def test_rejected_auth_is_one_clear_error(tmp_path):
    addr, _ = _fake_bus(tmp_path, [b"REJECTED EXTERNAL\r\n"])
    with pytest.raises(OSError, match="authentication rejected: REJECTED EXTERNAL"):
        sdbus._authenticated_socket(addr)


def test_no_bus_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/none")
    with pytest.raises(RuntimeFailure, match=f"cannot connect to unix:path={tmp_path}/none"):
        sdbus.Systemd(user=True)


def test_instance_choice_like_runc(tmp_path, monkeypatch):
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setattr(rootless, "_flag", "auto")
    monkeypatch.setattr(rootless, "euid_rootless", lambda: False)
    monkeypatch.setattr(rootless, "in_user_namespace", lambda: False)
    assert not systemd._user_instance()                 # root: the system instance
    monkeypatch.setattr(rootless, "in_user_namespace", lambda: True)
    assert not systemd._user_instance()                 # uid 0 of a userns, no session bus: the system's
    (tmp_path / "bus").touch()
    assert systemd._user_instance()                     # rootless podman's runtime: the user's
    monkeypatch.setattr(rootless, "_flag", "false")
    assert not systemd._user_instance()                 # --rootless false
    monkeypatch.setattr(rootless, "_flag", "auto")
    monkeypatch.setattr(rootless, "euid_rootless", lambda: True)
    os.unlink(tmp_path / "bus")
    assert systemd._user_instance()                     # an unprivileged caller: always the user's


def test_cgroup_mount_under_the_hosts_sys(monkeypatch):
    """A rootless container's /sys is an rbind of the host's, which already shows the host's cgroup2
    at /sys/fs/cgroup: a fresh cgroup2 mount there is refused (EBUSY), so its own cgroup is bound."""
    monkeypatch.setattr(plan, "_host_cgroup_mounts", lambda: [("/sys/fs/cgroup", "cgroup2", "rw,nsdelegate")])
    rec_bind = plan.MS["bind"] | plan.MS["rec"]
    own = {"path": "/sys/fs/cgroup/user.slice/x.scope"}
    sys_rbind = [("/sys", "/sys", None, rec_bind, "", 0)]
    assert plan._host_cgroup_at(sys_rbind, "/sys/fs/cgroup")
    assert not plan._host_cgroup_at([("/sys", "/sys", None, plan.MS["bind"], "", 0)], "/sys/fs/cgroup")
    assert not plan._host_cgroup_at([("/sys", "/host-sys", None, rec_bind, "", 0)], "/sys/fs/cgroup")
    assert plan._host_cgroup_at([("/sys/fs", "/x", None, rec_bind, "", 0)], "/x/cgroup")
    assert plan._cgroup_mounts("/sys/fs/cgroup", 0, True, own, covered=True) == \
        [(own["path"], "/sys/fs/cgroup", None, plan.MS["bind"], "", 0)]
    assert plan._cgroup_mounts("/sys/fs/cgroup", 0, True, {}, covered=True) == []
    assert plan._cgroup_mounts("/sys/fs/cgroup", 0, True, own) == [("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, "", 0)]
