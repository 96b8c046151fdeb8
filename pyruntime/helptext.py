"""Long help: the DESCRIPTION of `pyruntime --help`, `pyruntime CMD --help` and the man pages.

Only imported when help is printed or the man pages are generated (pyruntime/docgen.py); the one-line
summaries are each command's ``HELP`` and the options' texts their ``help=``, next to their definitions.
A command's text should say what the arguments mean and what the command leaves behind.
"""
from __future__ import annotations

GLOBAL = {
    "name": "daemonless, runc-compatible OCI container runtime",
    "description": """\
pyruntime runs containers described by OCI bundles: a directory holding config.json (runtime-spec 1.3.0)
and, usually, the root filesystem it names. It keeps no daemon: each command reads the container's state
from --root, acts, and exits, so podman (conmon), containerd's runc shim and CRI-O can use it in place
of runc.

A typical life cycle:

    pyruntime spec --bundle DIR                     # a default config.json
    pyruntime create --bundle DIR ID                # set up, the process waits
    pyruntime start ID                              # run the user process
    pyruntime kill ID TERM; pyruntime delete ID

or `pyruntime run --bundle DIR ID` for all of it in the foreground.
Errors are one line on stderr (and in --log) and exit status 1; `exec` fails with 255 as runc does.""",
}

DETAILS: dict[str, str] = {
    "create": """\
Sets up the container described by BUNDLE/config.json (namespaces, cgroup, mounts, rootfs) and leaves
its init process waiting: the user program runs only at `pyruntime start <container-id>`.
The id must be unique under --root. Nothing is left behind when create fails.""",
    "start": """\
Runs the user program of a container made by `create`. Fails unless the container's status is
"created".""",
    "run": """\
Creates and starts the container in one step and, without --detach, stays in the foreground: signals it
receives are forwarded to the container, its exit status is returned (128+N when killed by signal N), and
the container is deleted afterwards unless --keep is given. With process.terminal set, the terminal is
given through --console-socket, or else proxied to this command's own stdin/stdout.
With --image, the bundle is made from an OCI image (layout, archive or a stored image) instead, and the
options marked "--image only" (environment, working directory, user, mounts, terminal) adjust it.""",
    "state": """\
Prints the runtime-spec state of the container as JSON: ociVersion, id, status (creating, created,
running, paused, stopped), pid, bundle, created, owner and annotations.""",
    "kill": """\
Sends a signal to the container's init process (or, with --all, to every process in its cgroup).
SIGNAL is a name with or without the SIG prefix (KILL, SIGTERM) or a number; the default is SIGTERM.""",
    "delete": """\
Removes a stopped container: its state, cgroup and anything else it owned; runs the poststop hooks.
A container that is still running is refused unless --force is given, which kills it first.""",
    "list": """\
Lists the containers under --root: ID, PID, STATUS, BUNDLE, CREATED and OWNER, or their state
documents as a JSON array (`null` when there are none, as runc prints).""",
    "spec": """\
Writes a default config.json (the same defaults as runc) into the bundle directory; refuses to
overwrite an existing one. Edit it, put a root filesystem at its root.path, then create or run.""",
    "exec": """\
Runs an additional process in a running container: the command and its arguments after the container
id, or a whole process description (runtime-spec process JSON) with --process. Without --detach the
exit status is the process's; a failure to start it is exit status 255.""",
    "ps": """\
Shows the processes in the container: the host's ps output (default arguments -ef) filtered to the
container's processes, or with --format json the bare list of their host pids.""",
    "pause": "Freezes every process of the container (cgroup freezer); returns once they are frozen.",
    "resume": "Thaws the processes of a container frozen by `pause`.",
    "update": """\
Changes the cgroup limits of a running container. Either a LinuxResources JSON document (--resources
FILE, '-' for stdin) or the flags below; the flags override the document's fields, and fields not
given keep their current values. Sizes take k, m or g suffixes.""",
    "events": """\
Streams the container's events as JSON lines until it stops: a stats event every --interval and an
oom event whenever the kernel's OOM killer acts inside the container. With --stats, prints one stats
event and exits.""",
    "features": """\
Prints the runtime-spec features document: what config.json may contain with this build on this kernel
(namespaces, capabilities, seccomp actions and architectures, mount options, cgroup and hook support).""",
}
