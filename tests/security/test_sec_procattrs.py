"""Process attributes seen from inside: personality, scheduler, I/O priority, CPU affinity, time
offsets, oom_score_adj, sysctl, LSM labels."""
from __future__ import annotations

import os

import pytest

from pyruntime import procattrs

from .helpers import both, err, out, status_fields


def _stat_fields(text: str) -> list[str]:
    """/proc/PID/stat fields, numbered like proc(5) (fields[1] is pid); comm may contain spaces."""
    head, _, tail = text.rpartition(")")
    pid = head.split("(", 1)[0].strip()
    return ["", pid, "comm"] + tail.split()


def test_personality_linux32(runtime, bundle):
    bundle.linux["personality"] = {"domain": "LINUX32"}
    bundle.sh("uname -m; cat /proc/self/personality")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    machine, pers = out(res).split()
    assert machine in ("i686", "i386", "armv7l", "armv8l", "s390", "ppc"), machine
    assert int(pers, 16) == procattrs.PER_LINUX32


def test_personality_flags(runtime, bundle):
    bundle.linux["personality"] = {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}
    bundle.sh("uname -m; cat /proc/self/personality")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    machine, pers = out(res).split()
    assert machine == os.uname().machine
    assert int(pers, 16) == procattrs.PERSONALITY_FLAGS["ADDR_NO_RANDOMIZE"]


def test_personality_bad_domain(runtime, bundle):
    bundle.linux["personality"] = {"domain": "SVR4"}
    cid = runtime.new_id()
    res = runtime.run(bundle, cid)
    assert res.returncode == 1 and "linux.personality.domain" in err(res), both(res)
    assert runtime.state(cid) is None


def test_scheduler_batch_nice(runtime, bundle):
    bundle.process["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    bundle.args("/bin/cat", "/proc/self/stat")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    f = _stat_fields(out(res))
    assert int(f[19]) == 7          # nice
    assert int(f[41]) == procattrs.SCHED_POLICIES["SCHED_BATCH"]  # policy


def test_scheduler_idle(runtime, bundle):
    bundle.process["scheduler"] = {"policy": "SCHED_IDLE"}
    bundle.args("/bin/cat", "/proc/self/stat")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    assert int(_stat_fields(out(res))[41]) == procattrs.SCHED_POLICIES["SCHED_IDLE"]


def test_scheduler_fifo(runtime, bundle):
    """A real-time policy; on cgroup v1 with RT group scheduling the container's cgroup needs an
    RT budget, so it is given one (linux.resources.cpu.realtimeRuntime)."""
    bundle.process["scheduler"] = {"policy": "SCHED_FIFO", "priority": 10}
    if os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
        bundle.linux.setdefault("resources", {})["cpu"] = {"realtimeRuntime": 10000, "realtimePeriod": 1000000}
        # directly under the root cgroup: an intermediate parent would have no RT budget to give
        bundle.linux["cgroupsPath"] = bundle.linux["cgroupsPath"].replace("/", "-rt-")
    bundle.args("/bin/cat", "/proc/self/stat")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    f = _stat_fields(out(res))
    assert int(f[41]) == procattrs.SCHED_POLICIES["SCHED_FIFO"]
    assert int(f[40]) == 10  # rt_priority


def test_scheduler_bad_priority(runtime, bundle):
    bundle.process["scheduler"] = {"policy": "SCHED_RR", "priority": 150}
    cid = runtime.new_id()
    res = runtime.run(bundle, cid)
    assert res.returncode == 1 and "process.scheduler.priority" in err(res), both(res)
    assert runtime.state(cid) is None


@pytest.mark.parametrize("cls,prio,expect", [
    ("IOPRIO_CLASS_BE", 3, "best-effort: prio 3"),
    ("IOPRIO_CLASS_IDLE", 0, "idle"),
    ("IOPRIO_CLASS_RT", 5, "realtime: prio 5"),
])
def test_io_priority(runtime, bundle, cls, prio, expect):
    bundle.process["ioPriority"] = {"class": cls, "priority": prio}
    bundle.sh("ionice -p $$")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    assert out(res).strip() == expect


def test_exec_cpu_affinity(runtime, bundle):
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs at least two CPUs to tell an affinity from the default")
    target = cpus[-1]
    bundle.process["execCPUAffinity"] = {"final": str(target)}
    bundle.sh("grep Cpus_allowed_list /proc/self/status")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    assert status_fields(out(res))["Cpus_allowed_list"] == str(target)


def test_exec_cpu_affinity_bad(runtime, bundle):
    bundle.process["execCPUAffinity"] = {"final": "0-100000"}
    cid = runtime.new_id()
    res = runtime.run(bundle, cid)
    assert res.returncode == 1 and "process.execCPUAffinity.final" in err(res), both(res)


def test_time_offsets(runtime, bundle):
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("kernel without time namespaces (CONFIG_TIME_NS)")
    days = 10
    bundle.add_namespace("time")
    bundle.linux["timeOffsets"] = {"boottime": {"secs": days * 86400, "nanosecs": 0},
                                   "monotonic": {"secs": 7200, "nanosecs": 500}}
    bundle.sh("cat /proc/uptime; cat /proc/self/timens_offsets")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    lines = out(res).splitlines()
    uptime = float(lines[0].split()[0])
    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    assert uptime >= host_uptime + days * 86400 - 60
    offsets = {ln.split()[0]: ln.split()[1:] for ln in lines[1:]}
    assert offsets["boottime"] == [str(days * 86400), "0"]
    assert offsets["monotonic"] == ["7200", "500"]


def test_time_offsets_need_time_namespace(runtime, bundle):
    bundle.linux["namespaces"] = [ns for ns in bundle.linux["namespaces"] if ns["type"] != "time"]
    bundle.linux["timeOffsets"] = {"boottime": {"secs": 5}}
    res = runtime.run(bundle)
    assert res.returncode == 1 and "linux.timeOffsets" in err(res), both(res)


def test_oom_score_adj(runtime, bundle):
    bundle.process["oomScoreAdj"] = 523
    bundle.args("/bin/cat", "/proc/self/oom_score_adj")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    assert out(res).strip() == "523"


def test_sysctl(runtime, bundle):
    """Namespaced sysctls are set in the container only; the host keeps its values."""
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_forward = f.read().strip()
    with open("/proc/sys/kernel/shm_rmid_forced") as f:
        host_rmid = f.read().strip()
    want_forward = "0" if host_forward == "1" else "1"
    want_rmid = "0" if host_rmid == "1" else "1"
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": want_forward, "kernel.shm_rmid_forced": want_rmid}
    bundle.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    assert out(res).split() == [want_forward, want_rmid]
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read().strip() == host_forward
    with open("/proc/sys/kernel/shm_rmid_forced") as f:
        assert f.read().strip() == host_rmid


def test_sysctl_unknown_key_fails(runtime, bundle):
    bundle.linux["sysctl"] = {"net.ipv4.no_such_knob": "1"}
    cid = runtime.new_id()
    res = runtime.run(bundle, cid)
    assert res.returncode == 1, both(res)
    assert "net.ipv4.no_such_knob" in err(res), both(res)
    assert runtime.state(cid) is None


def test_apparmor_profile(runtime, bundle):
    bundle.process["apparmorProfile"] = "unconfined"
    bundle.sh("cat /proc/self/attr/current")
    cid = runtime.new_id()
    res = runtime.run(bundle, cid)
    if procattrs.apparmor_enabled():
        assert res.returncode == 0, both(res)
        assert "unconfined" in out(res)
    else:
        assert res.returncode == 1, both(res)
        assert "process.apparmorProfile" in err(res) and "AppArmor is not enabled" in err(res), both(res)
        assert runtime.state(cid) is None


def test_selinux_label_without_selinux_is_ignored(runtime, bundle):
    if procattrs.selinux_enabled():
        pytest.skip("SELinux is enabled here: the label would be applied, not ignored")
    bundle.process["selinuxLabel"] = "system_u:system_r:container_t:s0:c1,c2"
    bundle.args("/bin/true")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
