"""pyruntime run: create + start, then stay in the foreground: forward signals, return the exit
status (128+signal when killed), delete the container afterwards unless --keep."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
import os

import _signal as signal   # not `signal`: its enum conversion costs milliseconds per call

from .create import add_create_flags

HELP = "create and run a container"
FORWARD = sorted(s for s in signal.valid_signals() if s not in (
    signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU) and s < 32)


def configure(p: argparse.ArgumentParser) -> None:
    add_create_flags(p)
    p.add_argument("--detach", "-d", action="store_true")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--image", default=None, help="run an OCI image layout LAYOUT[:REF] instead of a bundle")


def exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class Forwarder:
    """Forward the signals we receive to our child `pid` (through a pidfd) from now on.

    Installed as soon as the pid exists, before the process is released: a signal that arrives
    while `start` is still returning must reach the container, not kill us (runc does the same)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.old = {s: signal.signal(s, self._forward) for s in FORWARD}

    def _forward(self, sig: int, _frame) -> None:
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass

    def retarget(self, pid: int) -> None:
        """The intermediate process handed over to the final one (MSG_PID)."""
        pidfd = os.pidfd_open(pid)
        os.close(self.pidfd)
        self.pid, self.pidfd = pid, pidfd

    def wait(self) -> int:
        """The child's exit status (128+signal when killed)."""
        _, status = os.waitpid(self.pid, 0)
        return exit_status(status)

    def close(self) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)
        self.old = {}
        os.close(self.pidfd)


def run(args: argparse.Namespace) -> int:
    from .. import container, spec
    from .create import options
    opts = options(args)
    bundle = args.bundle
    if args.image:
        from .. import image
        bundle = os.path.join(args.root, ".bundles", args.id)
        os.makedirs(os.path.dirname(bundle), exist_ok=True)
        image.make_bundle(args.image, bundle)
        opts.owned["bundle"] = bundle
    ours = None
    relay = None
    try:
        terminal = bool(spec.load(bundle)["process"].get("terminal"))
        if not terminal and not args.detach:
            from ..stdiorelay import Relay
            relay = Relay()          # our terminal fds become pipes for the container (TIOCSTI)
            if relay.active:
                opts.stdio = relay.child
            else:
                relay = None
        if terminal and not args.console_socket and not args.detach:
            from ..ttyproxy import console_pair
            ours, theirs = console_pair()
            opts.console_fd = theirs.fileno()
            try:
                st = container.create(args.root, args.id, bundle, opts)
            finally:
                theirs.close()
        else:
            st = container.create(args.root, args.id, bundle, opts)
        if relay is not None:
            relay.close_child_ends()
    except BaseException:
        if relay is not None:
            relay.close()
        if opts.owned.get("bundle"):
            import shutil
            shutil.rmtree(opts.owned["bundle"], ignore_errors=True)
        raise
    master = None
    fwd = None if args.detach else Forwarder(st.pid)
    try:
        if ours is not None:
            # the pty exists since create: size it before the user program can ask for its size
            from ..ttyproxy import copy_winsize, recv_master
            master = recv_master(ours)
            copy_winsize(master)
        container.start(args.root, args.id)
    except BaseException:
        if master is not None:
            os.close(master)
        if relay is not None:
            relay.close()
        if fwd is not None:
            fwd.close()
        container.delete(args.root, args.id, force=True)
        raise
    if args.detach:
        return 0
    try:
        if master is not None:
            from ..ttyproxy import proxy
            pidfd = os.pidfd_open(st.pid)
            try:
                proxy(master, pidfd)
            finally:
                os.close(pidfd)
                os.close(master)
        elif relay is not None:
            relay.run(fwd.pidfd)
        return fwd.wait()
    finally:
        if relay is not None:
            relay.close()
        fwd.close()
        if not args.keep:
            container.delete(args.root, args.id, force=True)
