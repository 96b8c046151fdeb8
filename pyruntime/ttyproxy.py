"""Foreground terminal use without a console socket (`run`/`exec` with process.terminal): receive the
pty master from the container and copy bytes between it and our own stdio until the process exits."""
from __future__ import annotations

import array
import os
import _signal as signal
import _socket as socket
import select
import sys


def need_terminal() -> None:
    """process.terminal with neither --console-socket nor a terminal on our stdin: nothing could ever
    read the pty, and a shell on it would wait forever.  Fail at once, as runc does (its words)."""
    if not os.isatty(0):
        from .errors import RuntimeFailure
        raise RuntimeFailure("open /dev/tty: no such device or address (process.terminal is true, stdin is "
                             "not a terminal and no --console-socket was given)", step="terminal")


def console_pair() -> "tuple[socket.socket, socket.socket]":
    """(ours, theirs): theirs is handed to the C core as the console socket."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def recv_master(sock: socket.socket) -> int:
    fds = array.array("i")
    _msg, anc, _f, _a = sock.recvmsg(256, socket.CMSG_SPACE(fds.itemsize))
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if not fds:
        raise OSError("no pty master received on the console socket")
    return fds[0]


def copy_winsize(master: int) -> None:
    """Give the container's pty our terminal's size (nothing if stdin is not a terminal)."""
    try:
        import fcntl
        import termios
        ws = fcntl.ioctl(sys.stdin.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, ws)
    except OSError:
        pass


def proxy(master: int, pidfd: int) -> None:
    """Copy stdin -> master and master -> stdout until the process (pidfd) exits and output drains."""
    import termios
    import tty
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    saved = None
    if os.isatty(stdin):
        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)
        copy_winsize(master)
        signal.signal(signal.SIGWINCH, lambda *_: copy_winsize(master))
    try:
        watch = [master, pidfd, stdin]
        exited = False
        while True:
            r, _, _ = select.select(watch, [], [], 0.05 if exited else None)
            if not r and exited:
                return
            if pidfd in r:
                exited = True
                watch.remove(pidfd)
            if master in r:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    return
                os.write(stdout, data)
            if stdin in r:
                data = os.read(stdin, 65536)
                if not data:
                    watch.remove(stdin)
                else:
                    os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
