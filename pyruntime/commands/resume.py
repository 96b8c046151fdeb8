"""``pyruntime resume ID``: thaw a container frozen by ``pause``."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)

HELP = "resume all processes that have been previously paused"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="container id")


def run(args: argparse.Namespace) -> int:
    from .. import state
    from ..cgroups import manager_from_state
    from ..errors import NotRunning, RuntimeFailure
    st = state.load(args.root, args.id)
    with state.locked(args.root, args.id):
        status = state.status(args.root, st)
        if status == "stopped":
            raise NotRunning(args.id)
        if status != "paused":
            raise RuntimeFailure("container not paused")
        manager_from_state(st.cgroup).thaw()
    return 0
