"""``pyruntime pause ID``: freeze every process of the container (cgroup v2 cgroup.freeze, v1 freezer).

Returns only once the cgroup reports frozen, so a client that pauses and then checkpoints or inspects
never races still-running tasks.
"""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
from . import configure_id

HELP = "pause all processes inside the container"
configure = configure_id


def run(args: argparse.Namespace) -> int:
    from ..control import pause
    pause(args.root, args.id)
    return 0
