"""A private registry for the registry lane: Debian's docker-registry (CNCF distribution) on 127.0.0.1.

Each :class:`Registry` has its own temp config, storage and random free port; with ``tls`` a throw-away
CA (made here with openssl) signs a server certificate for 127.0.0.1/localhost; with ``users`` an
htpasswd file (bcrypt, made with apache2-utils' htpasswd) requires Basic auth; with ``token`` the
registry trusts a tiny token server (:class:`TokenServer`) for Bearer auth.  Everything is stopped and
removed by :meth:`stop`.  A :class:`Proxy` sits in front of a registry to corrupt or cut blob transfers.
"""
from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import shutil
import socket
import socketserver
import subprocess
import threading
import time
import urllib.request

from .image_helpers import need


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_ca(d: str) -> tuple[str, str, str]:
    """(ca.crt, server.crt, server.key) for 127.0.0.1 and localhost."""
    need("openssl")
    os.makedirs(os.path.join(d, "certs"), exist_ok=True)      # a certs.d-style dir: the CA only
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "certs", "ca.crt")
    key, csr, crt = os.path.join(d, "server.key"), os.path.join(d, "server.csr"), os.path.join(d, "server.crt")
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    q = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt,
                    "-days", "2", "-subj", "/CN=pyruntime test CA"], **q)
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                    "-subj", "/CN=127.0.0.1"], **q)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
                    "-out", crt, "-days", "2", "-extfile", ext], **q)
    return ca_crt, crt, key


class Registry:
    def __init__(self, tmp: str, *, tls: bool = False, users: dict[str, str] | None = None,
                 token: "TokenServer | None" = None, port: int | None = None) -> None:
        """``port``: one chosen (free_port) before, when a client's config must name it first (the CRI lane)."""
        need("docker-registry")
        self.dir = tmp
        os.makedirs(tmp, exist_ok=True)
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.tls = tls
        self.ca = None
        cfg = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
               "storage:", "  filesystem:", f"    rootdirectory: {tmp}/data", "  delete:", "    enabled: true",
               "http:", f"  addr: 127.0.0.1:{self.port}", f"  secret: {os.urandom(8).hex()}"]
        if tls:
            self.ca, crt, key = make_ca(os.path.join(tmp, "tls"))
            cfg += ["  tls:", f"    certificate: {crt}", f"    key: {key}"]
        if users:
            need("htpasswd")
            pw = os.path.join(tmp, "htpasswd")
            with open(pw, "w") as f:
                for u, p in users.items():
                    f.write(subprocess.run(["htpasswd", "-Bbn", u, p], check=True, capture_output=True,
                                           text=True).stdout.strip() + "\n")
            cfg += ["auth:", "  htpasswd:", "    realm: pyruntime-test", f"    path: {pw}"]
        elif token:
            cfg += ["auth:", "  token:", f"    realm: {token.url}/token", "    service: pyrt-registry",
                    "    issuer: pyrt-test-issuer", f"    rootcertbundle: {token.cert}"]
        conf = os.path.join(tmp, "config.yml")
        with open(conf, "w") as f:
            f.write("\n".join(cfg) + "\n")
        self.log = open(os.path.join(tmp, "registry.log"), "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", conf], stdout=self.log, stderr=subprocess.STDOUT)
        self._wait()

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def _wait(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {open(self.log.name).read()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not start listening")

    def push(self, src: str, repo: str, *, creds: str | None = None, fmt: str | None = None,
             all_: bool = False) -> str:
        """skopeo copy SRC docker://HOST/REPO (SRC like oci:LAYOUT:TAG)."""
        cmd = ["skopeo", "copy", "-q", "--retry-times", "2"]
        if self.tls:
            cmd += ["--dest-cert-dir", os.path.dirname(self.ca)]
        else:
            cmd += ["--dest-tls-verify=false"]
        if creds:
            cmd += ["--dest-creds", creds]
        if fmt:
            cmd += ["--format", fmt]
        if all_:
            cmd += ["--all"]
        dest = f"docker://{self.host}/{repo}"
        subprocess.run(cmd + [src, dest], check=True, capture_output=True, timeout=120)
        return f"{self.host}/{repo}"

    def skopeo_pull(self, repo: str, layout_ref: str, *, creds: str | None = None) -> None:
        cmd = ["skopeo", "copy", "-q"]
        cmd += ["--src-cert-dir", os.path.dirname(self.ca)] if self.tls else ["--src-tls-verify=false"]
        if creds:
            cmd += ["--src-creds", creds]
        subprocess.run(cmd + [f"docker://{self.host}/{repo}", layout_ref], check=True, capture_output=True,
                       timeout=120)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Proxy:
    """A plain-HTTP proxy in front of a registry (HTTP) that can corrupt one blob or cut transfers.

    ``corrupt``: digest whose body gets one byte flipped; ``cut``: digest whose first N responses end
    after half the body (the client must resume with Range).  ``seen``: request lines and headers, to
    check that no credentials leak into what the client sends where it should not."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.corrupt: str | None = None
        self.cut: dict[str, int] = {}
        self.fail: dict[str, int] = {}          # digest -> how many 503s to answer first
        self.ranges: list[str] = []
        proxy = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a) -> None:
                pass

            def do_GET(self) -> None:
                last = self.path.rsplit("/", 1)[-1]
                if proxy.fail.get(last, 0) > 0:
                    proxy.fail[last] -= 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                req = urllib.request.Request(f"http://{proxy.upstream}{self.path}", method="GET")
                for k, v in self.headers.items():
                    if k.lower() not in ("host", "connection"):
                        req.add_header(k, v)
                if self.headers.get("Range"):
                    proxy.ranges.append(self.headers["Range"])
                try:
                    r = urllib.request.build_opener(_NoRedirect).open(req, timeout=30)
                    status, headers, body = r.status, r.headers, r.read()
                except urllib.error.HTTPError as e:
                    status, headers, body = e.code, e.headers, e.read()
                digest = self.path.rsplit("/", 1)[-1] if "/blobs/" in self.path else None
                if digest and digest == proxy.corrupt and body:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                short = digest is not None and proxy.cut.get(digest, 0) > 0 and status in (200, 206) and len(body) > 1
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if short:
                    proxy.cut[digest] -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                self.wfile.write(body)

        self.server = _ThreadingServer(("127.0.0.1", 0), H)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


# -- Bearer tokens ---------------------------------------------------------------------------------
def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class TokenServer:
    """A token endpoint (docker/distribution token auth): checks Basic credentials, answers a JWT
    signed with RS256 (openssl does the signing) for the requested scope."""

    def __init__(self, tmp: str, users: dict[str, str]) -> None:
        need("openssl")
        os.makedirs(tmp, exist_ok=True)
        self.dir = tmp
        self.key = os.path.join(tmp, "token.key")
        self.cert = os.path.join(tmp, "token.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
                        "-out", self.cert, "-days", "2", "-subj", "/CN=pyrt-token"], check=True,
                       capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.users = users
        self.issued = 0
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_GET(self) -> None:
                from urllib.parse import parse_qs, urlparse
                q = parse_qs(urlparse(self.path).query)
                auth = self.headers.get("Authorization", "")
                ok = False
                if auth.startswith("Basic "):
                    u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                    ok = srv.users.get(u) == p
                if not ok:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                scope = (q.get("scope") or [""])[0]
                access = []
                if scope:
                    typ, name, actions = scope.split(":", 2) if scope.count(":") >= 2 else ("", "", "")
                    access = [{"type": typ, "name": name, "actions": actions.split(",")}]
                tok = srv.sign({"iss": "pyrt-test-issuer", "sub": "u", "aud": (q.get("service") or [""])[0],
                                "exp": int(time.time()) + 300, "nbf": int(time.time()) - 10,
                                "iat": int(time.time()), "jti": os.urandom(8).hex(), "access": access})
                srv.issued += 1
                body = json.dumps({"token": tok, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = _ThreadingServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing.encode(),
                             check=True, capture_output=True).stdout
        return f"{signing}.{_b64url(sig)}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


def sha256(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()
