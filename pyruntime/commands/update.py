"""``pyruntime update [--resources FILE|-] [flags] ID``: change the cgroup limits of a live container.

Flags are runc's; sizes take k/m/g suffixes.  A resources file (LinuxResources JSON, as runc takes) is
read first and flags override its fields.  Only the given fields are written; the rest stay as they are.
"""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
import json
import sys

HELP = "update container resource constraints"

# flag dest -> (section, key, kind); kind: "size" (k/m/g), "int", "str"
_FLAGS: dict[str, tuple[str, str, str]] = {
    "memory": ("memory", "limit", "size"),
    "memory_reservation": ("memory", "reservation", "size"),
    "memory_swap": ("memory", "swap", "size"),
    "kernel_memory": ("memory", "kernel", "size"),
    "kernel_memory_tcp": ("memory", "kernelTCP", "size"),
    "cpu_quota": ("cpu", "quota", "int"),
    "cpu_period": ("cpu", "period", "int"),
    "cpu_shares": ("cpu", "shares", "int"),
    "cpu_burst": ("cpu", "burst", "int"),
    "cpu_idle": ("cpu", "idle", "int"),
    "cpu_rt_period": ("cpu", "realtimePeriod", "int"),
    "cpu_rt_runtime": ("cpu", "realtimeRuntime", "int"),
    "cpuset_cpus": ("cpu", "cpus", "str"),
    "cpuset_mems": ("cpu", "mems", "str"),
    "pids_limit": ("pids", "limit", "int"),
    "blkio_weight": ("blockIO", "weight", "int"),
}
_HELP: dict[str, str] = {
    "memory": "memory limit in bytes (k/m/g suffixes)",
    "memory_reservation": "memory soft limit in bytes",
    "memory_swap": "memory plus swap limit in bytes; -1 for unlimited swap",
    "kernel_memory": "kernel memory limit in bytes (cgroup v1; deprecated by the kernel)",
    "kernel_memory_tcp": "kernel TCP buffer memory limit in bytes (cgroup v1)",
    "cpu_quota": "CPU time in microseconds the container may use per --cpu-period",
    "cpu_period": "length of the CPU accounting period in microseconds",
    "cpu_shares": "relative CPU weight (cgroup v1 shares; converted to cpu.weight on v2)",
    "cpu_burst": "CPU time in microseconds that may be borrowed above the quota",
    "cpu_idle": "1 to give the cgroup the SCHED_IDLE policy, 0 to clear it",
    "cpu_rt_period": "realtime scheduling period in microseconds (cgroup v1)",
    "cpu_rt_runtime": "realtime runtime in microseconds per period (cgroup v1)",
    "cpuset_cpus": "CPUs the container may use: 0-3, 1,3",
    "cpuset_mems": "memory nodes the container may use: 0-1",
    "pids_limit": "maximum number of processes; -1 for no limit",
    "blkio_weight": "relative block IO weight, 10 to 1000",
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-r", "--resources", default=None, metavar="FILE",
                        help="path to a file with the new resources (LinuxResources JSON), '-' for stdin")
    for dest in _FLAGS:
        flag = "--" + dest.replace("_", "-")
        names = [flag] + (["--cpu-share"] if dest == "cpu_shares" else [])
        parser.add_argument(*names, dest=dest, default=None, metavar="VALUE", help=_HELP[dest])
    parser.add_argument("--l3-cache-schema", default=None, metavar="SCHEMA", help="not supported (no intelRdt)")
    parser.add_argument("--mem-bw-schema", default=None, metavar="SCHEMA", help="not supported (no intelRdt)")
    parser.add_argument("id", help="container id")


def build_resources(args: argparse.Namespace) -> dict:
    """The partial linux.resources dict the flags and file describe."""
    from ..cgroups.resources import parse_size
    from ..errors import RuntimeFailure
    r: dict = {}
    if args.resources:
        try:
            if args.resources == "-":
                r = json.load(sys.stdin)
            else:
                with open(args.resources) as f:
                    r = json.load(f)
        except (OSError, ValueError) as e:
            raise RuntimeFailure(f"cannot read resources: {e}", step="update", path=args.resources) from None
        if not isinstance(r, dict):
            raise RuntimeFailure("resources must be a JSON object", step="update", path=args.resources)
    for dest, (sect, key, kind) in _FLAGS.items():
        v = getattr(args, dest, None)
        if v is None or v == "":
            continue
        try:
            val: object = parse_size(v) if kind == "size" else int(v) if kind == "int" else v
        except ValueError:
            raise RuntimeFailure(f"invalid value for --{dest.replace('_', '-')}: {v!r}") from None
        r.setdefault(sect, {})[key] = val
    if args.l3_cache_schema or args.mem_bw_schema:
        raise RuntimeFailure("intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported")
    return r


def run(args: argparse.Namespace) -> int:
    from .. import state
    from ..cgroups import manager_from_state
    from ..errors import NotRunning
    r = build_resources(args)
    st = state.load(args.root, args.id)
    with state.locked(args.root, args.id):
        if state.status(args.root, st) == "stopped" or not st.cgroup:
            raise NotRunning(args.id)
        manager_from_state(st.cgroup).update(r)
    return 0
