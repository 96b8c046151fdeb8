"""State and root safety (issue 10 items 7, 9-13): what a hostile or broken state dir, a killed create, a
bad id or a shared cgroup must never do: leak secrets, reach outside --root, act on another container,
print a traceback or leave anything behind.  runc 1.1.5 is the control where it applies."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid

import pytest

from pyrt_testenv import CG_PARENT, LAUNCHER, RUNC, cgroup_dirs, runc_control


def one_error_line(cp, *needles: str) -> str:
    """exit 1 (exec: 255, as runc), exactly one stderr line, no traceback, every needle in it."""
    err = cp.stderr.decode()
    assert cp.returncode == (255 if "exec" in cp.args else 1), (cp.returncode, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)
    return err


def last_log(path) -> dict:
    return json.loads(open(path).read().splitlines()[-1])


def cg_of(bundle: str) -> str:
    return json.load(open(os.path.join(bundle, "config.json")))["linux"]["cgroupsPath"]


def cg_pids(rel: str) -> set[int]:
    out: set[int] = set()
    for d in cgroup_dirs(rel):
        try:
            out.update(int(x) for x in open(os.path.join(d, "cgroup.procs")).read().split())
        except OSError:
            pass
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


# --- 7: permissions --------------------------------------------------------------------------------------
def test_state_dir_and_file_are_private(rt, make_bundle, tmp_path):
    b = make_bundle(["sleep", "30"], edit=lambda c: c["process"]["env"].append("SECRET=hunter2"))
    rt("create", "--bundle", b, "perm")
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(rt.root) == 0o700
    assert mode(os.path.join(rt.root, "perm")) == 0o700
    assert mode(os.path.join(rt.root, "perm", "state.json")) == 0o600
    # every file in the dir: none readable by others
    for n in os.listdir(os.path.join(rt.root, "perm")):
        assert mode(os.path.join(rt.root, "perm", n)) & 0o077 == 0, n
    # create saved its record several times: nothing of the earlier saves is left beside it
    assert sorted(os.listdir(os.path.join(rt.root, "perm"))) == ["exec.sock", "state.json"]
    if RUNC:    # the control: runc's own modes on this host
        with runc_control(str(tmp_path / "runc-root")) as runc:
            runc("create", "--bundle", b, "perm-runc", timeout=30)
            assert mode(os.path.join(runc.root, "perm-runc")) & 0o077 in (0o011, 0)
            assert mode(os.path.join(runc.root, "perm-runc", "state.json")) & 0o077 == 0


@pytest.mark.parametrize("core", [True, False])
def test_state_save_replaces_the_file_atomically(tmp_path, monkeypatch, core):
    """A reader never sees half a state: each save puts a complete new file in place (by name exchange
    with the C core loaded, as in create, else by rename), a reader holding the old one still reads it
    whole, and nothing but state.json is left."""
    from pyruntime import state
    import pyruntime._core  # noqa: F401
    if not core:
        monkeypatch.delitem(sys.modules, "pyruntime._core")
    root = str(tmp_path)
    os.mkdir(os.path.join(root, "c1"), 0o700)
    st = state.State(id="c1", pid=1, start_time=2, bundle="/b", created="now", config={"x": "a" * 5000})
    state.save(root, st)
    path = os.path.join(root, "c1", "state.json")
    old = open(path, "rb")
    st.config["x"] = "b" * 7000
    state.save(root, st)
    assert json.loads(old.read())["config"]["x"] == "a" * 5000
    old.close()
    assert state.load(root, "c1").config["x"] == "b" * 7000
    assert os.listdir(os.path.join(root, "c1")) == ["state.json"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_state_saves_into_reserved_files(tmp_path):
    """create reserves the files of its saves up front (state.reserve): each is written once, never was
    state.json before, a reader holding the previous state.json still reads it whole, and nothing but
    state.json is left; once the spares are used up a save makes its own file again."""
    from pyruntime import state
    import pyruntime._core  # noqa: F401  (the exchange, as in create)
    root = str(tmp_path)
    os.mkdir(os.path.join(root, "c1"), 0o700)
    st = state.State(id="c1", pid=0, start_time=0, bundle="/b", created="now", config={"x": "a" * 3000})
    state.reserve(root, st, 2)
    assert sorted(os.listdir(os.path.join(root, "c1"))) == [".state.json.spare0", ".state.json.spare1"]
    path = os.path.join(root, "c1", "state.json")
    for pid in (1, 2, 3):
        old = open(path, "rb") if os.path.exists(path) else None
        st.pid = pid
        state.save(root, st, same_config=pid > 1)
        if old is not None:
            assert json.loads(old.read())["pid"] == pid - 1
            old.close()
        assert state.load(root, "c1").pid == pid
    assert os.listdir(os.path.join(root, "c1")) == ["state.json"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize("planted", ["hardlink", "fifo", "device", "nonempty"])
def test_a_reserved_file_replaced_in_between_is_not_written(tmp_path, planted):
    """A save opens a reserved name without O_CREAT: something planted in its place (a hard link to a
    host file, a fifo, a device) must not be written to nor block the save; a new file is made instead."""
    from pyruntime import state
    root = str(tmp_path / "root")
    d = os.path.join(root, "c1")
    os.makedirs(d, 0o700)
    victim = tmp_path / "victim"
    victim.write_text("")
    st = state.State(id="c1", pid=7, start_time=0, bundle="/b", created="now")
    state.reserve(root, st, 1)
    spare = os.path.join(d, ".state.json.spare0")
    os.unlink(spare)
    if planted == "hardlink":
        os.link(victim, spare)
    elif planted == "fifo":
        os.mkfifo(spare, 0o600)
    elif planted == "device":
        os.mknod(spare, 0o600 | stat.S_IFCHR, os.makedev(1, 3))         # /dev/null: harmless here
    else:
        with open(spare, "w") as f:
            f.write("x" * 5000)
    pid = os.fork()
    if pid == 0:                                       # a blocked open must fail the test, not hang it
        try:
            state.save(root, st)
        finally:
            os._exit(0)
    for _ in range(100):
        if os.waitpid(pid, os.WNOHANG)[0]:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("save blocked on the planted " + planted)
    assert victim.read_text() == ""
    assert state.load(root, "c1").pid == 7
    assert os.listdir(d) == ["state.json"]


def test_state_save_same_config_reuses_the_encoding(tmp_path):
    """create's saves after the first pass same_config=True: the record's other fields are written anew,
    the config as the previous save encoded it, and the file is the same document a full save writes."""
    from pyruntime import state
    root = str(tmp_path)
    os.mkdir(os.path.join(root, "c1"), 0o700)
    cfg = {"process": {"args": ["sh"], "env": ["A=1"]}, "linux": {"seccomp": {"syscalls": [{"names": ["x"]}]}}}
    st = state.State(id="c1", pid=0, start_time=0, bundle="/b", created="now", config=cfg, creating=True)
    state.save(root, st)
    st.pid, st.start_time, st.creating = 42, 7, False
    state.save(root, st, same_config=True)
    path = os.path.join(root, "c1", "state.json")
    with open(path) as f:
        saved = json.load(f)
    got = state.load(root, "c1")
    assert (got.pid, got.start_time, got.creating, got.config) == (42, 7, False, cfg)
    state.save(root, st)                 # a full save writes the same document
    with open(path) as f:
        assert json.load(f) == saved


# --- 9: one id rule everywhere ---------------------------------------------------------------------------
BAD_IDS = ["../../../victim", "a/b", ".hidden", "_under", "+plus", "..", "a" * 256, "a b", "x\ny"]


@pytest.mark.parametrize("cmd", ["create", "run", "run-image", "state", "delete", "delete-force", "kill",
                                 "start", "exec", "pause", "ps", "events"])
def test_bad_ids_refused_before_touching_anything(rt, make_bundle, tmp_path, cmd):
    b = make_bundle()
    top = tmp_path / "t"
    root = top / "a" / "b" / "root"
    root.parent.mkdir(parents=True)
    victims = [top / "victim", top / "a" / "victim", top / "a" / "b" / "victim", tmp_path / "victim"]
    for v in victims:
        v.mkdir(exist_ok=True)
        (v / "keep").write_text("x")
    for cid in BAD_IDS:
        args = {"create": ["create", "-b", b, cid], "run": ["run", "-b", b, cid],
                "run-image": ["run", "--image", str(tmp_path / "nolayout"), cid], "state": ["state", cid],
                "delete": ["delete", cid], "delete-force": ["delete", "--force", cid],
                "kill": ["kill", cid, "KILL"], "start": ["start", cid], "exec": ["exec", cid, "true"],
                "pause": ["pause", cid], "ps": ["ps", cid], "events": ["events", "--stats", cid]}[cmd]
        log = tmp_path / "log.json"
        cp = subprocess.run([LAUNCHER, "--root", str(root), "--log", str(log), "--log-format", "json", *args],
                            capture_output=True, timeout=30)
        one_error_line(cp, "container id")
        assert "container id" in last_log(log)["msg"]
        assert not root.exists(), f"{cmd} {cid!r} made the root"
        for v in victims:
            assert (v / "keep").exists(), f"{cmd} {cid!r} touched {v}"


def test_long_id_is_one_line(rt, make_bundle, tmp_path):
    b = make_bundle()
    cid = "a" * 1000
    for args in (["create", "-b", b, cid], ["state", cid], ["delete", "--force", cid], ["kill", cid]):
        one_error_line(rt(*args, check=False), "container id")
    assert not os.path.exists(rt.root) or os.listdir(rt.root) == []


def test_good_ids_work(rt, make_bundle):
    b = make_bundle()
    for cid in ["A1", "a.b_c+d-e", "9" * 255]:
        rt("create", "-b", b, cid)
        assert rt.state(cid)["status"] == "created"
        rt("delete", "--force", cid)


# --- 12: another container's state ---------------------------------------------------------------------
@pytest.mark.parametrize("how", ["symlink", "copy", "dir-symlink"])
def test_state_of_another_container_is_refused(rt, make_bundle, how):
    ba, bb = make_bundle(["sleep", "60"]), make_bundle(["sleep", "60"])
    rt("run", "-d", "-b", ba, "A")
    rt("run", "-d", "-b", bb, "B")
    pa, pb = rt.state("A")["pid"], rt.state("B")["pid"]
    sb = os.path.join(rt.root, "B", "state.json")
    try:
        if how == "symlink":
            os.unlink(sb)
            os.symlink(os.path.join(rt.root, "A", "state.json"), sb)
        elif how == "copy":
            shutil.copy(os.path.join(rt.root, "A", "state.json"), sb)
        else:
            shutil.rmtree(os.path.join(rt.root, "B"))
            os.symlink(os.path.join(rt.root, "A"), os.path.join(rt.root, "B"))
        cp = rt("state", "B", check=False)
        one_error_line(cp, {"symlink": "symlink", "copy": "belongs to container 'A'",
                            "dir-symlink": "symlink"}[how])
        for args in (["kill", "B", "KILL"], ["exec", "B", "true"], ["pause", "B"], ["start", "B"]):
            one_error_line(rt(*args, check=False))
        rt("delete", "--force", "B")
        assert not os.path.lexists(os.path.join(rt.root, "B"))
        assert alive(pa) and rt.state("A")["status"] == "running"
        assert os.path.exists(os.path.join(rt.root, "A", "state.json"))
    finally:
        os.kill(pb, signal.SIGKILL)        # B's own record is gone: its init is ours to stop
        rt("delete", "--force", "A")
        for d in cgroup_dirs(cg_of(bb)):
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.02)


# --- 13: hostile state and roots -------------------------------------------------------------------------
def _fake(rt, cid: str, content: bytes | None, link: str | None = None) -> str:
    d = os.path.join(rt.root, cid)
    os.makedirs(d, mode=0o700)
    p = os.path.join(d, "state.json")
    if link:
        os.symlink(link, p)
    else:
        with open(p, "wb") as f:
            f.write(content)
    return p


HOSTILE = {"list": b"[]", "empty-object": b"{}", "null": b"null", "truncated": b'{"id": "h", "pid": 1',
           "empty": b"", "string": b'"x"', "wrong-types": b'{"id": "h", "pid": "1", "start_time": 0, '
           b'"bundle": "/", "created": ""}', "deep": b"[" * 100000, "binary": b"\xff\xfe\x00"}


@pytest.mark.parametrize("kind", sorted(HOSTILE) + ["symlink", "fifo", "directory"])
def test_hostile_state_file(rt, make_bundle, tmp_path, kind):
    b = make_bundle(["sleep", "60"])
    rt("run", "-d", "-b", b, "healthy")
    if kind == "symlink":
        p = _fake(rt, "h", None, link="/etc/passwd")
    elif kind == "fifo":
        p = _fake(rt, "h", b"")
        os.unlink(p)
        os.mkfifo(p)
    elif kind == "directory":
        p = _fake(rt, "h", b"")
        os.unlink(p)
        os.mkdir(p)
    else:
        p = _fake(rt, "h", HOSTILE[kind])
    log = str(tmp_path / "log.json")
    cp = rt("state", "h", check=False, log=log, timeout=10)
    one_error_line(cp, p)
    assert p in last_log(log)["msg"] and last_log(log)["level"] == "error"
    for args in (["kill", "h"], ["start", "h"], ["exec", "h", "true"], ["create", "-b", b, "h"]):
        one_error_line(rt(*args, check=False, timeout=10))
    cp = rt("list", check=False, timeout=10)
    assert cp.returncode == 0 and "healthy" in cp.stdout.decode() and "Traceback" not in cp.stderr.decode()
    assert "h" in cp.stderr.decode() and p in cp.stderr.decode(), cp.stderr
    assert "healthy" in rt.out("list", "--format", "json")
    rt("delete", "--force", "h")
    assert not os.path.lexists(os.path.join(rt.root, "h"))
    assert os.path.exists("/etc/passwd")
    assert rt.state("healthy")["status"] == "running"


def test_root_that_is_a_file(rt, make_bundle, tmp_path):
    b = make_bundle()
    f = tmp_path / "rootfile"
    f.write_text("not a dir")
    for args in (["create", "-b", b, "x"], ["run", "-b", b, "x"], ["state", "x"], ["list"],
                 ["delete", "x"], ["kill", "x"]):
        cp = subprocess.run([LAUNCHER, "--root", str(f), *args], capture_output=True, timeout=30)
        err = one_error_line(cp)
        assert str(f) in err or "does not exist" in err, (args, err)
    assert f.read_text() == "not a dir"
    assert not cg_pids(cg_of(b))


def test_full_filesystem_under_root(rt, make_bundle, tmp_path):
    b = make_bundle(["sleep", "60"])
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        root = mnt / "root"
        subprocess.run([LAUNCHER, "--root", str(root), "list"], check=True, capture_output=True)
        fd = os.open(mnt / "fill", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        log = tmp_path / "log.json"
        cp = subprocess.run([LAUNCHER, "--root", str(root), "--log", str(log), "--log-format", "json",
                             "create", "-b", b, "full"], capture_output=True, timeout=30)
        err = one_error_line(cp, "no space left on device")
        assert str(root) in err
        assert "no space" in last_log(log)["msg"]
        assert not os.path.exists(root / "full")
        assert not cg_pids(cg_of(b)) and not cgroup_dirs(cg_of(b))
        # with space again, the same id works
        os.unlink(mnt / "fill")
        subprocess.run([LAUNCHER, "--root", str(root), "create", "-b", b, "full"], check=True, timeout=30)
        subprocess.run([LAUNCHER, "--root", str(root), "delete", "--force", "full"], check=True, timeout=30)
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


# --- 11: SIGKILL of create at random moments -------------------------------------------------------------
def _ours(root: str) -> list[int]:
    """Live processes started by this test's runtime calls (a create's init before its execve still
    carries the create's command line, --root included)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != os.getpid():
            try:
                if root.encode() in open(f"/proc/{p}/cmdline", "rb").read() and alive(int(p)):
                    out.append(int(p))
            except OSError:
                pass
    return out


def _assert_clean(rt, cid: str, bundle: str) -> None:
    assert not os.path.lexists(os.path.join(rt.root, cid))
    rel = cg_of(bundle)
    deadline = time.monotonic() + 5
    while (cg_pids(rel) or cgroup_dirs(rel)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not cg_pids(rel), f"processes left in the cgroup: {cg_pids(rel)}"
    while _ours(rt.root) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _ours(rt.root), f"processes of this test's creates left: {_ours(rt.root)}"
    assert not cgroup_dirs(rel), f"cgroup left: {cgroup_dirs(rel)}"
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if rt.root in line]


def test_killed_create_never_poisons_the_id(rt, make_bundle):
    rng = random.Random(1010)
    b = make_bundle(["sleep", "60"])
    hits = {"no-dir": 0, "half-made": 0, "created": 0}
    # kill within the span of a create on this host (its start-up alone is tens of ms on a loaded one)
    t0 = time.monotonic()
    rt("create", "-b", b, "k")
    span = max(time.monotonic() - t0, 0.08)
    rt("delete", "--force", "k")
    lo, hi = 0.0, 1.5 * span     # narrowed as kills land before the dir exists / after create ended
    # bounded by rounds (each call has its timeout), not by wall time: at least 24, more (up to 64) while
    # fewer than 4 kills have landed mid-create (a loaded machine stretches create unevenly)
    for i in range(64):
        if i >= 24 and hits["half-made"] >= 4:
            break
        cid = "k"
        p = subprocess.Popen([LAUNCHER, "--root", rt.root, "create", "-b", b, cid],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rng.uniform(lo, hi)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        d = os.path.join(rt.root, cid)
        if not os.path.lexists(d):
            hits["no-dir"] += 1
            lo = min(delay, hi * 0.8)
        elif os.path.exists(os.path.join(d, "state.json")) and \
                rt.state(cid)["status"] == "created":
            hits["created"] += 1
            hi = max(delay, lo * 1.25, 0.005)
        else:
            hits["half-made"] += 1
            # list shows it (as stopped or creating), never crashes
            cp = rt("list", check=False)
            assert cp.returncode == 0 and cid in cp.stdout.decode(), cp
            assert rt("state", cid, check=False).returncode in (0, 1)
        if i % 2 == 0:
            rt("delete", "--force", cid)
            _assert_clean(rt, cid, b)
        # create of the same id works (directly after the kill on odd rounds: it clears a dead half-made dir)
        cp = rt("create", "-b", b, cid, check=False)
        if cp.returncode != 0:
            assert hits and b"already exists" in cp.stderr and rt.state(cid)["status"] == "created", cp
        assert rt.state(cid)["status"] == "created"
        rt("delete", "--force", cid)
        _assert_clean(rt, cid, b)
    assert hits["half-made"] >= 4, hits
    print(f"kills: {hits}")


# --- 10: a shared cgroupsPath ----------------------------------------------------------------------------
@pytest.mark.cgroup      # also in the pure cgroup v2 VM lane
def test_shared_cgroup_never_harms_the_other_container(rt, make_bundle):
    rel = f"{CG_PARENT}/shared-{uuid.uuid4().hex[:6]}"
    setcg = lambda c: c["linux"].__setitem__("cgroupsPath", rel)  # noqa: E731
    ba = make_bundle(["sleep", "60"], edit=setcg)
    bb = make_bundle(["sleep", "60"], edit=setcg)
    bc = make_bundle(["true"], edit=setcg)
    rt("run", "-d", "-b", ba, "A")
    pa = rt.state("A")["pid"]
    # B's create into A's busy cgroup fails (runc 1.2+: "container's cgroup is not empty"), and its
    # failure kills and removes nothing of A's
    cp = rt("create", "-b", bb, "B", check=False)
    one_error_line(cp, "cgroup is not empty")
    assert alive(pa) and pa in cg_pids(rel) and rt.state("A")["status"] == "running"
    assert not os.path.exists(os.path.join(rt.root, "B"))
    # a container that stopped in the cgroup, with a living one now in it: deleting the stopped one and
    # `kill --all` on it leave the living one alone
    rt("delete", "--force", "A")
    assert not cg_pids(rel)
    rt("run", "--keep", "-b", bc, "C")              # stops at once, kept: its record names the cgroup
    assert rt.state("C")["status"] == "stopped"
    rt("run", "-d", "-b", bb, "B")
    pb = rt.state("B")["pid"]
    rt("kill", "--all", "C", "KILL", check=False)
    time.sleep(0.2)
    assert alive(pb), "kill --all of a stopped container killed another container in its cgroup"
    rt("delete", "C")
    time.sleep(0.1)
    assert alive(pb) and pb in cg_pids(rel) and cgroup_dirs(rel), "delete emptied or removed a shared cgroup"
    assert rt.state("B")["status"] == "running"
    rt("delete", "--force", "B")
    assert not alive(pb)
    assert not cgroup_dirs(rel)


@pytest.mark.cgroup      # also in the pure cgroup v2 VM lane
def test_failed_create_in_shared_cgroup_keeps_the_other(rt, make_bundle):
    """A create that fails late (its process cannot start) with the cgroup of a stopped container that
    another one now runs in: the failure undoes only its own things."""
    rel = f"{CG_PARENT}/shared2-{uuid.uuid4().hex[:6]}"
    setcg = lambda c: c["linux"].__setitem__("cgroupsPath", rel)  # noqa: E731
    ba = make_bundle(["sleep", "60"], edit=setcg)
    rt("run", "-d", "-b", ba, "A")
    pa = rt.state("A")["pid"]
    bad = make_bundle(["/no/such/binary"], edit=setcg)
    cp = rt("run", "-b", bad, "B", check=False)
    assert cp.returncode != 0
    assert alive(pa) and pa in cg_pids(rel)
    rt("delete", "--force", "A")
    assert not cgroup_dirs(rel)


# --- Also: terminal without a terminal -------------------------------------------------------------------
def test_terminal_without_a_terminal_fails_at_once(rt, make_bundle, tmp_path):
    b = make_bundle(["sh"], edit=lambda c: c["process"].__setitem__("terminal", True))
    # `sh` on a terminal would wait for input forever: the call returning within its 20 s guard, with
    # this error, is the check that it fails at once
    cp = rt("run", "-b", b, "tty", check=False, timeout=20, stdin=subprocess.DEVNULL)
    one_error_line(cp, "open /dev/tty: no such device or address")
    assert not os.path.exists(os.path.join(rt.root, "tty"))
    b2 = make_bundle(["sleep", "60"])
    rt("run", "-d", "-b", b2, "x")
    cp = rt("exec", "-t", "x", "sh", check=False, timeout=20, stdin=subprocess.DEVNULL)
    assert cp.returncode != 0 and b"open /dev/tty: no such device or address" in cp.stderr, cp
    if RUNC:     # the control: runc refuses the same
        with runc_control(str(tmp_path / "runc")) as runc:
            r = runc("run", "-b", b, "tty-runc", check=False, stdin=subprocess.DEVNULL, timeout=20,
                     start_new_session=True)
            assert r.returncode != 0 and b"/dev/tty" in r.stderr, r


@pytest.mark.skipif(RUNC is None, reason="runc (the control) is not installed")
def test_shared_cgroup_runc_control(rt, make_bundle, tmp_path):
    """The control: runc 1.1.5 warns that a non-empty cgroup is deprecated (refused from 1.2, as
    pyruntime does) and its delete --force of the second container leaves the first one running."""
    rel = f"{CG_PARENT}/shared-rc-{uuid.uuid4().hex[:6]}"
    setcg = lambda c: c["linux"].__setitem__("cgroupsPath", rel)  # noqa: E731
    ba, bb = make_bundle(["sleep", "60"], edit=setcg), make_bundle(["sleep", "60"], edit=setcg)
    rt("run", "-d", "-b", ba, "A")
    pa = rt.state("A")["pid"]
    try:
        with runc_control(str(tmp_path / "runc-root")) as runc:   # its R deleted before A, at the end
            r = runc("create", "-b", bb, "R", check=False, stdout=subprocess.DEVNULL, timeout=30)
            assert b"cgroup is not empty" in r.stderr
            if r.returncode == 0:
                runc("delete", "--force", "R", check=False, timeout=30)
            assert alive(pa) and rt.state("A")["status"] == "running"
    finally:
        rt("delete", "--force", "A")
    assert not cgroup_dirs(rel)


@pytest.mark.cgroup      # also in the pure cgroup v2 VM lane
def test_nested_pid_namespace_is_the_containers_own(rt, make_bundle):
    """Processes in a pid namespace the container made itself are its own: delete kills them and
    removes the cgroup (only a sibling's processes are spared)."""
    def edit(c):
        for s in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][s].append("CAP_SYS_ADMIN")
    b = make_bundle(["sh", "-c", "unshare -p -f sleep 60 & sleep 60"], edit=edit)
    rt("run", "-d", "-b", b, "nest")
    rel = cg_of(b)
    deadline = time.monotonic() + 10
    while len(cg_pids(rel)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = cg_pids(rel)
    # sh (exec'd into its last sleep), unshare, and the sleep in the nested namespace
    assert len(pids) >= 3, [open(f"/proc/{p}/cmdline").read() for p in pids]
    levels = [open(f"/proc/{p}/status").read().split("NSpid:")[1].split("\n")[0].split() for p in pids]
    assert max(len(v) for v in levels) == 3, levels     # host, container, nested
    rt("delete", "--force", "nest")
    assert not [p for p in pids if alive(p)]
    assert not cgroup_dirs(rel)
