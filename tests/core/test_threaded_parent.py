"""A runtime process with a thread alive at clone() (the CLI's cgroup warm-up thread; any Python program
using the API) must still create containers.  glibc's setgroups/setresuid/setresgid synchronise every
thread glibc believes exists; in the clone()d child that thread does not exist, so the container init
waited for it forever.  The core now makes those calls as raw syscalls.
"""
from __future__ import annotations

import subprocess
import sys
import uuid

from pyrt_testenv import ROOT

ROUNDS = 30
PROGRAM = r"""
import sys, threading, time
sys.path.insert(0, sys.argv[1])
from pyruntime import container, state
root, cid, bundle, rounds = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
stop = threading.Event()
def churn():                    # threads being born all the time: some clone() lands in a pthread_create
    while not stop.is_set():
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
threading.Thread(target=churn, daemon=True).start()
for i in range(rounds):
    c = f"{cid}-{i}"
    container.create(root, c, bundle)
    container.start(root, c)
    st = state.load(root, c)
    deadline = time.monotonic() + 20
    while state.alive(st) and time.monotonic() < deadline:
        time.sleep(0.005)
    print(state.status(root, st))
    container.delete(root, c, force=True)
stop.set()
"""

def test_create_from_a_threaded_process(make_bundle, rt):
    def user(cfg: dict) -> None:   # setgroups and a uid/gid change: the calls that used to hang
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [1000, 1001]}
    bundle = make_bundle(["/bin/true"], edit=user)
    cid = f"thr-{uuid.uuid4().hex[:8]}"
    try:
        cp = subprocess.run([sys.executable, "-c", PROGRAM, ROOT, rt.root, cid, bundle, str(ROUNDS)],
                            capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise AssertionError("create/start from a threaded process hung (container init stuck in setxid?)")
    assert cp.returncode == 0, cp.stderr.decode()
    assert cp.stdout.decode().split() == ["stopped"] * ROUNDS
