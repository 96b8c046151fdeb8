"""Foreground `run` / `exec` without a pty: the container never gets the caller's terminal.

Why: a process holding an fd of a terminal can push input into it with the TIOCSTI ioctl (with
CAP_SYS_ADMIN even when it is not its controlling terminal); whatever it pushes runs as the
operator, on the host, when the command returns.  So every one of our stdio fds that is a terminal
is replaced, for the container, by a pipe whose other end we keep, and bytes are copied between the
pipe and the terminal until the process exits (runc does the same for its foreground non-tty mode).
Stdio that is not a terminal (files, pipes, sockets: no ioctl reaches a terminal through them) is
passed through unchanged, so `run > file` stays zero-copy and clients that detach (`create`,
`run -d`, `exec -d`, shims) keep runc's pass-through behaviour.

os + select only (lifecycle path, see ARCHITECTURE.md).
"""
from __future__ import annotations

import os
import select

DRAIN_IDLE = 0.05   # after the process exited: stop once its pipes were idle this long (daemons keep them)


class Relay:
    """Pipes for the terminal fds among 0, 1, 2; ``child`` holds the container's ends (-1 = pass through)."""

    def __init__(self) -> None:
        self.child = [-1, -1, -1]
        self.ours = [-1, -1, -1]
        for i in range(3):
            try:
                tty = os.isatty(i)
            except OSError:
                tty = False
            if not tty:
                continue
            r, w = os.pipe()     # O_CLOEXEC: only the dup2 in the container's process keeps them
            r, w = _high(r), _high(w)
            self.child[i], self.ours[i] = (r, w) if i == 0 else (w, r)

    @property
    def active(self) -> bool:
        return any(fd >= 0 for fd in self.ours)

    def close_child_ends(self) -> None:
        """Once the container process holds them (after spawn/create): else we never see EOF."""
        for i, fd in enumerate(self.child):
            if fd >= 0:
                os.close(fd)
                self.child[i] = -1

    def close(self) -> None:
        self.close_child_ends()
        for i, fd in enumerate(self.ours):
            if fd >= 0:
                os.close(fd)
                self.ours[i] = -1

    def run(self, pidfd: int) -> None:
        """Copy until the process (pidfd) has exited and its output pipes are drained or idle."""
        stdin_w, out_r, err_r = self.ours
        pending = b""
        reading_stdin = stdin_w >= 0
        if stdin_w >= 0:
            os.set_blocking(stdin_w, False)
        outputs = {fd: i for fd, i in ((out_r, 1), (err_r, 2)) if fd >= 0}
        exited = False
        while True:
            rlist = list(outputs)
            if not exited:
                rlist.append(pidfd)
            if reading_stdin and not pending:
                rlist.append(0)
            wlist = [stdin_w] if pending and stdin_w >= 0 else []
            if exited and not outputs:
                return
            r, w, _ = select.select(rlist, wlist, [], DRAIN_IDLE if exited else None)
            if not r and not w:
                return                       # exited and idle
            if pidfd in r:
                exited, reading_stdin, pending = True, False, b""
            for fd in [fd for fd in r if fd in outputs]:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    del outputs[fd]
                    continue
                _write_all(outputs[fd], data)
            if 0 in r:
                data = os.read(0, 65536)
                if data:
                    pending += data
                else:
                    reading_stdin = False
            if w or (pending and stdin_w >= 0):
                try:
                    n = os.write(stdin_w, pending)
                    pending = pending[n:]
                except BlockingIOError:
                    pass
                except OSError:               # the container closed its stdin
                    pending, reading_stdin = b"", False
            if stdin_w >= 0 and not reading_stdin and not pending:
                os.close(stdin_w)            # EOF for the container
                self.ours[0] = stdin_w = -1


def _high(fd: int) -> int:
    """Never hand out 0-2 as a pipe end (if our own stdio was closed): the dup2 onto 0-2 would clash."""
    if fd > 2:
        return fd
    import fcntl
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return new


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except OSError:
            return           # our terminal went away: keep draining, drop the bytes
        data = data[n:]
