"""`make install-hooks` installs a working bridge-net and a valid hooks.d entry; uninstall removes them."""
from __future__ import annotations

import json
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_install_and_uninstall_hooks(tmp_path):
    dest = tmp_path / "dest"
    make = ["make", "-s", "-C", REPO, f"DESTDIR={dest}", "PREFIX=/usr/local"]
    subprocess.run(make + ["install-hooks"], check=True, capture_output=True)
    hook = dest / "usr/local/libexec/pyruntime/hooks/bridge-net"
    entry = json.loads((dest / "usr/local/share/pyruntime/oci-hooks.d/pyruntime-bridge-net.json").read_text())
    assert entry["version"] == "1.0.0" and entry["stages"] == ["createRuntime", "poststop"]
    assert entry["hook"]["path"] == "/usr/local/libexec/pyruntime/hooks/bridge-net"
    assert hook.read_text().splitlines()[0] == f"#!{REPO}/.venv/bin/python -I"
    # the installed copy runs on its own: a poststop for a container that never had a network is a no-op
    state_dir = tmp_path / "net"
    r = subprocess.run([str(hook)], input=json.dumps({"id": "nothing", "status": "stopped", "annotations": {
        "pyruntime.net/bridge": "pyrtinst0"}}), capture_output=True, text=True,
        env={"PYRUNTIME_NET_STATE_DIR": str(state_dir), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert r.returncode == 0 and "released nothing" in r.stdout, r.stderr
    r = subprocess.run([str(hook), "poststart"], input="{}", capture_output=True, text=True)
    assert r.returncode == 1 and "unknown stage" in r.stderr
    subprocess.run(make + ["uninstall-hooks"], check=True, capture_output=True)
    assert [p for p in dest.rglob("*") if p.is_file()] == []
