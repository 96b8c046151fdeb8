"""Containers under real cgroup limits: the whole runtime (create/run/pause/update/ps/events/delete)."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time

import pytest

from conftest import PY, ROOT, need, unique, v2_controllers  # module level: inside a test, "conftest" may be another suite's
from pyrt_testenv import RUNC, runc_control

from pyruntime.cgroups import manager_from_state
from pyruntime.cgroups.layout import V2, host_path
from pyruntime.cgroups.resources import shares_to_weight

pytestmark = pytest.mark.cgroup


def rd(d: str, name: str) -> str:
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def cg_dir(st: dict, ctrl: str) -> str:
    return st["path"] if st["driver"] == "v2" else st["paths"][ctrl]


def load_state(c, cid: str) -> dict:
    with open(os.path.join(c.root, cid, "state.json")) as f:
        return json.load(f)


def create(c, bundle: str) -> str:
    """`pyruntime create` with the init's stdio on files (a pipe would stay open while it lives)."""
    cid = c.new_id()
    out = open(os.path.join(str(c.tmp), f"{cid}.out"), "w+")
    env = dict(os.environ, PYTHONPATH=ROOT)
    res = subprocess.run([PY, "-m", "pyruntime", "--root", c.root, "create", "--bundle", bundle, cid],
                         cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60)
    out.seek(0)
    assert res.returncode == 0, out.read()
    out.close()
    return cid


def status(c, cid: str) -> str:
    res = c.cli("state", cid, check=True)
    return json.loads(res.stdout)["status"]


def test_tiny_memory_limit_runs_echo(containers, layout):
    need(layout, "memory", "memory limits")
    b, _ = containers.bundle(["echo", "hi"], {"memory": {"limit": 2 << 20}})
    _, res = containers.run(b)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hi\n"


def test_memory_limit_oom_kills(containers, layout):
    need(layout, "memory", "memory limits")
    b, _ = containers.bundle(["sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived ${#x}"],
                             {"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    cid, res = containers.run(b, "--keep")
    assert res.returncode == 128 + signal.SIGKILL, (res.stdout, res.stderr)
    assert "survived" not in res.stdout
    st = load_state(containers, cid)["cgroup"]
    d = cg_dir(st, "memory")
    if st["driver"] == "v2":
        assert int(dict(line.split() for line in rd(d, "memory.events").splitlines())["oom_kill"]) >= 1
    else:
        assert rd(d, "memory.limit_in_bytes") == str(32 << 20)
        assert int(dict(line.split() for line in rd(d, "memory.oom_control").splitlines())["oom_kill"]) >= 1


def test_pids_limit_stops_ninth_process(containers, layout):
    need(layout, "pids", "pids limits")
    script = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & echo started $i; done"
    b, _ = containers.bundle(["sh", "-c", script], {"pids": {"limit": 8}})
    _, res = containers.run(b)
    started = [line for line in res.stdout.splitlines() if line.startswith("started")]
    assert len(started) == 7, res.stdout           # sh + 7 sleeps = 8 processes
    assert "can't fork" in res.stderr or "Resource temporarily unavailable" in res.stderr, res.stderr


def test_cpu_cpuset_blkio_values_land(containers, layout):
    need(layout, "cpu", "cpu limits")
    r = {"cpu": {"shares": 256, "quota": 30000, "period": 100000}}
    cpuset = (layout.kind == V2 and "cpuset" in _v2(layout)) or "cpuset" in layout.v1
    if cpuset:
        r["cpu"].update({"cpus": "0", "mems": "0"})
    blk = ("io" in _v2(layout)) if layout.kind == V2 else "blkio" in layout.v1
    mj = mn = None
    if blk:
        with open(f"/sys/block/{_disk()}/dev") as f:
            mj, mn = (int(x) for x in f.read().split(":"))
        r["blockIO"] = {"throttleReadBpsDevice": [{"major": mj, "minor": mn, "rate": 2097152}]}
    b, _ = containers.bundle(["sleep", "1000"], r)
    cid = create(containers, b)
    st = load_state(containers, cid)["cgroup"]
    if st["driver"] == "v2":
        assert rd(st["path"], "cpu.max") == "30000 100000"
        assert rd(st["path"], "cpu.weight") == str(shares_to_weight(256))
    else:
        assert rd(st["paths"]["cpu"], "cpu.shares") == "256"
        assert rd(st["paths"]["cpu"], "cpu.cfs_quota_us") == "30000"
        assert rd(st["paths"]["cpu"], "cpu.cfs_period_us") == "100000"
    if cpuset:
        assert rd(cg_dir(st, "cpuset"), "cpuset.cpus") == "0"
    if blk:
        if st["driver"] == "v2":
            assert "rbps=2097152" in rd(st["path"], "io.max")
        else:
            assert rd(st["paths"]["blkio"], "blkio.throttle.read_bps_device") == f"{mj}:{mn} 2097152"
    # the init (still waiting for start) is in the cgroup, the runtime is not
    pids = json.loads(containers.cli("ps", "--format", "json", cid, check=True).stdout)
    assert pids == [load_state(containers, cid)["pid"]]
    assert containers.cli("delete", "--force", cid).returncode == 0
    for d in st["created"]:
        assert not os.path.exists(d), d


def _v2(layout) -> set[str]:
    return v2_controllers(layout)


def _disk() -> str:
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram")):
            return name
    pytest.skip("blkio throttles need a disk; this host has none in /sys/block")


def _openable_block() -> tuple[int, int]:
    for name in sorted(os.listdir("/sys/class/block")):
        try:
            st = os.stat(f"/dev/{name}")
            os.close(os.open(f"/dev/{name}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        except OSError:
            continue
        return os.major(st.st_rdev), os.minor(st.st_rdev)
    pytest.skip("device rule tests need a block device node that this host lets root open outside any "
                "container; this host has none")


def test_default_deny_stops_block_device_read(containers, layout):
    if layout.kind != V2:
        need(layout, "devices", "device rules")
    mj, mn = _openable_block()

    def tmp_dev(cfg):
        cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                              "options": ["nosuid", "mode=1777", "size=1m"]})
    script = (f"mknod /tmp/blk b {mj} {mn} && echo mknod-ok; "
              "if head -c1 /tmp/blk >/dev/null; then echo read-ok; else echo read-denied; fi")
    b, _ = containers.bundle(["sh", "-c", script], caps=["CAP_MKNOD"], mutate=tmp_dev)
    _, res = containers.run(b)
    assert "mknod-ok" in res.stdout and "read-denied" in res.stdout, (res.stdout, res.stderr)
    assert "Operation not permitted" in res.stderr
    # positive control: the same container with the device allowed reads it
    b, _ = containers.bundle(["sh", "-c", script], caps=["CAP_MKNOD"], mutate=tmp_dev,
                             resources={"devices": [{"allow": False, "access": "rwm"},
                                                    {"allow": True, "type": "b", "major": mj, "minor": mn,
                                                     "access": "r"}]})
    _, res = containers.run(b)
    assert "mknod-ok" in res.stdout and "read-ok" in res.stdout, (res.stdout, res.stderr)


def test_pause_resume(containers, layout):
    b, _ = containers.bundle(["sleep", "1000"])
    cid = create(containers, b)
    assert containers.cli("start", cid).returncode == 0
    assert status(containers, cid) == "running"
    res = containers.cli("resume", cid)
    assert res.returncode != 0 and "container not paused" in res.stderr
    assert containers.cli("pause", cid, check=True).returncode == 0
    assert status(containers, cid) == "paused"
    st = load_state(containers, cid)["cgroup"]
    if st["driver"] == "v2":
        assert "frozen 1" in rd(st["path"], "cgroup.events")
    elif "freezer" in st["paths"]:
        assert rd(st["paths"]["freezer"], "freezer.state") == "FROZEN"
    with open(f"/proc/{load_state(containers, cid)['pid']}/stat") as f:
        assert f.read().rsplit(")", 1)[1].split()[0] in ("D", "S")
    res = containers.cli("pause", cid)
    assert res.returncode != 0 and "container not running" in res.stderr
    assert containers.cli("resume", cid, check=True).returncode == 0
    assert status(containers, cid) == "running"
    # killed while paused: delete still removes everything
    containers.cli("pause", cid, check=True)
    assert containers.cli("kill", cid, "KILL").returncode == 0
    assert containers.cli("delete", "--force", cid).returncode == 0
    for d in st["created"]:
        assert not os.path.exists(d), d


def test_update(containers, layout):
    need(layout, "memory", "memory limits")
    need(layout, "pids", "pids limits")
    b, _ = containers.bundle(["sleep", "1000"], {"memory": {"limit": 32 << 20}, "pids": {"limit": 10}})
    cid = create(containers, b)
    args = ["update", "--memory", "64m", "--pids-limit", "20", "--cpu-quota", "20000", "--cpu-period",
            "100000", "--cpu-shares", "300"]
    res = containers.cli(*args, cid)
    assert res.returncode == 0, res.stderr
    st = load_state(containers, cid)["cgroup"]
    if st["driver"] == "v2":
        assert rd(st["path"], "memory.max") == str(64 << 20)
        assert rd(st["path"], "pids.max") == "20"
        assert rd(st["path"], "cpu.max") == "20000 100000"
    else:
        assert rd(st["paths"]["memory"], "memory.limit_in_bytes") == str(64 << 20)
        assert rd(st["paths"]["pids"], "pids.max") == "20"
        assert rd(st["paths"]["cpu"], "cpu.cfs_quota_us") == "20000"
        assert rd(st["paths"]["cpu"], "cpu.shares") == "300"
    res = containers.cli("update", "--resources", "-", cid, input=json.dumps({"pids": {"limit": 30}}))
    assert res.returncode == 0, res.stderr
    assert rd(cg_dir(st, "pids"), "pids.max") == "30"
    res = containers.cli("update", "--resources", "-", cid, input=json.dumps({"memory": {"limit": "x"}}))
    assert res.returncode != 0 and "linux.resources.memory.limit" in res.stderr
    containers.cli("delete", "--force", cid, check=True)
    res = containers.cli("update", "--pids-limit", "5", cid)
    assert res.returncode != 0 and "does not exist" in res.stderr


def test_events_stats_and_ps(containers, layout):
    need(layout, "memory", "memory limits")
    b, _ = containers.bundle(["sh", "-c", "sleep 1000 & sleep 1000"], {"memory": {"limit": 48 << 20}})
    cid = create(containers, b)
    containers.cli("start", cid, check=True)
    init = load_state(containers, cid)["pid"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = json.loads(containers.cli("ps", "--format", "json", cid, check=True).stdout)
        if len(pids) == 2:
            break
        time.sleep(0.05)
    assert init in pids and len(pids) == 2
    table = containers.cli("ps", cid, check=True).stdout.splitlines()
    assert "PID" in table[0].split()
    col = table[0].split().index("PID")
    assert sorted(int(line.split()[col]) for line in table[1:]) == sorted(pids)
    res = containers.cli("events", "--stats", cid, check=True)
    ev = json.loads(res.stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    assert ev["data"]["memory"]["usage"]["limit"] == 48 << 20
    assert ev["data"]["memory"]["usage"]["usage"] > 0
    containers.cli("delete", "--force", cid, check=True)
    res = containers.cli("events", "--stats", cid)
    assert res.returncode != 0 and "does not exist" in res.stderr


def _hog_done(mgr) -> bool:
    """The container's shell has moved past the hog (it runs `sleep 1000` once the hog is over)."""
    for pid in mgr.pids():
        try:
            if open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[:2] == [b"sleep", b"1000"]:
                return True
        except OSError:
            pass
    return False


def test_events_reports_oom(containers, layout):
    """Deterministic: wait for the cgroup's own OOM counter (memory.events oom_kill on v2,
    memory.oom_control on v1) to move, however slow the host (a TCG VM takes minutes to fill 32 MiB),
    then the next poll of `events` must report it.  The only time bound is a guard against a hang."""
    need(layout, "memory", "memory limits")
    hog = "sh -c \"x=\\$(head -c 100000000 /dev/zero | tr '\\\\0' a)\""
    b, _ = containers.bundle(["sh", "-c", f"sleep 1; {hog}; sleep 1000"],
                             {"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    cid = create(containers, b)
    mgr = manager_from_state(load_state(containers, cid)["cgroup"])
    assert mgr.oom_kills() == 0
    env = dict(os.environ, PYTHONPATH=ROOT)
    ev = subprocess.Popen([PY, "-m", "pyruntime", "--root", containers.root, "events", "--interval", "30s", cid],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        containers.cli("start", cid, check=True)
        guard = time.monotonic() + 900       # a hang guard only: progress is what ends the wait
        while not mgr.oom_kills():
            assert not _hog_done(mgr), "the memory hog finished without an OOM kill: the limit was not applied"
            assert time.monotonic() < guard, "no OOM kill and the hog still running after 900 s"
            time.sleep(0.2)
        got = []
        while not any(e["type"] == "oom" for e in got):
            r, _, _ = select.select([ev.stdout], [], [], 120)
            assert r, f"the cgroup counted an OOM kill but events reported none: {got}"
            line = ev.stdout.readline()
            assert line, f"events ended: {ev.stderr.read()}"
            got.append(json.loads(line))
        assert got[0]["type"] == "stats"
        assert {"type": "oom", "id": cid} in got, got
    finally:
        ev.kill()
        ev.wait()
        ev.stdout.close()
        ev.stderr.close()


def test_delete_leaves_no_cgroup(containers):
    b, _ = containers.bundle(["true"])
    cid = create(containers, b)
    st = load_state(containers, cid)["cgroup"]
    dirs = [st["path"]] if st["driver"] == "v2" else list(st["paths"].values())
    assert all(os.path.isdir(d) for d in dirs)
    assert containers.cli("delete", "--force", cid).returncode == 0
    for d in dirs + st["created"]:
        assert not os.path.exists(d), d
    assert manager_from_state(st).pids() == []


def _all_dirs(cg: dict) -> list[str]:
    """Every directory a cgroup record names: the leaf in each hierarchy, the unified one, the parents made."""
    leaves = [cg["path"]] if cg["driver"] == "v2" else list(cg["paths"].values())
    if cg.get("unified"):
        leaves += [cg["unified"]["path"]] + cg["unified"]["created"]
    return leaves + cg["created"]


def _wait_stopped(c, cid: str) -> None:
    deadline = time.monotonic() + 30
    while status(c, cid) != "stopped":
        assert time.monotonic() < deadline, f"{cid} still {status(c, cid)} after 30 s"
        time.sleep(0.05)


def test_delete_of_a_stopped_container_removes_its_cgroup(containers):
    """What every shim does once the container exited: `delete` (no --force) of a stopped container
    removes every directory of its cgroup, the unified one on a hybrid host too, without the drivers
    (control.py) and with them alike."""
    b, _ = containers.bundle(["true"])
    cid = create(containers, b)
    cg = load_state(containers, cid)["cgroup"]
    dirs = [d for d in _all_dirs(cg) if os.path.isdir(d)]
    assert dirs and all(os.path.isdir(d) for d in dirs)
    containers.cli("start", cid, check=True)
    _wait_stopped(containers, cid)
    res = containers.cli("delete", cid)
    assert res.returncode == 0, res.stderr
    assert [d for d in dirs if os.path.exists(d)] == []
    assert not os.path.lexists(os.path.join(containers.root, cid))


def test_delete_of_a_stopped_container_kills_what_it_left_behind(containers):
    """A container in the host's pid namespace can leave a process in its cgroup when its init exits.
    `delete` of the stopped container must not stop at the kernel's refusal to remove a populated
    cgroup: the driver kills the leftover (the container's own: no other container names the cgroup)
    and removes every directory."""
    def host_pidns(cfg: dict) -> None:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]

    b, _ = containers.bundle(["sh", "-c", "sleep 1000 & exit 0"], mutate=host_pidns)
    cid = create(containers, b)
    cg = load_state(containers, cid)["cgroup"]
    dirs = [d for d in _all_dirs(cg) if os.path.isdir(d)]
    containers.cli("start", cid, check=True)
    _wait_stopped(containers, cid)
    left = manager_from_state(cg).pids()
    assert len(left) == 1, f"expected the sleep alone in the stopped container's cgroup: {left}"
    res = containers.cli("delete", cid)
    assert res.returncode == 0, res.stderr
    try:
        with open(f"/proc/{left[0]}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"), "the leftover sleep still runs"
    except FileNotFoundError:
        pass
    assert [d for d in dirs if os.path.exists(d)] == []


def _no_cgroupns(cfg: dict) -> None:
    """The container sees the host's cgroup paths in /proc/self/cgroup."""
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "cgroup"]


def _cgroup_lines(out: str) -> dict[str, str]:
    """/proc/self/cgroup as hierarchy (its controllers, "" the unified one) -> path."""
    return {line.split(":", 2)[1]: line.split(":", 2)[2] for line in out.splitlines() if line.count(":") >= 2}


def test_relative_path_placement_like_runc(containers, layout):
    """A relative cgroupsPath lands where runc puts it (the spec leaves the base to the runtime): on a
    pure v2 host below the parent of the runtime's own cgroup ("/" stays "/"), on v1/hybrid below its
    own cgroup in every hierarchy.  runc 1.1.5 runs the same config as the control; the VM lane (its
    runtime in /ci.slice/runner.service) is where the two rules differ."""
    if not RUNC:
        pytest.skip("runc is not installed on this host (the control runtime)")
    got = {}
    for name in ("pyruntime", "runc"):
        rel = unique(f"rel-{name}")     # one component: runc removes it at delete, like pyruntime
        b, _ = containers.bundle(["cat", "/proc/self/cgroup"], cgroups_path=rel, mutate=_no_cgroupns)
        if name == "pyruntime":
            _, res = containers.run(b)
            assert res.returncode == 0, res.stderr
            out = res.stdout
        else:
            with runc_control() as r:
                out = r.out("run", "--bundle", b, unique("runc"), stdin=subprocess.DEVNULL)
        lines = _cgroup_lines(out)
        assert lines and all(p.endswith("/" + rel) for p in lines.values()), (name, out)
        got[name] = {h: os.path.dirname(p) for h, p in lines.items()}
    common = got["pyruntime"].keys() & got["runc"].keys()
    assert "" in common or layout.unified is None, got
    assert {h: got["pyruntime"][h] for h in common} == {h: got["runc"][h] for h in common}, got
    if layout.kind == V2:
        own = layout.own.get("", "/")
        assert got["pyruntime"] == {"": os.path.dirname(own.rstrip("/")) or "/"}, got
    elif layout.unified is not None:
        assert got["pyruntime"][""] == layout.own.get("", "/"), got


def test_cgroup_below_a_populated_cgroup(containers, layout):
    """The runtime itself sits in a populated, non-root cgroup (a systemd service, a CI runner: the VM
    lane runs from /ci.slice/runner.service) and the config's cgroupsPath is below it (absolute here: a
    relative one goes below that cgroup's parent, as runc's).  runc runs such a container (without
    controllers below the populated cgroup); so must we, instead of failing at clone
    (CLONE_INTO_CGROUP refused); a limit that needs a controller is a clear error naming it."""
    if layout.kind != V2 or layout.own.get("", "/") == "/":
        pytest.skip("needs a pure cgroup v2 host with this process in a non-root cgroup "
                    "(the cgroup v2 VM lane runs so; this host is not pure cgroup v2 or runs it in the root cgroup)")
    own = layout.own[""].rstrip("/")
    for res_, leaf in ((None, unique()), ({"memory": {"limit": 64 << 20}}, unique())):
        path = f"{own}/{leaf}/ctr"
        b, _ = containers.bundle(["cat", "/proc/self/cgroup"], res_, cgroups_path=path, mutate=_no_cgroupns)
        containers.cgroup_paths.remove(path)      # its top is our own cgroup: checked here, not force-removed
        _, res = containers.run(b)
        if res_ is None:
            assert res.returncode == 0, res.stderr
            assert res.stdout.strip() == f"0::{path}", res.stdout
        else:
            assert res.returncode == 1 and "linux.resources.memory" in res.stderr and "processes of its own" in \
                res.stderr, res.stderr
        assert not os.path.exists(os.path.join(host_path(layout.unified, layout.unified_root, own), leaf)), leaf


def test_created_init_is_in_every_cgroup_before_start(containers, layout):
    """create's init is in the container's cgroup in every hierarchy before `start`, with no
    cgroup.procs write (V1Manager.birth_fds: it writes itself into the v1 `tasks` files first thing,
    and is cloned into the v2 or hybrid unified one), while the runtime's own cgroups are untouched."""
    b, cgp = containers.bundle(["true"])
    own = _cgroup_lines(open("/proc/self/cgroup").read())
    cid = create(containers, b)
    pid = json.loads(containers.cli("state", cid).stdout)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        lines = _cgroup_lines(f.read())
    assert lines.keys() == own.keys(), (own, lines)
    assert all(p.endswith("/" + cgp.strip("/")) for p in lines.values()), (cgp, lines)
    assert _cgroup_lines(open("/proc/self/cgroup").read()) == own
