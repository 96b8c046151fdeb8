"""A small client for systemd's D-Bus API (org.freedesktop.systemd1), used by the systemd cgroup driver.

Built on jeepney (pure Python, no dependencies, a blocking I/O module): the driver makes a handful of
calls per container, so a compiled, asyncio-first library (dbus-fast) or a C binding would only add
start-up cost and build requirements.  This module is imported only by the systemd driver's D-Bus
paths (create, update, delete), never by the cgroupfs drivers.

Calls that start or stop a unit return a job; like runc, we wait for that job's JobRemoved signal and
fail unless its result is "done".
"""
from __future__ import annotations

import os

from ..errors import RuntimeFailure

DEST = "org.freedesktop.systemd1"
PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
JOB_TIMEOUT = 30.0      # runc's
AUTH_TIMEOUT = 10.0     # jeepney's 1 s is short for a loaded machine (or a TCG VM)


class DBusError(RuntimeFailure):
    """A D-Bus error reply; ``name`` is the error name (org.freedesktop.systemd1.NoSuchUnit ...)."""

    def __init__(self, method: str, name: str, text: str) -> None:
        super().__init__(f"{method}: {text} ({name})", step="systemd")
        self.name = name


def _user_bus_address() -> str:
    addr = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    if addr:
        return addr
    rt = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    return f"unix:path={rt}/bus"


def user_bus_available() -> bool:
    """A session bus to talk to: DBUS_SESSION_BUS_ADDRESS, or the socket in the runtime dir."""
    addr = _user_bus_address()
    return bool(os.environ.get("DBUS_SESSION_BUS_ADDRESS")) or os.path.exists(addr[len("unix:path="):])


def _authenticated_socket(bus: str):
    """A connected socket past the SASL handshake, done as sd-bus does it: EXTERNAL without an
    initial response, so the bus takes our uid from the socket (SO_PEERCRED).  jeepney's own
    handshake claims geteuid(), which inside a user namespace is not the uid the bus sees: rootless
    podman runs the OCI runtime as uid 0 of its user namespace, and the user's bus rejects "0"."""
    import socket
    from jeepney.bus import get_bus
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(AUTH_TIMEOUT)
    buf = bytearray()

    def line() -> bytes:
        while b"\r\n" not in buf:
            chunk = sock.recv(512)
            if not chunk:
                raise OSError("the bus closed the connection during authentication")
            buf.extend(chunk)
            if len(buf) > 4096:
                raise OSError("unexpected reply from the bus during authentication")
        i = buf.index(b"\r\n")
        text = bytes(buf[:i])
        del buf[:i + 2]
        return text

    try:
        sock.connect(get_bus(bus))
        sock.sendall(b"\0AUTH EXTERNAL\r\n")
        reply = line()
        if reply == b"DATA" or reply.startswith(b"DATA "):
            sock.sendall(b"DATA\r\n")
            reply = line()
        if not reply.startswith(b"OK"):
            raise OSError(f"authentication rejected: {reply[:200].decode('ascii', 'replace')}")
        sock.sendall(b"BEGIN\r\n")
        sock.settimeout(None)
        return sock
    except socket.timeout:
        sock.close()
        raise TimeoutError(f"no authentication reply from the bus within {AUTH_TIMEOUT:.0f}s") from None
    except BaseException:
        sock.close()
        raise


class Systemd:
    """One connection to the system (or, with ``user=True``, the user's) systemd instance."""

    def __init__(self, user: bool = False) -> None:
        try:
            from jeepney import DBusAddress
            from jeepney.io.blocking import DBusConnection
        except ImportError:
            raise RuntimeFailure("the D-Bus client package jeepney is not installed "
                                 "(pip install 'pyruntime[systemd]')", step="systemd cgroup driver") from None
        self.user = user
        bus = _user_bus_address() if user else "SYSTEM"
        try:
            self.conn = DBusConnection(_authenticated_socket(bus))
        except (OSError, KeyError, ValueError, RuntimeError, TimeoutError) as e:
            where = bus if user else "the system bus"
            raise RuntimeFailure(f"cannot connect to {where}: {e}", step="systemd cgroup driver") from None
        self.addr = DBusAddress(PATH, bus_name=DEST, interface=MANAGER)
        self._subscribed = False

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Systemd":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing -----------------------------------------------------------------------------------
    def call(self, method: str, sig: str | None = None, body: tuple = (), *, addr=None,
             timeout: float = JOB_TIMEOUT) -> tuple:
        from jeepney import MessageType, new_method_call
        from jeepney.low_level import HeaderFields
        msg = new_method_call(addr or self.addr, method, sig, body)
        try:
            reply = self.conn.send_and_get_reply(msg, timeout=timeout)
        except (OSError, TimeoutError) as e:
            raise RuntimeFailure(f"{method}: {e}", step="systemd") from None
        if reply.header.message_type == MessageType.error:
            name = reply.header.fields.get(HeaderFields.error_name, "?")
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else str(reply.body)
            raise DBusError(method, name, text)
        return reply.body

    def _subscribe(self) -> None:
        """Ask for JobRemoved: match rule on the bus, and Subscribe() so systemd sends signals."""
        if self._subscribed:
            return
        from jeepney import MatchRule, message_bus
        # no sender=: the bus resolves the well-known name, but jeepney's client-side filter compares it
        # with the signal's unique sender name and would drop every JobRemoved
        self.rule = MatchRule(type="signal", interface=MANAGER, member="JobRemoved", path=PATH)
        self.conn.send_and_get_reply(message_bus.AddMatch(self.rule), timeout=JOB_TIMEOUT)
        self.call("Subscribe")
        self._subscribed = True

    def _job(self, method: str, sig: str, body: tuple, unit: str) -> str:
        """Call a method returning a job path and wait for the job's result ("done", "failed", ...)."""
        import time
        self._subscribe()
        with self.conn.filter(self.rule, bufsize=256) as queue:
            (job,) = self.call(method, sig, body)
            deadline = time.monotonic() + JOB_TIMEOUT
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeFailure(f"timed out after {JOB_TIMEOUT:.0f}s waiting for systemd's {method} "
                                         f"job for {unit}", step="systemd")
                try:
                    msg = self.conn.recv_until_filtered(queue, timeout=left)
                except TimeoutError:
                    continue
                except OSError as e:
                    raise RuntimeFailure(f"waiting for the {method} job of {unit}: {e}", step="systemd") from None
                _id, path, _unit, result = msg.body
                if path == job:
                    return result

    # --- the API the driver uses --------------------------------------------------------------------
    def start_transient_unit(self, name: str, props: list[tuple[str, tuple[str, object]]]) -> None:
        """StartTransientUnit(name, "replace", props) and wait for the job (runc: a unit of that name
        left failed by an earlier container is reset once and the start retried)."""
        body = (name, "replace", props, [])
        for attempt in (0, 1):
            try:
                result = self._job("StartTransientUnit", "ssa(sv)a(sa(sv))", body, name)
                break
            except DBusError as e:
                if e.name != "org.freedesktop.systemd1.UnitExists" or attempt:
                    raise
                self.reset_failed(name)
        if result != "done":
            self.reset_failed(name)
            raise RuntimeFailure(f"error creating systemd unit {name}: job result {result!r}", step="systemd")

    def stop_unit(self, name: str) -> bool:
        """Stop the unit and wait; False when no such unit is loaded (already gone)."""
        try:
            result = self._job("StopUnit", "ss", (name, "replace"), name)
        except DBusError as e:
            if e.name in ("org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.DBus.Error.UnknownObject"):
                return False
            raise
        self.reset_failed(name)
        if result not in ("done", "canceled"):
            raise RuntimeFailure(f"stopping systemd unit {name}: job result {result!r}", step="systemd")
        return True

    def reset_failed(self, name: str) -> None:
        try:
            self.call("ResetFailedUnit", "s", (name,))
        except DBusError:
            pass          # not loaded or not failed: nothing to reset

    def set_unit_properties(self, name: str, props: list[tuple[str, tuple[str, object]]]) -> None:
        if props:
            self.call("SetUnitProperties", "sba(sv)", (name, True, props))

    def manager_property(self, prop: str) -> object:
        from jeepney import DBusAddress
        props = DBusAddress(PATH, bus_name=DEST, interface="org.freedesktop.DBus.Properties")
        ((_sig, value),) = self.call("Get", "ss", (MANAGER, prop), addr=props)
        return value

    def version(self) -> int:
        """systemd's major version (properties newer than it are left to the cgroup files)."""
        v = str(self.manager_property("Version")).lstrip("v")
        digits = ""
        for ch in v:
            if not ch.isdigit():
                break
            digits += ch
        return int(digits) if digits else 0
