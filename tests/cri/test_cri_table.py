"""The CRI lane's verdict rules (tests/cri/lane.py), without containerd: a step that fails with runc is
n/a with runc's error, never a pass; a step only pyruntime fails (or never reached) fails the lane."""
from __future__ import annotations

from tests.cri.lane import CRI_STEPS, Lane


def lane_with(results: dict[str, dict[str, tuple[str, str]]]) -> Lane:
    lane = Lane.__new__(Lane)   # the table needs only the results, not a daemon
    lane.results = {s: dict(results.get(s, {"runc": ("ok", ""), "pyruntime": ("ok", "")})) for s in CRI_STEPS}
    return lane


def test_all_ok_passes():
    rows, failed = lane_with({}).table()
    assert failed == [] and len(rows) == len(CRI_STEPS) + 2


def test_runc_failure_is_not_applicable_not_a_pass():
    rows, failed = lane_with({"ContainerStats": {"runc": ("FAIL", "no stats here"),
                                                  "pyruntime": ("FAIL", "no stats here")}}).table()
    assert failed == []
    row = next(r for r in rows if r.startswith("ContainerStats"))
    assert "n/a: fails with runc too: no stats here" in row and "| ok" not in row


def test_pyruntime_only_failure_and_not_run_fail_the_lane():
    rows, failed = lane_with({"ExecSync (exit code)": {"runc": ("ok", ""), "pyruntime": ("FAIL", "exit 1")},
                              "ContainerStats": {"runc": ("ok", ""), "pyruntime": ("not run", "after ...")}}).table()
    assert failed == ["ExecSync (exit code)", "ContainerStats"]
