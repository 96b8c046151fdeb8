"""Refs, nested indexes, platforms, Docker media types, archives built by hand, image_ref parsing."""
from __future__ import annotations

import json
import os
import tarfile

import pytest

from pyruntime.image import platform as plat
from pyruntime.image.bundle import split_image_ref
from pyruntime.image.errors import ImageError
from pyruntime.image.resolve import open_images

from .image_helpers import LayoutWriter, d, f, simple_layout, tar, tar_of_dir


def marker_layer(name: str) -> bytes:
    return tar(d("etc"), f("etc/which", name))


def which(bundle: str) -> str:
    return open(os.path.join(bundle, "rootfs/etc/which")).read()


def multiarch(path, docker: bool = False, nested: bool = True) -> LayoutWriter:
    """index.json -> (index -> (amd64, arm64/v8, arm/v7, arm/v6, s390x)) under ref "multi", plus "plain"."""
    lw = LayoutWriter(path)
    subs = []
    for arch, variant in (("amd64", None), ("arm64", "v8"), ("arm", "v7"), ("arm", "v6"), ("s390x", None)):
        m = lw.image([marker_layer(f"{arch}{variant or ''}")], arch=arch, variant=variant, docker=docker)
        m["platform"] = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
        subs.append(m)
    # an attestation-style entry that must never be chosen
    att = lw.image([marker_layer("attestation")])
    att["platform"] = {"os": "unknown", "architecture": "unknown"}
    subs.append(att)
    if nested:
        inner = lw.index_blob(subs[:2], docker=docker)
        outer = lw.index_blob([inner] + subs[2:], docker=docker)
    else:
        outer = lw.index_blob(subs, docker=docker)
    lw.add(outer, "multi")
    lw.add(lw.image([marker_layer("plain")]), "plain")
    return lw


@pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker"])
def test_platform_choice(unpack, tmp_path, docker):
    lw = multiarch(tmp_path / "l", docker=docker)
    host = plat.host()
    b = unpack(lw.path, "multi")
    if host.architecture in ("amd64", "arm64", "s390x"):
        assert which(b).startswith(host.architecture)
    assert which(unpack(lw.path, "multi", platform="linux/arm64")) == "arm64v8"
    assert which(unpack(lw.path, "multi", platform="linux/arm64/v8")) == "arm64v8"
    assert which(unpack(lw.path, "multi", platform="linux/arm/v7")) == "armv7"
    assert which(unpack(lw.path, "multi", platform="linux/arm/v6")) == "armv6"
    assert which(unpack(lw.path, "multi", platform="s390x")) == "s390x"
    with pytest.raises(ImageError, match=r"no image for platform linux/ppc64le .*available: .*linux/arm/v7"):
        unpack(lw.path, "multi", platform="linux/ppc64le")


def test_arm_variant_fallback():
    want = plat.parse("linux/arm/v8")
    assert plat.rank(want, plat.Platform("linux", "arm", "v7")) is not None
    assert plat.rank(plat.parse("linux/arm/v6"), plat.Platform("linux", "arm", "v7")) is None
    assert plat.rank(plat.parse("linux/arm64"), plat.Platform("linux", "arm64", "")) == 0
    assert plat.rank(plat.parse("linux/amd64"), None) == 100


def test_refs_and_choice(unpack, tmp_path):
    lw = multiarch(tmp_path / "l", nested=False)
    assert which(unpack(lw.path, "plain")) == "plain"
    with pytest.raises(ImageError, match="several images .*multi, plain"):
        unpack(lw.path)
    with pytest.raises(ImageError, match="reference 'nope' not found .*available: multi, plain"):
        unpack(lw.path, "nope")
    # by digest
    assert which(unpack(lw.path, lw.index[1]["digest"])) == "plain"
    rows = open_images(lw.path).refs()
    assert [r["ref"] for r in rows] == ["multi", "plain"]
    assert "linux/arm/v7" in rows[0]["platforms"] and rows[1]["platforms"] == ["linux/amd64"]


def test_single_unnamed_manifest(unpack, tmp_path):
    lw = LayoutWriter(tmp_path / "l")
    lw.add(lw.image([marker_layer("only")]))
    assert which(unpack(lw.path)) == "only"


def test_explicit_platform_mismatch(unpack, tmp_path):
    lw = simple_layout(tmp_path / "l", marker_layer("x"), arch="arm64")
    with pytest.raises(ImageError, match="image is for linux/arm64"):
        unpack(lw.path, platform="linux/amd64/v1")
    warnings: list[str] = []
    if plat.host().architecture != "arm64":
        unpack(lw.path, warnings=warnings)
        assert any("linux/arm64" in w for w in warnings)


def test_hand_made_oci_archive_and_docker_archive(unpack, tmp_path):
    lw = multiarch(tmp_path / "l")
    arc = tmp_path / "a.tar"
    arc.write_bytes(tar_of_dir(lw.path))
    assert which(unpack(str(arc), "plain")) == "plain"
    assert which(unpack(str(arc), "multi", platform="linux/arm/v7")) == "armv7"
    # docker save (legacy): <id>/layer.tar, <hex>.json, manifest.json, a symlinked duplicate layer
    from .image_helpers import sha256
    layer = marker_layer("docker-save")
    cfg = json.dumps({"os": "linux", "architecture": plat.host().architecture,
                      "config": {"Cmd": ["/bin/sh"], "Env": ["A=1"]},
                      "rootfs": {"type": "layers", "diff_ids": [sha256(layer), sha256(layer)]}}).encode()
    cfg_name = sha256(cfg)[7:] + ".json"
    ds = tmp_path / "ds"
    (ds / "aaa").mkdir(parents=True)
    (ds / "bbb").mkdir()
    (ds / "aaa" / "layer.tar").write_bytes(layer)
    os.symlink("../aaa/layer.tar", ds / "bbb" / "layer.tar")
    (ds / cfg_name).write_bytes(cfg)
    (ds / "manifest.json").write_text(json.dumps([{"Config": cfg_name, "RepoTags": ["docker.io/library/ds:1"],
                                                   "Layers": ["aaa/layer.tar", "bbb/layer.tar"]}]))
    with tarfile.open(tmp_path / "ds.tar", "w") as t:
        for n in sorted(os.listdir(ds)):
            t.add(ds / n, arcname=n)
    for ref in (None, "ds:1", "docker.io/library/ds:1"):
        b = unpack(str(tmp_path / "ds.tar"), ref)
        assert which(b) == "docker-save"
        assert json.load(open(os.path.join(b, "config.json")))["process"]["args"] == ["/bin/sh"]
    with pytest.raises(ImageError, match="not found .*available: docker.io/library/ds:1"):
        unpack(str(tmp_path / "ds.tar"), "ds:2")
    # a tampered config: its name is its digest
    (ds / cfg_name).write_bytes(cfg.replace(b"A=1", b"A=2"))
    with tarfile.open(tmp_path / "ds2.tar", "w") as t:
        for n in sorted(os.listdir(ds)):
            t.add(ds / n, arcname=n)
    with pytest.raises(ImageError, match="digest mismatch"):
        unpack(str(tmp_path / "ds2.tar"))


def test_not_an_archive(unpack, tmp_path):
    p = tmp_path / "junk.tar"
    p.write_bytes(os.urandom(4096))
    with pytest.raises(ImageError, match="not a readable tar archive|not an image archive"):
        unpack(str(p))
    p2 = tmp_path / "other.tar"
    with tarfile.open(p2, "w") as t:
        t.add(__file__, arcname="x.py")
    with pytest.raises(ImageError, match="neither an OCI layout"):
        unpack(str(p2))


def test_split_image_ref(tmp_path):
    (tmp_path / "lay").mkdir()
    (tmp_path / "a.tar").write_bytes(b"")
    lay, arc = str(tmp_path / "lay"), str(tmp_path / "a.tar")
    assert split_image_ref(lay) == (lay, None)
    assert split_image_ref(lay + ":v1") == (lay, "v1")
    assert split_image_ref(arc + ":busybox:latest") == (arc, "busybox:latest")
    with pytest.raises(ImageError, match="no such image layout"):
        split_image_ref(str(tmp_path / "missing") + ":x")
