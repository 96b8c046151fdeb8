"""Layouts and archives made by real tools (umoci, skopeo, buildah), unpacked and checked, with
``umoci unpack`` of the same image as the reference for the rootfs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from . import treecmp
from .image_helpers import need, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (owners, umoci)")


@pytest.fixture(scope="module")
def umoci_reference(umoci_layout, tmp_path_factory):
    """rootfs trees of `umoci unpack` for bb and bb2."""
    out = {}
    for ref in ("bb", "bb2"):
        b = str(tmp_path_factory.mktemp("ref") / ref)
        sh("umoci", "unpack", "--image", f"{umoci_layout}:{ref}", b)
        out[ref] = treecmp.snapshot(os.path.join(b, "rootfs"))
    return out


def config(bundle: str) -> dict:
    with open(os.path.join(bundle, "config.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("ref", ["bb", "bb2"])
def test_umoci_layout_matches_umoci_unpack(unpack, umoci_layout, umoci_reference, ref):
    b = unpack(umoci_layout, ref)
    got = treecmp.snapshot(os.path.join(b, "rootfs"))
    assert treecmp.diff(got, umoci_reference[ref]) == []


def test_second_layer_whiteouts(unpack, umoci_layout):
    r = os.path.join(unpack(umoci_layout, "bb2"), "rootfs")
    assert not os.path.lexists(os.path.join(r, "bin/false"))
    assert not os.path.lexists(os.path.join(r, "etc/motd"))
    assert os.path.isfile(os.path.join(r, "var")) and open(os.path.join(r, "var")).read() == "now a file\n"
    assert open(os.path.join(r, "etc/added")).read() == "layer two\n"
    assert os.path.islink(os.path.join(r, "bin/true"))


def test_umoci_config_conversion(unpack, umoci_layout):
    c = config(unpack(umoci_layout, "bb"))
    p = c["process"]
    assert p["args"] == ["/bin/sh", "-c", "echo hello from $FOO; id -u; pwd"]
    assert "FOO=umoci" in p["env"] and any(e.startswith("PATH=") for e in p["env"])
    assert "HOME=/home/app" in p["env"]
    assert p["cwd"] == "/home/app"
    assert p["user"]["uid"] == 1000 and p["user"]["gid"] == 1000
    assert sorted(p["user"]["additionalGids"]) == [10, 50]
    assert p["terminal"] is False
    a = c["annotations"]
    assert a["org.opencontainers.image.stopSignal"] == "SIGINT"
    assert a["org.opencontainers.image.exposedPorts"] == "8080/tcp"
    assert a["org.opencontainers.image.volumes"] == "/data"
    assert a["org.opencontainers.image.os"] == "linux"
    assert a["test.label"] == "yes"
    assert c["root"]["path"] == "rootfs"
    # everything else comes from the same defaults as `pyruntime spec`
    from pyruntime.defaults import default_config
    d = default_config(terminal=False)
    assert c["mounts"] == d["mounts"] and c["linux"]["namespaces"] == d["linux"]["namespaces"]
    assert c["process"]["capabilities"] == d["process"]["capabilities"]


@pytest.mark.parametrize("kind", ["oci-archive", "docker-archive", "zstd-layout", "v2s2-dir-archive"])
def test_skopeo_formats(unpack, umoci_layout, umoci_reference, tmp_path, kind):
    need("skopeo")
    src = f"oci:{umoci_layout}:bb2"
    if kind == "oci-archive":
        dst = str(tmp_path / "a.tar")
        sh("skopeo", "copy", "-q", src, f"oci-archive:{dst}:bb2")
        b = unpack(dst, "bb2")
    elif kind == "docker-archive":
        dst = str(tmp_path / "d.tar")
        sh("skopeo", "copy", "-q", src, f"docker-archive:{dst}:example/busybox:v2")
        b = unpack(dst, "example/busybox:v2")
        assert config(b)["process"]["args"][0] == "/bin/sh"
    elif kind == "zstd-layout":
        dst = str(tmp_path / "z")
        sh("skopeo", "copy", "-q", "--dest-compress-format", "zstd", src, f"oci:{dst}:zz")
        with open(os.path.join(dst, "index.json")) as f:
            m = json.load(f)["manifests"][0]
        man = json.load(open(os.path.join(dst, "blobs", "sha256", m["digest"][7:])))
        assert all(ly["mediaType"].endswith("+zstd") for ly in man["layers"])
        b = unpack(dst)
    else:
        # Docker schema 2 manifest + docker media types, in a docker-archive compressed with gzip
        dst = str(tmp_path / "d.tar")
        sh("skopeo", "copy", "-q", src, f"docker-archive:{dst}:bb:latest")
        gz = dst + ".gz"
        subprocess.run(f"gzip -1 -c {dst} > {gz}", shell=True, check=True)
        b = unpack(gz)
    got = treecmp.snapshot(os.path.join(b, "rootfs"))
    assert treecmp.diff(got, umoci_reference["bb2"]) == []


def test_buildah_layout(unpack, busybox_rootfs, tmp_path):
    need("buildah")
    store = ["--root", str(tmp_path / "storage"), "--runroot", str(tmp_path / "run"), "--storage-driver", "vfs"]
    ctr = sh("buildah", *store, "from", "scratch").strip()
    try:
        sh("buildah", *store, "copy", ctr, busybox_rootfs + "/", "/")
        sh("buildah", *store, "config", "--entrypoint", '["/bin/echo"]', "--cmd", "from-buildah",
           "--env", "BUILDAH=1", "--user", "nobody", "--workingdir", "/tmp", ctr)
        sh("buildah", *store, "commit", "-q", ctr, "bbtest")
        lay = str(tmp_path / "layout")
        sh("buildah", *store, "push", "-q", "bbtest", f"oci:{lay}:bbb")
    finally:
        subprocess.run(["buildah", *store, "rm", "--all"], capture_output=True)
        subprocess.run(["buildah", *store, "rmi", "--all", "--force"], capture_output=True)
        subprocess.run(["umount", "-R", str(tmp_path / "storage")], capture_output=True)
    b = unpack(lay, "bbb")
    c = config(b)
    assert c["process"]["args"] == ["/bin/echo", "from-buildah"]
    assert "BUILDAH=1" in c["process"]["env"]
    assert c["process"]["user"]["uid"] == 65534 and c["process"]["user"]["gid"] == 65534
    assert c["process"]["cwd"] == "/tmp"
    r = os.path.join(b, "rootfs")
    assert os.path.isfile(os.path.join(r, "bin/busybox"))
    assert os.readlink(os.path.join(r, "bin/sh")) == "busybox"
    assert oct(os.stat(os.path.join(r, "tmp")).st_mode & 0o7777) == oct(0o1777)
    ref = str(tmp_path / "umoci-ref")
    sh("umoci", "unpack", "--image", f"{lay}:bbb", ref)
    assert treecmp.diff(treecmp.snapshot(r), treecmp.snapshot(os.path.join(ref, "rootfs"))) == []


def test_cli_unpack_ls_inspect(umoci_layout, tmp_path):
    import sys
    py = [sys.executable, "-m", "pyruntime"]
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    out = subprocess.run(py + ["image", "ls", umoci_layout], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["REF", "PLATFORMS", "TYPE"]
    assert {ln.split()[0] for ln in lines[1:]} == {"bb", "bb2"}
    assert all("linux/" in ln for ln in lines[1:])
    out = subprocess.run(py + ["image", "inspect", f"{umoci_layout}:bb2"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert len(doc["manifest"]["layers"]) == 2 and doc["config"]["rootfs"]["type"] == "layers"
    b = str(tmp_path / "cli-bundle")
    out = subprocess.run(py + ["image", "unpack", "--ref", "bb", umoci_layout, b], capture_output=True,
                         text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""           # quiet when stderr is not a terminal
    assert os.path.isfile(os.path.join(b, "rootfs/bin/busybox"))
    # several images and no ref: a clear error, nothing created
    b2 = str(tmp_path / "cli-bundle2")
    out = subprocess.run(py + ["image", "unpack", umoci_layout, b2], capture_output=True, text=True, env=env)
    assert out.returncode == 1 and "several images" in out.stderr and "bb2" in out.stderr
    assert not os.path.exists(b2)


def test_make_bundle_api(umoci_layout, tmp_path):
    from pyruntime.image import make_bundle
    b = str(tmp_path / "deep" / "api-bundle")
    assert make_bundle(f"{umoci_layout}:bb", b) == b
    assert os.path.isfile(os.path.join(b, "config.json"))
    # failure: nothing created, not even the parent we had to make
    from pyruntime.errors import RuntimeFailure
    with pytest.raises(RuntimeFailure, match="not found"):
        make_bundle(f"{umoci_layout}:nope", str(tmp_path / "other" / "b"))
    assert not os.path.exists(tmp_path / "other")
    shutil.rmtree(b)
