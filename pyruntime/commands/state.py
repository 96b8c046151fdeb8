"""pyruntime state: the runtime-spec state JSON of a container (called constantly by shims: keep lean)."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
import sys

HELP = "output the state of a container"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="container id")


def run(args: argparse.Namespace) -> int:
    from .. import fastjson as json
    from .. import state
    st = state.load(args.root, args.id)
    sys.stdout.write(json.dumps(state.oci_state(args.root, st), indent=2) + "\n")
    return 0
