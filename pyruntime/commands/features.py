"""``pyruntime features``: print the runtime-spec features document (see pyruntime/features.py).

No flags, like runc: clients run it once to learn what config.json may contain.
"""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
import json
import sys

HELP = "show the enabled features (runtime-spec features document, probed on this build and kernel)"


def configure(parser: argparse.ArgumentParser) -> None:
    """No options of its own; the global ones (--log, --debug) still apply."""


def run(args: argparse.Namespace) -> int:
    from ..features import build
    sys.stdout.write(json.dumps(build(), indent=4) + "\n")
    return 0
