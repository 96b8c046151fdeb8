"""pyruntime spec [--bundle DIR]: write a default config.json (runc's defaults)."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
import json
import os

from ..errors import RuntimeFailure

HELP = "create a new specification file"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", "-b", default=".", metavar="DIR",
                   help="where to write config.json (default: the current directory)")
    p.add_argument("--rootless", action="store_true",
                   help="a config for an unprivileged user: a user namespace mapping root to the caller")


def run(args: argparse.Namespace) -> int:
    from ..defaults import default_config
    path = os.path.join(args.bundle, "config.json")
    if os.path.exists(path):
        raise RuntimeFailure("File config.json exists. Remove it first.")
    cfg = default_config()
    if args.rootless:
        from ..rootless import to_rootless
        to_rootless(cfg)        # what `runc spec --rootless` writes
    with open(path, "w") as f:
        json.dump(cfg, f, indent="\t")
    return 0
