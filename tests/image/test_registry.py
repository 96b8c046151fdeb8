"""The registry lane, fully offline: Debian's docker-registry on 127.0.0.1 (plain HTTP; TLS with a
throw-away CA and htpasswd Basic auth; Bearer tokens from a tiny token server), images pushed with skopeo
from layouts built here, pulled with `pyruntime image pull` and compared with `skopeo copy`'s result
(manifests, blobs) and umoci's unpacked tree."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

import pytest

from .image_helpers import LayoutWriter, d, f, need, tar, tar_of_dir
from .registry_env import Proxy, Registry, TokenServer
from . import treecmp

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (unpacks with owners)")
USER, PASSWORD = "pyrt-user", "s3cret-Pa55-word"
BIN = os.environ.get("PYRUNTIME_BIN") or os.path.join(os.path.dirname(__file__), "..", "..", "bin", "pyruntime")


def pyrt(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cp = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=180)
    if check and cp.returncode != 0:
        raise AssertionError(f"pyruntime {' '.join(args)} -> {cp.returncode}: {cp.stderr}")
    return cp


@pytest.fixture(scope="module")
def images(tmp_path_factory, busybox_rootfs) -> str:
    """One layout: bb (OCI, gzip, 2 layers), zstd (a zstd layer), multi (an index: amd64 + arm64)."""
    lw = LayoutWriter(tmp_path_factory.mktemp("reg-src") / "layout")
    base = tar_of_dir(busybox_rootfs)
    extra = tar(d("srv"), f("srv/hello", b"from the registry\n"))
    cfg = {"config": {"Cmd": ["/bin/cat", "/srv/hello"]}}
    lw.add(lw.image([base, extra], config=cfg), "bb")
    lw.add(lw.image([base, tar(f("srv/z", b"zstd layer\n"))], compression="zstd",
                    config={"config": {"Cmd": ["/bin/cat", "/srv/z"]}}), "zstd")
    amd = lw.image([base, tar(f("arch", b"amd64\n"))], config={"config": {"Cmd": ["/bin/cat", "/arch"]}})
    arm = lw.image([tar(f("arch", b"arm64\n"))], arch="arm64", variant="v8")
    idx = lw.index_blob([dict(amd, platform={"os": "linux", "architecture": "amd64"}),
                         dict(arm, platform={"os": "linux", "architecture": "arm64", "variant": "v8"})])
    lw.add(idx, "multi")
    return lw.path


@pytest.fixture(scope="module")
def plain(tmp_path_factory, images):
    need("skopeo")
    r = Registry(str(tmp_path_factory.mktemp("reg-plain")))
    try:
        r.push(f"oci:{images}:bb", "test/bb:v1")
        r.push(f"oci:{images}:zstd", "test/zstd:v1")
        r.push(f"oci:{images}:multi", "test/multi:v1", all_=True)
        r.push(f"oci:{images}:bb", "test/docker:v1", fmt="v2s2")
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def secure(tmp_path_factory, images):
    need("skopeo")
    r = Registry(str(tmp_path_factory.mktemp("reg-tls")), tls=True, users={USER: PASSWORD})
    try:
        r.push(f"oci:{images}:bb", "test/bb:v1", creds=f"{USER}:{PASSWORD}")
        yield r
    finally:
        r.stop()


def _index(layout: str) -> list[dict]:
    return json.load(open(os.path.join(layout, "index.json")))["manifests"]


def _blobs(layout: str) -> set[str]:
    return set(os.listdir(os.path.join(layout, "blobs", "sha256")))


def _manifest(layout: str, digest: str) -> dict:
    return json.load(open(os.path.join(layout, "blobs", "sha256", digest.split(":")[1])))


@pytest.mark.parametrize("repo", ["bb", "zstd", "multi", "docker"])
def test_pull_equals_skopeo_and_unpacks_as_umoci(plain, repo, tmp_path):
    need("umoci")
    ours, theirs = str(tmp_path / "ours"), str(tmp_path / "theirs")
    cp = pyrt("image", "pull", "--tls-verify=false", f"docker://{plain.host}/test/{repo}:v1", ours)
    plain.skopeo_pull(f"test/{repo}:v1", f"oci:{theirs}:v1")
    (mine,), (sk,) = _index(ours), _index(theirs)
    assert cp.stdout.strip() == mine["digest"]
    assert mine["annotations"] == sk["annotations"] == {"org.opencontainers.image.ref.name": "v1"}
    if repo == "docker":
        # skopeo converts a Docker schema 2 manifest into an OCI one for an oci: layout; we keep the
        # manifest and config the registry serves (their digests are the image's identity; skopeo
        # re-encodes both): the same layers, and the same image config contents
        m, s = _manifest(ours, mine["digest"]), _manifest(theirs, sk["digest"])
        assert m["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
        assert [x["digest"] for x in m["layers"]] == [x["digest"] for x in s["layers"]]
        c1, c2 = _manifest(ours, m["config"]["digest"]), _manifest(theirs, s["config"]["digest"])
        assert (c1["rootfs"], c1["config"], c1["architecture"]) == (c2["rootfs"], c2["config"], c2["architecture"])
    else:
        assert mine == {k: v for k, v in sk.items()} | {"size": sk["size"]}
        assert _blobs(ours) == _blobs(theirs)
    assert sorted(os.listdir(ours)) == ["blobs", "index.json", "oci-layout"]
    # unpacked: our tree is umoci's (umoci 0.4 cannot read zstd layers: there the blobs are identical
    # to skopeo's, which the unpacker tests cover)
    pyrt("image", "unpack", f"{ours}:v1", str(tmp_path / "b-ours"))
    if repo == "zstd":
        return
    subprocess.run(["umoci", "unpack", "--image", f"{theirs}:v1", str(tmp_path / "b-umoci")], check=True,
                   capture_output=True)
    a = treecmp.snapshot(str(tmp_path / "b-ours" / "rootfs"))
    b = treecmp.snapshot(str(tmp_path / "b-umoci" / "rootfs"))
    assert not treecmp.diff(a, b)


def test_platform_choice(plain, tmp_path):
    out = str(tmp_path / "arm")
    pyrt("image", "pull", "--tls-verify=false", "--platform", "linux/arm64", f"{plain.host}/test/multi:v1", out)
    (desc,) = _index(out)
    cfg = _manifest(out, _manifest(out, desc["digest"])["config"]["digest"])
    assert cfg["architecture"] == "arm64"
    cp = pyrt("image", "pull", "--tls-verify=false", "--platform", "linux/s390x", f"{plain.host}/test/multi:v1",
              str(tmp_path / "none"), check=False)
    assert cp.returncode == 1 and "no image for platform linux/s390x" in cp.stderr
    assert "linux/amd64" in cp.stderr and "Traceback" not in cp.stderr


def test_second_pull_fetches_nothing_and_digest_refs(plain, tmp_path):
    out = str(tmp_path / "l")
    digest = pyrt("image", "pull", "--tls-verify=false", f"{plain.host}/test/bb:v1", out).stdout.strip()
    before = {n: os.stat(os.path.join(out, "blobs", "sha256", n)).st_ino for n in _blobs(out)}
    pyrt("image", "pull", "--tls-verify=false", f"{plain.host}/test/bb@{digest}", out)
    assert {n: os.stat(os.path.join(out, "blobs", "sha256", n)).st_ino for n in _blobs(out)} == before
    # the @digest pull is named by its digest; a wrong digest is refused
    assert {m["annotations"]["org.opencontainers.image.ref.name"] for m in _index(out)} == {"v1", digest}
    cp = pyrt("image", "pull", "--tls-verify=false", f"{plain.host}/test/bb@sha256:{'0' * 64}", out, check=False)
    assert cp.returncode == 1 and "Traceback" not in cp.stderr


def test_plain_http_needs_tls_verify_false(plain, tmp_path):
    cp = pyrt("image", "pull", f"{plain.host}/test/bb:v1", str(tmp_path / "x"), check=False)
    assert cp.returncode == 1 and "--tls-verify=false" in cp.stderr and len(cp.stderr.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "x")
    # a registries.conf insecure entry allows it, and short names are searched as podman does
    conf = tmp_path / "registries.conf"
    conf.write_text(f'unqualified-search-registries = ["{plain.host}"]\n'
                    f'[[registry]]\nlocation = "{plain.host}"\ninsecure = true\n')
    pyrt("image", "pull", "--registries-conf", str(conf), "test/bb:v1", str(tmp_path / "y"))
    assert _index(str(tmp_path / "y"))[0]["annotations"]["org.opencontainers.image.ref.name"] == "v1"


def test_tls_and_basic_auth(secure, tmp_path):
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"auths": {secure.host: {
        "auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}))
    certs = os.path.dirname(secure.ca)
    log = str(tmp_path / "log.json")
    cp = subprocess.run([BIN, "--log", log, "--log-format", "json", "--debug", "image", "pull", "--cert-dir", certs,
                         "--authfile", str(authfile), f"{secure.host}/test/bb:v1", str(tmp_path / "ok")],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    everything = cp.stdout + cp.stderr + (open(log).read() if os.path.exists(log) else "")
    assert PASSWORD not in everything and base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in everything
    # the CA is not trusted by default: a clear TLS error, not a traceback
    cp = pyrt("image", "pull", "--authfile", str(authfile), f"{secure.host}/test/bb:v1", str(tmp_path / "n"),
              check=False)
    assert cp.returncode == 1 and "certificate" in cp.stderr.lower() and "Traceback" not in cp.stderr
    # wrong password: one clear line naming where the credentials came from, never the password
    cp = pyrt("image", "pull", "--cert-dir", certs, "--creds", f"{USER}:wrong-one", f"{secure.host}/test/bb:v1",
              str(tmp_path / "w"), check=False)
    assert cp.returncode == 1 and "wrong user name or password" in cp.stderr, cp.stderr
    assert "wrong-one" not in cp.stderr and len(cp.stderr.strip().splitlines()) == 1
    cp = pyrt("image", "pull", "--cert-dir", certs, "--authfile", str(tmp_path / "missing.json"),
              f"{secure.host}/test/bb:v1", str(tmp_path / "m"), check=False)
    assert cp.returncode == 1 and "missing.json" in cp.stderr
    # no credentials at all
    (tmp_path / "empty.json").write_text("{}")
    cp = pyrt("image", "pull", "--cert-dir", certs, "--authfile", str(tmp_path / "empty.json"),
              f"{secure.host}/test/bb:v1", str(tmp_path / "e"), check=False)
    assert cp.returncode == 1 and "no credentials found" in cp.stderr


def test_corrupt_blob_is_refused_and_not_kept(plain, images, tmp_path):
    layer = _manifest(images, next(m for m in _index(images) if m["annotations"]["org.opencontainers.image.ref.name"]
                                   == "bb")["digest"])["layers"][1]["digest"]
    proxy = Proxy(plain.host)
    try:
        proxy.corrupt = layer
        out = str(tmp_path / "c")
        cp = pyrt("image", "pull", "--tls-verify=false", f"{proxy.host}/test/bb:v1", out, check=False)
        assert cp.returncode == 1 and f"blob {layer}" in cp.stderr or layer in cp.stderr, cp.stderr
        assert "digest mismatch" in cp.stderr and "Traceback" not in cp.stderr
        assert layer[7:] not in _blobs(out)
        assert not os.path.exists(os.path.join(out, ".pyruntime-partial", layer[7:]))
        assert _index(out) == []                              # no image entry for what failed
    finally:
        proxy.stop()


def test_interrupted_download_resumes(plain, images, tmp_path):
    manifest = _manifest(images, next(m for m in _index(images)
                                      if m["annotations"]["org.opencontainers.image.ref.name"] == "bb")["digest"])
    big = max(manifest["layers"], key=lambda x: x["size"])
    proxy = Proxy(plain.host)
    try:
        proxy.cut[big["digest"]] = 2           # the first two transfers stop halfway
        out = str(tmp_path / "r")
        pyrt("image", "pull", "--tls-verify=false", f"{proxy.host}/test/bb:v1", out)
        assert big["digest"][7:] in _blobs(out)
        assert proxy.ranges and all(r.startswith("bytes=") and not r.startswith("bytes=0-") for r in proxy.ranges)
    finally:
        proxy.stop()


def test_server_errors_are_retried(plain, images, tmp_path):
    manifest = _manifest(images, next(m for m in _index(images)
                                      if m["annotations"]["org.opencontainers.image.ref.name"] == "bb")["digest"])
    layer = manifest["layers"][0]["digest"]
    proxy = Proxy(plain.host)
    try:
        proxy.fail[layer] = 2                   # two 503s, then the blob (4 attempts with backoff)
        out = str(tmp_path / "503")
        pyrt("image", "pull", "--tls-verify=false", f"{proxy.host}/test/bb:v1", out)
        assert layer[7:] in _blobs(out) and proxy.fail[layer] == 0
        proxy.fail[layer] = 10                  # a registry that keeps failing: a clear error
        cp = pyrt("image", "pull", "--tls-verify=false", f"{proxy.host}/test/bb:v1", str(tmp_path / "x"), check=False)
        assert cp.returncode == 1 and "HTTP 503 (after 4 attempts)" in cp.stderr, cp.stderr
    finally:
        proxy.stop()


def test_run_image_pulls_when_missing(plain, tmp_path, rt):
    from pyruntime.fastos import remove_path
    try:
        cp = rt("run", "--tls-verify=false", "--image", f"docker://{plain.host}/test/bb:v1", "reg1")
        assert cp.stdout.decode() == "from the registry\n"
        # now stored under its full name: the next run needs no registry and no flags
        cp = rt("run", "--image", f"{plain.host}/test/bb:v1", "reg2", "--", "/bin/sh", "-c", "echo again")
        assert cp.stdout.decode() == "again\n"
        assert f"{plain.host}/test/bb:v1" in rt.out("image", "ls")
        # rm + prune: the store's layers and its layout's blobs go
        rt("image", "rm", f"{plain.host}/test/bb:v1")
        rt("image", "prune")
        store = os.path.join(rt.root, ".images")
        assert [n for n in os.listdir(os.path.join(store, "layers"))] == []
        assert os.listdir(os.path.join(store, "oci", "blobs", "sha256")) == []
        assert _index(os.path.join(store, "oci")) == []
    finally:
        remove_path(os.path.join(rt.root, ".images"))


def test_bearer_token_auth(tmp_path, images):
    need("skopeo")
    tokens = TokenServer(str(tmp_path / "tok"), {USER: PASSWORD})
    reg = Registry(str(tmp_path / "reg"), token=tokens)
    try:
        reg.push(f"oci:{images}:bb", "test/bb:v1", creds=f"{USER}:{PASSWORD}")
        out = str(tmp_path / "t")
        pyrt("image", "pull", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", f"{reg.host}/test/bb:v1", out)
        assert len(_index(out)) == 1 and tokens.issued >= 1
        cp = pyrt("image", "pull", "--tls-verify=false", "--creds", f"{USER}:nope", f"{reg.host}/test/bb:v1",
                  str(tmp_path / "t2"), check=False)
        assert cp.returncode == 1 and "wrong user name or password" in cp.stderr and "nope" not in cp.stderr
    finally:
        reg.stop()
        tokens.stop()
        shutil.rmtree(tmp_path / "reg", ignore_errors=True)


def test_concurrent_pulls_into_one_layout(plain, tmp_path):
    out = str(tmp_path / "same")
    procs = [subprocess.Popen([BIN, "image", "pull", "--tls-verify=false", f"{plain.host}/test/{repo}:v1", out],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for repo in ("bb", "bb", "zstd", "multi")]
    res = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, res
    names = sorted(m["annotations"]["org.opencontainers.image.ref.name"] for m in _index(out))
    assert names == ["v1"]              # one name, one entry: the last pull's image
    assert sorted(os.listdir(out)) == ["blobs", "index.json", "oci-layout"]
    for n in _blobs(out):               # every blob complete and what its name says
        import hashlib
        assert hashlib.sha256(open(os.path.join(out, "blobs", "sha256", n), "rb").read()).hexdigest() == n


def test_error_bodies_never_poison_a_reused_connection(monkeypatch):
    """A 5xx page left unread on a keep-alive connection made the next request on that connection fail
    (http.client's ResponseNotReady, seen once in CI under load as "Connection aborted" after 4 attempts): the
    retries must each get a clean connection or the drained old one."""
    import http.server
    import threading
    import time

    from pyruntime.image import registry

    seen: list[int] = []

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"           # keep-alive: the client reuses its connection

        def do_GET(self) -> None:
            if self.path == "/v2/":
                code, body = 200, b"{}"
            elif len(seen) < 2:
                code, body = 503, b"busy " * 200    # an error page the client does not read
            else:
                code, body = 200, b'{"ok": true}'
            if self.path != "/v2/":
                seen.append(code)
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if code == 503:                     # the page comes late: the connection looks idle
                self.wfile.flush()
                time.sleep(0.3)
            self.wfile.write(body)

        def log_message(self, *a) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setattr(registry, "BACKOFF", 0.01)
    try:
        c = registry.RegistryClient(f"127.0.0.1:{srv.server_address[1]}", "r", insecure=True)
        c.scheme = "http"
        r = c.request("GET", "/v2/r/manifests/x")
        body = r.read()
        r.release()
        assert r.status == 200 and body == b'{"ok": true}' and seen == [503, 503, 200], (r.status, body, seen)
    finally:
        srv.shutdown()
        srv.server_close()
