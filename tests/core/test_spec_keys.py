"""Every key of the runtime-spec 1.3.0 config schema (config.md, config-linux.md) is either used by
pyruntime or refused by create with an error naming it; nothing in config.json is silently dropped
(issue 11).

"Used" is checked statically (the key's name is read somewhere in the runtime's code: the planner,
the validator, the cgroup drivers, the hooks...) and, for the keys this issue added, behaviourally
in test_parity.py / test_mountopts.py / test_exec_engine.py.  "Refused" is checked by running
create with the key set."""
from __future__ import annotations

import os
import re

import pytest
from pyrt_testenv import ROOT

KEYS_FILE = os.path.join(os.path.dirname(__file__), "data", "runtime-spec-1.3.0-config-keys.txt")
KEYS = [line.strip() for line in open(KEYS_FILE) if line.strip() and not line.startswith("#")]

# key -> (a value that sets it, the field the error must name); create must fail
REFUSED = {
    "linux.intelRdt": ({"closID": "c1"}, "linux.intelRdt"),
    "process.commandLine": ("sh -c true", "process.commandLine"),
    "process.user.username": ("root", "process.user.username"),
}
# key -> a warning naming it, when the host lacks the facility (runc behaves the same)
WARNED_WITHOUT_SELINUX = {"linux.mountLabel": "system_u:object_r:container_file_t:s0"}


def _source_text() -> str:
    text = []
    for top, _dirs, files in os.walk(os.path.join(ROOT, "pyruntime")):
        if "image" in os.path.relpath(top, ROOT).split(os.sep) or "__pycache__" in top:
            continue
        for f in files:
            if f.endswith(".py") and f not in ("features.py", "defaults.py"):
                text.append(open(os.path.join(top, f)).read())
    return "\n".join(text)


def _covered_by(key: str) -> str | None:
    """The refused/warned key this key lies under, if any."""
    for k in (*REFUSED, *WARNED_WITHOUT_SELINUX):
        if key == k or key.startswith(k + "."):
            return k
    return None


def test_every_schema_key_is_used_or_refused():
    src = _source_text()
    unused = []
    for key in KEYS:
        if _covered_by(key):
            continue
        leaf = re.sub(r"\[\]$", "", key.rsplit(".", 1)[-1])
        if leaf == "*":
            continue        # map values: their keys are the user's (sysctl names, rdma devices...)
        if f'"{leaf}"' not in src and f"'{leaf}'" not in src:
            unused.append(key)
    assert not unused, f"schema keys neither read by the runtime nor refused: {unused}"


def _set(cfg: dict, key: str, value) -> None:
    parts = key.split(".")
    node = cfg
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


@pytest.mark.parametrize("key", sorted(REFUSED))
def test_refused_keys_name_themselves(rt, make_bundle, key):
    value, field = REFUSED[key]
    cp = rt("create", "--bundle", make_bundle(["true"], edit=lambda c: _set(c, key, value)), "rk", check=False)
    err = cp.stderr.decode()
    assert cp.returncode == 1 and field in err and "Traceback" not in err, err
    assert not os.path.exists(os.path.join(rt.root, "rk"))


def test_mount_label_without_selinux_warns(rt, make_bundle):
    from pyruntime.procattrs import selinux_enabled
    key, value = next(iter(WARNED_WITHOUT_SELINUX.items()))
    cp = rt("run", "--bundle", make_bundle(["true"], edit=lambda c: _set(c, key, value)), "ml", check=False)
    if selinux_enabled():
        assert cp.returncode == 1 and key.encode() in cp.stderr
    else:
        assert cp.returncode == 0 and key.encode() in cp.stderr and b"ignored" in cp.stderr, cp.stderr


def test_console_size(rt, make_bundle, tmp_path):
    """process.consoleSize (was dropped before): the pty starts with that size."""
    import socket
    import subprocess
    import array
    path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def edit(c):
        c["process"]["terminal"] = True
        c["process"]["consoleSize"] = {"height": 33, "width": 111}
    b = make_bundle(["stty", "size"], edit=edit)
    proc = subprocess.Popen([rt.binary, "--root", rt.root, "run", "-d", "--console-socket", path,
                             "--bundle", b, "cs"])
    conn, _ = srv.accept()
    fds = array.array("i")
    _msg, anc, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(4))
    for level, typ, data in anc:
        fds.frombytes(data[:4])
    assert proc.wait(30) == 0
    master = fds[0]
    out = b""
    try:
        while b"\n" not in out:
            chunk = os.read(master, 1024)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    finally:
        os.close(master)
        conn.close()
        srv.close()
    assert out.decode().strip() == "33 111", out
