"""An unpacked image runs with pyruntime (bundle from `image unpack`, and `run --image`)."""
from __future__ import annotations

import json
import os
import uuid

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _cgroup(bundle: str) -> None:
    """Give the container a cgroup under the suite's pyrt-tests tree (checked for leaks)."""
    path = os.path.join(bundle, "config.json")
    cfg = json.load(open(path))
    cfg["linux"]["cgroupsPath"] = f"pyrt-tests/image-{uuid.uuid4().hex[:8]}"
    json.dump(cfg, open(path, "w"))


def test_run_unpacked_bundle(rt, unpack, umoci_layout):
    b = unpack(umoci_layout, "bb")
    _cgroup(b)
    cp = rt("run", "--bundle", b, f"img-{uuid.uuid4().hex[:8]}", timeout=60)
    # Cmd ran as the image's User (app, uid 1000) in its WorkingDir, with its Env
    assert cp.stdout.decode().split("\n")[:3] == ["hello from umoci", "1000", "/home/app"]


def test_run_image_option(rt, umoci_layout):
    cp = rt("run", "--image", f"{umoci_layout}:bb", f"img-{uuid.uuid4().hex[:8]}", timeout=60)
    assert cp.stdout.decode().startswith("hello from umoci\n1000\n")
    assert not os.listdir(os.path.join(rt.root, ".bundles"))     # the image bundle went with the container
