"""pyruntime run by an unprivileged user, with runc as the control in the same session.

Each scenario runs first with runc, then with pyruntime, as the same dedicated test user (see
conftest.py), with the single-id mapping (the caller's own uid/gid) and the multi-range mapping
(own uid + the user's /etc/subuid range through newuidmap/newgidmap).
"""
from __future__ import annotations

import json
import os
import stat
import time
import uuid

import pytest

from .rl_env import MAPPINGS, mappings


def _cid() -> str:
    return f"rl-{uuid.uuid4().hex[:8]}"


def _shared_mnt(rl, name: str):
    """A dir of the test user's, and the config edit that binds it at /mnt (rw): the container's way to
    leave files the host then checks.  Returns (dir, edit)."""
    shared = os.path.join(rl.owner.work, name)
    os.mkdir(shared)
    os.chown(shared, rl.owner.uid, rl.owner.gid)

    def edit(cfg):
        cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": shared, "options": ["rbind", "rw"]})
    return shared, edit


def _no_traceback(cp) -> None:
    assert "Traceback" not in cp.stderr and "Traceback" not in cp.stdout, cp.stderr


# ---------------------------------------------------------------- identity, inside and on the host


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_root_inside_is_the_user_outside(rl, both, bundle, mapping):
    """From inside, root is the user's own uid on the host: /proc/self/uid_map says so, and a file root
    creates on a bind mount belongs to the user on the host."""
    uids, gids = mappings(rl, mapping)
    results = {}
    for r in both:
        shared, edit = _shared_mnt(rl, f"shared-{r.name}-{mapping}")
        b = bundle(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id -u; id -g;"
                    " echo hi > /mnt/made-by-root"], mapping, edit)
        cp = r("run", "--bundle", b, _cid())
        assert cp.returncode == 0, f"{r.name}: {cp.stderr}"
        made = os.stat(os.path.join(shared, "made-by-root"))
        results[r.name] = (cp.stdout.split(), made.st_uid, made.st_gid)
    assert results["pyruntime"] == results["runc"]
    out, uid, gid = results["pyruntime"]
    assert (uid, gid) == (rl.owner.uid, rl.owner.gid)
    want_map = [str(x) for m in uids for x in (m["containerID"], m["hostID"], m["size"])]
    want_gmap = [str(x) for m in gids for x in (m["containerID"], m["hostID"], m["size"])]
    n, g = len(want_map), len(want_gmap)
    assert out[:n] == want_map and out[n:n + g] == want_gmap
    assert out[n + g] == ("deny" if mapping == "single" else "allow")
    assert out[n + g + 1:n + g + 3] == ["0", "0"]


def test_multi_range_user_is_a_subuid_on_the_host(rl, both, bundle):
    """With the subuid range mapped, a container uid 1000 process is host uid subuid+999, and the
    caller (owner of the user namespace) can still see and kill it."""
    seen = {}
    for r in both:
        def edit(cfg):
            cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
        b = bundle(["sleep", "1000"], "multi", edit)
        cid = _cid()
        r.ok("run", "-d", "--bundle", b, cid)
        pid = r.state(cid)["pid"]
        st = os.stat(f"/proc/{pid}")
        seen[r.name] = (st.st_uid, st.st_gid)
        r.ok("kill", cid, "KILL")
        assert r.wait_status(cid, "stopped") == "stopped"
        r.ok("delete", cid)
    assert seen["pyruntime"] == seen["runc"] == (rl.owner.subuid + 999, rl.owner.subgid + 999)


# ---------------------------------------------------------------- exit codes


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_exit_codes(rl, both, bundle, mapping):
    got = {}
    for r in both:
        codes = []
        for args in (["true"], ["sh", "-c", "exit 3"], ["sh", "-c", "exit 255"], ["/no/such/binary"]):
            cp = r("run", "--bundle", bundle(args, mapping), _cid())
            _no_traceback(cp)
            codes.append(cp.returncode)
        got[r.name] = codes
    assert got["pyruntime"] == got["runc"]
    assert got["pyruntime"][:3] == [0, 3, 255]
    assert got["pyruntime"][3] != 0


# ---------------------------------------------------------------- lifecycle, exec, ps, kill, pause, delete


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_lifecycle(rl, both, bundle, mapping):
    outcome = {}
    for r in both:
        cid = _cid()
        b = bundle(["sleep", "1000"], mapping)
        r.ok("create", "--bundle", b, cid)
        assert r.status(cid) == "created"
        r.ok("start", cid)
        assert r.status(cid) == "running"
        init = r.state(cid)["pid"]
        ex = r("exec", cid, "sh", "-c", "id -u; cat /proc/1/cmdline | tr '\\0' ' '; exit 7")
        ps = r("ps", "--format", "json", cid)
        listed = r.ok("list", "--format", "json")
        pause = r("pause", cid)
        if pause.returncode == 0:
            assert r.status(cid) == "paused"
            r.ok("resume", cid)
        r.ok("kill", cid, "KILL")
        stopped = r.wait_status(cid, "stopped")
        r.ok("delete", cid)
        gone = r("state", cid)
        _no_traceback(pause)
        outcome[r.name] = {
            "exec": (ex.returncode, ex.stdout.split()), "exec_err": ex.stderr, "ps_has_init": ps.returncode == 0 and init in
            json.loads(ps.stdout), "listed": cid in [c["id"] for c in json.loads(listed) or []],
            "pause_ok": pause.returncode == 0, "stopped": stopped, "gone": gone.returncode != 0,
        }
    for o in outcome.values():
        o.pop("exec_err")
    # ps: runc needs the cgroup it cannot have here; pyruntime finds the processes by pid namespace
    assert outcome["pyruntime"].pop("ps_has_init"), outcome
    outcome["runc"].pop("ps_has_init")
    assert outcome["pyruntime"] == outcome["runc"], outcome
    assert outcome["pyruntime"]["exec"] == (7, ["0", "sleep", "1000"])
    assert outcome["pyruntime"]["listed"]
    assert outcome["pyruntime"]["stopped"] == "stopped" and outcome["pyruntime"]["gone"]


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_signal_reaches_the_container(rl, both, bundle, mapping):
    """`kill TERM` reaches a container init that traps it; `run` returns its exit status."""
    codes = {}
    for r in both:
        cid = _cid()
        shared, edit = _shared_mnt(rl, f"sig-{r.name}-{mapping}")
        b = bundle(["sh", "-c", "trap 'exit 42' TERM; touch /mnt/ready; while :; do sleep 0.05; done"], mapping,
                   edit)
        p = rl.owner.popen([r.binary, "--root", r.root, "run", "--bundle", b, cid],
                           stdin=open(os.devnull), stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))
        try:
            deadline = time.monotonic() + 15
            while not os.path.exists(os.path.join(shared, "ready")):
                assert time.monotonic() < deadline, f"{r.name}: container never got ready"
                time.sleep(0.05)
            r.ok("kill", cid, "TERM")
            codes[r.name] = p.wait(timeout=15)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            r("delete", "--force", cid)
    assert codes["pyruntime"] == codes["runc"] == 42


# ---------------------------------------------------------------- other users


def test_other_user_can_neither_see_nor_touch(rl, bundle):
    mine = rl.rt("pyruntime")
    cid = _cid()
    mine.ok("run", "-d", "--bundle", bundle(["sleep", "1000"]), cid)
    for d in (mine.root, os.path.join(mine.root, cid)):
        st = os.stat(d)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (rl.owner.uid, 0o700), d
    intruder = rl.rt("pyruntime", rl.other)
    intruder.root = mine.root                    # aim at the owner's state directory
    for args in (["state", cid], ["kill", cid, "KILL"], ["delete", "--force", cid], ["exec", cid, "true"],
                 ["pause", cid], ["ps", cid]):
        cp = intruder(*args)
        _no_traceback(cp)
        assert cp.returncode != 0, (args, cp.stdout)
        assert len(cp.stderr.strip().splitlines()) == 1, cp.stderr
    listed = intruder("list", "--format", "json")
    assert cid not in listed.stdout
    intruder.root = os.path.join(rl.other.xdg, "nothing")   # its own cleanup must not touch the owner's
    assert mine.status(cid) == "running"
    mine.ok("delete", "--force", cid)


# ---------------------------------------------------------------- state directory and flags


def test_default_root_is_xdg_runtime_dir(rl, bundle):
    cid = _cid()
    cp = rl.owner.run([rl.pyruntime, "run", "--bundle", bundle(["true"]), cid])
    assert cp.returncode == 0, cp.stderr
    assert os.path.isdir(os.path.join(rl.owner.xdg, "pyruntime"))
    assert stat.S_IMODE(os.stat(os.path.join(rl.owner.xdg, "pyruntime")).st_mode) == 0o700
    assert not os.path.exists(os.path.join(rl.owner.xdg, "pyruntime", cid))


def test_no_usable_state_dir_is_one_clear_line(rl, bundle):
    b = bundle(["true"])
    for env in (rl.owner.env(XDG_RUNTIME_DIR=None), rl.owner.env(XDG_RUNTIME_DIR="/root/nope")):
        for cmd in (["run", "--bundle", b, _cid()], ["list"], ["state", "x"]):
            cp = rl.owner.run([rl.pyruntime, *cmd], env=env)
            _no_traceback(cp)
            assert cp.returncode == 1
            assert cp.stderr.count("\n") == 1 and "no usable state directory" in cp.stderr, cp.stderr
    log = os.path.join(rl.owner.work, "err.log")
    cp = rl.owner.run([rl.pyruntime, "--log", log, "--log-format", "json", "list"],
                      env=rl.owner.env(XDG_RUNTIME_DIR=None))
    assert cp.returncode == 1
    with open(log) as f:
        rec = json.loads(f.read().splitlines()[-1])
    assert rec["level"] == "error" and "no usable state directory" in rec["msg"]
    os.unlink(log)


def test_rootless_flag_values(rl, both, bundle):
    b = bundle(["true"])
    res = {}
    for r in both:
        bad = r("--rootless", "maybe", "run", "--bundle", b, _cid())
        _no_traceback(bad)
        # false: cgroup errors are not ignored (runc: the v1/v2 hierarchy is not writable by the user)
        strict = r("--rootless", "false", "run", "--bundle", b, _cid())
        _no_traceback(strict)
        ok = r("--rootless", "true", "run", "--bundle", b, _cid())
        res[r.name] = (bad.returncode != 0, strict.returncode != 0, ok.returncode)
    assert res["pyruntime"] == res["runc"] == (True, True, 0)


# ---------------------------------------------------------------- cgroups


@pytest.mark.parametrize("resource", ["memory", "pids"])
def test_limits_without_a_cgroup_are_an_error_naming_them(rl, both, bundle, resource):
    value = {"memory": {"limit": 64 << 20}, "pids": {"limit": 50}}[resource]

    def edit(cfg):
        cfg["linux"]["resources"] = {resource: value}
    b = bundle(["true"], "single", edit)
    rcs = {}
    for r in both:
        cp = r("run", "--bundle", b, _cid())
        _no_traceback(cp)
        rcs[r.name] = cp.returncode
        if r.name == "pyruntime":
            assert resource in cp.stderr and "cgroup" in cp.stderr, cp.stderr
            assert len(cp.stderr.strip().splitlines()) == 1
            assert os.listdir(r.root) == [] if os.path.isdir(r.root) else True
    assert rcs["runc"] != 0 and rcs["pyruntime"] == 1


def _unified() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                return left.split()[4]
    return None


def test_delegated_cgroup_subtree_is_used(rl, bundle):
    """A cgroup v2 subtree delegated to the user (what systemd does for user@UID.service): the
    container gets its own cgroup below the caller's (on a pure v2 host below its parent, as runc's),
    so ps, kill --all and pause work."""
    mnt = _unified()
    if mnt is None:
        pytest.skip("no cgroup2 hierarchy is mounted on this host")
    deleg = os.path.join(mnt, f"pyrt-rl-{uuid.uuid4().hex[:6]}")
    leaf = os.path.join(deleg, "session")
    os.makedirs(leaf)
    try:
        for d in (deleg, leaf):
            for name in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
                os.chown(os.path.join(d, name), rl.owner.uid, rl.owner.gid)
        r = rl.rt("pyruntime")
        cid = _cid()

        def as_delegated(*args):
            # root puts the shell in the delegated leaf (as systemd puts a user session), then drops to the user
            script = f"echo $$ > {leaf}/cgroup.procs && exec setpriv --reuid={rl.owner.uid} " \
                     f"--regid={rl.owner.gid} --clear-groups \"$@\""
            import subprocess
            import tempfile
            with tempfile.TemporaryFile() as err:    # a file: the detached container keeps its stdio
                cp = subprocess.run(["sh", "-c", script, "sh", r.binary, "--root", r.root, *args],
                                    env=rl.owner.env(), cwd=rl.owner.work, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err, timeout=60)
                err.seek(0)
                cp.stderr = err.read().decode()
            return cp
        cp = as_delegated("run", "-d", "--bundle", bundle(["sleep", "1000"]), cid)
        assert cp.returncode == 0, cp.stderr
        st = r.state(cid)
        with open(f"/proc/{st['pid']}/cgroup") as f:
            own = [ln for ln in f.read().splitlines() if ln.startswith("0::")]
        home = deleg if mnt == "/sys/fs/cgroup" else leaf   # pure v2: below the caller's parent cgroup
        assert own == [f"0::{home[len(mnt):]}/{cid}"], own
        assert json.loads(r.ok("ps", "--format", "json", cid)) == [st["pid"]]
        r.ok("pause", cid)
        assert r.status(cid) == "paused"
        r.ok("resume", cid)
        assert r.status(cid) == "running"
        r.ok("delete", "--force", cid)
        assert not os.path.exists(os.path.join(home, cid))
    finally:
        for d in (os.path.join(leaf, "cgroup.procs"),):
            try:
                with open(d) as f:
                    pids = f.read().split()
            except OSError:
                pids = []
            for p in pids:
                try:
                    os.kill(int(p), 9)
                except OSError:
                    pass
        for d in (os.path.join(p, c) for p in (leaf, deleg) for c in (os.listdir(p) if os.path.isdir(p) else [])):
            if os.path.isdir(d) and d != leaf:
                os.rmdir(d)
        time.sleep(0.1)
        for d in (leaf, deleg):
            if os.path.isdir(d):
                os.rmdir(d)


# ---------------------------------------------------------------- what an unprivileged user cannot do


def test_devices_are_host_binds_and_sysfs_is_bound(rl, both, bundle):
    """No mknod in a user namespace: /dev/null etc. are the host's nodes bound in; without a network
    namespace, /sys is a bind of the host's (sysfs cannot be mounted)."""
    outs = {}
    for r in both:
        cp = r("run", "--bundle", bundle(["sh", "-c", "echo x > /dev/null && head -c 4 /dev/zero | wc -c; "
                                                      "ls /sys/kernel >/dev/null && echo sys-ok"]), _cid())
        assert cp.returncode == 0, f"{r.name}: {cp.stderr}"
        outs[r.name] = cp.stdout.split()
    assert outs["pyruntime"] == outs["runc"] == ["4", "sys-ok"]


def test_rlimits_are_only_lowered(rl, bundle):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("RLIMIT_NOFILE is unlimited here: there is no limit above the user's to ask for")

    def edit(cfg):
        cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 128},
                                     {"type": "RLIMIT_NPROC", "soft": 1 << 40, "hard": 1 << 40}]
    r = rl.rt("pyruntime")
    cp = r("run", "--bundle", bundle(["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -Hu"], "single", edit), _cid())
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout.split()
    assert out[:2] == ["64", "128"]
    nproc_hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    if nproc_hard != resource.RLIM_INFINITY:
        assert out[2] == str(nproc_hard) and "RLIMIT_NPROC" in cp.stderr


def test_unmapped_gid_mount_option_is_refused(rl, both, bundle):
    def edit(cfg):
        for m in cfg["mounts"]:
            if m["destination"] == "/dev/pts":
                m["options"].append("gid=5")
    b = bundle(["true"], "single", edit)
    for r in both:
        cp = r("run", "--bundle", b, _cid())
        _no_traceback(cp)
        assert cp.returncode != 0, r.name
        if r.name == "pyruntime":
            assert "gid=5" in cp.stderr and "mounts[" in cp.stderr
    # mapped through the subgid range, gid 5 is fine
    b = bundle(["true"], "multi", edit)
    for r in both:
        assert r("run", "--bundle", b, _cid()).returncode == 0, r.name


# ---------------------------------------------------------------- hostile paths


def test_hostile_mount_destination_stays_inside(rl, both, bundle):
    """A symlink in the (user-owned) rootfs pointing at a host path: the mount lands inside the root."""
    target = os.path.join(rl.owner.work, f"victim-{uuid.uuid4().hex[:6]}")
    os.mkdir(target)
    os.chown(target, rl.owner.uid, rl.owner.gid)
    link = os.path.join(rl.rootfs, "escape")
    os.symlink(f"../../../../../../..{target}", link)
    os.lchown(link, rl.owner.uid, rl.owner.gid)
    try:
        def edit(cfg):
            cfg["mounts"].append({"destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs",
                                  "options": ["mode=755"]})
        for r in both:
            cp = r("run", "--bundle", bundle(["sh", "-c", "grep -c ' /escape/sub \\| " + target +
                                              "/sub ' /proc/self/mountinfo"], "single", edit), _cid())
            _no_traceback(cp)
            assert not os.path.exists(os.path.join(target, "sub")), f"{r.name} created a dir on the host"
            with open("/proc/self/mountinfo") as f:
                assert target not in f.read()
    finally:
        os.unlink(link)
        # the runtimes made <rootfs><target>/sub inside the root: remove that chain (empty dirs only),
        # never more than what was made
        inside = os.path.join(rl.rootfs, target.lstrip("/"), "sub")
        keep = os.path.join(rl.rootfs, target.lstrip("/").split("/")[0])     # the rootfs's own /tmp
        while inside != keep and os.path.isdir(inside) and not os.path.islink(inside):
            try:
                os.rmdir(inside)
            except OSError:
                break
            inside = os.path.dirname(inside)
        if os.path.isdir(target) and not os.listdir(target):
            os.rmdir(target)


def test_bind_of_a_path_the_user_cannot_read_fails_cleanly(rl, both, bundle):
    def edit(cfg):
        cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": "/root/.ssh-or-anything",
                              "options": ["rbind", "ro"]})
    b = bundle(["true"], "single", edit)
    for r in both:
        cp = r("run", "--bundle", b, _cid())
        _no_traceback(cp)
        assert cp.returncode != 0, r.name
    cp = both[1]("run", "--bundle", b, _cid())
    assert len(cp.stderr.strip().splitlines()) == 1 and "mounts[" in cp.stderr, cp.stderr


# ---------------------------------------------------------------- spec --rootless


def test_spec_rootless_matches_runc_and_runs_in_both(rl, both):
    cfgs = {}
    for r in both:
        d = os.path.join(rl.owner.work, f"spec-{r.name}")
        os.mkdir(d)
        os.chown(d, rl.owner.uid, rl.owner.gid)
        cp = rl.owner.run([r.binary, "spec", "--rootless"], cwd=d)
        assert cp.returncode == 0, cp.stderr
        with open(os.path.join(d, "config.json")) as f:
            cfgs[r.name] = json.load(f)
    a, b = cfgs["runc"], cfgs["pyruntime"]
    # the differences that are not about rootless: version, hostname, and the cgroup namespace of
    # the non-rootless default (runc 1.2 adds it too)
    for c in (a, b):
        c.pop("ociVersion")
        c.pop("hostname")
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "cgroup"]
    assert b == a
    # each runtime runs the other's config
    for cfg_from in both:
        for r in both:
            bdir = os.path.join(rl.owner.work, f"x-{cfg_from.name}-{r.name}")
            os.mkdir(bdir)
            os.chown(bdir, rl.owner.uid, rl.owner.gid)
            cfg = json.load(open(os.path.join(rl.owner.work, f"spec-{cfg_from.name}", "config.json")))
            cfg["root"]["path"], cfg["process"]["terminal"], cfg["process"]["args"] = rl.rootfs, False, ["true"]
            with open(os.path.join(bdir, "config.json"), "w") as f:
                json.dump(cfg, f)
            cp = r("run", "--bundle", bdir, _cid())
            assert cp.returncode == 0, f"{r.name} running {cfg_from.name}'s spec: {cp.stderr}"


# ---------------------------------------------------------------- images


def test_image_unpack_and_run_image_as_the_user(rl):
    """`image unpack` and `run --image` by the user: files stay the user's (root inside), the bundle's
    config is a rootless one, and the container runs."""
    from image.image_helpers import d, f, simple_layout, tar
    layout = os.path.join(rl.tmp, f"layout-{uuid.uuid4().hex[:6]}")     # readable by the user
    simple_layout(layout, tar(d("etc/"), f("etc/hello", b"hi from the image\n"), d("bin/"),
                              f("bin/busybox", open(os.path.join(rl.rootfs, "bin", "busybox"), "rb").read(),
                                mode=0o755)),
                  config={"config": {"Cmd": ["/bin/busybox", "sh", "-c", "cat /etc/hello; id -u"]}})
    for top, dirs, files in os.walk(layout):
        for n in dirs + files:
            os.chmod(os.path.join(top, n), 0o755 if n in dirs else 0o644)
    os.chmod(layout, 0o755)
    bundle = os.path.join(rl.owner.work, "img-bundle")
    cp = rl.owner.run([rl.pyruntime, "image", "unpack", f"{layout}:t", bundle])
    assert cp.returncode == 0, cp.stderr
    st = os.stat(os.path.join(bundle, "rootfs", "etc", "hello"))
    assert (st.st_uid, st.st_gid) == (rl.owner.uid, rl.owner.gid)
    with open(os.path.join(bundle, "config.json")) as fh:
        cfg = json.load(fh)
    assert {"type": "user"} in cfg["linux"]["namespaces"]
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": rl.owner.uid, "size": 1}]
    r = rl.rt("pyruntime")
    out = r.ok("run", "--bundle", bundle, _cid())
    assert out.split() == ["hi", "from", "the", "image", "0"]
    out = r.ok("run", "--image", f"{layout}:t", _cid())
    assert out.split() == ["hi", "from", "the", "image", "0"]
    assert not os.listdir(os.path.join(r.root, ".bundles")) if os.path.isdir(os.path.join(r.root, ".bundles")) \
        else True


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_created_init_exposes_no_host_executable(rl, bundle, mapping):
    """The init stays dumpable only until its maps are written (an unprivileged parent cannot write
    them otherwise).  Once create returns, either it is non-dumpable (its /proc files are root's) or it
    is no longer an image of the runtime (/proc/PID/exe a sealed memfd): nobody, the user included, can
    open the host's interpreter through /proc/PID/exe."""
    r = rl.rt("pyruntime")
    cid = _cid()
    r.ok("create", "--bundle", bundle(["true"], mapping), cid)
    pid = r.state(cid)["pid"]
    non_dumpable = os.stat(f"/proc/{pid}/environ").st_uid == 0   # (the directory itself shows the euid)
    exe = os.readlink(f"/proc/{pid}/exe")
    assert non_dumpable or exe.startswith("/memfd:"), exe
    with open(rl.pyruntime) as fh:
        interpreter = os.path.realpath(fh.readline()[2:].split()[0])     # the launcher's #! line
    probe = rl.owner.run(["sh", "-c", f"cmp -s /proc/{pid}/exe {interpreter} && echo SAME"])
    assert "SAME" not in probe.stdout
    r.ok("delete", "--force", cid)
