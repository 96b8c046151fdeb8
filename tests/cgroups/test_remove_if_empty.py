"""cgroups.remove_if_empty: the one removal of a container's empty cgroup directories, from its state
record and without the drivers (`delete` of a stopped container), which the drivers' destroy also
uses.  Real cgroups: the kernel's refusal (EBUSY) is what says "not empty"."""
from __future__ import annotations

import os

from conftest import fresh_path
from pyruntime.cgroups import manager_from_state, open_manager, remove_if_empty


def _dirs(rec: dict) -> list[str]:
    """Every directory a record names: leaves (unified first) and the parents it made."""
    u = rec.get("unified") or {}
    leaves = [rec["path"]] if rec["driver"] == "v2" else [*([u["path"]] if u else []), *rec["paths"].values()]
    return list(dict.fromkeys(leaves + list(rec.get("created") or []) + list(u.get("created") or [])))


def test_an_empty_cgroup_goes_with_the_parents_it_made_only(make_manager):
    top = os.path.dirname(fresh_path("x"))
    other = open_manager(f"{top}/other", "o")
    other.create()
    try:
        m = make_manager(f"{top}/ctr/leaf", "c")
        rec = m.to_state()
        assert all(os.path.isdir(d) for d in _dirs(rec))
        assert remove_if_empty(rec) is True
        # its own leaves and the parent only it used (ctr) are gone; `top`, which `other` uses, stays
        gone = [d for d in _dirs(rec) if not d.endswith("/" + top.split("/")[-1])]
        assert gone and not [d for d in gone if os.path.exists(d)]
        assert all(os.path.isdir(d) for d in _dirs(other.to_state()))
        assert remove_if_empty(rec) is True       # again: all gone already, fine
        m.destroy()                                  # the driver agrees: nothing left, no error
    finally:
        other.destroy()
    assert not [d for d in _dirs(other.to_state()) if os.path.exists(d)]


def test_a_populated_cgroup_is_refused_and_left_to_the_driver(make_manager, spawn):
    m = make_manager()
    p, _ = spawn()
    m.add_pid(p.pid)
    rec = m.to_state()
    assert remove_if_empty(rec) is False
    # the first refusal stops it: the directory holding the process (the unified one first on a hybrid
    # host) is there, and the process still in it
    assert p.pid in m.pids()
    manager_from_state(rec).destroy()                # the driver kills and removes
    assert not [d for d in _dirs(rec) if os.path.exists(d)]


def test_a_sub_cgroup_is_refused(make_manager):
    m = make_manager()
    rec = m.to_state()
    first = _dirs(rec)[0]
    os.mkdir(os.path.join(first, "sub"))
    assert remove_if_empty(rec) is False and os.path.isdir(os.path.join(first, "sub"))
    m.destroy()                                      # the driver removes sub-cgroups too
    assert not os.path.exists(first)


def test_systemd_and_unreadable_records_are_the_drivers(tmp_path):
    d = tmp_path / "scope"
    d.mkdir()
    # a systemd unit must be stopped through its manager: nothing is touched
    assert remove_if_empty({"driver": "systemd", "path": str(d), "unit": "x.scope", "created": []}) is False
    assert d.is_dir()
    for bad in ({}, {"driver": "v2"}, {"driver": "v2", "path": None}, {"driver": "v1", "paths": 3},
                {"driver": "v1", "paths": {}, "unified": {"created": []}}, {"driver": "v2", "path": str(d), "created": 5}):
        assert remove_if_empty(bad) is False, bad
