"""``pyruntime resume ID``: thaw a container frozen by ``pause``."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
from . import configure_id

HELP = "resume all processes that have been previously paused"
configure = configure_id


def run(args: argparse.Namespace) -> int:
    from ..control import resume
    resume(args.root, args.id)
    return 0
