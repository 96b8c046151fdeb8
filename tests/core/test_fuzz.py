"""Config fuzzing (issue 10 item 14): seeded mutations of a valid config.json given to `create`.

Every case must end in exit 0 (then it is deleted) or exit 1 with one line that names the JSON path (or,
past validation, the step and file) and no traceback; nothing may be left behind (state dir, cgroup,
processes, mounts).  Mutations: wrong types, huge numbers, lone surrogates, 10k-deep nesting, long
strings, duplicate keys, NUL bytes, removed and unknown keys.  runc is the control on a sample: it must
never crash either, and a config it accepts must not make pyruntime print a traceback.

Seeds are fixed so a failure is reproducible: PYRT_FUZZ_SEED and PYRT_FUZZ_CASES override them.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyrt_testenv import CG_PARENT, LAUNCHER, RUNC, ROOTFS, cgroup_dirs, runc_control
SEEDS = [int(s) for s in os.environ.get("PYRT_FUZZ_SEED", "20,34,27").split(",")]
CASES = int(os.environ.get("PYRT_FUZZ_CASES", "110"))
PY_ERRORS = ("Traceback", "TypeError", "ValueError", "KeyError", "AttributeError", "RecursionError",
             "UnicodeEncodeError", "UnicodeDecodeError", "IndexError", "OverflowError", "internal error")

WRONG = [None, True, False, 0, -1, 1.5, "", "x", [], {}, [1, "a"], {"a": {"b": None}}, [[]], "\u00e9"]
HUGE = [2**31, 2**32, 2**63, 2**64, 2**64 + 1, -2**63 - 1, 10**30, 10**400, 1e308, -1e308, 1e-320]


def base_config(rel_cg: str, rootfs: str = ROOTFS) -> dict:
    from pyruntime.defaults import default_config
    c = default_config(terminal=False, args=["true"])
    c["root"]["path"] = rootfs
    c["linux"]["cgroupsPath"] = rel_cg
    c["process"]["rlimits"].append({"type": "RLIMIT_NPROC", "soft": 100, "hard": 100})
    c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "0"}
    c["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}]
    c["linux"]["rootfsPropagation"] = "rprivate"
    c["annotations"] = {"org.example": "v"}
    c["linux"]["resources"].update({"memory": {"limit": 64 << 20}, "pids": {"limit": 64},
                                    "cpu": {"shares": 512, "quota": 50000, "period": 100000}})
    c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                             "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                                           "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}
    c["hooks"] = {"createRuntime": [{"path": "/bin/true", "args": ["true"], "timeout": 5}]}
    c["process"]["oomScoreAdj"] = 10
    c["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 4}
    c["process"]["scheduler"] = {"policy": "SCHED_OTHER", "nice": 1}
    c["linux"]["personality"] = {"domain": "LINUX"}
    c["process"]["user"]["additionalGids"] = [5]
    c["process"]["user"]["umask"] = 18
    return c


def nodes(obj, path=""):
    """Every (json path, container, key) below obj (the root itself excluded)."""
    stack = [(obj, path)]
    while stack:
        o, p = stack.pop()
        items = o.items() if isinstance(o, dict) else enumerate(o) if isinstance(o, list) else ()
        for k, v in items:
            q = f"{p}.{k}" if isinstance(k, str) else f"{p}[{k}]"
            q = q.lstrip(".")
            yield q, o, k
            if isinstance(v, (dict, list)):
                stack.append((v, q))


def mutate(cfg: dict, rng: random.Random) -> tuple[str, str, str]:
    """Mutate cfg in place; return (json path, kind, JSON text to write)."""
    path, parent, key = rng.choice(list(nodes(cfg)))
    kind = rng.choice(["wrong", "huge", "surrogate", "deep", "long", "dup", "nul", "delete", "unknown"])
    repl: dict[str, str] = {}
    old = parent[key]
    if kind == "wrong":
        parent[key] = rng.choice(WRONG)
    elif kind == "huge":
        parent[key] = rng.choice(HUGE)
    elif kind == "surrogate":
        parent[key] = (old if isinstance(old, str) else "s") + rng.choice(["\ud800", "\udfff", "\udc80x"])
    elif kind == "nul":
        s = old if isinstance(old, str) and old else "/ab"
        i = rng.randrange(len(s) + 1)
        parent[key] = s[:i] + "\x00" + s[i:]
    elif kind == "long":
        parent[key] = rng.choice(["A", "/a", "é"]) * rng.choice([5000, 300000])
    elif kind == "deep":
        tok = f"@@deep{rng.randrange(1 << 30)}@@"
        parent[key] = tok
        open_, close = rng.choice([("[", "]"), ('{"a":', "}")])
        depth = rng.choice([1000, 10000])
        repl[json.dumps(tok)] = open_ * depth + "1" + close * depth
    elif kind == "dup":
        if isinstance(parent, dict):
            tok = f"@@dup{rng.randrange(1 << 30)}@@"
            parent[key] = tok
            bad = json.dumps(rng.choice(WRONG + HUGE))
            # the first occurrence is bogus, the last one (which JSON parsers keep) the original
            repl[json.dumps(tok)] = bad + ", " + json.dumps(key) + ": " + json.dumps(old)
        else:
            parent[key] = rng.choice(WRONG)
    elif kind == "delete":
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    else:   # unknown
        if isinstance(parent, dict):
            parent[rng.choice(["zzz", "x-y", "\u2603"])] = rng.choice(WRONG)
        else:
            parent[key] = {"unknown": rng.choice(WRONG)}
    text = json.dumps(cfg)
    for a, b in repl.items():
        text = text.replace(a, b, 1)
    return path, kind, text


def leftovers(root: str, cid: str, rel_cg: str) -> list[str]:
    out = []
    if os.path.lexists(os.path.join(root, cid)):
        out.append("state dir")
    for d in cgroup_dirs(rel_cg):
        out.append(f"cgroup {d}")
    for p in os.listdir("/proc"):      # an init (before its execve it carries the create's argv)
        if p.isdigit():
            try:
                argv = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
                stat = open(f"/proc/{p}/stat", "rb").read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if cid.encode() in argv and root.encode() in argv and stat[0] not in (b"Z", b"X"):
                out.append(f"process {p}")
    return out


@pytest.fixture(scope="module")
def fuzz_rootfs(tmp_path_factory) -> str:
    """A private copy of the busybox rootfs: a mutated config may create mount points and device nodes
    in its rootfs (a /dev without its tmpfs gets real nodes), which must not land in the shared one."""
    d = tmp_path_factory.mktemp("fuzz") / "rootfs"
    shutil.copytree(ROOTFS, d, symlinks=True)
    return str(d)


def run_case(n: int, seed: int, workdir: str, root: str, rootfs: str = ROOTFS) -> tuple[str, str]:
    """('ok'|'refused'|failure text, detail)."""
    rng = random.Random(seed * 100003 + n)
    cid = f"fz{seed}-{n}"
    rel_cg = f"{CG_PARENT}/fuzz-{seed}-{n}-{uuid.uuid4().hex[:4]}"
    cfg = base_config(rel_cg, rootfs)
    path, kind, text = mutate(cfg, rng)
    b = os.path.join(workdir, cid)
    os.makedirs(b)
    with open(os.path.join(b, "config.json"), "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(text)
    log = os.path.join(b, "log.json")
    what = f"seed {seed} case {n}: {kind} at {path}"
    errf = os.path.join(b, "stderr")
    try:
        # files, not pipes: a created init inherits our stdio and would hold a pipe open
        with open(errf, "wb") as ef:
            cp = subprocess.run([LAUNCHER, "--root", root, "--log", log, "--log-format", "json", "create",
                                 "-b", b, cid], stdout=subprocess.DEVNULL, stderr=ef, timeout=30,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        subprocess.run([LAUNCHER, "--root", root, "delete", "--force", cid], capture_output=True, timeout=30)
        return f"{what}: create hung", ""
    err = open(errf, "rb").read().decode(errors="replace")
    if cp.returncode == 0:
        d = subprocess.run([LAUNCHER, "--root", root, "delete", "--force", cid], capture_output=True, timeout=30)
        if d.returncode != 0:
            return f"{what}: delete failed: {d.stderr.decode(errors='replace')}", ""
        left = leftovers(root, cid, rel_cg)
        return (f"{what}: left {left}" if left else "ok"), ""
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    if cp.returncode != 1:
        return f"{what}: exit {cp.returncode}: {err[-400:]}", ""
    if any(e in err for e in PY_ERRORS) or len(lines) != 1:
        return f"{what}: {err[-600:]}", ""
    try:
        last = json.loads(open(log).read().splitlines()[-1])
        if last.get("level") != "error" or last.get("msg") != lines[0]:
            return f"{what}: --log does not carry the error: {last}", ""
    except (OSError, ValueError, IndexError) as e:
        return f"{what}: --log unreadable: {e}", ""
    left = leftovers(root, cid, rel_cg)
    if left:
        return f"{what}: left {left} after: {lines[0]}", ""
    return "refused", f"{path} | {lines[0][:200]}"


@pytest.mark.parametrize("seed", SEEDS)
def test_fuzz_create(seed, tmp_path, rt, fuzz_rootfs):
    workdir = str(tmp_path)
    # every case runs, however long a loaded host takes (each call has its own timeout): the same
    # cases every time, and no throughput to assert
    with ThreadPoolExecutor(max_workers=2) as ex:
        futs = [ex.submit(run_case, n, seed, workdir, rt.root, fuzz_rootfs) for n in range(CASES)]
        results = [f.result() for f in futs]
    bad = [r for r, _ in results if r not in ("ok", "refused")]
    assert not bad, "\n".join(bad[:15])
    ran = len(results)
    refused = [d for r, d in results if r == "refused"]
    # validation errors name the field: most refusals are "config.json: <json path>: cause"
    named = [d for d in refused if "config.json: " in d.split(" | ", 1)[1]]
    assert len(named) >= len(refused) * 0.6, refused[:10]
    print(f"seed {seed}: {ran} cases, {len(refused)} refused, {ran - len(refused)} created+deleted")


@pytest.mark.skipif(RUNC is None, reason="runc (the control) is not installed")
def test_fuzz_runc_control(tmp_path, rt, fuzz_rootfs):
    """A sample of the same mutations given to runc: runc never crashes (exit 0 or 1), and when runc
    accepts a config pyruntime does too or refuses it with one clean line."""
    seed = SEEDS[0]
    disagreements = []
    with runc_control(str(tmp_path / "runc-root")) as runc:
        for n in range(0, 24):
            rng = random.Random(seed * 100003 + n)
            rel_cg = f"{CG_PARENT}/fuzzrc-{n}-{uuid.uuid4().hex[:4]}"
            cfg = base_config(rel_cg, fuzz_rootfs)
            path, kind, text = mutate(cfg, rng)
            b = tmp_path / f"r{n}"
            b.mkdir()
            (b / "config.json").write_text(text, encoding="utf-8", errors="surrogatepass")
            cid = f"rc{n}"
            r = runc("create", "-b", str(b), cid, check=False, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                     timeout=30)
            runc("delete", "--force", cid, check=False, timeout=30)
            for d in cgroup_dirs(rel_cg):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            assert r.returncode in (0, 1), (kind, path, r.returncode, r.stderr[-300:])
            (tmp_path / "py").mkdir(exist_ok=True)
            p = run_case(n, seed, str(tmp_path / "py"), rt.root, fuzz_rootfs)
            assert p[0] in ("ok", "refused"), p[0]
            if r.returncode == 0 and p[0] != "ok":
                disagreements.append(f"{kind} at {path}: runc accepts, pyruntime: {p[1]}")
    print("\n".join(disagreements) or "no disagreements")
