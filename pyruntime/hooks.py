"""OCI lifecycle hooks run by the runtime (everything but ``startContainer``, which the waiting init runs
inside the container after `start`, just before execve: ``_native/trampoline/trampoline.c``).

Semantics (runtime-spec "POSIX-platform Hooks", with runc's choices where the spec is silent):

- Hooks of one kind run in the order of the config, one at a time.  Each gets the state JSON on stdin
  (from a memfd, so a hook that never reads stdin cannot block us on a full pipe).
- ``args`` absent -> argv is ``[path]``; ``env`` absent -> the runtime's own environment is inherited
  (runc does this through Go's exec.Cmd), present (even empty) -> exactly that environment.
- The working directory is the bundle when it exists (runc runs from the bundle directory).
- A hook past ``timeout`` seconds is killed with its whole process group and counts as failed.
- A hook that exits leaving a daemon that still holds its stdout/stderr does not block the lifecycle: we
  read its output until the hook itself exits, then give stragglers a short grace period and stop.
- stdout and stderr go line by line to the runtime log (:func:`pyruntime.log.info`), never to the
  container's stdio; the last lines of stderr are kept for the error message.
- ``createContainer`` hooks (``mntns_fd`` given) are resolved in the runtime namespace (we resolve the
  path before the switch) and executed in the container's mount namespace: the forked child calls
  setns(CLONE_NEWNS) before execve.  The core calls them before pivot_root, so the container's mount
  namespace still shows the host tree and the resolved path names the same file.
- Failure of a hook raises :class:`RuntimeFailure` whose text names the kind, the hook's index and path,
  the exit status (or signal, or timeout) and the tail of its stderr.  For ``poststop`` (whose failures
  the spec makes warnings that must not stop the remaining hooks) every hook runs and one failure
  listing all failed hooks is raised at the end; the core logs it as a warning.
"""
from __future__ import annotations

# Lean on purpose (no json, subprocess, selectors, signal, typing): podman adds OCI hooks from its hooks
# directories to every create, so this module runs on the lifecycle path.  subprocess alone imports
# signal, selectors, threading and contextlib (~12 ms); the fork/exec below is what it would do for us.
import os
import select
import time

import _signal

from . import fastjson as json
from . import log
from .errors import ConfigError, RuntimeFailure

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
CLONE_NEWNS = 0x00020000
_GRACE = 0.5            # seconds we keep reading output of a hook's leftover children after it exits
_TAIL_LINES = 8         # stderr lines quoted in an error
_TAIL_CHARS = 1500


# --- validation ------------------------------------------------------------------------------------

def _validate_one(hook: object, where: str) -> None:
    if not isinstance(hook, dict):
        raise ConfigError(where, "must be an object")
    path = hook.get("path")
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}.path", "is required and must be a non-empty string")
    if not os.path.isabs(path):
        raise ConfigError(f"{where}.path", f"must be an absolute path, got {path!r}")
    if "\0" in path:
        raise ConfigError(f"{where}.path", "contains a NUL byte")
    for key in ("args", "env"):
        if key in hook and hook[key] is not None:
            val = hook[key]
            if not isinstance(val, list):
                raise ConfigError(f"{where}.{key}", "must be an array of strings")
            for j, item in enumerate(val):
                if not isinstance(item, str) or "\0" in item:
                    raise ConfigError(f"{where}.{key}[{j}]", "must be a string without NUL bytes")
                if key == "env" and "=" not in item:
                    raise ConfigError(f"{where}.env[{j}]", f"must be KEY=VALUE, got {item!r}")
    if "timeout" in hook and hook["timeout"] is not None:
        t = hook["timeout"]
        if isinstance(t, bool) or not isinstance(t, int) or t <= 0:
            raise ConfigError(f"{where}.timeout", f"must be an integer greater than zero, got {t!r}")


def validate_hooks(hooks_section: object) -> None:
    """Check the ``hooks`` object of config.json; ConfigError names the JSON path of the bad field.

    Unknown hook kinds are ignored, as runc ignores unknown fields (a newer spec may add kinds).
    """
    if hooks_section is None:
        return
    if not isinstance(hooks_section, dict):
        raise ConfigError("hooks", "must be an object")
    for kind in KINDS:
        lst = hooks_section.get(kind)
        if lst is None:
            continue
        if not isinstance(lst, list):
            raise ConfigError(f"hooks.{kind}", "must be an array")
        for i, hook in enumerate(lst):
            _validate_one(hook, f"hooks.{kind}[{i}]")


# --- running ---------------------------------------------------------------------------------------

def _setns(fd: int, nstype: int) -> None:
    """setns() for Python 3.11 (no os.setns): the C core's helper, else libc through ctypes.

    The ctypes fallback only exists so this module works while the C core is being built; it is called
    in a forked child where nothing else runs.
    """
    if hasattr(os, "setns"):
        os.setns(fd, nstype)  # type: ignore[attr-defined]
        return
    try:
        from ._core import lib  # type: ignore[import-not-found]
        fn = getattr(lib, "pyrt_setns", None)
    except ImportError:
        fn = None
    if fn is not None:
        rc = fn(fd, nstype)
        if rc != 0:  # 0 or -errno
            err = -rc if rc < 0 else rc
            raise OSError(err, os.strerror(err), "setns")
        return
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), "setns")


def _state_stdin(state: dict) -> int:
    """The state JSON in a sealed-size memfd positioned at 0: stdin that never blocks the runtime."""
    data = json.dumps(state).encode()
    fd = os.memfd_create("pyruntime-hook-state", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


def _resolve(path: str, where: str) -> str:
    """Resolve the hook executable in the runtime namespace, with a useful error if it cannot run."""
    real = os.path.realpath(path)
    if not os.path.exists(real):
        raise RuntimeFailure("no such file or directory", step=f"{where}", path=path)
    if os.path.isdir(real) or not os.access(real, os.X_OK):
        raise RuntimeFailure("permission denied (not an executable file)", step=where, path=path)
    return real


# canonical names (signal.Signals would give these; its enum costs milliseconds to import)
_SIGNAL_NAMES = {v: k for k, v in sorted(vars(_signal).items(), reverse=True)
                 if k.startswith("SIG") and not k.startswith("SIG_") and isinstance(v, int)
                 and k not in ("SIGIOT", "SIGCLD", "SIGPOLL", "SIGRTMIN", "SIGRTMAX")}


def _describe_status(rc: int) -> str:
    if rc < 0:
        return f"killed by {_SIGNAL_NAMES.get(-rc, f'signal {-rc}')}"
    return f"exit status {rc}"


class _Output:
    """Line-splits a hook's stdout/stderr into the log and keeps the stderr tail for errors."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.partial = {"stdout": b"", "stderr": b""}
        self.tail: list[str] = []

    def feed(self, stream: str, data: bytes) -> None:
        buf = self.partial[stream] + data
        *lines, rest = buf.split(b"\n")
        # a runaway hook without newlines must not make us hold unbounded memory
        if len(rest) > 65536:
            lines.append(rest)
            rest = b""
        self.partial[stream] = rest
        for raw in lines:
            self._line(stream, raw)

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self._line(stream, rest)
            self.partial[stream] = b""

    def _line(self, stream: str, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        log.info(f"{self.label} {stream}: {text}")
        if stream == "stderr" and text.strip():
            self.tail.append(text)
            del self.tail[:-_TAIL_LINES]

    def stderr_tail(self) -> str:
        text = " | ".join(self.tail)
        return text[-_TAIL_CHARS:]


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, _signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, _signal.SIGKILL)


class _ExecFailed(Exception):
    """The hook could not be started: what the child reported before exec."""

    def __init__(self, errno_: int, text: str) -> None:
        super().__init__(text)
        self.errno = errno_


def _child(real: str, argv: list[str], env: dict | None, cwd: str, bundle: str, mntns_fd: int | None,
           stdin_fd: int, out_w: int, err_w: int, status_w: int) -> None:
    """Between fork and exec (never returns): new session, stdio, the container's mount namespace for
    createContainer hooks, the working directory, default SIGPIPE/SIGXFSZ (Python ignores them), exec."""
    what = "exec"
    try:
        os.setsid()
        os.dup2(stdin_fd, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        if mntns_fd is not None:
            what = "cannot enter the container's mount namespace"
            _setns(mntns_fd, CLONE_NEWNS)
            what = "exec"
            try:                             # setns reset the cwd to the namespace's root
                os.chdir(bundle or "/")
            except OSError:
                os.chdir("/")
        else:
            os.chdir(cwd)
        # no runtime fd (a preserved one, the state lock, mntns_fd) leaks into the hook; status_w closes on exec
        os.closerange(3, status_w)
        os.closerange(status_w + 1, max(os.sysconf("SC_OPEN_MAX"), 1 << 20))
        _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
        os.execve(real, argv, os.environ if env is None else env)
    except BaseException as e:   # report to the parent through the CLOEXEC pipe, then die quietly
        try:
            err = getattr(e, "errno", 0) or 0
            os.write(status_w, f"{err}:{what}".encode(errors="replace")[:4000])
        finally:
            os._exit(127)


def _spawn(real: str, argv: list[str], env: dict | None, cwd: str, bundle: str, mntns_fd: int | None,
           stdin_fd: int) -> tuple[int, int, int]:
    """Start the hook: (pid, stdout read end, stderr read end); _ExecFailed if it could not start."""
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
        if pid == 0:
            _child(real, argv, env, cwd, bundle, mntns_fd, stdin_fd, out_w, err_w, status_w)
    except OSError:
        for fd in (out_r, out_w, err_r, err_w, status_r, status_w):
            os.close(fd)
        raise
    for fd in (out_w, err_w, status_w):
        os.close(fd)
    try:
        chunks = []
        while True:                          # EOF once the child exec'd (CLOEXEC) or died
            chunk = os.read(status_r, 4096)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(status_r)
    if chunks:
        os.waitpid(pid, 0)
        os.close(out_r)
        os.close(err_r)
        err, _, what = b"".join(chunks).decode(errors="replace").partition(":")
        raise _ExecFailed(int(err) if err.isdigit() else 0, what)
    return pid, out_r, err_r


def _run_one(kind: str, index: int, hook: dict, state: dict, mntns_fd: int | None) -> None:
    where = f"{kind} hook #{index}"
    path = hook["path"]
    real = _resolve(path, where)
    argv = list(hook.get("args") or [path])
    env_list = hook.get("env")
    env = None if env_list is None else dict(e.split("=", 1) for e in env_list)
    timeout = hook.get("timeout") or None
    bundle = state.get("bundle") or ""
    cwd = bundle if bundle and os.path.isdir(bundle) else "/"

    label = f"{where} {path}"
    stdin_fd = _state_stdin(state)
    try:
        pid, out_r, err_r = _spawn(real, argv, env, cwd, bundle, mntns_fd, stdin_fd)
    except _ExecFailed as e:
        if e.errno and str(e) == "exec":
            raise RuntimeFailure.from_os(OSError(e.errno, os.strerror(e.errno)), step=where, path=path) from None
        text = f"{e}: {os.strerror(e.errno).lower()}" if e.errno else str(e)
        raise RuntimeFailure(text, step=where, path=path) from None
    except OSError as e:
        raise RuntimeFailure.from_os(e, step=where, path=path) from None
    finally:
        os.close(stdin_fd)

    out = _Output(label)
    deadline = time.monotonic() + timeout if timeout else None
    timed_out = False
    exited_at: float | None = None
    rc: int | None = None
    streams = {out_r: "stdout", err_r: "stderr"}
    poller = select.poll()
    for fd in streams:
        os.set_blocking(fd, False)
        poller.register(fd, select.POLLIN)
    pidfd = os.pidfd_open(pid)
    poller.register(pidfd, select.POLLIN)
    watching = {out_r, err_r, pidfd}

    def reap() -> int:
        _, status = os.waitpid(pid, 0)
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

    try:
        while True:
            now = time.monotonic()
            if exited_at is None and deadline is not None and now >= deadline:
                timed_out = True
                _kill_group(pid)
                rc = reap()
                watching.discard(pidfd)
                poller.unregister(pidfd)
                exited_at = now
            if exited_at is not None and (now - exited_at >= _GRACE or not (watching - {pidfd})):
                break
            wait = 0.2
            if deadline is not None and exited_at is None:
                wait = min(wait, max(deadline - now, 0))
            if exited_at is not None:
                wait = min(wait, max(_GRACE - (now - exited_at), 0))
            for fd, _ in poller.poll(wait * 1000):
                if fd == pidfd:
                    poller.unregister(pidfd)
                    watching.discard(pidfd)
                    rc = reap()
                    exited_at = time.monotonic()
                    continue
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if data:
                    out.feed(streams[fd], data)
                else:
                    poller.unregister(fd)
                    watching.discard(fd)
            if exited_at is not None and not (watching - {pidfd}):
                break
    finally:
        os.close(pidfd)
        if rc is None:  # we are unwinding from an exception: never leave a hook behind
            _kill_group(pid)
            rc = reap()
        os.close(out_r)
        os.close(err_r)
        out.flush()

    if timed_out:
        what = f"timed out after {timeout}s (killed)"
    elif rc != 0:
        what = _describe_status(rc)
    else:
        log.debug(f"{label}: ok")
        return
    tail = out.stderr_tail()
    msg = what + (f"; stderr: {tail}" if tail else "")
    raise RuntimeFailure(msg, step=where, path=path)


def run_hooks(kind: str, hooks: list[dict] | None, state: dict, *, mntns_fd: int | None = None) -> None:
    """Run the hooks of one kind in order with ``state`` on stdin; raise RuntimeFailure on failure.

    ``mntns_fd`` (createContainer): an fd of the container's mount namespace the hooks execute in.
    """
    if kind not in KINDS or kind == "startContainer":
        raise ValueError(f"run_hooks: unsupported hook kind {kind!r}")
    if not hooks:
        return
    if not isinstance(hooks, list):
        raise ConfigError(f"hooks.{kind}", "must be an array")
    for i, hook in enumerate(hooks):
        _validate_one(hook, f"hooks.{kind}[{i}]")
    failures: list[RuntimeFailure] = []
    for i, hook in enumerate(hooks):
        try:
            _run_one(kind, i, hook, state, mntns_fd)
        except RuntimeFailure as e:
            if kind != "poststop":
                raise
            failures.append(e)
    if failures:
        if len(failures) == 1:
            raise failures[0]
        raise RuntimeFailure("; ".join(str(f) for f in failures),
                             step=f"{len(failures)} poststop hooks failed")
