"""pyruntime start: release a created container's init."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)

HELP = "start a created container"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="container id")


def run(args: argparse.Namespace) -> int:
    from ..control import start
    start(args.root, args.id)
    return 0
