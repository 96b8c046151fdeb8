"""pyruntime exec: run a process in a running container (runc's flags)."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
from .. import fastjson as json   # not json/copy: podman and containerd exec with --process on every call
from ..errors import RuntimeFailure

HELP = "execute a new process inside the container"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--process", "-p", default=None, metavar="FILE",
                   help="a runtime-spec process JSON to run (instead of ARGS and the flags below)")
    p.add_argument("--detach", "-d", action="store_true", help="return at once, leaving the process running")
    p.add_argument("--pid-file", default=None, metavar="FILE", help="write the process's pid to FILE")
    p.add_argument("--console-socket", default=None, metavar="PATH",
                   help="AF_UNIX socket that receives the pseudo-terminal master (with --tty)")
    p.add_argument("--tty", "-t", action="store_true", help="give the process a pseudo-terminal")
    p.add_argument("--cwd", default=None, metavar="DIR", help="working directory inside the container")
    p.add_argument("--env", "-e", action="append", default=[], metavar="NAME=VALUE",
                   help="add an environment variable (repeatable)")
    p.add_argument("--user", "-u", default=None, metavar="UID[:GID]", help="run as this user and group id")
    p.add_argument("--additional-gids", "-g", action="append", type=int, default=[], metavar="GID",
                   help="an additional group id (repeatable)")
    p.add_argument("--cap", "-c", action="append", default=[], metavar="CAP",
                   help="add a capability (CAP_NET_ADMIN ...) to the process's sets (repeatable)")
    p.add_argument("--no-new-privs", action="store_true", help="set no_new_privs for the process")
    p.add_argument("--process-label", default=None, metavar="LABEL", help="SELinux label of the process")
    p.add_argument("--apparmor", default=None, metavar="PROFILE", help="AppArmor profile of the process")
    p.add_argument("--preserve-fds", type=int, default=0, metavar="N",
                   help="pass N more open file descriptors (3 .. 3+N-1) to the process")
    p.add_argument("--pidfd-socket", default=None, metavar="PATH",
                   help="AF_UNIX socket that receives a pidfd of the new process (SCM_RIGHTS)")
    p.add_argument("--cgroup", action="append", default=[], metavar="[CONTROLLER[,CONTROLLER...]:]PATH",
                   help="run the process in an existing sub-cgroup of the container's: PATH for every "
                        "hierarchy, or per v1 controller (repeatable); cgroup v2: PATH only")
    p.add_argument("--ignore-paused", action="store_true", help="allow exec into a paused container")
    p.add_argument("id", help="container id")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="command",
                   help="the program to run and its arguments")


def _copy(value: object) -> object:
    """A deep copy of JSON data (dicts, lists, scalars): all copy.deepcopy would do here, without its import."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def build_process(args: argparse.Namespace, base: dict) -> dict:
    """--process FILE as given; otherwise the container's process with the flags applied (runc)."""
    if args.process:
        try:
            with open(args.process) as f:
                raw = f.read()
        except (OSError, ValueError) as e:
            raise RuntimeFailure(str(e), step="exec --process", path=args.process) from None
        try:
            return json.loads(raw)
        except ValueError:
            import json as full   # only to word the error (line and column)
            try:
                full.loads(raw)
                msg = "malformed JSON"
            except ValueError as e:
                msg = str(e)
            raise RuntimeFailure(msg, step="exec --process", path=args.process) from None
    if not args.args:
        raise RuntimeFailure("exec: no command given (pass ARGS or --process)")
    proc = _copy(base)
    proc["args"] = list(args.args)
    proc["terminal"] = args.tty
    proc["env"] = list(proc.get("env", [])) + list(args.env)
    if args.cwd:
        proc["cwd"] = args.cwd
    user = proc.setdefault("user", {})
    if args.user:
        uid, _, gid = args.user.partition(":")
        try:
            user["uid"] = int(uid)
            user["gid"] = int(gid) if gid else 0
        except ValueError:
            raise RuntimeFailure(f"--user {args.user!r}: expected UID[:GID]") from None
    if args.additional_gids:
        user["additionalGids"] = args.additional_gids
    if args.cap:
        caps = proc.setdefault("capabilities", {})
        for s in ("bounding", "effective", "permitted", "ambient"):
            caps[s] = list(dict.fromkeys(list(caps.get(s, [])) + args.cap))
    if args.no_new_privs:
        proc["noNewPrivileges"] = True
    if args.apparmor:
        proc["apparmorProfile"] = args.apparmor
    if args.process_label:
        proc["selinuxLabel"] = args.process_label
    return proc


def run(args: argparse.Namespace) -> int:
    from .. import state
    from ..execproc import exec_process
    st = state.load(args.root, args.id)      # first, as runc: an unknown id is the error before --process's
    sub = None
    if args.cgroup:
        from ..cgroups import parse_sub
        sub = parse_sub(args.cgroup)
    proc = build_process(args, st.config.get("process", {}))
    return exec_process(args.root, st, proc, detach=args.detach, pid_file=args.pid_file,
                        console_socket=args.console_socket, preserve_fds=args.preserve_fds,
                        ignore_paused=args.ignore_paused, pidfd_socket=args.pidfd_socket, sub_cgroup=sub)
