"""Image references as people write them, registries.conf, credentials lookup (no registry needed)."""
from __future__ import annotations

import base64
import json

import pytest

from pyruntime.image.errors import ImageError
from pyruntime.image.reference import RegistriesConf, parse
from pyruntime.image.registry import _parse_challenge, find_credentials


@pytest.mark.parametrize("text, want", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("docker://busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/alpine", "docker.io/library/alpine:latest"),
    ("user/app:v2", "docker.io/user/app:v2"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    ("registry.example.com/x/y@sha256:" + "a" * 64, "registry.example.com/x/y@sha256:" + "a" * 64),
    ("quay.io/x/y:t@sha256:" + "b" * 64, "quay.io/x/y:t@sha256:" + "b" * 64),
])
def test_parse(text, want):
    assert [str(r) for r in parse(text)] == [want]


@pytest.mark.parametrize("text", ["", "Upper/Case", "a//b", "x:bad tag", "x@sha256:short", "docker://"])
def test_parse_refuses(text):
    with pytest.raises(ImageError):
        parse(text)


def test_docker_hub_api_host():
    (r,) = parse("busybox")
    assert (r.registry, r.api_host, r.repository, r.reference) == \
        ("docker.io", "registry-1.docker.io", "library/busybox", "latest")


def test_registries_conf_search_aliases_insecure(tmp_path):
    conf = tmp_path / "registries.conf"
    conf.write_text('unqualified-search-registries = ["reg.one:5000", "docker.io"]\n'
                    '[[registry]]\nlocation = "reg.one:5000"\ninsecure = true\n'
                    '[aliases]\n"myapp" = "quay.io/team/myapp"\n')
    c = RegistriesConf(str(conf))
    assert [str(r) for r in c.candidates("tool:1")] == ["reg.one:5000/tool:1", "docker.io/library/tool:1"]
    assert [str(r) for r in c.candidates("myapp:2")] == ["quay.io/team/myapp:2"]
    assert [str(r) for r in c.candidates("other.io/tool")] == ["other.io/tool:latest"]
    assert c.is_insecure("reg.one:5000") and not c.is_insecure("docker.io")
    bad = tmp_path / "bad.conf"
    bad.write_text("unqualified-search-registries = [")
    with pytest.raises(ImageError, match="registries.conf"):
        RegistriesConf(str(bad))


def test_credentials_lookup(tmp_path):
    def auth(u, p):
        return {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()}
    f = tmp_path / "auth.json"
    f.write_text(json.dumps({"auths": {"reg:5000": auth("a", "1"), "reg:5000/team": auth("b", "2"),
                                       "https://index.docker.io/v1/": auth("c", "3")}}))
    assert find_credentials("reg:5000", "team/app", str(f))[:2] == ("b", "2")     # namespace first
    assert find_credentials("reg:5000", "other/app", str(f))[:2] == ("a", "1")
    assert find_credentials("docker.io", "library/busybox", str(f))[:2] == ("c", "3")
    assert find_credentials("elsewhere", "x", str(f)) is None
    f.write_text("{not json")
    with pytest.raises(ImageError) as e:
        find_credentials("reg:5000", "x", str(f))
    assert "not json" not in str(e.value)          # never echo the file's contents


def test_challenge_parsing():
    assert _parse_challenge('Bearer realm="https://auth.io/token",service="reg",scope="repository:a/b:pull"') == \
        ("bearer", {"realm": "https://auth.io/token", "service": "reg", "scope": "repository:a/b:pull"})
    assert _parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})
