"""One module per subcommand (see pyruntime/cli.py for the contract)."""

from .. import args as argparse  # the lean parser (pyruntime/args.py), already loaded by the cli


def configure_id(parser: argparse.ArgumentParser) -> None:
    """``configure`` of the commands whose one argument is the container id (start, state, pause, resume)."""
    parser.add_argument("id", help="container id")
