"""``pyruntime events [--stats] [--interval 5s] ID``: runc's event stream.

``--stats`` prints one ``{"type":"stats","id":ID,"data":{...}}`` and exits.  Without it a stats event is
printed every interval and an ``{"type":"oom","id":ID}`` event as soon as the kernel OOM-kills inside the
container (the oom_kill counter of memory.events on v2, memory.oom_control on v1, polled), until the
container stops.
"""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
import json
import re
import sys
import time

HELP = "display container events such as OOM notifications, cpu, memory, and IO usage statistics"
_POLL = 0.2


def parse_duration(text: str) -> float:
    """Go-style durations as runc takes them: 5s, 500ms, 1m30s, 1h; a bare number means seconds."""
    t = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise ValueError(f"invalid duration {text!r}")
    total = sum(float(n) * units[u] for n, u in parts)
    if total <= 0:
        raise ValueError("duration must be greater than 0")
    return total


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval", default="5s", metavar="DURATION",
                        help="time between stats events: 5s, 500ms, 1m30s (default: 5s)")
    parser.add_argument("--stats", action="store_true", help="display the container's stats then exit")
    parser.add_argument("id", help="container id")


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from .. import state
    from ..cgroups import manager_from_state
    from ..errors import NotRunning, RuntimeFailure
    try:
        interval = parse_duration(args.interval)
    except ValueError as e:
        raise RuntimeFailure(f"--interval: {e}") from None
    st = state.load(args.root, args.id)
    if state.status(args.root, st) == "stopped" or not st.cgroup:
        raise NotRunning(args.id)
    mgr = manager_from_state(st.cgroup)
    if args.stats:
        _emit({"type": "stats", "id": args.id, "data": mgr.stats()})
        return 0
    ooms = mgr.oom_kills() or 0
    next_stats = time.monotonic()
    try:
        while state.alive(st):
            now = time.monotonic()
            n = mgr.oom_kills()
            if n is not None and n > ooms:
                _emit({"type": "oom", "id": args.id})
                ooms = n
            if now >= next_stats:
                try:
                    _emit({"type": "stats", "id": args.id, "data": mgr.stats()})
                except OSError:
                    break          # the cgroup went away with the container
                next_stats = now + interval
            time.sleep(min(_POLL, interval))
    except BrokenPipeError:
        return 0
    return 0
