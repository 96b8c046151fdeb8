"""seccomp.compile and procattrs encoders without containers: the decisions that are easy to get
subtly wrong (flag handling, rule merging, validation messages)."""
from __future__ import annotations

import errno

import pytest

from pyruntime import procattrs
from pyruntime import seccomp as sc
from pyruntime.errors import ConfigError


def test_program_is_whole_sock_filters():
    c = sc.compile({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})
    assert c.n > 0 and len(c.prog) == 8 * c.n
    assert c.flags == 0 and not c.notify


def test_rule_equal_to_default_is_dropped():
    base = sc.compile({"defaultAction": "SCMP_ACT_ALLOW"})
    same = sc.compile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}]})
    assert same.prog == base.prog


def test_errno_values_differ_in_program():
    a = sc.compile({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV}]})
    b = sc.compile({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})
    assert a.prog != b.prog


def test_unknown_names_reported_not_fatal():
    c = sc.compile({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["not_a_syscall_1", "mkdir"], "action": "SCMP_ACT_ERRNO"}]})
    assert c.skipped == ["not_a_syscall_1"]


def test_notify_sets_listener_flag_and_keeps_supported_flags():
    c = sc.compile({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                    "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"],
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})
    assert c.notify and c.flags & sc.FLAG_NEW_LISTENER
    if "SECCOMP_FILTER_FLAG_LOG" in sc.supported_flags():
        assert c.flags & sc.FLAG_LOG
    # TSYNC with a listener is only legal together with TSYNC_ESRCH
    assert not (c.flags & sc.FLAG_TSYNC) or c.flags & sc.FLAG_TSYNC_ESRCH


def test_wait_killable_without_listener_is_dropped():
    c = sc.compile({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]})
    assert c.flags == 0 and c.dropped_flags == ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]


@pytest.mark.parametrize("profile,field", [
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}, "linux.seccomp.defaultAction"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
      "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}, "linux.seccomp.syscalls[0].names"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "relative",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}, "linux.seccomp.listenerPath"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]},
     "linux.seccomp.syscalls[0].names"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"]}]}, "linux.seccomp.syscalls[0].action"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}, "linux.seccomp.defaultErrnoRet"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "linux.seccomp.defaultErrnoRet"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
      "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]}, "linux.seccomp.syscalls[0].args[0].value"),
])
def test_validation_names_the_field(profile, field):
    with pytest.raises(ConfigError) as exc:
        sc.compile(profile)
    assert exc.value.field == field


def test_features_lists():
    assert set(sc.supported_actions()) <= set(sc.ACTIONS)
    assert "SCMP_ARCH_X86_64" in sc.supported_archs() or "SCMP_ARCH_AARCH64" in sc.supported_archs()
    assert set(sc.supported_flags()) <= set(sc.known_flags())
    assert sc.libseccomp_version().count(".") == 2


def test_procattrs_encoders():
    assert procattrs.io_priority({"class": "IOPRIO_CLASS_BE", "priority": 4}) == (2 << 13) | 4
    assert procattrs.cpu_list(" 0 , 0-1", "f") == "0,0-1"
    assert procattrs.time_offsets({"monotonic": {"secs": -5, "nanosecs": 1}}) == "monotonic -5 1\n"
    assert procattrs.personality({"domain": "LINUX32", "flags": ["UNAME26"]}) == 0x0008 | 0x0020000
    s = procattrs.scheduler({"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 20, "period": 30})
    assert (s["policy"], s["runtime"], s["deadline"], s["period"]) == (6, 10, 20, 30)
    for bad in ({"policy": "SCHED_DEADLINE", "runtime": 30, "deadline": 20},
                {"policy": "SCHED_OTHER", "priority": 5}, {"policy": "SCHED_ISO"},
                {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_NOPE"]}):
        with pytest.raises(ConfigError):
            procattrs.scheduler(bad)
