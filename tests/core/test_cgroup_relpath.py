"""Where a relative linux.cgroupsPath goes, offline (a made-up host layout, nothing created): runc's rule,
which the spec leaves to the runtime.  Pure cgroup v2: below the *parent* of the runtime's own cgroup
(runc's fs2 driver: the own cgroup usually holds processes, so a child of it could get no controllers);
"/" stays "/".  v1 and hybrid (the unified hierarchy included): below the own cgroup in each hierarchy.
The same placement against runc on a real host: tests/cgroups/test_containers.py
(test_relative_path_placement_like_runc, run in the pure v2 VM lane too)."""
from __future__ import annotations

import pytest

from pyruntime.cgroups import layout as cglayout
from pyruntime.cgroups import open_manager
from pyruntime.cgroups.layout import HYBRID, V1, V2, Layout
from pyruntime.errors import ConfigError

pytestmark = pytest.mark.cgroup     # offline, but the pure v2 VM lane runs it too

V1_MOUNTS = {"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids"}
V1_ROOTS = {"memory": "/", "pids": "/"}


def _manager(monkeypatch, lay: Layout, path: str) -> dict:
    monkeypatch.setattr(cglayout, "detect", lambda: lay)
    return open_manager(path, "relpath-id").to_state()


@pytest.mark.parametrize("own, want", [
    ("/ci.slice/runner.service", "/sys/fs/cgroup/ci.slice/a/b"),
    ("/user.slice/user-0.slice/session-3.scope", "/sys/fs/cgroup/user.slice/user-0.slice/a/b"),
    ("/top", "/sys/fs/cgroup/a/b"),
    ("/", "/sys/fs/cgroup/a/b"),               # the root has no parent: the root itself
])
def test_pure_v2_relative_goes_below_the_parent(monkeypatch, own, want):
    lay = Layout(V2, "/sys/fs/cgroup", "/", own={"": own})
    assert _manager(monkeypatch, lay, "a/b")["path"] == want
    assert _manager(monkeypatch, lay, "/a/b")["path"] == "/sys/fs/cgroup/a/b"     # absolute: as given


def test_pure_v2_in_a_cgroup_namespace(monkeypatch):
    """A mount whose root is the namespace's: /proc/self/cgroup paths are relative to it."""
    lay = Layout(V2, "/sys/fs/cgroup", "/ns", own={"": "/ns/svc/leaf"})
    assert _manager(monkeypatch, lay, "a")["path"] == "/sys/fs/cgroup/svc/a"


@pytest.mark.parametrize("kind", [V1, HYBRID])
def test_v1_and_hybrid_relative_goes_below_the_own_cgroup(monkeypatch, kind):
    own = {"memory": "/mem.slice/runner.service", "pids": "/pids.slice/runner.service"}
    unified = None
    if kind == HYBRID:
        own[""] = "/ci.slice/runner.service"
        unified = "/sys/fs/cgroup/unified"
    lay = Layout(kind, unified, "/", dict(V1_MOUNTS), dict(V1_ROOTS), own)
    st = _manager(monkeypatch, lay, "a/b")
    assert st["paths"] == {"memory": "/sys/fs/cgroup/memory/mem.slice/runner.service/a/b",
                           "pids": "/sys/fs/cgroup/pids/pids.slice/runner.service/a/b"}
    if kind == HYBRID:       # runc computes the unified path the v1 way: below the own cgroup, not its parent
        assert st["unified"]["path"] == "/sys/fs/cgroup/unified/ci.slice/runner.service/a/b"
    else:
        assert st.get("unified") is None


def test_pure_v2_relative_that_resolves_to_the_root_is_refused(monkeypatch):
    lay = Layout(V2, "/sys/fs/cgroup", "/", own={"": "/svc"})
    with pytest.raises(ConfigError, match="linux.cgroupsPath"):
        _manager(monkeypatch, lay, "./.")
