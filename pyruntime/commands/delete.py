"""pyruntime delete [--force] ID."""

from .. import args as argparse  # the lean parser (pyruntime/args.py)

HELP = "delete a container and everything it owned"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", "-f", action="store_true", help="kill the container first if it is still running")
    p.add_argument("id", help="container id")


def run(args: argparse.Namespace) -> int:
    from ..control import delete
    delete(args.root, args.id, args.force)
    return 0
