"""The compiled-seccomp cache (pyruntime/seccomp_cache.py): a container gets byte for byte the filter it
would get without the cache, a damaged or foreign entry is never used (it is rebuilt), the cache stays
bounded, and a cache directory others could write is not trusted.

The container-level check reads the filter the kernel really holds for the container's process
(ptrace PTRACE_SECCOMP_GET_FILTER, as CRIU does), not what the runtime meant to install.
"""
from __future__ import annotations

import ctypes
import os
import sys

import pytest

from pyruntime import seccomp as sc
from pyruntime import seccomp_cache as cache

from .helpers import REPO, both

sys.path.insert(0, str(REPO / "benchmarks"))
import client_configs  # noqa: E402

PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SECCOMP_GET_FILTER = 16, 17, 0x420C


def podman_profile() -> dict:
    return client_configs.create_config("podman", "/", "x", ["true"])["linux"]["seccomp"]


def entries(root: str) -> list[str]:
    d = os.path.join(root, cache.DIRNAME)
    return sorted(n for n in os.listdir(d) if n.endswith(".bpf")) if os.path.isdir(d) else []


def kernel_filter(pid: int) -> bytes:
    """The most recent seccomp filter of ``pid`` as the kernel holds it (struct sock_filter array)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
        raise OSError(ctypes.get_errno(), "PTRACE_ATTACH")
    try:
        os.waitpid(pid, 0x40000000)   # __WALL
        n = libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 0, None)
        if n <= 0:
            raise OSError(ctypes.get_errno(), "PTRACE_SECCOMP_GET_FILTER")
        buf = ctypes.create_string_buffer(n * 8)
        if libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 0, buf) != n:
            raise OSError(ctypes.get_errno(), "PTRACE_SECCOMP_GET_FILTER")
        return buf.raw
    finally:
        libc.ptrace(PTRACE_DETACH, pid, None, None)


# --- the cache module on its own -------------------------------------------------------------------

def test_cached_program_is_identical(tmp_path):
    profile = podman_profile()
    fresh = sc.compile(profile, "linux.seccomp")
    miss = cache.compile(profile, "linux.seccomp", str(tmp_path))
    assert len(entries(str(tmp_path))) == 1
    hit = cache.compile(profile, "linux.seccomp", str(tmp_path))
    assert fresh.prog == miss.prog == hit.prog and fresh.n > 100
    assert fresh == miss == hit           # flags, notify, skipped names, dropped flags too


@pytest.mark.parametrize("damage", ["flip-prog", "flip-meta", "truncate", "empty", "garbage", "other-profile"])
def test_damaged_entry_is_rebuilt(tmp_path, damage):
    profile = podman_profile()
    fresh = sc.compile(profile, "linux.seccomp")
    cache.compile(profile, "linux.seccomp", str(tmp_path))
    [name] = entries(str(tmp_path))
    path = os.path.join(str(tmp_path), cache.DIRNAME, name)
    data = bytearray(open(path, "rb").read())
    if damage == "flip-prog":
        data[-3] ^= 0x40                  # one bit of the BPF program (e.g. an ALLOW turned into something else)
    elif damage == "flip-meta":
        data[data.index(b'"flags": ') + 9] ^= 0x01
    elif damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "empty":
        data = bytearray()
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    else:                                 # a whole, valid entry of another profile under this key
        other = dict(profile, defaultErrnoRet=1)   # EPERM instead of ENOSYS: a different program
        comp = sc.compile(other, "linux.seccomp")
        key = name[:-len(".bpf")]
        data = bytearray(cache.encode(key, cache.json.dumps(other).encode(), comp))
    with open(path, "wb") as f:
        f.write(data)
    got = cache.compile(profile, "linux.seccomp", str(tmp_path))
    assert got == fresh
    # ... and the entry was rewritten whole: the next call is a valid hit
    key = name[:-len(".bpf")]
    assert cache.decode(open(path, "rb").read(), key, cache.json.dumps(profile).encode()) == fresh


def test_cache_is_bounded_and_keeps_recent(tmp_path):
    root = str(tmp_path)
    profiles = [{"defaultAction": "SCMP_ACT_ALLOW",
                 "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": i + 1}]}
                for i in range(cache.MAX_ENTRIES + 5)]
    for i, p in enumerate(profiles):
        cache.compile(p, "linux.seccomp", root)
        # mtimes order the eviction; make them distinct even on coarse-grained file systems
        for n in entries(root):
            st = os.stat(os.path.join(root, cache.DIRNAME, n))
            if n.startswith(cache.key_of(cache.json.dumps(p).encode())):
                os.utime(os.path.join(root, cache.DIRNAME, n), ns=(st.st_atime_ns, 10**18 + i * 10**9))
    names = entries(root)
    assert len(names) == cache.MAX_ENTRIES
    last = cache.key_of(cache.json.dumps(profiles[-1]).encode()) + ".bpf"
    first = cache.key_of(cache.json.dumps(profiles[0]).encode()) + ".bpf"
    assert last in names and first not in names
    assert not [n for n in os.listdir(os.path.join(root, cache.DIRNAME)) if n.startswith(".tmp.")]


def test_cache_dir_writable_by_others_is_not_used(tmp_path):
    d = tmp_path / cache.DIRNAME
    d.mkdir()
    d.chmod(0o777)
    profile = podman_profile()
    assert cache.compile(profile, "linux.seccomp", str(tmp_path)) == sc.compile(profile, "linux.seccomp")
    assert entries(str(tmp_path)) == []


def test_bad_profile_is_an_error_not_an_entry(tmp_path):
    bad = {"defaultAction": "SCMP_ACT_NOPE"}
    with pytest.raises(sc.ConfigError, match="linux.seccomp.defaultAction"):
        cache.compile(bad, "linux.seccomp", str(tmp_path))
    assert entries(str(tmp_path)) == []


# --- in real containers ----------------------------------------------------------------------------

def _filter_of_container(runtime, bundle) -> bytes:
    cid, res = runtime.create(bundle)
    assert res.returncode == 0, both(res)
    try:
        assert runtime("start", cid).returncode == 0
        return kernel_filter(runtime.state(cid)["pid"])
    finally:
        runtime("delete", "--force", cid)


def test_container_filter_identical_with_and_without_cache(runtime, bundle, monkeypatch):
    """podman's profile: compiled fresh (cache off), compiled into the cache (miss), from the cache (hit),
    and from a rebuilt entry after corruption: the kernel holds the same bytes every time."""
    bundle.linux["seccomp"] = podman_profile()
    bundle.process["args"] = ["sleep", "100"]
    monkeypatch.setenv("PYRUNTIME_SECCOMP_CACHE", "0")
    without = _filter_of_container(runtime, bundle)
    assert entries(runtime.root) == []
    monkeypatch.delenv("PYRUNTIME_SECCOMP_CACHE")
    miss = _filter_of_container(runtime, bundle)
    [name] = entries(runtime.root)
    hit = _filter_of_container(runtime, bundle)
    path = os.path.join(runtime.root, cache.DIRNAME, name)
    data = bytearray(open(path, "rb").read())
    data[-5] ^= 0x01
    open(path, "wb").write(data)
    rebuilt = _filter_of_container(runtime, bundle)
    assert without == sc.compile(bundle.linux["seccomp"], "linux.seccomp").prog
    assert without == miss == hit == rebuilt
    assert entries(runtime.root) == [name]
