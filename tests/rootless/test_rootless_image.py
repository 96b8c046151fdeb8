"""`run --image` by an unprivileged user: no overlay (it needs root here), the layers are copied into the
container's bundle under the user's own --root, in a user namespace of the caller's ids."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest


@pytest.fixture
def user_layout(rl):
    """An OCI layout owned by the test user, made by umoci from the user's rootfs."""
    if not subprocess.run(["which", "umoci"], capture_output=True).returncode == 0:
        pytest.skip("umoci is not installed (make image-deps)")
    lay = os.path.join(rl.owner.work, f"layout-{uuid.uuid4().hex[:6]}")
    bdir = os.path.join(rl.owner.work, f"ub-{uuid.uuid4().hex[:6]}")
    subprocess.run(["umoci", "init", "--layout", lay], check=True, capture_output=True)
    subprocess.run(["umoci", "new", "--image", f"{lay}:t"], check=True, capture_output=True)
    subprocess.run(["umoci", "insert", "--image", f"{lay}:t", rl.rootfs, "/"], check=True, capture_output=True)
    subprocess.run(["umoci", "config", "--image", f"{lay}:t", "--config.cmd", "/bin/sh", "--config.cmd", "-c",
                    "--config.cmd", "id -u; echo made > /new && cat /new", "--config.workingdir", "/wd"],
                   check=True, capture_output=True)
    subprocess.run(["chown", "-R", f"{rl.owner.uid}:{rl.owner.gid}", lay], check=True)
    yield f"{lay}:t"
    subprocess.run(["rm", "-rf", lay, bdir])


def test_rootless_run_image(rl, user_layout):
    rt = rl.rt("pyruntime")
    cp = rt("run", "--image", user_layout, f"rli-{uuid.uuid4().hex[:6]}")
    assert "Traceback" not in cp.stderr, cp.stderr
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["0", "made"]
    assert os.listdir(os.path.join(rt.root, ".bundles")) == []
