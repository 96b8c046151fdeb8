"""The systemd lane's fixtures (run by `make test-systemd` in a VM whose PID 1 is systemd).

Every test takes ``runtime`` ("runc" first, then "pyruntime") and runs the same steps with both: runc
is the control.  A test that fails with runc is reported as skipped ("control: runc fails this here"),
and the same test with pyruntime, if it fails too, as skipped "not applicable" -- never as a pass.
Outside such a VM everything is skipped with the reason.
"""
from __future__ import annotations

import pytest

from sdenv import Lane, systemd_here

_runc_failed: dict[str, str] = {}


def pytest_collection_modifyitems(config, items):
    why = systemd_here()
    if why:
        for it in items:
            if "tests/systemd/" in str(it.fspath):
                it.add_marker(pytest.mark.skip(reason=why))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    rt = getattr(item, "callspec", None) and item.callspec.params.get("runtime")
    if rt is None or rep.when != "call" or not rep.failed:
        return
    base = item.nodeid.split("[")[0]
    first = str(call.excinfo.value).strip().splitlines()[0][:300] if call.excinfo else "?"
    if rt == "runc":
        _runc_failed[base] = first
        rep.outcome, rep.longrepr = "skipped", (str(item.fspath), item.location[1] or 0,
                                                 f"control: runc fails this here: {first}")
    elif base in _runc_failed:
        rep.outcome, rep.longrepr = "skipped", (str(item.fspath), item.location[1] or 0,
                                                 f"not applicable: fails with runc too ({_runc_failed[base]}); "
                                                 f"pyruntime: {first}")


@pytest.fixture(params=["runc", "pyruntime"])
def runtime(request):
    return request.param


@pytest.fixture
def lane(tmp_path, runtime):
    ln = Lane(tmp_path, runtime)
    yield ln
    ln.cleanup()
