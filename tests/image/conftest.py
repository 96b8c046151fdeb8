"""Fixtures of the image tests: a busybox rootfs, layouts made by umoci/skopeo/buildah, a sentinel
directory outside every bundle that hostile layers try to reach, and an ``unpack`` helper."""
from __future__ import annotations

import hashlib
import os
import shutil

import pytest

from .image_helpers import need, sh

BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "ls", "cat", "echo", "id", "true", "false", "env", "pwd", "stat", "sleep", "test"]
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1000:1000:app user:/home/app:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\napp:x:1000:\nstaff:x:50:app\nwheel:x:10:root,app\nnogroup:x:65534:\n"


def build_busybox_rootfs(root: str) -> str:
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed")
    for d in ("bin", "etc", "tmp", "home/app", "root", "dev", "proc", "sys", "var/empty"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(root, "bin/busybox"))
    for a in APPLETS:
        os.symlink("busybox", os.path.join(root, "bin", a))
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write(PASSWD)
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write(GROUP)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    os.chown(os.path.join(root, "home/app"), 1000, 1000)
    with open(os.path.join(root, "etc/motd"), "w") as f:
        f.write("busybox test image\n")
    return root


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> str:
    return build_busybox_rootfs(str(tmp_path_factory.mktemp("bbroot") / "rootfs"))


@pytest.fixture(scope="session")
def umoci_layout(tmp_path_factory, busybox_rootfs) -> str:
    """Layout made by umoci with refs ``bb`` (one layer) and ``bb2`` (bb + a layer that deletes,
    replaces and adds files, so umoci writes whiteouts)."""
    need("umoci")
    if os.geteuid() != 0:
        pytest.skip("umoci repack needs root here")
    base = tmp_path_factory.mktemp("umoci")
    lay, b = str(base / "layout"), str(base / "bundle")
    sh("umoci", "init", "--layout", lay)
    sh("umoci", "new", "--image", f"{lay}:bb")
    sh("umoci", "unpack", "--image", f"{lay}:bb", b)
    shutil.rmtree(os.path.join(b, "rootfs"))
    shutil.copytree(busybox_rootfs, os.path.join(b, "rootfs"), symlinks=True)
    sh("umoci", "repack", "--image", f"{lay}:bb", b)
    sh("umoci", "config", "--image", f"{lay}:bb", "--config.cmd", "/bin/sh", "--config.cmd", "-c",
       "--config.cmd", "echo hello from $FOO; id -u; pwd", "--config.env", "FOO=umoci",
       "--config.workingdir", "/home/app", "--config.user", "app", "--config.label", "test.label=yes",
       "--config.exposedports", "8080/tcp", "--config.volume", "/data", "--config.stopsignal", "SIGINT")
    # second image: deletions (whiteouts), a replaced directory, a new file
    shutil.rmtree(b)
    sh("umoci", "unpack", "--image", f"{lay}:bb", b)
    r = os.path.join(b, "rootfs")
    os.unlink(os.path.join(r, "bin/false"))
    os.unlink(os.path.join(r, "etc/motd"))
    shutil.rmtree(os.path.join(r, "var"))
    with open(os.path.join(r, "var"), "w") as f:          # directory replaced by a file
        f.write("now a file\n")
    with open(os.path.join(r, "etc/added"), "w") as f:
        f.write("layer two\n")
    sh("umoci", "repack", "--image", f"{lay}:bb2", b)
    shutil.rmtree(b)
    return lay


@pytest.fixture
def unpack(tmp_path):
    """unpack(src, ref=None, **kw) -> bundle dir (fresh, under tmp_path)."""
    from pyruntime.image.bundle import unpack as _unpack
    n = [0]

    def run(src, ref=None, bundle=None, **kw):
        n[0] += 1
        bundle = bundle or str(tmp_path / f"bundle{n[0]}")
        warnings = kw.pop("warnings", None)
        _unpack(str(src), bundle, ref=ref, warn=(warnings.append if warnings is not None else None), **kw)
        return bundle
    return run


def _tree_digest(path: str) -> list:
    out = []
    for dp, dns, fns in os.walk(path):
        for n in sorted(dns + fns):
            p = os.path.join(dp, n)
            st = os.lstat(p)
            data = b""
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as fh:
                    data = fh.read()
            out.append((os.path.relpath(p, path), st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns,
                        hashlib.sha256(data).hexdigest()))
    return sorted(out)


class Sentinel:
    """A host directory that must never change, with a file and a subdirectory."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.join(path, "sub"))
        self.file = os.path.join(path, "secret")
        with open(self.file, "w") as fh:
            fh.write("host secret\n")
        os.chmod(self.file, 0o640)
        self.before = _tree_digest(path)
        self.dir_stat = os.stat(path)

    def assert_untouched(self) -> None:
        assert _tree_digest(self.path) == self.before, "hostile layer changed the host sentinel directory"
        st = os.stat(self.path)
        assert (st.st_mode, st.st_uid, st.st_mtime_ns) == \
            (self.dir_stat.st_mode, self.dir_stat.st_uid, self.dir_stat.st_mtime_ns)


@pytest.fixture
def sentinel(tmp_path):
    s = Sentinel(str(tmp_path / "sentinel"))
    yield s
    s.assert_untouched()
