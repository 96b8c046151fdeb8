"""pyruntime vs runc (and crun) with the configs podman and containerd really send, in one interleaved run.

Not a test: it asserts nothing and only prints (a Markdown table for the README, and a JSON file with
every sample when BENCH_JSON is set).  Every runtime runs the same adapted client config on the same
busybox rootfs (see client_configs.py); the order of the runtimes rotates each iteration (A B C, B C A,
...) so drift in the machine's load hits them alike; figures are medians.

Measured per client config:
- `run` of /bin/true (the runtime's own run: create, start, wait, delete);
- create + start + wait + delete, and each of create, start, delete alone from the same iterations;
- `exec --process P --detach --pid-file F` of /bin/true into a running container, until it exited
  (what conmon and the containerd shim do);
- `state` and `kill <ID> 18` of a running container, `--version`, against the bare start of the same
  interpreter (`python -I -S -c pass`): what the runtime adds to its interpreter;
- the floor of create + start + wait + delete for a runtime whose every call is a CPython process: three
  bare starts of that interpreter in a row (create, start, delete; wait is no process), in the same
  iterations, against runc's create + start + wait + delete;
- 100 `run`s in a row, and 8-way parallel create/start/wait/delete of 200 containers: wall and CPU
  (user+sys of the runtime processes and what they waited for);
- peak RSS of the runtime process for `run`, `exec` and `state` (through GNU time, see peak_rss).

crun 1.8.1 (if installed) refuses this hybrid host while the cgroup2 mount is visible, so it runs in a
private mount namespace without it: each call goes through `nsenter -m -t <holder>` (one extra exec).

Environment: BENCH_N (iterations, default 15), BENCH_BULK (containers in the bulk runs, default 100 and
200), BENCH_BULK_ROUNDS (rounds of the bulk rows, default 2; the 2-core VM needs 4+ for a
ratio within a few hundredths), BENCH_CLIENTS (default "podman containerd"), BENCH_RUNTIMES (default "pyruntime runc crun"),
BENCH_NOCACHE=1 adds pyruntime with PYRUNTIME_SECCOMP_CACHE=0, BENCH_JSON=file, PYRUNTIME_BIN (the launcher
to measure, default the checkout's bin/pyruntime; its shebang's interpreter is the "bare" figure), BENCH_ONLY
(a subset of the measure groups "run csd exec small rss bulk", default all: e.g. BENCH_ONLY="exec bulk").
"""
from __future__ import annotations

import ctypes
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import client_configs  # noqa: E402

N = int(os.environ.get("BENCH_N", "15"))
BULK = int(os.environ.get("BENCH_BULK", "100"))
PAR_TOTAL = int(os.environ.get("BENCH_PAR", str(2 * BULK)))
BULK_ROUNDS = int(os.environ.get("BENCH_BULK_ROUNDS", "2"))   # each runtime once per round, order reversed every other round
PAR_WAYS = 8
GROUPS = ("run", "csd", "exec", "small", "rss", "bulk")
ONLY = set(os.environ.get("BENCH_ONLY", " ".join(GROUPS)).split())
if ONLY - set(GROUPS):
    sys.exit(f"BENCH_ONLY: unknown group(s) {' '.join(sorted(ONLY - set(GROUPS)))} (known: {' '.join(GROUPS)})")
ROOTFS = os.path.join(ROOT, "bundles", "busybox", "rootfs")
# the checkout's launcher (the .venv's interpreter), or another one, e.g. an installed copy (Debian's python3)
LAUNCHER = os.environ.get("PYRUNTIME_BIN") or os.path.join(ROOT, "bin", "pyruntime")
PR_SET_CHILD_SUBREAPER = 36
SIGCONT = 18
DEVNULL = os.open(os.devnull, os.O_RDWR)


# --------------------------------------------------------------------------------------- spawning
class Result:
    __slots__ = ("wall", "cpu", "rss", "status")

    def __init__(self, wall: float, cpu: float, rss: int, status: int) -> None:
        self.wall, self.cpu, self.rss, self.status = wall, cpu, rss, status


def call(argv: list[str], env: dict | None = None, check: bool = True) -> Result:
    """One runtime process: wall time, CPU (its own + what it waited for), peak RSS (KiB)."""
    t = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env if env is not None else os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, DEVNULL, 0), (os.POSIX_SPAWN_DUP2, DEVNULL, 1)])
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t
    if check and status != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit status {status}")
    return Result(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, status)


def peak_rss(argv: list[str], env: dict | None) -> int:
    """Peak RSS (KiB) of one runtime process, through GNU time: it forks from a small process.  (wait4's
    ru_maxrss of a child we spawned would include our own high-water mark: exec keeps the maximum of
    the memory image it replaces, and posix_spawn's child runs on ours until exec.)"""
    fd, out = tempfile.mkstemp(prefix="pyrt-bench-rss-")
    os.close(fd)
    try:
        call(["/usr/bin/time", "-f", "%M", "-o", out] + argv, env)
        with open(out) as f:
            return int(f.read().split()[-1])
    finally:
        os.unlink(out)


def reap(pid: int) -> Result:
    """Wait for a container process that was reparented to us (we are a child subreaper)."""
    _, status, ru = os.wait4(pid, 0)
    return Result(0.0, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, status)


def read_pid(path: str) -> int:
    with open(path) as f:
        return int(f.read().strip())


# --------------------------------------------------------------------------------------- runtimes
class Runtime:
    def __init__(self, name: str, argv: list[str], root: str, env: dict | None = None) -> None:
        self.name, self.root, self.env = name, root, env
        self.argv = argv + ["--root", root]

    def __call__(self, *args: str, check: bool = True) -> Result:
        return call(self.argv + list(args), self.env, check)


def interpreter() -> list[str]:
    with open(LAUNCHER) as f:
        return f.readline()[2:].split()


class CrunHolder:
    """A process in a private mount namespace where the cgroup2 mount is gone (crun refuses hybrid hosts)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                      "umount /sys/fs/cgroup/unified && echo ready && exec sleep 1000000"],
                                     stdout=subprocess.PIPE)
        if self.proc.stdout.readline().strip() != b"ready":
            self.proc.kill()
            raise RuntimeError("cannot hide the cgroup2 mount for crun")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def runtimes(tmp: str) -> tuple[list[Runtime], CrunHolder | None]:
    want = os.environ.get("BENCH_RUNTIMES", "pyruntime runc crun").split()
    out, holder = [], None
    for name in want:
        if name == "pyruntime":
            out.append(Runtime("pyruntime", [LAUNCHER], os.path.join(tmp, "root-pyruntime")))
            if os.environ.get("BENCH_NOCACHE") == "1":
                out.append(Runtime("pyruntime-nocache", [LAUNCHER], os.path.join(tmp, "root-nocache"),
                                   dict(os.environ, PYRUNTIME_SECCOMP_CACHE="0")))
        elif name == "runc" and shutil.which("runc"):
            out.append(Runtime("runc", [shutil.which("runc")], os.path.join(tmp, "root-runc")))
        elif name == "crun" and shutil.which("crun") and shutil.which("nsenter"):
            try:
                holder = CrunHolder()
            except (OSError, RuntimeError) as e:
                print(f"crun: skipped ({e})", file=sys.stderr)
                continue
            out.append(Runtime("crun", [shutil.which("nsenter"), "-m", "-t", str(holder.proc.pid),
                                        shutil.which("crun")], os.path.join(tmp, "root-crun")))
    return out, holder


# --------------------------------------------------------------------------------------- bundles
class Bundles:
    """One bundle per container (clients give every container its own cgroup)."""

    def __init__(self, tmp: str, client: str) -> None:
        self.tmp, self.client, self.n = tmp, client, 0
        self.cg_parent = f"/pyrt-bench-{os.getpid()}"
        self.exec_proc = os.path.join(tmp, f"{client}-exec.json")
        with open(self.exec_proc, "w") as f:
            json.dump(client_configs.exec_process(client, ["/bin/true"]), f)

    def make(self, rt: Runtime, args: list[str]) -> tuple[str, str]:
        self.n += 1
        cid = f"{self.client[:3]}-{rt.name}-{self.n}"
        cfg = client_configs.create_config(self.client, ROOTFS, f"{self.cg_parent}/{cid}", args)
        path = client_configs.write_bundle(os.path.join(self.tmp, "bundles", cid), cfg)
        return cid, path


# --------------------------------------------------------------------------------------- measures
def rotate(lst: list, i: int) -> list:
    k = i % len(lst)
    return lst[k:] + lst[:k]


def c_s_w_d(rt: Runtime, bundles: Bundles, tmp: str) -> dict[str, Result]:
    cid, b = bundles.make(rt, ["/bin/true"])
    pidfile = os.path.join(tmp, f"{cid}.pid")
    c = rt("create", "--bundle", b, "--pid-file", pidfile, cid)
    s = rt("start", cid)
    t = time.perf_counter()
    w = reap(read_pid(pidfile))
    w.wall = time.perf_counter() - t
    d = rt("delete", cid)
    total = Result(c.wall + s.wall + w.wall + d.wall, c.cpu + s.cpu + w.cpu + d.cpu, max(c.rss, s.rss, d.rss), 0)
    return {"create+start+wait+delete": total, "create": c, "start": s, "delete": d}


def exec_true(rt: Runtime, cid: str, bundles: Bundles, tmp: str) -> Result:
    pidfile = os.path.join(tmp, f"{cid}.exec.pid")
    r = rt("exec", "--process", bundles.exec_proc, "--detach", "--pid-file", pidfile, cid)
    t = time.perf_counter()
    w = reap(read_pid(pidfile))
    r.wall += time.perf_counter() - t
    r.cpu += w.cpu
    return r


def bulk_run(rt: Runtime, bundles: Bundles, n: int) -> Result:
    made = [bundles.make(rt, ["/bin/true"]) for _ in range(n)]
    t = time.perf_counter()
    cpu = rss = 0
    for cid, b in made:
        r = rt("run", "--bundle", b, cid)
        cpu += r.cpu
        rss = max(rss, r.rss)
    return Result(time.perf_counter() - t, cpu, rss, 0)


def parallel_csd(rt: Runtime, bundles: Bundles, tmp: str, n: int, ways: int) -> Result:
    made = [bundles.make(rt, ["/bin/true"]) for _ in range(n)]
    lock = threading.Lock()
    acc = {"cpu": 0.0, "rss": 0, "errors": []}

    def worker(items: list) -> None:
        for cid, b in items:
            try:
                pidfile = os.path.join(tmp, f"{cid}.pid")
                c = rt("create", "--bundle", b, "--pid-file", pidfile, cid)
                s = rt("start", cid)
                w = reap(read_pid(pidfile))
                d = rt("delete", cid)
                with lock:
                    acc["cpu"] += c.cpu + s.cpu + w.cpu + d.cpu
                    acc["rss"] = max(acc["rss"], c.rss, s.rss, d.rss)
            except Exception as e:     # report, keep going: the others' figures still mean something
                with lock:
                    acc["errors"].append(f"{cid}: {e}")
    t = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(made[i::ways],)) for i in range(ways)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    if acc["errors"]:
        print(f"{rt.name}: {len(acc['errors'])} parallel failures, first: {acc['errors'][0]}", file=sys.stderr)
    return Result(wall, acc["cpu"], acc["rss"], len(acc["errors"]))


def measure_client(client: str, rts: list[Runtime], tmp: str, bare: list[str]) -> dict:
    bundles = Bundles(tmp, client)
    samples: dict[str, dict[str, list[Result]]] = {rt.name: {} for rt in rts}
    bare_samples: list[Result] = []
    floor_samples: list[Result] = []

    def add(rt: Runtime, key: str, r: Result) -> None:
        samples[rt.name].setdefault(key, []).append(r)

    # a long-running container per runtime for exec/state/kill
    long = {}
    for rt in rts:
        cid, b = bundles.make(rt, ["sleep", "100000"])
        pidfile = os.path.join(tmp, f"{cid}.pid")
        rt("create", "--bundle", b, "--pid-file", pidfile, cid)
        rt("start", cid)
        long[rt.name] = (cid, read_pid(pidfile))
    try:
        for rt in rts:                        # warm-up: page cache, first cgroup creation, seccomp cache
            cid, b = bundles.make(rt, ["/bin/true"])
            rt("run", "--bundle", b, cid)
        for i in range(N):                    # the bare interpreter every time: the report needs it
            bare_samples.append(call(bare))
            if "csd" in ONLY:                 # the floor: create, start, delete, each a bare interpreter
                three = [call(bare) for _ in range(3)]
                floor_samples.append(Result(sum(r.wall for r in three), sum(r.cpu for r in three),
                                            max(r.rss for r in three), 0))
            for rt in rotate(rts, i):
                if "run" in ONLY:
                    cid, b = bundles.make(rt, ["/bin/true"])
                    add(rt, "run /bin/true", rt("run", "--bundle", b, cid))
                if "csd" in ONLY:
                    for k, r in c_s_w_d(rt, bundles, tmp).items():
                        add(rt, k, r)
                if "exec" in ONLY:
                    add(rt, "exec /bin/true", exec_true(rt, long[rt.name][0], bundles, tmp))
                if "small" in ONLY:
                    add(rt, "state", rt("state", long[rt.name][0]))
                    add(rt, "kill", rt("kill", long[rt.name][0], str(SIGCONT)))
                    add(rt, "--version", call(rt.argv[:-2] + ["--version"], rt.env))
        rss: dict[str, dict[str, list[int]]] = {"run /bin/true": {}, "exec /bin/true": {}, "state": {}}
        if "rss" in ONLY and os.access("/usr/bin/time", os.X_OK):
            for i in range(5):
                for rt in rotate(rts, i):
                    cid, b = bundles.make(rt, ["/bin/true"])
                    rss["run /bin/true"].setdefault(rt.name, []).append(
                        peak_rss(rt.argv + ["run", "--bundle", b, cid], rt.env))
                    pidfile = os.path.join(tmp, f"rss-{cid}.pid")
                    rss["exec /bin/true"].setdefault(rt.name, []).append(
                        peak_rss(rt.argv + ["exec", "--process", bundles.exec_proc, "--detach", "--pid-file",
                                            pidfile, long[rt.name][0]], rt.env))
                    reap(read_pid(pidfile))
                    rss["state"].setdefault(rt.name, []).append(peak_rss(rt.argv + ["state", long[rt.name][0]],
                                                                         rt.env))
        for rnd in range(BULK_ROUNDS if "bulk" in ONLY else 0):     # bulk: A B C, C B A, A B C...
            for rt in (rts if rnd % 2 == 0 else rts[::-1]):
                add(rt, f"{BULK} runs in a row", bulk_run(rt, bundles, BULK))
                add(rt, f"{PAR_WAYS}-way parallel c/s/w/d of {PAR_TOTAL}",
                    parallel_csd(rt, bundles, tmp, PAR_TOTAL, PAR_WAYS))
    finally:
        for rt in rts:
            cid, pid = long[rt.name]
            rt("delete", "--force", cid, check=False)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
    return {"samples": samples, "bare": bare_samples, "floor": floor_samples,
            "rss": {k: v for k, v in rss.items() if v}}


# --------------------------------------------------------------------------------------- report
def med(rs: list[Result], attr: str = "wall") -> float:
    return statistics.median(getattr(r, attr) for r in rs)


def fmt(v: float) -> str:
    return f"{v:.2f} s" if v >= 1 else f"{v * 1000:.1f} ms"


def report(client: str, data: dict, rts: list[Runtime]) -> str:
    """Cells are "wall (CPU)": CPU is user+sys of the runtime process and what it waited for; it moves
    much less than wall time when the machine is busy."""
    s, bare = data["samples"], med(data["bare"])
    names = [rt.name for rt in rts]
    ctl = "runc" if "runc" in names else names[-1]
    lines = [f"\n### {client} config: medians of {N}, wall (CPU); bare `python -I -S -c pass` "
             f"{bare * 1000:.1f} ms ({med(data['bare'], 'cpu') * 1000:.1f} ms)",
             "| measure | " + " | ".join(names) + " | " + " | ".join(f"{n}/{ctl}" for n in names if n != ctl) + " |",
             "|---" * (1 + len(names) + len(names) - 1) + "|"]
    for key in s[names[0]]:
        wall = {n: med(s[n][key]) for n in names}
        cpu = {n: med(s[n][key], "cpu") for n in names}
        row = [key] + [f"{fmt(wall[n])} ({fmt(cpu[n])})" for n in names]
        row += [f"{wall[n] / wall[ctl]:.2f} ({cpu[n] / cpu[ctl]:.2f})" for n in names if n != ctl]
        lines.append("| " + " | ".join(row) + " |")
    for key in ("state", "kill", "start", "delete", "--version"):   # pyruntime's own interpreter only
        if key in s[names[0]]:
            bcpu = med(data["bare"], "cpu")
            lines.append("| " + " | ".join([f"{key} minus bare interpreter"]
                                           + [f"{(med(s[n][key]) - bare) * 1000:+.1f} ms "
                                              f"({(med(s[n][key], 'cpu') - bcpu) * 1000:+.1f} ms)"
                                              if n.startswith("pyruntime") else "" for n in names]
                                           + ["" for n in names if n != ctl]) + " |")
    csd = "create+start+wait+delete"
    if data["floor"] and csd in s[ctl]:
        # what no Python runtime can go under: its three lifecycle calls' interpreter starts alone
        fw, fc = med(data["floor"]), med(data["floor"], "cpu")
        py = [n for n in names if n.startswith("pyruntime")]
        lines.append("| " + " | ".join([f"floor of {csd}: 3 bare interpreter starts"]
                                       + [f"{fmt(fw)} ({fmt(fc)})" if n in py else "" for n in names]
                                       + [f"{fw / med(s[ctl][csd]):.2f} ({fc / med(s[ctl][csd], 'cpu'):.2f})"
                                          if n in py else "" for n in names if n != ctl]) + " |")
    for key, rss in data["rss"].items():
        m = {n: statistics.median(rss[n]) for n in names}
        lines.append("| " + " | ".join([f"peak RSS, {key}"] + [f"{m[n] / 1024:.1f} MiB" for n in names]
                                       + [f"{m[n] / m[ctl]:.2f}" for n in names if n != ctl]) + " |")
    return "\n".join(lines)


def cleanup_cgroups() -> None:
    parent = f"pyrt-bench-{os.getpid()}"
    for top in os.listdir("/sys/fs/cgroup"):
        d = os.path.join("/sys/fs/cgroup", top, parent)
        if not os.path.isdir(d):
            continue
        for sub, _, _ in sorted(os.walk(d), key=lambda t: -len(t[0])):
            try:
                os.rmdir(sub)
            except OSError:
                pass


def main() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:      # container inits are reparented to us
        print("cannot become a child subreaper", file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix="pyrt-bench-")
    rts, holder = runtimes(tmp)
    clients = os.environ.get("BENCH_CLIENTS", " ".join(client_configs.CLIENTS)).split()
    bare = [interpreter()[0], "-I", "-S", "-c", "pass"]     # the launcher's own interpreter, bare
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
           "command": "make bench (python benchmarks/bench_runtime.py)", "N": N, "clients": {}}
    text = [f"{out['date']}, {out['machine']}, `{out['command']}`, N={N}, runtimes: "
            + ", ".join(f"{rt.name} ({version(rt)})" for rt in rts)]
    try:
        for client in clients:
            data = measure_client(client, rts, tmp, bare)
            text.append(report(client, data, rts))
            out["clients"][client] = {n: {k: [(r.wall, r.cpu, r.rss) for r in v] for k, v in d.items()}
                                      for n, d in data["samples"].items()}
            out["clients"][client]["bare"] = [r.wall for r in data["bare"]]
            out["clients"][client]["floor"] = [(r.wall, r.cpu) for r in data["floor"]]
            print(text[-1], flush=True)
    finally:
        if holder is not None:
            holder.close()
        shutil.rmtree(tmp, ignore_errors=True)
        cleanup_cgroups()
    print("\n" + "\n".join(text))
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as f:
            json.dump(out, f)
    return 0


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} CPU {cpu}, Linux {platform.release()}"


def version(rt: Runtime) -> str:
    try:
        cp = subprocess.run(rt.argv[:-2] + ["--version"], capture_output=True, text=True, env=rt.env, timeout=10)
        return cp.stdout.splitlines()[0].split("version", 1)[-1].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
