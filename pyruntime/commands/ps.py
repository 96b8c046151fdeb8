"""``pyruntime ps [--format table|json] ID [PS_ARGS...]``: the container's processes.

json is a bare array of host pids (containerd's runc shim parses exactly that); table runs the host's
``ps`` (default ``-ef``) and keeps the header plus the lines whose PID column is in the container.
"""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
import json
import subprocess
import sys

HELP = "ps displays the processes running inside a container"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--format", default="table", choices=["table", "json"], metavar="FORMAT",
                        help="'table' (ps output) or 'json' (array of pids) (default: table)")
    parser.add_argument("id", help="container id")
    parser.add_argument("ps_args", nargs=argparse.REMAINDER, help="arguments for ps (default -ef)")


def filter_table(output: str, pids: set[int]) -> str:
    """Header plus the rows whose PID column is one of ``pids``."""
    lines = output.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    try:
        col = header.index("PID")
    except ValueError:
        from ..errors import RuntimeFailure
        raise RuntimeFailure("couldn't find PID field in ps output") from None
    out = [lines[0]]
    for line in lines[1:]:
        f = line.split()
        if len(f) > col and f[col].isdigit() and int(f[col]) in pids:
            out.append(line)
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    from .. import state
    from ..cgroups import manager_from_state
    from ..errors import NotRunning, RuntimeFailure
    st = state.load(args.root, args.id)
    if state.status(args.root, st) == "stopped":
        raise NotRunning(args.id)
    if st.cgroup:
        pids = manager_from_state(st.cgroup).pids()
    else:       # a rootless container without a cgroup: the members of its pid namespace
        from ..rootless import pidns_pids
        pids = pidns_pids(st.pid)
    if args.format == "json":
        sys.stdout.write(json.dumps(pids) + "\n")
        return 0
    ps_args = [a for a in args.ps_args if a != "--"] or ["-ef"]
    try:
        res = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise RuntimeFailure("ps: command not found on the host") from None
    if res.returncode != 0:
        raise RuntimeFailure(f"ps {' '.join(ps_args)}: {res.stderr.strip() or 'failed'}")
    sys.stdout.write(filter_table(res.stdout, set(pids)))
    return 0
