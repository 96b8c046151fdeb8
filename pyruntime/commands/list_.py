"""pyruntime list [--format table|json] [-q].

Healthy containers are listed whatever else the root holds: a container directory whose state file is
broken (or a symlink, or another container's) is reported on stderr, one line naming the file and the
cause, and left out of the table; a half-made one (its create was killed) is listed as stopped."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
import sys

HELP = "list containers"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", "-f", choices=["table", "json"], default="table")
    p.add_argument("--quiet", "-q", action="store_true")


def run(args: argparse.Namespace) -> int:
    from .. import log, state
    from ..errors import ContainerNotFound, RuntimeFailure
    rows = []
    for cid in state.list_ids(args.root):
        try:
            st = state.load(args.root, cid)
        except ContainerNotFound:
            # no state file: a create under way (it holds the lock) or one that was killed early
            busy = state.lock_busy(args.root, cid)
            rows.append({"ociVersion": "", "id": cid, "status": "creating" if busy else "stopped", "pid": 0,
                         "bundle": "", "rootfs": "", "created": "", "owner": ""})
            continue
        except RuntimeFailure as e:
            log.warning(f"container {cid}: {e} (delete --force {cid} removes it)")
            continue
        rows.append(state.oci_state(args.root, st))
    if args.quiet:
        sys.stdout.write("".join(r["id"] + "\n" for r in rows))
    elif args.format == "json":
        import json
        sys.stdout.write(json.dumps(rows) + "\n")
    else:
        fmt = "{:<20} {:<8} {:<10} {:<40} {:<32} {}\n"
        sys.stdout.write(fmt.format("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"))
        for r in rows:
            sys.stdout.write(fmt.format(r["id"], r["pid"], r["status"], r["bundle"], r["created"], r["owner"]))
    return 0
