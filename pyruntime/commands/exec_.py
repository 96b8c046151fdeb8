"""pyruntime exec: run a process in a running container (runc's flags)."""
from __future__ import annotations

from .. import args as argparse  # the lean parser (pyruntime/args.py)
from .. import fastjson as json   # not json/copy: podman and containerd exec with --process on every call
from ..errors import RuntimeFailure

HELP = "execute a new process inside the container"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--process", "-p", default=None)
    p.add_argument("--detach", "-d", action="store_true")
    p.add_argument("--pid-file", default=None)
    p.add_argument("--console-socket", default=None)
    p.add_argument("--tty", "-t", action="store_true")
    p.add_argument("--cwd", default=None)
    p.add_argument("--env", "-e", action="append", default=[])
    p.add_argument("--user", "-u", default=None)
    p.add_argument("--additional-gids", "-g", action="append", type=int, default=[])
    p.add_argument("--cap", "-c", action="append", default=[])
    p.add_argument("--no-new-privs", action="store_true")
    p.add_argument("--process-label", default=None)
    p.add_argument("--apparmor", default=None)
    p.add_argument("--preserve-fds", type=int, default=0)
    p.add_argument("--cgroup", default=None)
    p.add_argument("--ignore-paused", action="store_true")
    p.add_argument("id")
    p.add_argument("args", nargs=argparse.REMAINDER)


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
    st = state.load(args.root, args.id)
    proc = build_process(args, st.config.get("process", {}))
    return exec_process(args.root, args.id, proc, detach=args.detach, pid_file=args.pid_file,
                        console_socket=args.console_socket, preserve_fds=args.preserve_fds,
                        ignore_paused=args.ignore_paused, cgroup_sub=args.cgroup)
