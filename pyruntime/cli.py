"""Command line: runc's global flags, then one subcommand whose module is imported only when used.

Each subcommand lives in ``pyruntime/commands/<name>.py`` and defines::

    HELP = "one line"
    def configure(parser: argparse.ArgumentParser) -> None   # its own flags
    def run(args: argparse.Namespace) -> int                  # exit status

so ``pyruntime state`` never imports what ``create`` needs.
"""

import posix   # not os: see fastos.py (shims call `state`, `kill`, `start`, `delete` constantly)
import sys

from . import args as argparse   # the lean parser; `image` asks for the real one (FULL_ARGPARSE)

# name -> module under pyruntime.commands (aliases share a module)
COMMANDS: dict[str, str] = {
    "create": "create", "start": "start", "run": "run", "state": "state", "kill": "kill",
    "delete": "delete", "list": "list_", "spec": "spec", "exec": "exec_", "ps": "ps",
    "pause": "pause", "resume": "resume", "update": "update", "events": "events",
    "features": "features", "image": "image",
}
# runc has these; pyruntime does not (no CRIU support): a clear error instead of "no such command"
UNSUPPORTED: dict[str, str] = {
    "checkpoint": "checkpoint is not supported by pyruntime (no CRIU support)",
    "restore": "restore is not supported by pyruntime (no CRIU support)",
}

DEFAULT_ROOT = "/run/pyruntime"
# commands that never touch the state directory (no --root check for them)
STATELESS = ("spec", "features", "image", "checkpoint", "restore")


def _global_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyruntime", add_help=False,
                                description="daemonless, runc-compatible OCI container runtime")
    p.add_argument("-h", "--help", action="store_true", help="show help")
    p.add_argument("-v", "--version", action="store_true", help="print the version")
    p.add_argument("--root", default=None, metavar="DIR",
                   help="directory for the containers' state; keep it on a tmpfs (default: "
                        f"{DEFAULT_ROOT}, or $XDG_RUNTIME_DIR/pyruntime for a non-root user)")
    p.add_argument("--log", default=None, metavar="FILE",
                   help="also write log lines (errors, warnings, --debug steps) to FILE (default: stderr only)")
    p.add_argument("--log-format", default="text", choices=["text", "json"], metavar="FORMAT",
                   help="format of the --log lines: 'text' or 'json' (default: %(default)s)")
    p.add_argument("--debug", action="store_true", help="log the steps taken (to --log, else stderr)")
    p.add_argument("--systemd-cgroup", action="store_true",
                   help="use the systemd cgroup driver (cgroupsPath is slice:prefix:name)")
    p.add_argument("--rootless", default="auto", metavar="VALUE",
                   help="ignore cgroup permission errors: 'true', 'false' or 'auto' = when not root "
                        "(default: %(default)s)")
    p.add_argument("--criu", default=None, metavar="PATH",
                   help="accepted for runc compatibility; unused (no checkpoint/restore)")
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


def command_parser(name: str):
    """(module, parser) of subcommand `name`, its flags configured: what `pyruntime NAME` parses with,
    and what `--help`, the man pages and the bash completion are rendered from (pyruntime/docgen.py)."""
    mod = __import__(f"pyruntime.commands.{COMMANDS[name]}", fromlist=["run"])
    if getattr(mod, "FULL_ARGPARSE", False):
        import argparse as full
        sp = full.ArgumentParser(prog=f"pyruntime {name}", description=getattr(mod, "HELP", ""))
    else:
        sp = argparse.ArgumentParser(prog=f"pyruntime {name}", description=getattr(mod, "HELP", ""))
    mod.configure(sp)
    return mod, sp


def global_help() -> str:
    """`pyruntime`, `pyruntime --help`, `pyruntime help`: runc's layout, one line per command."""
    from . import SPEC_VERSION, __version__
    from .helptext import GLOBAL
    rows = [(name, getattr(command_parser(name)[0], "HELP", "")) for name in sorted(COMMANDS)]
    rows.append(("help, h", "show the list of commands, or the help of one command (help COMMAND)"))
    opts = [(argparse.option_label(a), argparse.option_help(a)) for a in _global_parser().arguments
            if not a.positional]
    return (f"NAME:\n   pyruntime - {GLOBAL['name']}\n\nUSAGE:\n   pyruntime [global options] command "
            f"[command options] [arguments...]\n\nDESCRIPTION:\n"
            + "".join(f"   {ln}".rstrip() + "\n" for ln in GLOBAL["description"].strip("\n").split("\n"))
            + f"\nVERSION:\n   {__version__} (runtime-spec {SPEC_VERSION})\n\nCOMMANDS:\n" + argparse.table(rows)
            + "\nGLOBAL OPTIONS:\n" + argparse.table(opts)
            + "\nSee pyruntime(8) and pyruntime-COMMAND(8) for the manual pages.\n")


def command_help(name: str, sp=None) -> str:
    if sp is None:
        sp = command_parser(name)[1]
    if not isinstance(sp, argparse.ArgumentParser):      # the full argparse (image)
        return sp.format_help()
    from .helptext import DETAILS
    return sp.format_help(DETAILS.get(name, ""))


def _help(topic: str | None) -> int:
    """`pyruntime help [COMMAND]`; like runc, an unknown topic is exit status 3."""
    from . import log
    if topic in (None, "help", "h"):
        sys.stdout.write(global_help())
        return 0
    if topic in UNSUPPORTED:
        log.error(UNSUPPORTED[topic])
        return 1
    if topic not in COMMANDS:
        log.error(f"No help topic for '{topic}'")
        return 3
    sys.stdout.write(command_help(topic))
    return 0


def _quiet_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush of what is buffered cannot fail again."""
    fd = posix.open("/dev/null", posix.O_WRONLY)
    posix.dup2(fd, 1)
    posix.close(fd)


# What may end without the interpreter's finalization once main() returned (see launch): commands that
# register nothing at exit, leave no buffered file behind and no thread that needs finishing (create, run
# and exec may leave the cgroup warm-up thread, which only writes our own pid into our own cgroup).
QUICK_EXIT = ("state", "kill", "start", "delete", "list", "pause", "resume", "--version", "create", "run", "exec")
_command: str | None = None      # the command main() ran ("--version" for the flag)


def launch() -> None:
    """The process entry (bin/pyruntime, ``python -m pyruntime``): run the command line, exit.

    Why not just sys.exit(main()): the interpreter's finalization (module teardown, a full collection)
    costs ~1.3 ms of CPU, as much as all of a `state`, and does nothing for a command whose output is
    flushed and whose fds the kernel closes: those (QUICK_EXIT) end with _exit, as a Go runtime does.

    The cyclic collector's first generation runs every 700 net allocations: 5 times in an exec, ~0.4 ms
    of CPU that frees a few dozen objects in a process that lives 20 ms.  A higher threshold keeps it
    out of the short commands and still collects in the long-running ones (run/exec in the foreground
    relaying a terminal, events)."""
    import gc
    gc.set_threshold(100_000, 10, 10)
    status = main()
    if _command in QUICK_EXIT:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass         # main() already dealt with a closed stdout; nothing left to say it on
        posix._exit(status)
    sys.exit(status)


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status.  `pyruntime events | head`, `pyruntime --help | head -1`: when the
    reader leaves, end quietly (status 0), not with a traceback from the interpreter's last flush."""
    try:
        status = _main(argv)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        _quiet_stdout()
        return 0


def _main(argv: list[str] | None) -> int:
    global _command
    argv = sys.argv[1:] if argv is None else argv
    try:
        g = _global_parser().parse_args(argv)
    except argparse.UsageError as e:
        sys.stderr.write(f"{e}\n")      # --log is not known yet: a bad global flag goes to stderr only
        return 1                        # runc (urfave/cli): "Incorrect Usage", status 1
    _command = "--version" if g.version else g.command
    from . import log
    try:
        log.configure(g.log, g.log_format, g.debug)
    except OSError as e:
        log.configure(None)
        log.error(f"--log {g.log}: {posix.strerror(e.errno or 0).lower()}")
        return 1
    if g.version:
        sys.stdout.write(version_text())
        return 0
    if not g.command or g.help:
        # runc prints its help, exit 0, for both (a command after --help is its help topic)
        return _help(g.command if g.command not in (None, "help", "h") else None)
    if g.command in ("help", "h"):
        return _help(g.rest[0] if g.rest else None)
    if g.command in ("create", "run", "exec"):
        # as early as possible: the first cgroup migration's kernel wait overlaps imports and planning
        from .cgwarm import wanted, warm_attach_lock      # posix only: before os and the cgroup package
        if wanted(g.command, g.systemd_cgroup, g.rest):
            warm_attach_lock()
    if g.command not in COMMANDS:
        return _help(g.command)
    mod, sp = command_parser(g.command)
    try:
        args = sp.parse_args(g.rest)
    except argparse.HelpRequested:
        sys.stdout.write(command_help(g.command, sp))
        return 0
    except argparse.UsageError as e:
        log.error(str(e))               # runc: status 1, and the line in --log as well
        return 1
    if g.debug:
        log.debug(f"{g.command}: {' '.join(g.rest)} (root {g.root})")
    args.systemd_cgroup, args.debug = g.systemd_cgroup, g.debug
    args.log, args.log_format, args.command = g.log, g.log_format, g.command
    from .errors import RuntimeFailure
    try:
        cid = getattr(args, "id", None)
        if isinstance(cid, str):
            # one rule on every path (run --image makes a bundle dir named after the id), before
            # anything touches the file system
            from .state import validate_id
            validate_id(cid)
        # rootless.py only when it has something to say: clients pass --root, run as root and leave
        # --rootless at auto (its default there too), and its import is a cost on every shim call
        if g.root is None or g.rootless != "auto" or (posix.geteuid() != 0 and g.command not in STATELESS):
            from . import rootless
            args.root = g.root or rootless.default_root()
            rootless.set_flag(g.rootless)
            if g.command not in STATELESS:
                rootless.check_root(args.root, given=g.root is not None)
        else:
            args.root = g.root
        return int(mod.run(args) or 0)
    except RuntimeFailure as e:
        if g.command == "exec":      # runc: any failure of exec itself is status 255, "exec failed: ..."
            log.error(f"exec failed: {e}")
            return 255
        log.error(str(e))
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        # a host condition no step wrapped (full disk, a file where a directory should be): still
        # one line naming the file and the cause, never a traceback
        log.error(str(RuntimeFailure.from_os(e, g.command)))
        return 1
    except RecursionError:
        log.error(f"{g.command}: input nested too deeply")
        return 1


if __name__ == "__main__":
    launch()
