"""pyruntime run: create + start, then stay in the foreground: forward signals, return the exit
status (128+signal when killed), delete the container afterwards unless --keep."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
import os


from .create import add_create_flags

HELP = "create and run a container"
from ..protocol import FORWARD, Forwarder, exit_status  # noqa: F401,E402  (kept importable from here)

def configure(p: argparse.ArgumentParser) -> None:
    add_create_flags(p)
    p.add_argument("--detach", "-d", action="store_true", help="return once the container runs, leaving it running")
    p.add_argument("--keep", action="store_true", help="do not delete the container after it exits")
    p.add_argument("--image", default=None, metavar="IMAGE",
                   help="run an image (LAYOUT[:REF], ARCHIVE[:REF] or a stored image) instead of a bundle")
    # --image only: the image's defaults, changed
    p.add_argument("--env", "-e", action="append", default=[], help="NAME=VALUE (repeatable)")
    p.add_argument("--workdir", "-w", default=None, metavar="DIR", help="working directory (--image only)")
    p.add_argument("--user", "-u", default=None, help="USER[:GROUP] (names from the image's /etc/passwd)")
    p.add_argument("--mount", action="append", default=[], help="type=bind,source=SRC,target=DST[,readonly]")
    p.add_argument("--volume", "-v", action="append", default=[], help="SRC:DST[:ro|rw]")
    p.add_argument("--read-only", action="store_true", help="a read-only rootfs (default: writable)")
    p.add_argument("--tty", "-t", action="store_true", help="give the process a terminal")
    p.add_argument("--image-store", default=None, help="layer store (default: ROOT/.images)")
    p.add_argument("--platform", default=None, help="os/arch[/variant] (default: this host)")
    p.add_argument("--max-expansion", type=float, default=None,
                   help="a layer may unpack to RATIO x its compressed size (default 50, at least 64 MiB; 0: no limit)")
    p.add_argument("--tls-verify", default=None, choices=["true", "false"],
                   help="pulling a missing image: false accepts any certificate and plain HTTP")
    p.add_argument("--authfile", default=None, help="pulling a missing image: credentials file")
    p.add_argument("process_args", nargs=argparse.REMAINDER, metavar="command",
                   help="with --image: the program and arguments to run instead of the image's")


_IMAGE_ONLY = (("env", "--env"), ("workdir", "--workdir"), ("user", "--user"), ("mount", "--mount"),
               ("volume", "--volume"), ("read_only", "--read-only"), ("tty", "--tty"),
               ("image_store", "--image-store"), ("platform", "--platform"), ("max_expansion", "--max-expansion"),
               ("tls_verify", "--tls-verify"), ("authfile", "--authfile"),
               ("process_args", "a command after the id"))


def _no_image_flags(args: argparse.Namespace) -> None:
    for dest, flag in _IMAGE_ONLY:
        if getattr(args, dest, None):
            from ..errors import RuntimeFailure
            raise RuntimeFailure(f"{flag} applies to run --image only; edit the bundle's config.json instead")


def _image_bundle(args: argparse.Namespace) -> str:
    """Make the bundle of ``run --image`` (see pyruntime/image/runimage.py)."""
    from .. import log
    from ..image import DEFAULT_MAX_EXPANSION
    from ..image.progress import Progress
    from ..image.runimage import Overrides, prepare
    cmd = list(args.process_args or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    o = Overrides(command=cmd, env=args.env, workdir=args.workdir, user=args.user,
                  mounts=list(args.mount) + list(args.volume), read_only=args.read_only, tty=args.tty)
    ratio = DEFAULT_MAX_EXPANSION if args.max_expansion is None else args.max_expansion
    pull_opts = {"tls_verify": None if args.tls_verify is None else args.tls_verify == "true",
                 "authfile": args.authfile}
    return prepare(args.root, args.id, args.image, o, store_path=args.image_store, platform=args.platform,
                   max_expansion=ratio, progress=Progress(), warn=log.warning, pull_opts=pull_opts)


def _any_tty() -> bool:
    """Is one of our stdio fds a terminal (the only case stdiorelay.Relay has work: shims and
    scripts give files and pipes, and the relay's module is then not even loaded)?"""
    for fd in range(3):
        try:
            if os.isatty(fd):
                return True
        except OSError:
            pass
    return False


def run(args: argparse.Namespace) -> int:
    from .. import container, spec
    from .create import options
    opts = options(args)
    opts.for_run = True
    bundle = args.bundle
    if args.image:
        bundle = _image_bundle(args)
        opts.owned["bundle"] = bundle
    else:
        _no_image_flags(args)
    ours = None
    relay = None
    try:
        cfg = spec.load(bundle)
        terminal = bool(cfg["process"].get("terminal"))
        if not terminal and not args.detach and _any_tty():
            from ..stdiorelay import Relay
            relay = Relay()          # our terminal fds become pipes for the container (TIOCSTI)
            if relay.active:
                opts.stdio = relay.child
            else:
                relay = None
        if terminal and not args.console_socket and not args.detach:
            from ..ttyproxy import console_pair, need_terminal
            need_terminal()
            ours, theirs = console_pair()
            opts.console_fd = theirs.fileno()
            try:
                st = container.create(args.root, args.id, bundle, opts, cfg=cfg)
            finally:
                theirs.close()
        else:
            st = container.create(args.root, args.id, bundle, opts, cfg=cfg)
        if relay is not None:
            relay.close_child_ends()
    except BaseException:
        if relay is not None:
            relay.close()
        if opts.owned.get("bundle"):
            from ..image.overlay import remove_bundle
            remove_bundle(opts.owned["bundle"])
        raise
    master = None
    fwd = None if args.detach else Forwarder(st.pid)
    try:
        if ours is not None:
            # the pty exists since create: size it before the user program can ask for its size
            from ..ttyproxy import copy_winsize, recv_master
            master = recv_master(ours)
            copy_winsize(master)
        # MAINPID for NOTIFY_SOCKET: in the foreground we stand for the container (runc)
        container.start(args.root, args.id, None if args.detach else os.getpid())
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
        status = fwd.wait()
        from .. import log
        log.debug(f"run {args.id}: process pid {st.pid} exited, status {status}")
        return status
    finally:
        if relay is not None:
            relay.close()
        fwd.close()
        if not args.keep:
            container.delete(args.root, args.id, force=True)
