"""`exec --cgroup` (runc's flag): the exec'd process joins an existing sub-cgroup of the container's,
for every hierarchy (a plain PATH) or per v1 controller (CTRL[,CTRL]:PATH); bad paths fail in one line
with nothing started.  The same checks run against runc 1.1.5 (the control) where it behaves alike.
Marked `cgroup`: they run on this hybrid host and in the pure cgroup v2 VM (make test-cgroup2), where
PATH is the only form (one hierarchy)."""
from __future__ import annotations

import os
import uuid

import pytest
from pyrt_testenv import RUNC, Runtime, cgroup_dirs, pure_v2, pyruntime_or_runc

SUB = "execcg-sub"
pytestmark = pytest.mark.cgroup


@pytest.fixture(params=["pyruntime", "runc"])
def runtime(request, rt):
    yield from pyruntime_or_runc(request.param, rt)


def _start(runtime: Runtime, make_bundle) -> tuple[str, list[str]]:
    """A running container and its cgroup directories (every hierarchy), each with a sub-cgroup SUB."""
    b = make_bundle(["sleep", "100"])
    cid = f"execcg{uuid.uuid4().hex[:6]}"
    runtime("run", "-d", "--bundle", b, cid, stdin=open(os.devnull))
    # read from the init, not derived from cgroupsPath: where a relative path lands depends on the host (on
    # pure v2 below the parent of the runtime's cgroup, elsewhere below it; test_relative_path_placement_like_runc)
    dirs = cgroup_dirs("", runtime.state(cid)["pid"])
    assert dirs, cid
    for d in dirs:
        os.mkdir(os.path.join(d, SUB))
        if os.path.exists(os.path.join(d, "cpuset.cpus")) and "cpuset" in d:     # v1 cpuset: empty until set
            for f in ("cpuset.cpus", "cpuset.mems"):
                with open(os.path.join(d, f)) as src, open(os.path.join(d, SUB, f), "w") as dst:
                    dst.write(src.read())
    return cid, dirs


def _cgroups(runtime: Runtime, cid: str, *flags: str) -> dict[str, str]:
    """controller -> the exec'd process's cgroup ("" the unified one), as it sees /proc/self/cgroup."""
    out = runtime.out("exec", *flags, cid, "cat", "/proc/self/cgroup")
    got = {}
    for line in out.splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in (ctrls.split(",") if ctrls else [""]):
            got[c] = path
    return got


def _in_sub(path: str) -> bool:
    return path.rstrip("/").endswith("/" + SUB)


def test_exec_joins_sub_cgroup(runtime, make_bundle, tmp_path):
    cid, dirs = _start(runtime, make_bundle)
    base = _cgroups(runtime, cid)
    assert not any(_in_sub(p) for p in base.values()), base
    every = _cgroups(runtime, cid, "--cgroup", SUB)        # one PATH: every hierarchy, the unified one too
    assert every.keys() == base.keys() and all(_in_sub(p) for p in every.values()), every
    # the host's view: a detached exec's pid is in SUB's cgroup.procs in every hierarchy (on pure v2 the
    # one unified directory), and not in the container's own directory
    pidf = str(tmp_path / "exec.pid")
    runtime("exec", "-d", "--pid-file", pidf, "--cgroup", SUB, cid, "sleep", "100", stdin=open(os.devnull))
    pid = int(open(pidf).read())
    for d in dirs:
        assert str(pid) in open(os.path.join(d, SUB, "cgroup.procs")).read().split(), (d, pid)
        assert str(pid) not in open(os.path.join(d, "cgroup.procs")).read().split(), (d, pid)
    if pure_v2():
        runtime("delete", "--force", cid)
        return
    one = _cgroups(runtime, cid, "--cgroup", f"memory:{SUB}")
    assert _in_sub(one["memory"]) and not any(_in_sub(p) for c, p in one.items() if c != "memory"), one
    two = _cgroups(runtime, cid, "--cgroup", f"memory,pids:/{SUB}")       # absolute = below the container's
    assert {c for c, p in two.items() if _in_sub(p)} == {"memory", "pids"}, two
    rep = _cgroups(runtime, cid, "--cgroup", f"memory:{SUB}", "--cgroup", f"pids:{SUB}")
    assert {c for c, p in rep.items() if _in_sub(p)} == {"memory", "pids"}, rep
    runtime("delete", "--force", cid)


@pytest.mark.parametrize("flag,why", [("nope", "missing"), ("../..", "escapes"), ("memory:nope", "missing"),
                                      ("memory:../..", "escapes"), ("memory:x:y", "syntax")])
def test_exec_bad_sub_cgroup(runtime, make_bundle, flag, why):
    """One line, exec's status 255 (runc's for every exec failure), no process started, nothing made."""
    if pure_v2() and ":" in flag:
        pytest.skip("per-controller paths need cgroup v1 controllers; this host is pure cgroup v2")
    cid, dirs = _start(runtime, make_bundle)
    before = {d: sorted(os.listdir(d)) for d in dirs}
    cp = runtime("exec", "--cgroup", flag, cid, "echo", "ran", check=False)
    err = cp.stderr.decode()
    assert cp.returncode == 255 and cp.stdout == b"" and "Traceback" not in err, (cp, err)
    assert len(err.strip().splitlines()) == 1, err
    if why == "escapes":
        assert "is not a sub cgroup path" in err, err
    if why == "syntax":
        assert "invalid --cgroup argument" in err, err
    if why == "missing" and runtime.binary != RUNC:
        assert "does not exist" in err and "nope" in err, err
    assert {d: sorted(os.listdir(d)) for d in dirs} == before
    ps = runtime.out("ps", cid).strip().splitlines()
    assert len(ps) == 2 and ps[1].endswith("sleep 100"), ps               # the header and the init only
    runtime("delete", "--force", cid)


def test_exec_cgroup_flag_errors_pyruntime(rt, make_bundle):
    """pyruntime's wording where runc 1.1.5 accepts odd input (an empty controller joins every hierarchy
    there) or names its internals: refused, naming the argument."""
    cid, _ = _start(rt, make_bundle)
    cases = [([":" + SUB], "empty <controller> prefix"), ([SUB, "--cgroup", f"pids:{SUB}"],
             "missing <controller>: prefix")]
    if pure_v2():
        cases.append(([f"memory:{SUB}"], "cgroup v2 has one hierarchy"))
    else:
        cases += [([f"bogus:{SUB}"], "unknown controller bogus"),
                  ([f"memory:{SUB}", "--cgroup", "memory:other"], "controller memory given two different paths")]
    for flags, want in cases:
        cp = rt("exec", "--cgroup", *flags, cid, "true", check=False)
        err = cp.stderr.decode()
        assert cp.returncode == 255 and want in err and len(err.strip().splitlines()) == 1, (flags, err)
    rt("delete", "--force", cid)
