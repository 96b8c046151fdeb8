"""pyruntime create: set the container up and leave its init waiting for `start`."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)

HELP = "create a container"


def add_create_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by create and run (runc's names)."""
    p.add_argument("--bundle", "-b", default=".", metavar="DIR",
                   help="the bundle: the directory holding config.json (default: the current directory)")
    p.add_argument("--pid-file", default=None, metavar="FILE",
                   help="write the pid of the container's init process to FILE")
    p.add_argument("--console-socket", default=None, metavar="PATH",
                   help="AF_UNIX socket that receives the pseudo-terminal master (with process.terminal)")
    p.add_argument("--no-pivot", action="store_true",
                   help="move the rootfs with MS_MOVE and chroot instead of pivot_root (ramdisk roots)")
    p.add_argument("--no-new-keyring", action="store_true",
                   help="keep the caller's session keyring instead of giving the container a new one")
    p.add_argument("--preserve-fds", type=int, default=0, metavar="N",
                   help="pass N more open file descriptors (3 .. 3+N-1, after $LISTEN_FDS) to the process")
    p.add_argument("id", help="the new container's id, unique under --root")


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
