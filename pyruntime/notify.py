"""sd_notify for containers (``NOTIFY_SOCKET`` in the runtime's environment), as runc does it.

- create: the container gets the directory ``<state>/<id>/notify`` bind-mounted read-only at
  ``/run/notify`` and ``NOTIFY_SOCKET=/run/notify/notify.sock`` in its environment;
- start (and run): a datagram socket is bound at ``<state>/<id>/notify/notify.sock`` before the
  init is released; once the container sends ``READY=...`` it is relayed to the host's socket with
  ``MAINPID`` (the container's init, or the foreground ``run`` process that stands for it) and a
  ``BARRIER=1`` (the reply waits until systemd has processed both), then the socket is closed.

Only the READY line and STATUS lines of that datagram are passed on: the container must never be
able to send MAINPID, FDSTORE or NOTIFYACCESS to the host's manager under the runtime's name.
"""
from __future__ import annotations

import os
import _socket as socket

DIR = "notify"
SOCK = "notify.sock"
IN_CONTAINER = "/run/notify/notify.sock"
BARRIER_TIMEOUT = 30.0


def setup_spec(cfg: dict, cdir: str) -> None:
    """Make the notify directory and add its mount and NOTIFY_SOCKET to the config (create)."""
    d = os.path.join(cdir, DIR)
    os.mkdir(d, 0o755)
    cfg.setdefault("mounts", []).append({"destination": os.path.dirname(IN_CONTAINER), "source": d,
                                         "type": "bind", "options": ["bind", "nosuid", "noexec", "nodev", "ro"]})
    proc = cfg.setdefault("process", {})
    proc["env"] = [e for e in proc.get("env") or [] if not e.startswith("NOTIFY_SOCKET=")] + \
        [f"NOTIFY_SOCKET={IN_CONTAINER}"]


def bind(cdir: str):
    """The container-side socket, bound (start, before the init is released); None without the dir."""
    d = os.path.join(cdir, DIR)
    if not os.path.isdir(d):
        return None
    path = os.path.join(d, SOCK)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        s.bind(path if len(path) < 108 else _short(d))
        os.chmod(path, 0o777)
    except OSError as e:
        s.close()
        from .errors import RuntimeFailure
        raise RuntimeFailure.from_os(e, "notify socket: bind", path) from None
    return s


def _short(d: str) -> str:
    fd = os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{SOCK}"      # fd left open: this process is about to exit


def _host_addr(host: str) -> str | bytes:
    return b"\0" + host[1:].encode() if host.startswith("@") else host


def wait_and_relay(sock, host: str, alive_pid: int, main_pid: int) -> None:
    """Wait for READY= from the container (while ``alive_pid`` lives) and tell the host."""
    from .errors import RuntimeFailure
    sock.settimeout(0.1)
    try:
        while True:
            try:
                data = sock.recv(4096)
            except TimeoutError:
                if not os.path.exists(f"/proc/{alive_pid}"):
                    return          # the container exited without READY: nothing to relay (runc)
                continue
            if data.startswith(b"READY="):
                lines = data.split(b"\n")
                keep = [lines[0]] + [ln for ln in lines[1:] if ln.startswith(b"STATUS=")]
                break
    finally:
        _close(sock)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        c.connect(_host_addr(host))
        c.send(b"\n".join(keep) + b"\n")
        c.send(f"MAINPID={main_pid}\n".encode())
        _barrier(c)
    except OSError as e:
        raise RuntimeFailure.from_os(e, "notify: relay to NOTIFY_SOCKET", host) from None
    finally:
        c.close()


def _close(sock) -> None:
    """Close and unlink the container-side socket: it is used for one READY only (runc)."""
    try:
        path = sock.getsockname()
    except OSError:
        path = ""
    sock.close()
    if isinstance(path, str) and path.startswith("/"):
        try:
            os.unlink(path)
        except OSError:
            pass


def _barrier(c) -> None:
    """sd_notify_barrier: send BARRIER=1 with a pipe's write end; systemd closes it once it has
    handled everything before it.  A manager without barrier support just times out (ignored)."""
    import select
    import struct
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        c.sendmsg([b"BARRIER=1"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", w))])
        os.close(w)
        w = -1
        ready, _, _ = select.select([r], [], [], BARRIER_TIMEOUT)
        if ready:
            os.read(r, 1)
        else:
            from . import log
            log.warning(f"notify: no answer to BARRIER=1 after {BARRIER_TIMEOUT:.0f}s; ignored")
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
