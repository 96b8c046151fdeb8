"""pyruntime list [--format table|json] [-q]."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
import json
import sys

HELP = "list containers"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", "-f", choices=["table", "json"], default="table")
    p.add_argument("--quiet", "-q", action="store_true")


def run(args: argparse.Namespace) -> int:
    from .. import state
    from ..errors import RuntimeFailure
    rows = []
    for cid in state.list_ids(args.root):
        try:
            st = state.load(args.root, cid)
        except RuntimeFailure:
            continue
        rows.append(state.oci_state(args.root, st))
    if args.quiet:
        sys.stdout.write("".join(r["id"] + "\n" for r in rows))
    elif args.format == "json":
        sys.stdout.write(json.dumps(rows) + "\n")
    else:
        fmt = "{:<20} {:<8} {:<10} {:<40} {:<32} {}\n"
        sys.stdout.write(fmt.format("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"))
        for r in rows:
            sys.stdout.write(fmt.format(r["id"], r["pid"], r["status"], r["bundle"], r["created"], r["owner"]))
    return 0
