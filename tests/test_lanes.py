"""`make test` runs every lane to the end, prints each lane's verdict and fails at the end if any failed
(mk/lanes.sh); a lane that skips says so with its reason, never "PASSED"."""
from __future__ import annotations

import os
import subprocess

from pyrt_testenv import ROOT


def test_every_lane_runs_and_the_verdict_comes_last(tmp_path):
    (tmp_path / "Makefile").write_text(
        "first:\n\t@echo first ran; exit 3\n"
        "second:\n\t@echo 'test-x: SKIPPED: no VM here'\n"
        "third:\n\t@echo third ran\n")
    cp = subprocess.run([os.path.join(ROOT, "mk", "lanes.sh"), "make", "first", "second", "third"],
                        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    out = cp.stdout
    assert cp.returncode == 1, out
    assert "first ran" in out and "third ran" in out          # a failed lane does not stop the others
    assert "== lane first: FAILED (exit 2" in out      # make reports the failed recipe as 2
    assert "== lane second: SKIPPED: no VM here" in out
    assert "== lane third: PASSED" in out
    assert out.rstrip().endswith("== make test: FAILED")
    assert "first ran" in (tmp_path / "build" / "lanes" / "first.log").read_text()


def test_all_lanes_passing_exits_zero(tmp_path):
    (tmp_path / "Makefile").write_text("a:\n\t@true\nb:\n\t@true\n")
    cp = subprocess.run([os.path.join(ROOT, "mk", "lanes.sh"), "make", "a", "b"], cwd=tmp_path,
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stdout
    assert "== lane a: PASSED" in cp.stdout and "== lane b: PASSED" in cp.stdout


def test_make_test_lists_the_lanes():
    """The lanes `make test` runs: the suite first, then each lane a mk file registers (the cgroup v2 VM,
    the clients...).  A lane hung on `test-lanes:` as a prerequisite would bypass the verdicts."""
    cp = subprocess.run(["make", "-s", "-C", ROOT, "--eval", "print-lanes:\n\t@echo $(TEST_LANES)",
                         "print-lanes"], capture_output=True, text=True, timeout=60)
    lanes = cp.stdout.split()
    assert lanes[0] == "test-suite" and {"test-cgroup2", "test-cri", "test-e2e"} <= set(lanes), cp
    assert len(lanes) == len(set(lanes)), lanes
    mk = os.path.join(ROOT, "mk")
    for name in sorted(os.listdir(mk)):
        if name.endswith(".mk"):
            for line in open(os.path.join(mk, name)):
                assert not line.startswith("test-lanes:"), f"mk/{name}: use TEST_LANES += <lane>, not {line!r}"
