"""pyruntime kill ID [SIGNAL]: signal names with or without SIG, or numbers; default SIGTERM."""

import _signal   # not `signal`: its enum conversion costs ~5 ms on every shim `kill`

from .. import args as argparse  # the lean parser (pyruntime/args.py)

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
        sig = getattr(_signal, name, None)      # also SIG_DFL etc.: refused below, not signals
        if isinstance(sig, int) and sig in _signal.valid_signals():
            return sig
    raise RuntimeFailure(f"unknown signal {text!r}")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", "-a", action="store_true", help="signal every process in the container's cgroup")
    p.add_argument("id", help="container id")
    p.add_argument("signal", nargs="?", default="SIGTERM", help="signal name (KILL, SIGKILL) or number")


def run(args: argparse.Namespace) -> int:
    from ..control import kill
    kill(args.root, args.id, parse_signal(args.signal), args.all)
    return 0
