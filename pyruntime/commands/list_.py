"""pyruntime list [--format table|json] [-q].

Healthy containers are listed whatever else the root holds: a container directory whose state file is
broken (or a symlink, or another container's) is reported on stderr, one line naming the file and the
cause, and left out of the table; a half-made one (its create was killed) is listed as stopped."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
import sys

HELP = "list containers"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", "-f", choices=["table", "json"], default="table", metavar="FORMAT",
                   help="'table' or 'json' (default: table)")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the container ids")


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
        from .. import fastjson as json     # json.dumps's own output, without importing re
        sys.stdout.write((json.dumps(rows) if rows else "null") + "\n")    # runc prints null for none
    else:
        sys.stdout.write(format_table(rows))
    return 0


def format_table(rows: list[dict]) -> str:
    """runc's table: each column as wide as its widest cell plus 3 (at least 12), so 64-character ids
    (containerd's) stay aligned."""
    cols = ("id", "pid", "status", "bundle", "created", "owner")
    table = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    table += [[str(r.get(c, 0 if c == "pid" else "")) for c in cols] for r in rows]
    widths = [max(12, max(len(row[i]) for row in table) + 3) for i in range(len(cols) - 1)]
    return "".join("".join(v.ljust(w) for v, w in zip(row, widths)) + row[-1] + "\n" for row in table)
