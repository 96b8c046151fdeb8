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
    from .. import state
    from ..cgroups import manager_from_state
    from ..errors import NotRunning, RuntimeFailure
    st = state.load(args.root, args.id)
    with state.locked(args.root, args.id):
        status = state.status(args.root, st)
        if status not in ("running", "created"):
            raise NotRunning(args.id)
        if not st.cgroup:
            raise RuntimeFailure("container has no cgroup to freeze", step="pause")
        manager_from_state(st.cgroup).freeze()
    return 0
