"""The first cgroup migration's kernel wait, started early on a thread (as root: create and run with
the systemd driver, exec --cgroup; see :func:`wanted`).

Why: on cgroup v1 the first write to any cgroup.procs takes the threadgroup rwsem for writing, which
waits an RCU grace period (6-14 ms here, longer under load); writes soon after it take ~0.1 ms.
Re-writing our own pid into our own cgroup is a no-op move that pays that wait while the command
parses and plans, so that joining the container's cgroups later does not.  Pure v2 does not need it
(clone3 CLONE_INTO_CGROUP) but it costs nothing there either.

A module of its own, on ``posix`` and ``_thread`` only: it runs right after the global flags are parsed,
before ``os`` (~1 ms with _collections_abc) or the cgroup package are imported, so the wait starts that
much earlier (no ``__future__`` here for the same reason).  cli._main is the one place that decides
(:func:`wanted`): since create's init and exec's process are placed at their birth, the warm-up serves
only the systemd driver and ``exec --cgroup``, and a scan of argv in the launcher ahead of the CLI's
parser (a second reading of the global flags on every create, run and exec) no longer paid.
"""
import posix

_warmup: tuple | None = None
_procs: str | None = None        # what the warm-up writes to (None: no warm-up in this process)


def _own_procs() -> str | None:
    """cgroup.procs of our own cgroup in the first v1 hierarchy (None: no v1 hierarchy to warm)."""
    try:
        fd = posix.open("/proc/self/cgroup", posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = posix.read(fd, 65536).decode(errors="replace")
    finally:
        posix.close(fd)
    for line in text.split("\n"):
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[1] not in ("", "name=systemd"):
            procs = f"/sys/fs/cgroup/{parts[1]}{parts[2].rstrip('/')}/cgroup.procs"
            try:
                posix.stat(procs)
            except OSError:
                return None
            return procs
    return None


COMMANDS = ("create", "run", "exec")


def wanted(command: str | None, systemd: bool, rest: list[str]) -> bool:
    """Does this command line join a cgroup through cgroup.procs, as root?  create and run with the
    systemd driver (it makes the scope with the init's pid), exec with --cgroup (a sub-cgroup); else
    the process is placed at its birth, which needs no warm-up (cgroups.base.birth_fds).  Never with
    --preserve-fds: the warm-up briefly holds an fd, which could sit where a preserved fd is expected
    to be missing and fool the check that they are all open.  A non-root caller may not write its
    cgroup.procs.  A word of ``rest`` taken for a flag wrongly only starts or skips the no-op write."""
    if command == "exec":
        joins = any(r == "--cgroup" or r.startswith("--cgroup=") for r in rest)
    else:
        joins = systemd and command in COMMANDS
    return joins and not any(r.startswith("--preserve-fds") for r in rest) and posix.geteuid() == 0


def warm_attach_lock() -> None:
    """Start, on a thread, the kernel's slow path for the first cgroup migration (module docstring)."""
    global _warmup, _procs
    if _warmup is not None:          # already started
        return
    procs = _own_procs()
    if procs is None:
        return
    _procs = procs
    import _thread
    done = _thread.allocate_lock()
    done.acquire()
    tid = [0]

    def touch() -> None:
        tid[0] = _thread.get_native_id()
        try:
            _write_own_pid(procs)
        finally:
            done.release()
    _warmup = (done, tid)
    _thread.start_new_thread(touch, ())


def join_warmup() -> None:
    """Wait until the warm-up thread is gone, also from the kernel's thread list.  Called before every
    clone(): the CLI then has no thread alive at clone time (issue 10 item 8: glibc's set*id wrappers
    in the child would wait for a thread it does not have; the C core also uses raw syscalls, which
    keeps API users with threads of their own safe)."""
    global _warmup
    if _warmup is None:
        return
    done, tid = _warmup
    _warmup = None
    done.acquire()
    task = f"/proc/self/task/{tid[0]}"
    for i in range(2400):            # the OS thread ends a moment after its Python part (~0.1 ms)
        if not tid[0]:
            return
        try:
            posix.stat(task)
        except OSError:
            return
        if i < 400:
            posix.sched_yield()      # let it finish now: a sleep's timer slack would be most of the wait
        else:
            import time
            time.sleep(0.0002)


def rearm() -> None:
    """The warm-up's no-op write once more, now (create: right before the clone, the cgroup made).  The
    fast path lasts one grace period past the last write; from the end of the warm-up's wait, the
    cgroup's mkdirs and limits, the clone and a state save come before the init's join, and under
    load they outlasted it: the join then paid a second full wait with the child waiting.  Written
    here the window covers the clone and the save; a write after a lapsed window pays the wait here
    instead of at the join.  Nothing without a warm-up (pure v2, rootless, API callers)."""
    if _procs is not None:
        _write_own_pid(_procs)


def _write_own_pid(procs: str) -> None:
    """The no-op move itself: our own pid into our own cgroup (a failure only costs the speed-up)."""
    try:
        fd = posix.open(procs, posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, str(posix.getpid()).encode())
        finally:
            posix.close(fd)
    except OSError:
        pass
