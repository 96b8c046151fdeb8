"""pyruntime start: release a created container's init."""

from .. import args as argparse  # the lean parser (pyruntime/args.py)
from . import configure_id

HELP = "start a created container"
configure = configure_id


def run(args: argparse.Namespace) -> int:
    from ..control import start
    start(args.root, args.id)
    return 0
