"""Image config -> config.json (conversion.md), and the progress bar."""
from __future__ import annotations

import io
import os

import pytest

from pyruntime.image.convert import resolve_user, runtime_config
from pyruntime.image.errors import ImageError
from pyruntime.image.fsops import Root
from pyruntime.image.idmap import IdRange

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n# comment\nbad line\n"
GROUP = "root:x:0:\napp:x:1001:\nstaff:x:50:app,other\nwheel:x:10:root,app\naudio:x:29:\n"


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc/passwd").write_text(PASSWD)
    (r / "etc/group").write_text(GROUP)
    with Root(str(r)) as rt:
        yield rt


@pytest.mark.parametrize("spec,want", [
    ("", (0, 0, None, "/root")),
    ("app", (1000, 1001, [50, 10], "/home/app")),
    ("1000", (1000, 1001, None, "/home/app")),
    ("4242", (4242, 0, None, None)),
    ("app:audio", (1000, 29, None, "/home/app")),
    ("app:77", (1000, 77, None, "/home/app")),
    ("1000:wheel", (1000, 10, None, "/home/app")),
    ("5:6", (5, 6, None, None)),
])
def test_resolve_user(root, spec, want):
    assert resolve_user(spec, root) == want


@pytest.mark.parametrize("spec,match", [("ghost", "user 'ghost' not found"), ("app:ghosts", "group 'ghosts'")])
def test_resolve_user_errors(root, spec, match):
    with pytest.raises(ImageError, match=match):
        resolve_user(spec, root)


def test_passwd_is_read_inside_the_rootfs(tmp_path):
    """/etc/passwd as a symlink to the host's file must resolve inside the rootfs."""
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "inner").mkdir()
    (r / "inner/passwd").write_text("app:x:7:7::/home/inner:/bin/sh\n")
    os.symlink("/inner/passwd", r / "etc/passwd")       # absolute: means rootfs/inner/passwd
    os.symlink("/etc/shadow", r / "etc/group")          # would be the host's shadow file
    with Root(str(r)) as rt:
        assert resolve_user("app", rt)[:2] == (7, 7)
        with pytest.raises(ImageError, match="user 'root' not found"):
            resolve_user("root", rt)                     # the host's /etc/passwd was not consulted


def test_runtime_config(root):
    img = {
        "os": "linux", "architecture": "arm64", "variant": "v8", "author": "me", "created": "2024-01-01T00:00:00Z",
        "os.features": ["a", "b"],
        "config": {"Entrypoint": ["/entry"], "Cmd": ["--flag"], "Env": ["PATH=/custom", "X=1=2", "HOME=/h"],
                   "WorkingDir": "work", "User": "app", "StopSignal": "SIGTERM",
                   "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "Volumes": {"/a": {}, "/b": {}},
                   "Labels": {"org.opencontainers.image.author": "label wins", "custom": "c"}},
    }
    c = runtime_config(img, root, [IdRange(0, 1000, 10)], [IdRange(0, 2000, 10)])
    p = c["process"]
    assert p["args"] == ["/entry", "--flag"]
    assert p["env"] == ["PATH=/custom", "TERM=xterm", "X=1=2", "HOME=/h"]   # image values replace defaults
    assert p["cwd"] == "/work"
    assert p["user"] == {"uid": 1000, "gid": 1001, "additionalGids": [50, 10]}
    a = c["annotations"]
    assert a["org.opencontainers.image.author"] == "label wins"
    assert a["org.opencontainers.image.architecture"] == "arm64" and a["org.opencontainers.image.variant"] == "v8"
    assert a["org.opencontainers.image.os.features"] == "a,b"
    assert a["org.opencontainers.image.exposedPorts"] == "80/tcp,53/udp"
    assert a["org.opencontainers.image.volumes"] == "/a,/b"
    assert a["org.opencontainers.image.stopSignal"] == "SIGTERM" and a["custom"] == "c"
    assert c["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 10}]
    assert [n for n in c["linux"]["namespaces"] if n["type"] == "user"] == [{"type": "user"}]


def test_runtime_config_minimal(root):
    warnings = []
    c = runtime_config({"os": "linux", "architecture": "amd64"}, root, warn=warnings.append)
    assert c["process"]["args"] == ["sh"] and warnings           # defaults kept, with a warning
    assert c["process"]["cwd"] == "/" and "HOME=/root" in c["process"]["env"]
    assert runtime_config({"config": {"Cmd": ["true"]}}, root)["process"]["args"] == ["true"]
    with pytest.raises(ImageError, match="invalid Env entry"):
        runtime_config({"config": {"Env": ["NOEQUALS"]}}, root)
    with pytest.raises(ImageError, match="Cmd must be a list"):
        runtime_config({"config": {"Cmd": "sh -c x"}}, root)


def test_progress_bar():
    from pyruntime.image.progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True
    out = Tty()
    p = Progress(out)
    assert p.layer(1, 2, 1000) is None                       # small layers: no bar
    cb = p.layer(2, 2, 64 << 20)
    for _ in range(64):
        cb(1 << 20)
    p.end()
    text = out.getvalue()
    assert "layer 2/2" in text and "64.0/64.0 MiB" in text and text.endswith("\r\033[K")
    quiet = io.StringIO()
    assert Progress(quiet).layer(1, 1, 1 << 30) is None      # not a terminal: quiet
