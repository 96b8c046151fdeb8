"""Capabilities and no_new_privs as the container process really has them (/proc/self/status)."""
from __future__ import annotations

import pytest

from pyruntime.capabilities import CAPS

from .helpers import both, err, out, status_fields

STATUS = "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status"


def mask(*names: str) -> int:
    m = 0
    for n in names:
        m |= 1 << CAPS[n]
    return m


BND = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_AUDIT_WRITE"]
PRM = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
EFF = ["CAP_CHOWN", "CAP_KILL"]
INH = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
AMB = ["CAP_NET_BIND_SERVICE"]


def _caps(bundle, uid: int, gid: int) -> dict[str, str]:
    bundle.process["user"] = {"uid": uid, "gid": gid}
    bundle.process["capabilities"] = {"bounding": BND, "permitted": PRM, "effective": EFF,
                                      "inheritable": INH, "ambient": AMB}
    bundle.sh(STATUS)
    return bundle


@pytest.mark.parametrize("nnp", [True, False])
def test_five_sets_root(runtime, bundle, nnp):
    """uid 0 without file caps: after execve permitted = effective = bounding | inheritable | ambient
    (the kernel's rule for root), limited to the configured permitted set under no_new_privs;
    inheritable, ambient and bounding exactly as configured."""
    _caps(bundle, 0, 0)
    bundle.process["noNewPrivileges"] = nnp
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    st = status_fields(out(res))
    assert int(st["CapBnd"], 16) == mask(*BND)
    assert int(st["CapInh"], 16) == mask(*INH)
    assert int(st["CapAmb"], 16) == mask(*AMB)
    gained = mask(*BND) | mask(*INH) | mask(*AMB)
    assert int(st["CapPrm"], 16) == (gained & mask(*PRM) if nnp else gained)
    assert int(st["CapEff"], 16) == int(st["CapPrm"], 16)
    assert st["NoNewPrivs"] == ("1" if nnp else "0")


def test_five_sets_non_root(runtime, bundle):
    """A non-root user keeps across execve only what ambient grants: permitted = effective = ambient."""
    res = runtime.run(_caps(bundle, 1000, 1000))
    assert res.returncode == 0, both(res)
    st = status_fields(out(res))
    assert int(st["CapBnd"], 16) == mask(*BND)
    assert int(st["CapInh"], 16) == mask(*INH)
    assert int(st["CapAmb"], 16) == mask(*AMB)
    assert int(st["CapPrm"], 16) == mask(*AMB)
    assert int(st["CapEff"], 16) == mask(*AMB)


def test_non_root_without_ambient_has_nothing(runtime, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["capabilities"] = {"bounding": BND, "permitted": PRM, "effective": EFF}
    bundle.sh(STATUS + "; id -u")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    st = status_fields(out(res))
    assert int(st["CapBnd"], 16) == mask(*BND)
    for key in ("CapPrm", "CapEff", "CapInh", "CapAmb"):
        assert int(st[key], 16) == 0, key
    assert out(res).strip().splitlines()[-1] == "1000"


def test_no_capabilities_at_all(runtime, bundle):
    bundle.process["capabilities"] = {"bounding": [], "permitted": [], "effective": [],
                                      "inheritable": [], "ambient": []}
    bundle.sh(STATUS)
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    st = status_fields(out(res))
    for key in ("CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb"):
        assert int(st[key], 16) == 0, key


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(runtime, bundle, nnp):
    bundle.process["noNewPrivileges"] = nnp
    bundle.sh(STATUS)
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    assert status_fields(out(res))["NoNewPrivs"] == ("1" if nnp else "0")


@pytest.mark.parametrize("name", ["CAP_NOT_A_CAP", "chown_and_more"])
def test_unknown_capability_is_an_error(runtime, bundle, name):
    bundle.process["capabilities"]["bounding"] = ["CAP_CHOWN", name]
    bundle.args("/bin/true")
    cid = runtime.new_id()
    res = runtime.run(bundle, cid)
    assert res.returncode == 1, both(res)
    assert "process.capabilities.bounding[1]" in err(res)
    assert name in err(res)
    assert runtime.state(cid) is None


def test_lowercase_and_unprefixed_names_are_capabilities(runtime, bundle):
    """runc accepts only CAP_ names; ours also accepts "chown" — make sure it maps to the right bit."""
    bundle.process["capabilities"] = {"bounding": ["chown", "CAP_KILL"]}
    bundle.sh(STATUS)
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    assert int(status_fields(out(res))["CapBnd"], 16) == mask("CAP_CHOWN", "CAP_KILL")
