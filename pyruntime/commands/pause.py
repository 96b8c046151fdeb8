"""``pyruntime pause ID``: freeze every process of the container (cgroup v2 cgroup.freeze, v1 freezer).

Returns only once the cgroup reports frozen, so a client that pauses and then checkpoints or inspects
never races still-running tasks.
"""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)

HELP = "pause all processes inside the container"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="container id")


def run(args: argparse.Namespace) -> int:
    from ..control import pause
    pause(args.root, args.id)
    return 0
