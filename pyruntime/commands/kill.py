"""pyruntime kill ID [SIGNAL]: signal names with or without SIG, or numbers; default SIGTERM."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
import signal

from ..errors import RuntimeFailure

HELP = "send a signal to the container's init process"


def parse_signal(text: str) -> int:
    if text.isdigit():
        n = int(text)
        if 0 < n < 65:
            return n
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
        if sig is not None:
            return int(sig)
    raise RuntimeFailure(f"unknown signal {text!r}")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", "-a", action="store_true")
    p.add_argument("id")
    p.add_argument("signal", nargs="?", default="SIGTERM")


def run(args: argparse.Namespace) -> int:
    from ..container import kill
    kill(args.root, args.id, parse_signal(args.signal), args.all)
    return 0
