"""User namespaces: container root mapped to an unprivileged host id, seen from both sides."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from .helpers import both, out, status_fields

HOST_BASE = 100000
SIZE = 65536


@pytest.fixture
def userns_bundle(bundle):
    if not os.path.exists("/proc/self/ns/user"):
        pytest.skip("kernel without user namespaces")
    # The bind source must be reachable for the container's root (host uid 100000): pytest's
    # tmp_path sits under a 0700 directory, so use a 0755 directory of our own.
    top = Path(tempfile.mkdtemp(prefix="pyrt-sec-userns-", dir="/var/tmp"))
    os.chmod(top, 0o755)
    data = top / "data"
    data.mkdir()
    os.chown(data, HOST_BASE, HOST_BASE)
    (data / "host-root-file").write_text("x")  # owned by host root: unmapped inside
    bundle.add_namespace("user")
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": SIZE}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": SIZE}]
    bundle.add_mount("/home", str(data))  # an existing directory: the rootfs belongs to host root
    bundle.data = data  # type: ignore[attr-defined]
    yield bundle
    shutil.rmtree(top, ignore_errors=True)


def test_files_created_show_mapped_ids_on_host(runtime, userns_bundle):
    b = userns_bundle
    caps = b.process["capabilities"]
    for key in ("bounding", "permitted", "effective"):
        caps[key] = sorted(set(caps.get(key, [])) | {"CAP_CHOWN"})
    b.sh("id -u; id -g; touch /home/f; mkdir /home/d; "
         "touch /home/f2 && chown 1000:1000 /home/f2; stat -c '%u:%g' /home/f /home/d /home/f2 /home/host-root-file; "
         "cat /proc/self/uid_map")
    res = runtime.run(b)
    assert res.returncode == 0, both(res)
    lines = out(res).split("\n")
    assert lines[0] == "0" and lines[1] == "0", both(res)
    assert lines[2:6] == ["0:0", "0:0", "1000:1000", "65534:65534"], both(res)
    assert lines[6].split() == ["0", str(HOST_BASE), str(SIZE)]
    for name, want in (("f", HOST_BASE), ("d", HOST_BASE), ("f2", HOST_BASE + 1000)):
        st = os.stat(b.data / name)
        assert (st.st_uid, st.st_gid) == (want, want), name


def test_userns_root_has_no_host_privilege(runtime, userns_bundle):
    """Full capabilities inside, none over host objects: a host-root-owned 0600 file is unreadable."""
    b = userns_bundle
    secret = b.data / "secret"
    secret.write_text("host secret\n")
    os.chmod(secret, 0o600)
    caps = b.process["capabilities"]
    for key in ("bounding", "permitted", "effective"):
        caps[key] = sorted(set(caps.get(key, [])) | {"CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER"})
    b.sh("grep CapEff /proc/self/status; cat /home/secret; echo rc=$?; chmod 666 /home/secret; echo chmod=$?")
    res = runtime.run(b)
    o = out(res)
    assert int(status_fields(o)["CapEff"], 16) & (1 << 1), both(res)  # CAP_DAC_OVERRIDE inside
    assert "host secret" not in o and "rc=1" in o and "chmod=1" in o, both(res)
    assert os.stat(secret).st_mode & 0o777 == 0o600
