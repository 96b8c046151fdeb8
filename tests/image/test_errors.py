"""Broken images: clear errors naming what is wrong, and never a partial bundle."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

from pyruntime.image.errors import ImageError

from .image_helpers import LayoutWriter, compress, d, f, sha256, simple_layout, tar

LAYER = tar(d("etc"), f("etc/hello", "hello\n"), f("big", os.urandom(300_000)))


def manifest_of(lw: LayoutWriter, i: int = 0) -> dict:
    return json.load(open(lw.blob_path(lw.index[i]["digest"])))


def expect_error(unpack, tmp_path, src, match, **kw) -> ImageError:
    bundle = str(tmp_path / "bundle-err")
    with pytest.raises(ImageError, match=match) as ei:
        unpack(src, bundle=bundle, **kw)
    assert not os.path.exists(bundle), "partial bundle left behind"
    return ei.value


def rewrite_blob(lw: LayoutWriter, digest: str, data: bytes) -> None:
    with open(lw.blob_path(digest), "wb") as fh:
        fh.write(data)


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_corrupted_layer_blob(unpack, tmp_path, where):
    lw = simple_layout(tmp_path / "l", tar(f("a", "a")), LAYER)
    ld = manifest_of(lw)["layers"][1]
    data = bytearray(open(lw.blob_path(ld["digest"]), "rb").read())
    pos = {"start": 20, "middle": len(data) // 2, "end": len(data) - 3}[where]
    data[pos] ^= 0xFF
    rewrite_blob(lw, ld["digest"], bytes(data))
    err = expect_error(unpack, tmp_path, lw.path, "digest mismatch")
    assert ld["digest"] in str(err) and "layer 2" in str(err)


def test_truncated_and_oversized_blob(unpack, tmp_path):
    lw = simple_layout(tmp_path / "l", LAYER)
    ld = manifest_of(lw)["layers"][0]
    data = open(lw.blob_path(ld["digest"]), "rb").read()
    rewrite_blob(lw, ld["digest"], data[:-100])
    err = expect_error(unpack, tmp_path, lw.path, "size mismatch|digest mismatch|cannot decompress")
    assert ld["digest"] in str(err)
    rewrite_blob(lw, ld["digest"], data + b"extra")
    err = expect_error(unpack, tmp_path, lw.path, "more data than the")
    assert ld["digest"] in str(err)


def test_wrong_diff_id(unpack, tmp_path):
    bad = "sha256:" + "0" * 64
    lw = simple_layout(tmp_path / "l", LAYER, diff_ids=[bad])
    err = expect_error(unpack, tmp_path, lw.path, "diff_id")
    assert bad in str(err) and "digest mismatch" in str(err)


@pytest.mark.parametrize("stdlib", [True, False], ids=["stdlib-zlib", "fastest"])
def test_corrupt_gzip_with_matching_digest(unpack, tmp_path, monkeypatch, stdlib):
    """The descriptor matches the bytes, but the bytes are not gzip: a decompression error."""
    if stdlib:
        import zlib

        from pyruntime.image import layerstream
        monkeypatch.setattr(layerstream, "_inflater", lambda: zlib)
    lw = LayoutWriter(tmp_path / "l")
    good = compress(LAYER, "gzip")
    blob = good[:200] + bytes(b ^ 0x55 for b in good[200:400]) + good[400:]
    ld = lw.blob(blob, "application/vnd.oci.image.layer.v1.tar+gzip")
    lw.add_layers_image([ld], [sha256(LAYER)])
    err = expect_error(unpack, tmp_path, lw.path, "cannot decompress|checksum|diff_id")
    assert ld["digest"] in str(err) or sha256(LAYER) in str(err)


@pytest.mark.parametrize("which", ["layer", "config", "manifest"])
def test_missing_blob(unpack, tmp_path, which):
    lw = simple_layout(tmp_path / "l", LAYER)
    m = manifest_of(lw)
    dg = {"layer": m["layers"][0]["digest"], "config": m["config"]["digest"], "manifest": lw.index[0]["digest"]}[which]
    os.unlink(lw.blob_path(dg))
    err = expect_error(unpack, tmp_path, lw.path, "missing from")
    assert dg in str(err)


def test_non_distributable_layer(unpack, tmp_path):
    nd = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    lw = simple_layout(tmp_path / "l", LAYER, layer_media_types=[nd])
    b = unpack(lw.path)                          # present in the layout: fine
    assert os.path.exists(os.path.join(b, "rootfs/etc/hello"))
    os.unlink(lw.blob_path(manifest_of(lw)["layers"][0]["digest"]))
    expect_error(unpack, tmp_path, lw.path, "non-distributable layer")


def test_foreign_layer_with_urls(unpack, tmp_path):
    lw = LayoutWriter(tmp_path / "l")
    ld = {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
          "digest": "sha256:" + "ab" * 32, "size": 10, "urls": ["https://example.com/layer"]}
    lw.add_layers_image([ld], ["sha256:" + "cd" * 32], docker=True)
    err = expect_error(unpack, tmp_path, lw.path, "non-distributable")
    assert "https://example.com/layer" in str(err)


def test_unknown_media_types(unpack, tmp_path):
    lw = simple_layout(tmp_path / "a", LAYER, layer_media_types=["application/x-mystery"])
    expect_error(unpack, tmp_path, lw.path, "unsupported media type 'application/x-mystery'")
    lw = LayoutWriter(tmp_path / "b")
    lw.add(lw.blob(b"{}", "application/vnd.example.thing+json"), "t")
    expect_error(unpack, tmp_path, lw.path, "unsupported media type 'application/vnd.example.thing")
    # an artifact manifest (config is not an image config) is not runnable
    lw = LayoutWriter(tmp_path / "c")
    cfg = lw.blob(b"{}", "application/vnd.oci.empty.v1+json")
    lw.add(lw.json_blob({"schemaVersion": 2, "config": cfg, "layers": []},
                        "application/vnd.oci.image.manifest.v1+json"), "t")
    expect_error(unpack, tmp_path, lw.path, "not a container image")


@pytest.mark.parametrize("case,match", [
    ("not-json", "invalid JSON"),
    ("schema1", "unsupported schemaVersion"),
    ("manifests-not-list", "'manifests' must be a list"),
    ("bad-digest", "invalid sha256 digest"),
    ("md5", "unsupported digest algorithm 'md5'"),
    ("no-size", "invalid size"),
    ("no-index", "no such file"),
    ("no-oci-layout", "oci-layout: no such file"),
    ("layout-v2", "unsupported imageLayoutVersion"),
    ("empty", "contains no images"),
])
def test_bad_index(unpack, tmp_path, case, match):
    lw = simple_layout(tmp_path / "l", LAYER)
    good = dict(lw.index[0])
    idx = os.path.join(lw.path, "index.json")
    docs = {
        "not-json": b"{not json",
        "schema1": {"schemaVersion": 1, "manifests": [good]},
        "manifests-not-list": {"schemaVersion": 2, "manifests": {}},
        "bad-digest": {"schemaVersion": 2, "manifests": [dict(good, digest="sha256:xyz")]},
        "md5": {"schemaVersion": 2, "manifests": [dict(good, digest="md5:" + "0" * 32)]},
        "no-size": {"schemaVersion": 2, "manifests": [{k: v for k, v in good.items() if k != "size"}]},
        "empty": {"schemaVersion": 2, "manifests": []},
    }
    if case == "no-index":
        os.unlink(idx)
    elif case == "no-oci-layout":
        os.unlink(os.path.join(lw.path, "oci-layout"))
    elif case == "layout-v2":
        with open(os.path.join(lw.path, "oci-layout"), "w") as fh:
            json.dump({"imageLayoutVersion": "2.0.0"}, fh)
    else:
        doc = docs[case]
        with open(idx, "wb") as fh:
            fh.write(doc if isinstance(doc, bytes) else json.dumps(doc).encode())
    expect_error(unpack, tmp_path, lw.path, match)


def test_manifest_and_config_checks(unpack, tmp_path):
    lw = simple_layout(tmp_path / "a", LAYER, diff_ids=[sha256(LAYER), sha256(b"x")])
    expect_error(unpack, tmp_path, lw.path, "2 diff_ids but the manifest has 1 layers")
    lw = simple_layout(tmp_path / "b", LAYER, os_="windows")
    expect_error(unpack, tmp_path, lw.path, "only linux images")
    # a config blob whose bytes do not match its digest
    lw = simple_layout(tmp_path / "c", LAYER)
    cd = manifest_of(lw)["config"]
    rewrite_blob(lw, cd["digest"], open(lw.blob_path(cd["digest"]), "rb").read().replace(b"amd64", b"arm64"))
    err = expect_error(unpack, tmp_path, lw.path, "digest mismatch")
    assert cd["digest"] in str(err) and "config" in str(err)


def test_sha512_digests(unpack, tmp_path):
    lw = LayoutWriter(tmp_path / "l")
    os.makedirs(os.path.join(lw.path, "blobs", "sha512"))
    blob = compress(LAYER, "gzip")
    dg = "sha512:" + hashlib.sha512(blob).hexdigest()
    with open(os.path.join(lw.path, "blobs", "sha512", dg[7:]), "wb") as fh:
        fh.write(blob)
    diff = "sha512:" + hashlib.sha512(LAYER).hexdigest()
    lw.add_layers_image([{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": dg,
                          "size": len(blob)}], [diff])
    assert os.path.exists(os.path.join(unpack(lw.path), "rootfs/etc/hello"))
    with open(os.path.join(lw.path, "blobs", "sha512", dg[7:]), "r+b") as fh:
        fh.seek(50)
        fh.write(b"\0\0\0")
    expect_error(unpack, tmp_path, lw.path, "sha512:.*digest mismatch")


def test_bundle_dir_rules(unpack, tmp_path):
    lw = simple_layout(tmp_path / "l", LAYER)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep").write_text("mine")
    with pytest.raises(ImageError, match="not empty"):
        unpack(lw.path, bundle=str(busy))
    assert os.listdir(busy) == ["keep"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert os.path.exists(os.path.join(unpack(lw.path, bundle=str(empty)), "rootfs/etc/hello"))
    # failure inside an existing empty dir: the dir stays, empty
    empty2 = tmp_path / "empty2"
    empty2.mkdir()
    os.unlink(lw.blob_path(manifest_of(lw)["layers"][0]["digest"]))
    with pytest.raises(ImageError):
        unpack(lw.path, bundle=str(empty2))
    assert os.listdir(empty2) == []


def test_late_failure_removes_a_large_rootfs(unpack, tmp_path):
    """The diff_id is only known at the end of a layer: everything written so far goes away."""
    many = tar(*[f(f"d{i // 100}/f{i}", "x") for i in range(2000)], d("ro", mode=0o555), f("ro/x", "x"))
    lw = simple_layout(tmp_path / "l", many, LAYER, diff_ids=[sha256(many), "sha256:" + "1" * 64])
    expect_error(unpack, tmp_path, lw.path, "diff_id")
    lw2 = simple_layout(tmp_path / "l2", many, LAYER, diff_ids=[sha256(many), "sha256:" + "1" * 64])
    expect_error(unpack, tmp_path, lw2.path, "diff_id", rootless=True)
