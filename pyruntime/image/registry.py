"""A distribution-spec v1.1 client: TLS, credentials, the auth challenge, manifests and blobs.

HTTP library: urllib3 (PyPI ``urllib3``).  Why it and not the standard library or httpx: it pools and
reuses connections per host across threads (one TLS handshake for all the blobs of a pull), verifies
TLS with an ``ssl.SSLContext`` we build (system CAs + certs.d), honours ``https_proxy``/``no_proxy``
through ProxyManager, streams bodies, and has no dependencies of its own; httpx would bring five
packages for features (HTTP/2, async) a pull does not need.  Imported only by the image commands.

Credentials (never printed, never logged): ``--creds USER:PASS``, else the first of ``--authfile``,
``$REGISTRY_AUTH_FILE``, ``$XDG_RUNTIME_DIR/containers/auth.json``, ``~/.config/containers/auth.json``,
``$DOCKER_CONFIG/config.json``, ``~/.docker/config.json`` that has an entry for the registry (keys
``host[:port]``, ``https://host[:port]``, ``host/namespace`` as podman writes them; Docker Hub's
``https://index.docker.io/v1/`` too).

Auth challenge: a 401's ``WWW-Authenticate: Basic`` -> Basic with the credentials; ``Bearer realm=...,
service=...,scope=...`` -> a token from the realm (with Basic credentials if any), cached per scope.

TLS: the system CAs plus ``*.crt`` (CAs) and ``*.cert``/``*.key`` (client certificate) in
``/etc/containers/certs.d/HOST[:PORT]/``, ``/etc/docker/certs.d/...``, ``~/.config/containers/certs.d/``
(or ``--cert-dir``).  Plain HTTP only for an insecure registry (``--tls-verify=false``, or
``insecure = true`` in registries.conf): HTTPS without verification is tried first, then HTTP.
"""
from __future__ import annotations

import base64
import json
import os
import ssl
import threading
import time

from .errors import ImageError

ACCEPT_MANIFEST = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json"])
RETRIES = 4
BACKOFF = 0.5
MAX_MANIFEST = 4 << 20


def _urllib3():
    try:
        import urllib3
    except ImportError:
        raise ImageError("pulling needs the 'urllib3' package (pip install urllib3; `make` installs it)",
                         step="pull") from None
    return urllib3


# -- credentials ---------------------------------------------------------------------------------
def _auth_files(explicit: str | None) -> list[str]:
    if explicit:
        return [explicit]
    files = []
    if os.environ.get("REGISTRY_AUTH_FILE"):
        files.append(os.environ["REGISTRY_AUTH_FILE"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        files.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    files.append(f"/run/containers/{os.getuid()}/auth.json")
    files.append(os.path.expanduser("~/.config/containers/auth.json"))
    if os.environ.get("DOCKER_CONFIG"):
        files.append(os.path.join(os.environ["DOCKER_CONFIG"], "config.json"))
    files.append(os.path.expanduser("~/.docker/config.json"))
    return files


def find_credentials(registry: str, repository: str, authfile: str | None) -> tuple[str, str, str] | None:
    """(user, password, file it came from) for ``registry``, or None."""
    keys = []
    parts = repository.split("/")
    for i in range(len(parts), 0, -1):          # most specific namespace first, as podman does
        keys.append(f"{registry}/{'/'.join(parts[:i])}")
    keys += [registry, f"https://{registry}", f"http://{registry}"]
    if registry == "docker.io":
        keys += ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"]
    for path in _auth_files(authfile):
        try:
            with open(path) as f:
                doc = json.load(f)
        except FileNotFoundError:
            if path == authfile:
                raise ImageError("no such file", step="--authfile", path=path) from None
            continue
        except (OSError, ValueError) as e:
            raise ImageError(f"unreadable credentials file: {type(e).__name__}", step="auth", path=path) from None
        auths = doc.get("auths") if isinstance(doc, dict) else None
        if not isinstance(auths, dict):
            continue
        for k in keys:
            ent = auths.get(k) or auths.get(k.rstrip("/"))
            if isinstance(ent, dict) and isinstance(ent.get("auth"), str) and ent["auth"]:
                try:
                    user, _, pw = base64.b64decode(ent["auth"]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    raise ImageError(f"entry {k!r} has an invalid 'auth' value", step="auth", path=path) from None
                return user, pw, path
    return None


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,":
            i += 1
        j = rest.find("=", i)
        if j < 0:
            break
        key = rest[i:j].strip().lower()
        i = j + 1
        if i < n and rest[i] == '"':
            j = rest.find('"', i + 1)
            j = n if j < 0 else j
            params[key] = rest[i + 1:j]
            i = j + 1
        else:
            j = rest.find(",", i)
            j = n if j < 0 else j
            params[key] = rest[i:j].strip()
            i = j
    return scheme.lower(), params


# -- TLS -----------------------------------------------------------------------------------------
def _cert_dirs(host: str, cert_dir: str | None) -> list[str]:
    if cert_dir:
        return [cert_dir]
    bases = [os.path.expanduser("~/.config/containers/certs.d"), "/etc/containers/certs.d", "/etc/docker/certs.d"]
    return [os.path.join(b, host) for b in bases if os.path.isdir(os.path.join(b, host))]


def ssl_context(host: str, cert_dir: str | None, verify: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    for d in _cert_dirs(host, cert_dir):
        try:
            names = sorted(os.listdir(d))
        except OSError as e:
            raise ImageError.from_os(e, "certs.d", d) from None
        for n in names:
            p = os.path.join(d, n)
            try:
                if n.endswith(".crt"):
                    ctx.load_verify_locations(cafile=p)
                elif n.endswith(".cert"):
                    key = p[:-5] + ".key"
                    ctx.load_cert_chain(p, key if os.path.exists(key) else None)
            except (OSError, ssl.SSLError) as e:
                raise ImageError(f"unusable certificate: {e}", step="certs.d", path=p) from None
    return ctx


# -- the client ------------------------------------------------------------------------------------
class Response:
    """A streamed response: ``status``, ``headers``, ``read(n)``, ``release()``."""

    def __init__(self, r) -> None:
        self.r = r
        self.status = r.status
        self.headers = r.headers

    def read(self, n: int = 1 << 20) -> bytes:
        return self.r.read(n)

    def release(self) -> None:
        _give_back(self.r, drain=False)


def _give_back(r, drain: bool = True) -> None:
    """Return a response's connection to the pool only with its body consumed: a connection with an
    unread body (a 5xx or 401 page, a redirect, a blob read only partly) would be reused mid-response
    and the next request on it fails (http.client's ResponseNotReady).  Small bodies (error pages,
    redirects) are drained; a body left unread after a stream is not: its connection is closed."""
    if drain:
        r.drain_conn()
    elif not r.isclosed():
        r.close()
    r.release_conn()


class RegistryClient:
    def __init__(self, host: str, repository: str, *, insecure: bool = False, cert_dir: str | None = None,
                 creds: str | None = None, authfile: str | None = None, registry_name: str | None = None,
                 warn=None) -> None:
        u3 = _urllib3()
        self.u3 = u3
        self.host, self.repository = host, repository
        self.name = registry_name or host
        self.insecure = insecure
        self.warn = warn or (lambda m: None)
        if creds is not None:
            user, sep, pw = creds.partition(":")
            if not sep:
                raise ImageError("expected USER:PASSWORD", step="--creds")
            self.creds: tuple[str, str, str] | None = (user, pw, "--creds")
        else:
            self.creds = find_credentials(self.name, repository, authfile)
        self.scheme = "https"
        ctx = ssl_context(host, cert_dir, verify=not insecure)
        proxy = os.environ.get("https_proxy") or os.environ.get("HTTPS_PROXY")
        no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
        bypass = any(host.split(":")[0].endswith(p.strip().lstrip(".")) for p in no_proxy.split(",") if p.strip())
        kw = {"ssl_context": ctx, "maxsize": 8, "retries": False, "timeout": u3.Timeout(connect=15, read=60)}
        if proxy and not bypass and not host.startswith(("127.", "localhost")):
            self.http = u3.ProxyManager(proxy, **kw)
        else:
            self.http = u3.PoolManager(**kw)
        self._auth: dict[str, str] = {}        # scope -> Authorization header value
        self._lock = threading.Lock()
        self._checked = False

    # -- plumbing -------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"

    def _raw(self, method: str, url: str, headers: dict, preload: bool = False):
        return self.http.request(method, url, headers=headers, redirect=False, preload_content=preload,
                                 decode_content=False)

    def _ping(self) -> None:
        """GET /v2/ once: pick the scheme (insecure registries may be plain HTTP)."""
        if self._checked:
            return
        u3 = self.u3
        try:
            r = self._raw("GET", self.url("/v2/"), {}, preload=True)
        except (u3.exceptions.SSLError, u3.exceptions.ProtocolError, u3.exceptions.MaxRetryError) as e:
            if not self.insecure:
                raise ImageError(f"TLS or connection error: {_short(e)} (for a registry without TLS use "
                                 "--tls-verify=false or mark it insecure in registries.conf)",
                                 step="pull", path=self.host) from None
            self.scheme = "http"
            try:
                r = self._raw("GET", self.url("/v2/"), {}, preload=True)
            except u3.exceptions.HTTPError as e2:
                raise ImageError(f"cannot connect: {_short(e2)}", step="pull", path=self.host) from None
        except u3.exceptions.HTTPError as e:
            raise ImageError(f"cannot connect: {_short(e)}", step="pull", path=self.host) from None
        if r.status not in (200, 401):
            raise ImageError(f"not a registry (GET /v2/ -> HTTP {r.status})", step="pull", path=self.host)
        self._checked = True

    def _authorize(self, challenge: str, scope: str) -> str:
        scheme, params = _parse_challenge(challenge)
        if scheme == "basic":
            if self.creds is None:
                raise ImageError(self._denied(), step="auth", path=self.name)
            user, pw, _ = self.creds
            return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
        if scheme != "bearer" or not params.get("realm"):
            raise ImageError(f"unsupported authentication scheme {scheme!r}", step="auth", path=self.name)
        from urllib.parse import urlencode
        q = {"service": params["service"]} if params.get("service") else {}
        q["scope"] = params.get("scope") or scope
        headers = {}
        if self.creds is not None:
            user, pw, _ = self.creds
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
        try:
            r = self.http.request("GET", params["realm"] + ("&" if "?" in params["realm"] else "?") + urlencode(q),
                                  headers=headers, redirect=True)
        except self.u3.exceptions.HTTPError as e:
            raise ImageError(f"token server: {_short(e)}", step="auth", path=self.name) from None
        if r.status in (401, 403):
            raise ImageError(self._denied(), step="auth", path=self.name)
        if r.status != 200:
            raise ImageError(f"token server answered HTTP {r.status}", step="auth", path=self.name)
        try:
            doc = json.loads(r.data)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise ImageError("token server gave no token", step="auth", path=self.name)
        return "Bearer " + token

    def _denied(self) -> str:
        if self.creds is None:
            return "authentication required and no credentials found (podman login, --authfile, --creds)"
        return f"authentication failed: wrong user name or password (credentials from {self.creds[2]})"

    def request(self, method: str, path: str, headers: dict | None = None, scope: str | None = None,
                what: str = "") -> Response:
        """One request with auth and retries (5xx, connection errors: backoff).  Redirects (blob
        downloads to storage) are followed without our Authorization header."""
        self._ping()
        scope = scope or f"repository:{self.repository}:pull"
        headers = dict(headers or {})
        u3 = self.u3
        delay = BACKOFF
        authed_retry = False
        for attempt in range(RETRIES):
            h = dict(headers)
            with self._lock:
                if scope in self._auth:
                    h["Authorization"] = self._auth[scope]
            url = self.url(path)
            try:
                r = self._raw(method, url, h)
                hops = 0
                while r.status in (301, 302, 303, 307, 308) and hops < 5:
                    loc = r.headers.get("Location")
                    _give_back(r)
                    if not loc:
                        break
                    from urllib.parse import urljoin, urlparse
                    nxt = urljoin(url, loc)
                    hh = dict(headers)
                    if urlparse(nxt).netloc == urlparse(url).netloc and "Authorization" in h:
                        hh["Authorization"] = h["Authorization"]
                    url = nxt
                    r = self._raw(method, url, hh)
                    hops += 1
            except u3.exceptions.HTTPError as e:
                if attempt + 1 == RETRIES:
                    raise ImageError(f"{what or path}: {_short(e)} (after {RETRIES} attempts)", step="pull",
                                     path=self.name) from None
                time.sleep(delay)
                delay *= 2
                continue
            if r.status == 401 and not authed_retry:
                challenge = r.headers.get("WWW-Authenticate", "")
                _give_back(r)
                if not challenge:
                    raise ImageError(self._denied(), step="auth", path=self.name)
                value = self._authorize(challenge, scope)
                with self._lock:
                    self._auth[scope] = value
                authed_retry = True
                continue
            if r.status == 401:
                _give_back(r)
                raise ImageError(self._denied(), step="auth", path=self.name)
            if r.status >= 500 or r.status == 429:
                _give_back(r)
                if attempt + 1 == RETRIES:
                    raise ImageError(f"{what or path}: HTTP {r.status} (after {RETRIES} attempts)", step="pull",
                                     path=self.name)
                time.sleep(delay)
                delay *= 2
                continue
            return Response(r)
        raise ImageError(f"{what or path}: giving up", step="pull", path=self.name)

    def manifest(self, reference: str) -> tuple[bytes, str, str | None]:
        """(bytes, media type, Docker-Content-Digest) of a manifest or index."""
        r = self.request("GET", f"/v2/{self.repository}/manifests/{reference}", {"Accept": ACCEPT_MANIFEST},
                         what=f"manifest {reference}")
        try:
            if r.status == 404:
                raise ImageError(f"manifest unknown: {self.repository}:{reference} (no such image or tag)",
                                 step="pull", path=self.name)
            if r.status == 403:
                raise ImageError(f"access denied to {self.repository}", step="pull", path=self.name)
            if r.status != 200:
                raise ImageError(f"manifest {reference}: HTTP {r.status}", step="pull", path=self.name)
            data = b""
            while True:
                b = r.read(1 << 16)
                if not b:
                    break
                data += b
                if len(data) > MAX_MANIFEST:
                    raise ImageError(f"manifest larger than {MAX_MANIFEST} bytes", step="pull", path=self.name)
        finally:
            r.release()
        mtype = (r.headers.get("Content-Type") or "").split(";")[0].strip()
        return data, mtype, r.headers.get("Docker-Content-Digest")

    def blob(self, digest: str, offset: int = 0) -> Response:
        h = {"Range": f"bytes={offset}-"} if offset else {}
        r = self.request("GET", f"/v2/{self.repository}/blobs/{digest}", h, what=f"blob {digest}")
        if r.status not in (200, 206):
            r.release()
            raise ImageError(f"blob {digest}: HTTP {r.status}", step="pull", path=self.name)
        return r


def _short(e: BaseException) -> str:
    text = str(getattr(e, "reason", None) or e)
    return text.splitlines()[0][:200]
