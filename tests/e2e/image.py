"""The lanes' busybox image, built offline from the host's busybox-static binary.

No registry is reachable here, so the image is made from scratch: a rootfs tar (one static
binary, its applet links, passwd/group with an unprivileged user 1000) for ``podman import``,
and the same layer wrapped as an OCI image-layout archive for ``ctr images import``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
import tarfile

from .helpers import BUSYBOX

PASSWD = ("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/:/bin/false\n")
GROUP = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n"
MTIME = 1_700_000_000  # fixed, so the layer digest is the same in every session
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}.get(
    platform.machine(), platform.machine())


def _applets() -> list[str]:
    out = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout
    return sorted({a for a in out.split() if a and a != "busybox" and "/" not in a})


def build_rootfs_tar(path: str) -> str:
    """Write the rootfs tar; fails clearly when busybox-static is missing."""
    if not os.access(BUSYBOX, os.X_OK):
        raise RuntimeError(f"{BUSYBOX} missing: apt-get install busybox-static")
    with tarfile.open(path, "w") as tar:
        def add_dir(name: str, mode: int = 0o755, uid: int = 0) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = tarfile.DIRTYPE, mode, MTIME, uid, uid
            tar.addfile(ti)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), mode, MTIME
            tar.addfile(ti, io.BytesIO(data))

        for d in ("bin", "dev", "etc", "proc", "root", "run", "sys", "usr", "var", "home"):
            add_dir(d, 0o700 if d == "root" else 0o755)
        add_dir("tmp", 0o1777)
        add_dir("var/tmp", 0o1777)
        add_dir("home/user", 0o755, uid=1000)
        with open(BUSYBOX, "rb") as f:
            add_file("bin/busybox", f.read(), 0o755)
        for applet in _applets():
            ti = tarfile.TarInfo(f"bin/{applet}")
            ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.SYMTYPE, "busybox", 0o777, MTIME
            tar.addfile(ti)
        add_file("etc/passwd", PASSWD.encode())
        add_file("etc/group", GROUP.encode())
    return path


def _blob(tar: tarfile.TarFile, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    ti = tarfile.TarInfo(f"blobs/sha256/{digest}")
    ti.size, ti.mode, ti.mtime = len(data), 0o644, MTIME
    tar.addfile(ti, io.BytesIO(data))
    return "sha256:" + digest, len(data)


def build_oci_archive(rootfs_tar: str, path: str, name: str, cmd: list[str] | None = None) -> str:
    """An OCI image-layout tar holding the rootfs as one uncompressed layer, tagged ``name``.

    ``cmd`` is the image's Cmd (busybox's shell unless given: the CRI lane's pause image runs /pause).
    """
    with open(rootfs_tar, "rb") as f:
        layer = f.read()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": GOARCH, "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": cmd or ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }, sort_keys=True).encode()
    with tarfile.open(path, "w") as tar:
        ldig, lsize = _blob(tar, layer)
        cdig, csize = _blob(tar, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": csize},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ldig, "size": lsize}],
        }, sort_keys=True).encode()
        mdig, msize = _blob(tar, manifest)
        index = json.dumps({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig,
                           "size": msize, "platform": {"architecture": GOARCH, "os": "linux"},
                           "annotations": {"io.containerd.image.name": name,
                                           "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}}],
        }, sort_keys=True).encode()
        for fname, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)):
            ti = tarfile.TarInfo(fname)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, MTIME
            tar.addfile(ti, io.BytesIO(data))
    return path
