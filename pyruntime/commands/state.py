"""pyruntime state: the runtime-spec state JSON of a container (called constantly by shims: keep lean)."""

from .. import args as argparse  # the lean parser (pyruntime/args.py)
from . import configure_id
import sys

HELP = "output the state of a container"
configure = configure_id


def run(args: argparse.Namespace) -> int:
    from .. import fastjson as json
    from .. import state
    st = state.load(args.root, args.id)
    sys.stdout.write(json.dumps(state.oci_state(args.root, st), indent=2) + "\n")
    return 0
