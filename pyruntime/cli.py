"""Command line: runc's global flags, then one subcommand whose module is imported only when used.

Each subcommand lives in ``pyruntime/commands/<name>.py`` and defines::

    HELP = "one line"
    def configure(parser: argparse.ArgumentParser) -> None   # its own flags
    def run(args: argparse.Namespace) -> int                  # exit status

so ``pyruntime state`` never imports what ``create`` needs.
"""
from __future__ import annotations

import sys

from . import args as argparse   # the lean parser; `image` asks for the real one (FULL_ARGPARSE)

# name -> module under pyruntime.commands (aliases share a module)
COMMANDS: dict[str, str] = {
    "create": "create", "start": "start", "run": "run", "state": "state", "kill": "kill",
    "delete": "delete", "list": "list_", "spec": "spec", "exec": "exec_", "ps": "ps",
    "pause": "pause", "resume": "resume", "update": "update", "events": "events",
    "features": "features", "image": "image", "checkpoint": "checkpoint", "restore": "checkpoint",
}

DEFAULT_ROOT = "/run/pyruntime"


def _global_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyruntime", add_help=False,
                                description="daemonless, runc-compatible OCI container runtime")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("-v", "--version", action="store_true")
    p.add_argument("--root", default=DEFAULT_ROOT, help="state directory (default %(default)s)")
    p.add_argument("--log", default=None, help="log file")
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true")
    p.add_argument("--rootless", default="auto")
    p.add_argument("--criu", default=None)
    p.add_argument("command", nargs="?")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def version_text() -> str:
    """runc's shape (podman shows it verbatim in `podman info`)."""
    from . import SPEC_VERSION, __version__
    text = f"pyruntime version {__version__}\nspec: {SPEC_VERSION}\npython: {sys.version.split()[0]}\n"
    from .libversion import libseccomp_version   # without loading the C core (see there)
    version = libseccomp_version()
    if version:
        text += f"libseccomp: {version}\n"
    return text


def _usage() -> str:
    names = ", ".join(sorted(COMMANDS))
    return (f"usage: pyruntime [--root DIR] [--log FILE] [--log-format text|json] [--debug] "
            f"[--systemd-cgroup] COMMAND [ARGS]\ncommands: {names}\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        g = _global_parser().parse_args(argv)
    except argparse.UsageError as e:
        sys.stderr.write(f"{e}\n")
        return 2
    from . import log
    log.configure(g.log, g.log_format, g.debug)
    if g.version:
        sys.stdout.write(version_text())
        return 0
    if not g.command:
        (sys.stdout if g.help else sys.stderr).write(_usage())
        return 0 if g.help else 1
    if g.command in ("create", "run", "exec") and not any(a.startswith("--preserve-fds") for a in g.rest):
        # as early as possible: the first cgroup migration's kernel wait overlaps imports and planning.
        # Not with --preserve-fds: the warm-up briefly holds an fd, which could sit where a preserved fd
        # is expected to be missing and fool the check that they are all open.
        from .cgroups import warm_attach_lock
        warm_attach_lock()
    modname = COMMANDS.get(g.command)
    if modname is None:
        log.error(f"No help topic for '{g.command}'")
        return 1
    mod = __import__(f"pyruntime.commands.{modname}", fromlist=["run"])
    if getattr(mod, "FULL_ARGPARSE", False):
        import argparse as full
        sp = full.ArgumentParser(prog=f"pyruntime {g.command}", description=getattr(mod, "HELP", ""))
    else:
        sp = argparse.ArgumentParser(prog=f"pyruntime {g.command}", description=getattr(mod, "HELP", ""))
    mod.configure(sp)
    try:
        args = sp.parse_args(g.rest)
    except argparse.UsageError as e:
        sys.stderr.write(f"{e}\n")
        return 0 if str(e).startswith("usage:") else 2
    args.root, args.systemd_cgroup, args.debug = g.root, g.systemd_cgroup, g.debug
    args.log, args.log_format, args.command = g.log, g.log_format, g.command
    from .errors import RuntimeFailure
    try:
        return int(mod.run(args) or 0)
    except RuntimeFailure as e:
        log.error(str(e))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
