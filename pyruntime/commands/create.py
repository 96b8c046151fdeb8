"""pyruntime create: set the container up and leave its init waiting for `start`."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)

HELP = "create a container"


def add_create_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by create and run (runc's names)."""
    p.add_argument("--bundle", "-b", default=".")
    p.add_argument("--pid-file", default=None)
    p.add_argument("--console-socket", default=None)
    p.add_argument("--no-pivot", action="store_true")
    p.add_argument("--no-new-keyring", action="store_true")
    p.add_argument("--preserve-fds", type=int, default=0)
    p.add_argument("id")


def configure(p: argparse.ArgumentParser) -> None:
    add_create_flags(p)


def options(args: argparse.Namespace):
    from ..container import CreateOptions
    return CreateOptions(pid_file=args.pid_file, console_socket=args.console_socket, no_pivot=args.no_pivot,
                         preserve_fds=args.preserve_fds, systemd_cgroup=args.systemd_cgroup,
                         no_new_keyring=args.no_new_keyring)


def run(args: argparse.Namespace) -> int:
    from ..container import create
    create(args.root, args.id, args.bundle, options(args))
    return 0
