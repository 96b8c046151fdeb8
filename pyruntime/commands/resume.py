"""``pyruntime resume ID``: thaw a container frozen by ``pause``."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)

HELP = "resume all processes that have been previously paused"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="container id")


def run(args: argparse.Namespace) -> int:
    from ..control import resume
    resume(args.root, args.id)
    return 0
