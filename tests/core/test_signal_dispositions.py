"""A container's process starts with the signal dispositions runc gives it: not the ones the runtime's
interpreter set for itself (CPython ignores SIGPIPE and SIGXFSZ, and an ignored disposition survives
execve), for `run` and `exec` alike.  runc 1.1.5 is the control when installed."""
from __future__ import annotations

import uuid

from pyrt_testenv import RUNC, runc_control

SIGPIPE, SIGXFSZ = 13, 25
SHOW = ["sh", "-c", "grep SigIgn /proc/self/status"]


def _ignored(text: str) -> int:
    return int(text.split()[-1], 16)


def test_sigpipe_and_sigxfsz_are_default_in_run_and_exec(rt, make_bundle):
    cid = f"sig-{uuid.uuid4().hex[:8]}"
    ran = _ignored(rt.out("run", "--bundle", make_bundle(SHOW), f"{cid}-run"))
    rt("run", "-d", "--bundle", make_bundle(["sleep", "60"]), cid)
    execd = _ignored(rt.out("exec", cid, *SHOW))
    for mask, what in ((ran, "run"), (execd, "exec")):
        assert not mask & (1 << (SIGPIPE - 1) | 1 << (SIGXFSZ - 1)), f"{what}: SigIgn {mask:#x}"
    if RUNC:
        with runc_control() as runc:
            control = _ignored(runc.out("run", "--bundle", make_bundle(SHOW, name="runc"), f"{cid}-runc"))
        assert ran == control, f"SigIgn: pyruntime {ran:#x}, runc {control:#x}"
