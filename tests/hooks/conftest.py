"""Fixtures for the end-to-end hook tests: a recording hook and a shared host dir mounted in containers.

The containers come from the shared `rt` (private --root under /run/pyruntime-test-*, every container
deleted at the end) and `make_bundle` fixtures of tests/conftest.py.
"""
from __future__ import annotations

import json
import os
import sys
import time

import pytest

RECORDER = r'''#!{python}
"""Test hook: records what it sees (state on stdin, argv, env, namespaces, the init's cmdline)."""
import json, os, sys
kind = sys.argv[1]
logdir = os.environ["HOOKLOG"]
raw = sys.stdin.read()
rec = {{"kind": kind, "raw": raw, "argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd(),
       "mntns": os.readlink("/proc/self/ns/mnt"), "netns": os.readlink("/proc/self/ns/net"),
       "mountinfo": open("/proc/self/mountinfo").read()}}
state = json.loads(raw)
pid = state.get("pid") or 0
if pid:
    try:
        rec["ctr_mntns"] = os.readlink(f"/proc/{{pid}}/ns/mnt")
        rec["ctr_netns"] = os.readlink(f"/proc/{{pid}}/ns/net")
        rec["cmdline"] = open(f"/proc/{{pid}}/cmdline").read().split("\0")
    except OSError as e:
        rec["pid_error"] = str(e)
with open(os.path.join(logdir, kind + ".json"), "w") as f:
    json.dump(rec, f)
with open(os.path.join(logdir, "seq"), "a") as f:
    f.write(kind + "\n")
if os.environ.get("FAIL_" + kind):
    sys.stderr.write("boom-" + kind + "\n")
    sys.exit(7)
'''


class HookLog:
    """The host dir hooks write into (also bind-mounted at /hooklog in the container)."""

    def __init__(self, path: str, recorder: str) -> None:
        self.path = path
        self.recorder = recorder

    def hook(self, kind: str, *, fail: bool = False, label: str | None = None, **extra) -> dict:
        env = [f"HOOKLOG={self.path}"] + ([f"FAIL_{label or kind}=1"] if fail else [])
        return {"path": self.recorder, "args": ["recorder", label or kind], "env": env, **extra}

    def seq(self) -> list[str]:
        try:
            with open(os.path.join(self.path, "seq")) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def rec(self, kind: str) -> dict:
        with open(os.path.join(self.path, kind + ".json")) as f:
            rec = json.load(f)
        rec["state"] = json.loads(rec["raw"]) if rec.get("raw") else None
        return rec

    def wait_for(self, kind: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while kind not in self.seq():
            if time.monotonic() > deadline:
                raise AssertionError(f"{kind} never ran; seq={self.seq()}")
            time.sleep(0.02)


@pytest.fixture
def hooklog(tmp_path):
    d = tmp_path / "hooklog"
    d.mkdir()
    d.chmod(0o777)
    rec = tmp_path / "recorder"
    rec.write_text(RECORDER.format(python=sys.executable))
    rec.chmod(0o755)
    return HookLog(str(d), str(rec))


def bind_hooklog(cfg: dict, hooklog: HookLog) -> None:
    cfg["mounts"].append({"destination": "/hooklog", "type": "bind", "source": hooklog.path,
                          "options": ["rbind", "rw"]})


def pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] in "ZX"
    except FileNotFoundError:
        return True


def assert_nothing_left(rt, cid: str, pids: list[int], bundle: str | None = None) -> None:
    """The container is gone: no state dir, no process, no mount naming its dir, no cgroup."""
    if bundle:
        with open(os.path.join(bundle, "config.json")) as f:
            cg = json.load(f)["linux"].get("cgroupsPath", "").strip("/")
        if cg:
            import glob
            assert glob.glob(f"/sys/fs/cgroup/*/{cg}") + glob.glob(f"/sys/fs/cgroup/{cg}") == []
    assert not os.path.exists(os.path.join(rt.root, cid)), os.listdir(os.path.join(rt.root, cid))
    for pid in pids:
        for _ in range(100):
            if pid_gone(pid):
                break
            time.sleep(0.02)
        assert pid_gone(pid), f"process {pid} left behind"
    with open("/proc/self/mountinfo") as f:
        assert not [m for m in f if os.path.join(rt.root, cid) in m]
    r = rt("state", cid, check=False)
    assert r.returncode != 0 and b"does not exist" in r.stderr
