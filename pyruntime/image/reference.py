"""Image references as people write them, and the registry configuration podman and skopeo read.

``docker://`` prefixes, ``registry:port/repo:tag``, ``repo@sha256:...``, Docker Hub short names
(``busybox`` -> ``docker.io/library/busybox:latest``).  A name is *qualified* when its first component
looks like a host (has a ``.`` or ``:``, or is ``localhost``); a short name is tried against the
``unqualified-search-registries`` of registries.conf in order (podman's rule), docker.io when none are
configured.  ``[[registry]]`` entries with ``insecure = true`` allow plain HTTP/unverified TLS for a host.
"""
from __future__ import annotations

import os
import re

from .errors import ImageError

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"


class Reference:
    def __init__(self, registry: str, repository: str, tag: str | None, digest: str | None) -> None:
        self.registry, self.repository, self.tag, self.digest = registry, repository, tag, digest

    @property
    def api_host(self) -> str:
        """Where the registry API lives (Docker Hub's name is not its API host)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What /v2/<name>/manifests/<reference> takes: the digest if any, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        s = f"{self.registry}/{self.repository}"
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def _looks_like_host(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost"


def parse(text: str, *, search: list[str] | None = None) -> list[Reference]:
    """Candidates for ``text``, in the order to try them (one unless it is a short name)."""
    raw = text
    for prefix in ("docker://", "//"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    if not text:
        raise ImageError("empty image reference", step="reference", path=raw)
    name, _, digest = text.partition("@")
    if digest and not _DIGEST_RE.match(digest):
        raise ImageError(f"invalid digest {digest!r}", step="reference", path=raw)
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
        if not _TAG_RE.match(tag):
            raise ImageError(f"invalid tag {tag!r}", step="reference", path=raw)
    first, _, rest = name.partition("/")
    if rest and _looks_like_host(first):
        registries, repo = [first], rest
    else:
        registries, repo = (search or [DOCKER_HUB]), name
    if not _PATH_RE.match(repo):
        raise ImageError("invalid repository name (lower-case letters, digits and separators . _ - /)",
                         step="reference", path=raw)
    if not tag and not digest:
        tag = "latest"
    out = []
    for reg in registries:
        r = repo
        if reg == DOCKER_HUB and "/" not in r:
            r = "library/" + r
        out.append(Reference(reg, r, tag, digest or None))
    return out


def is_registry_ref(text: str) -> bool:
    """True when ``text`` parses as a registry reference (used to tell it from a missing path)."""
    try:
        parse(text)
        return True
    except ImageError:
        return False


# -- registries.conf -----------------------------------------------------------------------------
def _conf_files(explicit: str | None) -> list[str]:
    if explicit:
        return [explicit]
    env = os.environ.get("CONTAINERS_REGISTRIES_CONF")
    if env:
        return [env]
    files = []
    home = os.path.expanduser("~/.config/containers/registries.conf")
    main = home if os.path.exists(home) else "/etc/containers/registries.conf"
    if os.path.exists(main):
        files.append(main)
    d = main + ".d"
    if os.path.isdir(d):
        files += [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".conf")]
    return files


class RegistriesConf:
    """The parts pyruntime uses: unqualified-search-registries, [[registry]] insecure/location/prefix,
    and [aliases] short-name aliases."""

    def __init__(self, path: str | None = None) -> None:
        import tomllib
        self.search: list[str] = []
        self.insecure: set[str] = set()
        self.aliases: dict[str, str] = {}
        for p in _conf_files(path):
            try:
                with open(p, "rb") as f:
                    doc = tomllib.load(f)
            except FileNotFoundError:
                continue
            except (OSError, tomllib.TOMLDecodeError) as e:
                raise ImageError(f"cannot read: {e}", step="registries.conf", path=p) from None
            if isinstance(doc.get("unqualified-search-registries"), list):
                self.search = [str(x) for x in doc["unqualified-search-registries"]]
            for reg in doc.get("registry") or []:
                if isinstance(reg, dict) and reg.get("insecure"):
                    loc = reg.get("location") or reg.get("prefix")
                    if isinstance(loc, str):
                        self.insecure.add(loc)
            if isinstance(doc.get("aliases"), dict):
                self.aliases.update({str(k): str(v) for k, v in doc["aliases"].items()})

    def is_insecure(self, host: str) -> bool:
        return host in self.insecure

    def candidates(self, text: str) -> list[Reference]:
        bare = text[len("docker://"):] if text.startswith("docker://") else text
        name = bare.split("@")[0]
        if ":" in name.rsplit("/", 1)[-1]:
            name = name.rsplit(":", 1)[0]
        first, _, rest = name.partition("/")
        if not (rest and _looks_like_host(first)) and name in self.aliases:
            return parse(self.aliases[name] + bare[len(name):])
        return parse(text, search=self.search or None)
