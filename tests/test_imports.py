"""The lean start-up rule, checked with what clients really send.

Shims call `state`/`kill`/`start`/`delete` constantly and `create`/`exec` for every container, so an
import of `re`, `json`, `typing`... on those paths is latency on every call (see docs/ARCHITECTURE.md).
Each test replays one client's call sequence (argv shapes from podman 4.3.1/conmon and containerd 1.6's
shim, their recorded configs from benchmarks/client_configs/) against real containers, with the
interpreter's ``-X importtime`` on, and asserts which modules each call imported.  No timings.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from pyrt_testenv import CG_PARENT, LAUNCHER, ROOT, ROOTFS, cgroup_dirs

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import client_configs  # noqa: E402

# What no lifecycle call may import (the project's rule, plus their usual heavy companions).
FORBIDDEN = {"re", "json", "enum", "dataclasses", "typing", "socket", "copy", "argparse", "subprocess",
             "shutil", "contextlib", "selectors", "threading", "inspect", "ast", "hashlib", "ctypes",
             "importlib", "signal", "tempfile", "locale", "pyroute2"}
# ... and what the calls that do not start a process must not even load: the C core.
NO_CORE = {"_cffi_backend", "pyruntime._core", "pyruntime.seccomp", "pyruntime.plan", "pyruntime.spec"}
SMALL = ("state", "kill", "start", "delete", "--version", "state-unknown", "delete-gone")
# ... nor `os` (~1 ms: posixpath, stat, _collections_abc; pyruntime/fastos.py has what they need), nor what
# only create, a populated cgroup or a shared one needs: a stopped container's empty cgroup is removed
# from its record without the drivers (cgroups.remove_if_empty), and a running one's freezer is read the
# same way (state.py).
NO_OS = {"os", "posixpath", "genericpath", "stat", "_collections_abc", "struct", "_struct",
         "pyruntime.container", "pyruntime.rootless", "pyruntime.cgshare", "pyruntime.hooks", "pyruntime.notify",
         "pyruntime.cgroups.fs1", "pyruntime.cgroups.fs2", "pyruntime.cgroups.base", "pyruntime.cgroups.layout",
         "pyruntime.cgroups.lazy", "pyruntime.cgroups.systemd", "pyruntime.cgroups.sdbus", "pyruntime.protocol",
         # the modules these calls load have no `from __future__ import annotations`: its import (the
         # module __future__) costs as much as one of them, for annotations Python 3.11 evaluates anyway
         "__future__"}
# ... and each of them only the pieces its own work needs
ONLY = {"_socket": ("start",),                                               # the start handshake
        "pyruntime.syncmsg": ("start",),                                     # ... (the protocol's header)
        "pyruntime.cgroups": ("delete",),                                    # its empty cgroup's removal
        "fcntl": ("start", "delete"),                                        # the container's lock
        "pyruntime.control": ("kill", "start", "delete", "delete-gone"),
        "_json": ("state", "kill", "start", "delete", "state-unknown"),     # (the error is logged as JSON)
        "pyruntime.state": ("state", "kill", "start", "delete", "state-unknown", "delete-gone")}
# a hook of the config's runs through hooks.py, which may use os (podman's OCI hooks directories)
HOOK_CALLS = {"start": "poststart", "delete": "poststop"}


def _interpreter() -> list[str]:
    """The launcher's own interpreter and flags (its shebang), so we measure exactly what clients run."""
    with open(LAUNCHER) as f:
        first = f.readline()
    assert first.startswith("#!"), f"{LAUNCHER}: no shebang"
    return first[2:].split()


def imports(argv: list[str], *, check: bool = True) -> set[str]:
    """Modules imported by one runtime call (``-X importtime`` lines on stderr)."""
    log = f"/tmp/pyrt-imports-{uuid.uuid4().hex[:8]}"
    try:
        with open(log, "w+b") as err:
            cp = subprocess.run([*_interpreter(), "-X", "importtime", LAUNCHER, *argv], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, timeout=60)
            err.seek(0)
            text = err.read().decode(errors="replace")
    finally:
        os.unlink(log)
    mods = {ln.split("|")[-1].strip() for ln in text.splitlines() if ln.startswith("import time:")}
    mods.discard("imported package")
    if check:
        other = "\n".join(ln for ln in text.splitlines() if not ln.startswith("import time:"))
        assert cp.returncode == 0, f"pyruntime {' '.join(argv)} -> {cp.returncode}: {other}"
    assert mods, f"no -X importtime output for {argv}"
    return mods


# ... and create/run load only what the clients' configs use: neither sends hooks (unless the variant adds
# them), netDevices, a memory policy, NOTIFY_SOCKET or an image; only a pure cgroup v2 host converts cpu shares.
NOT_FOR_CREATE = ({"math"} if not os.path.exists("/sys/fs/cgroup/cgroup.controllers") else set()) | {
                  "pyruntime.netdevices", "pyruntime.mempolicy", "pyruntime.notify", "pyruntime.image",
                  "pyruntime.cgroups.stats", "pyruntime.cgroups.systemd", "pyruntime.cgroups.sdbus", "json"}


def _check(call: str, mods: set[str], hooks: bool = False) -> None:
    bad = sorted(mods & FORBIDDEN)
    assert not bad, f"`{call}` imported {bad}"
    if call in ("create", "run"):
        unneeded = sorted(mods & (NOT_FOR_CREATE | (set() if hooks else {"pyruntime.hooks"})))
        assert not unneeded, f"`{call}` with a client's config imported {unneeded}, which that config does not use"
    if call in SMALL:
        core = sorted(mods & NO_CORE)
        assert not core, f"`{call}` loaded {core}, which it does not need"
        lean = NO_OS - ({"pyruntime.hooks", "os", "posixpath", "genericpath", "stat", "_collections_abc", "__future__"}
                        if hooks and call in HOOK_CALLS else set())
        heavy = sorted(mods & lean)
        assert not heavy, f"`{call}` imported {heavy}, which it does not need"
        extra = sorted(m for m, calls in ONLY.items() if m in mods and call not in calls)
        assert not extra, f"`{call}` imported {extra}, which only {[ONLY[m] for m in extra]} need"


@pytest.fixture
def world(tmp_path):
    root = f"/run/pyruntime-imports-{uuid.uuid4().hex[:8]}"
    made: list[str] = []
    yield root, tmp_path, made
    for cid in made:
        subprocess.run([LAUNCHER, "--root", root, "delete", "--force", cid], capture_output=True, timeout=60)
    shutil.rmtree(root, ignore_errors=True)
    for d in cgroup_dirs(f"{CG_PARENT}/imports"):
        for sub, _, _ in sorted(os.walk(d), key=lambda t: -len(t[0])):
            try:
                os.rmdir(sub)
            except OSError:
                pass


def _bundle(tmp_path, client: str, name: str, args: list[str], hooks: bool = False) -> str:
    cfg = client_configs.create_config(client, ROOTFS, f"{CG_PARENT}/imports/{name}", args)
    if hooks:   # what podman adds from its OCI hooks directories: every kind the runtime runs itself
        true = shutil.which("true") or "/bin/true"
        cfg["hooks"] = {k: [{"path": true, "args": ["true", k], "timeout": 10}]
                        for k in ("prestart", "createRuntime", "createContainer", "poststart", "poststop")}
    return client_configs.write_bundle(str(tmp_path / name), cfg)


def _pid_exited(pidfile: str) -> bool:
    try:
        pid = int(open(pidfile).read())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return True
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize("variant", [*client_configs.CLIENTS, "podman+hooks"])
def test_lifecycle_imports_with_client_configs(world, variant):
    root, tmp, made = world
    client, hooks = variant.split("+")[0], variant.endswith("+hooks")
    cid = f"imp-{client}-{uuid.uuid4().hex[:6]}"
    bundle = _bundle(tmp, client, cid, ["sleep", "100"], hooks)
    log = str(tmp / "oci-log")
    # the global flags each client puts in front (podman: JSON log on create/exec; containerd: on every call)
    if client == "podman":
        g_all, g_log = ["--root", root], ["--root", root, "--log-format=json", "--log", log]
    else:
        g_all = g_log = ["--root", root, "--log", log, "--log-format", "json"]
    proc_file = str(tmp / "process.json")
    with open(proc_file, "w") as f:
        json.dump(client_configs.exec_process(client, ["true"]), f)

    seen: dict[str, set[str]] = {}
    made.append(cid)
    seen["create"] = imports(g_log + ["create", "--bundle", bundle, "--pid-file", str(tmp / "pidfile"), cid])
    seen["state"] = imports(g_all + ["state", cid])
    seen["start"] = imports(g_all + ["start", cid])
    seen["exec"] = imports(g_log + ["exec", "--pid-file", str(tmp / "exec.pid"), "--process", proc_file,
                                    "--detach", cid])
    seen["kill"] = imports(g_all + ["kill", cid, "9"])
    for _ in range(500):
        if _pid_exited(str(tmp / "pidfile")):
            break
        time.sleep(0.01)
    seen["delete"] = imports(g_all + ["delete", cid])
    seen["delete-gone"] = imports(g_all + ["delete", "--force", cid])   # containerd's second delete
    seen["state-unknown"] = imports(g_log + ["state", cid], check=False)  # an error, logged as JSON
    rid = f"imp-run-{client}-{uuid.uuid4().hex[:6]}"
    made.append(rid)
    seen["run"] = imports(g_log + ["run", "--bundle", _bundle(tmp, client, rid, ["/bin/true"], hooks), rid])
    seen["--version"] = imports(["--version"])

    assert "pyruntime.container" in seen["create"] and "pyruntime.commands.exec_" in seen["exec"]
    if client == "podman":   # its profile went through the cache: compiled by the first create only
        assert {"pyruntime.seccomp", "pyruntime.seccomp_cache"} <= seen["create"]
        for call in ("exec", "run"):     # cache hits: the compiler (seccomp.py) is not even imported
            assert "pyruntime.seccomp_cache" in seen[call] and "pyruntime.seccomp" not in seen[call]
    # exec plans and spawns one process: none of create's machinery (container.py: rootfs, hooks, undo;
    # it is imported only to forward a seccomp listener, which no client config asks for)
    assert not {"pyruntime.container", "pyruntime.cgshare", "pyruntime.hooks"} & seen["exec"]
    # nor rootless.py as root with --root given (~180 KB of peak RSS: issue 14's RSS target is runc's)
    assert "pyruntime.rootless" not in seen["exec"]
    # it joins the container's cgroups from state.json's record (cgroups.base.join, the drivers' own
    # join): not the drivers themselves
    assert "pyruntime.cgroups.base" in seen["exec"]
    assert not {"pyruntime.cgroups.fs1", "pyruntime.cgroups.fs2", "pyruntime.cgroups.lazy"} & seen["exec"]
    # nothing on exec's path needs os (~1 ms with _collections_abc); podman's profile comes from the cache
    assert not {"os", "posixpath", "_collections_abc"} & seen["exec"]
    # `state` of a running container asks only whether it is paused: a file read, not the cgroup drivers
    assert not {"pyruntime.cgroups.fs1", "pyruntime.cgroups.fs2", "pyruntime.container"} & seen["state"]
    if hooks:
        assert {"pyruntime.hooks"} <= seen["create"] and "pyruntime.hooks" in seen["start"]
        assert "pyruntime.hooks" in seen["delete"]        # its poststop hook ran
    # create releases and deletes nothing: control.py (start, delete ...) is `run`'s, on first use
    # (and the hooks' state is control.hook_state)
    assert ("pyruntime.control" in seen["create"]) == hooks and "pyruntime.control" in seen["run"]
    # stdio that is no terminal (files, pipes: what shims and scripts give) needs no relay
    assert "pyruntime.stdiorelay" not in seen["run"]
    # the lean paths really ran: the lock was taken, the state read, the init released through exec.sock
    assert {"fcntl", "pyruntime.control", "_socket", "pyruntime.syncmsg"} <= seen["start"]
    assert {"fcntl", "pyruntime.control", "pyruntime.cgroups"} <= seen["delete"]
    for call, mods in seen.items():
        _check(call, mods, hooks)


def test_forbidden_modules_are_detected():
    """The check itself works: a call that does import json (`spec` writes JSON with it) is seen doing so."""
    out = f"/tmp/pyrt-imports-spec-{uuid.uuid4().hex[:8]}"
    os.mkdir(out)
    try:
        mods = imports(["spec", "--bundle", out])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert "json" in mods


def test_version_names_the_library_it_would_load():
    """`--version` reads libseccomp's version from the file name ld.so would pick: it must agree with
    what the loaded library itself reports (and fall back to asking it when the name says nothing)."""
    sys.path.insert(0, ROOT)
    from pyruntime import libversion, seccomp
    real = seccomp.libseccomp_version()
    assert libversion.libseccomp_version() == real
    fast = libversion.from_file_name()
    assert fast in (None, real)
    out = subprocess.run([LAUNCHER, "--version"], capture_output=True, text=True, timeout=30).stdout
    assert f"libseccomp: {real}\n" in out


def test_kill_all_of_a_stopped_container_without_its_cgroup(world):
    """containerd's shim sends `kill --all 9` (twice) after the init exited.  Once the container's cgroup
    is gone (runc returns there at once: tests/core/test_kill_all_stopped.py) that call reads the state and
    stats the record's directories: neither the drivers nor cgshare nor os."""
    root, tmp, made = world
    cid = f"imp-killall-{uuid.uuid4().hex[:6]}"
    bundle = _bundle(tmp, "containerd", cid, ["/bin/true"])
    made.append(cid)
    base = [LAUNCHER, "--root", root]
    for argv in (["create", "--bundle", bundle, cid], ["start", cid]):
        subprocess.run(base + argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True, timeout=60)
    for _ in range(500):
        st = subprocess.run(base + ["state", cid], capture_output=True, text=True, timeout=60)
        if json.loads(st.stdout)["status"] == "stopped":
            break
        time.sleep(0.01)
    dirs = cgroup_dirs(f"{CG_PARENT}/imports/{cid}")
    assert dirs
    for d in dirs:
        os.rmdir(d)
    mods = imports(["--root", root, "kill", "--all", cid, "9"])
    assert "pyruntime.control" in mods and not mods & (FORBIDDEN | NO_CORE), sorted(mods & (FORBIDDEN | NO_CORE))
    heavy = mods & NO_OS
    assert not heavy, f"`kill --all` of a stopped container without a cgroup imported {sorted(heavy)}"
