"""OCI hooks end to end through the pyruntime command: which step, which state, which namespace, and
what each failure leaves behind (nothing)."""
from __future__ import annotations

import os
import time
import uuid

import pytest

from .conftest import assert_nothing_left, bind_hooklog, pid_gone

HOST_KINDS = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")


def start_hook(hooklog, *, fail: bool = False) -> dict:
    """startContainer runs inside the container: its path resolves in the container's rootfs."""
    body = ("cat > /hooklog/startContainer.stdin; readlink /proc/self/ns/mnt > /hooklog/startContainer.mntns; "
            "echo \"$1 $2 $MARK\" > /hooklog/startContainer.args; echo startContainer >> /hooklog/seq")
    if fail:
        body += "; echo boom-startContainer >&2; exit 9"
    return {"path": "/bin/sh", "args": ["sh", "-c", body, "sh", "a1", "a2"], "env": ["MARK=m1"]}


def full_bundle(make_bundle, hooklog, *, fail: str | None = None, process=None, extra=None) -> str:
    def edit(cfg):
        bind_hooklog(cfg, hooklog)
        cfg["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs"})
        cfg["annotations"] = {"org.test.hooks": "yes"}
        cfg["hooks"] = {k: [hooklog.hook(k, fail=(fail == k))] for k in HOST_KINDS}
        cfg["hooks"]["startContainer"] = [start_hook(hooklog, fail=(fail == "startContainer"))]
        if extra:
            extra(cfg)
    return make_bundle(process or ["sh", "-c", "echo process >> /hooklog/seq; exec sleep 1000"], edit=edit)


def new_id() -> str:
    return "hk-" + uuid.uuid4().hex[:10]


def pidns_members(pidns: str) -> list[int]:
    """Host pids of the live (not zombie) processes in the pid namespace `pidns` (a readlink of ns/pid)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink(f"/proc/{p}/ns/pid") == pidns and not pid_gone(int(p)):
                    out.append(int(p))
            except OSError:
                pass
    return out


def failed_start(rt, bundle: str) -> tuple[str, int, str, str]:
    """create, then a start that must fail; after it the init must be gone and the container stopped.
    Returns (id, init pid, start's stderr, the container's pid namespace)."""
    cid = new_id()
    rt("create", "--bundle", bundle, cid)
    pid = rt.state(cid)["pid"]
    pidns = os.readlink(f"/proc/{pid}/ns/pid")
    r = rt("start", cid, check=False)
    assert r.returncode != 0
    for _ in range(200):
        if pid_gone(pid):
            break
        time.sleep(0.02)
    assert rt.state(cid)["status"] == "stopped"
    return cid, pid, r.stderr.decode(), pidns


def test_every_kind_at_its_step_with_its_state(rt, make_bundle, hooklog):
    bundle = full_bundle(make_bundle, hooklog)
    cid = new_id()
    rt("create", "--bundle", bundle, cid)
    assert hooklog.seq() == ["prestart", "createRuntime", "createContainer"]
    pid = rt.state(cid)["pid"]
    host_mntns = os.readlink("/proc/self/ns/mnt")
    for kind in ("prestart", "createRuntime", "createContainer"):
        r = hooklog.rec(kind)
        s = r["state"]
        assert s["id"] == cid and s["pid"] == pid and s["status"] == "creating"
        assert s["bundle"] == bundle and s["annotations"] == {"org.test.hooks": "yes"}
        assert s["ociVersion"]
        assert r["argv"][1:] == [kind] and r["env"]["HOOKLOG"] == hooklog.path
        # the init exists, in its own namespaces, and has not exec'd the user's process yet
        assert "sleep" not in r["cmdline"]
        assert r["ctr_netns"] != os.readlink("/proc/self/ns/net")
    # prestart and createRuntime run in the runtime's namespaces, createContainer in the container's
    # mount namespace, before pivot_root (the container's mounts are there, under the rootfs path)
    assert hooklog.rec("prestart")["mntns"] == host_mntns
    assert hooklog.rec("createRuntime")["mntns"] == host_mntns
    cc = hooklog.rec("createContainer")
    assert cc["mntns"] == cc["ctr_mntns"] != host_mntns
    rootfs = rt.state(cid)["rootfs"]
    assert any(line.split()[4] == os.path.join(rootfs, "scratch") for line in cc["mountinfo"].splitlines())
    assert cc["cwd"] == bundle

    rt("start", cid)
    hooklog.wait_for("poststart")
    hooklog.wait_for("process")
    seq = hooklog.seq()
    assert seq.index("startContainer") < seq.index("process")
    assert seq.index("createContainer") < seq.index("startContainer")
    # startContainer: in the container (its mount namespace, after pivot_root: /hooklog resolved there)
    assert open(os.path.join(hooklog.path, "startContainer.mntns")).read().strip() == \
        os.readlink(f"/proc/{pid}/ns/mnt")
    assert open(os.path.join(hooklog.path, "startContainer.args")).read().split() == ["a1", "a2", "m1"]
    import json
    sc = json.loads(open(os.path.join(hooklog.path, "startContainer.stdin")).read())
    assert sc["id"] == cid and sc["pid"] == pid and sc["status"] == "created" and sc["bundle"] == bundle
    ps = hooklog.rec("poststart")
    assert ps["state"]["status"] == "running" and ps["state"]["pid"] == pid
    assert ps["mntns"] == host_mntns
    # poststart runs after execve: the init's cmdline it read is already the user's process
    assert ps["cmdline"][:2] == ["sleep", "1000"]
    assert "poststop" not in hooklog.seq()

    rt("kill", cid, "KILL")
    for _ in range(200):
        if rt.state(cid)["status"] == "stopped":
            break
        time.sleep(0.02)
    assert "poststop" not in hooklog.seq()     # poststop belongs to delete, not to the exit
    rt("delete", cid)
    pst = hooklog.rec("poststop")["state"]
    assert pst["id"] == cid and pst["status"] == "stopped" and pst["bundle"] == bundle
    assert pst["annotations"] == {"org.test.hooks": "yes"}
    assert hooklog.seq()[-1] == "poststop" and hooklog.seq().count("poststop") == 1
    assert_nothing_left(rt, cid, [pid], bundle)


def test_order_within_a_kind_args_and_env(rt, make_bundle, hooklog):
    def edit(cfg):
        bind_hooklog(cfg, hooklog)
        cfg["hooks"] = {"createRuntime": [hooklog.hook("createRuntime", label=f"cr{i}") for i in range(4)]}
        cfg["hooks"]["createRuntime"][2]["env"].append("EXTRA=x y")
    bundle = make_bundle(["true"], edit=edit)
    cid = new_id()
    rt("run", "--bundle", bundle, cid)
    assert hooklog.seq() == ["cr0", "cr1", "cr2", "cr3"]
    r = hooklog.rec("cr2")
    assert r["argv"][1:] == ["cr2"]
    assert r["env"]["EXTRA"] == "x y" and r["env"]["HOOKLOG"] == hooklog.path
    # exactly the given env (python itself may add LC_CTYPE when the locale is C, PEP 538)
    assert set(r["env"]) - {"LC_CTYPE"} == {"HOOKLOG", "EXTRA"}
    assert set(hooklog.rec("cr1")["env"]) - {"LC_CTYPE"} == {"HOOKLOG"}
    assert_nothing_left(rt, cid, [], bundle)


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_create_hook_failure_kills_and_cleans(rt, make_bundle, hooklog, kind):
    bundle = full_bundle(make_bundle, hooklog, fail=kind)
    cid = new_id()
    r = rt("create", "--bundle", bundle, cid, check=False)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert hooklog.recorder in err and "exit status 7" in err and f"boom-{kind}" in err, err
    order = list(HOST_KINDS[:3])
    assert hooklog.seq() == order[:order.index(kind) + 1] + ["poststop"]
    pid = hooklog.rec(kind)["state"]["pid"]
    assert hooklog.rec("poststop")["state"]["status"] == "stopped"
    assert_nothing_left(rt, cid, [pid], bundle)


def test_start_container_failure_stops_container(rt, make_bundle, hooklog):
    bundle = full_bundle(make_bundle, hooklog, fail="startContainer")
    cid, pid, err, _ = failed_start(rt, bundle)
    assert "boom-startContainer" in err or "exit status 9" in err, err
    assert "process" not in hooklog.seq() and "poststart" not in hooklog.seq()
    rt("delete", cid)
    assert hooklog.seq()[-1] == "poststop"
    assert_nothing_left(rt, cid, [pid], bundle)


def test_poststart_failure_fails_start_and_stops(rt, make_bundle, hooklog):
    bundle = full_bundle(make_bundle, hooklog, fail="poststart")
    cid, pid, err, _ = failed_start(rt, bundle)
    assert hooklog.recorder in err and "exit status 7" in err and "boom-poststart" in err, err
    assert "poststop" not in hooklog.seq()
    rt("delete", cid)
    assert hooklog.seq()[-1] == "poststop"
    assert_nothing_left(rt, cid, [pid], bundle)


def test_poststop_failure_is_a_warning_and_the_rest_run(rt, make_bundle, hooklog):
    def edit(cfg):
        cfg["hooks"] = {"poststop": [hooklog.hook("poststop", label="ps0", fail=True),
                                     hooklog.hook("poststop", label="ps1")]}
    bundle = make_bundle(["true"], edit=edit)
    cid = new_id()
    r = rt("run", "--bundle", bundle, cid)
    assert hooklog.seq() == ["ps0", "ps1"]
    assert b"boom-ps0" in r.stderr and b"warning" in r.stderr.lower()
    assert_nothing_left(rt, cid, [], bundle)


def test_timeout_kills_hook_and_fails_create(rt, make_bundle, hooklog, tmp_path):
    pidf = tmp_path / "hookpid"
    slow = tmp_path / "slow"
    # the hook would sleep far longer than the call's own 60 s guard: create returning at all, with the
    # hook's process gone, means the runtime killed it at its timeout
    slow.write_text(f"#!/bin/sh\necho $$ > {pidf}\nexec sleep 600\n")
    slow.chmod(0o755)

    def edit(cfg):
        cfg["hooks"] = {"createRuntime": [{"path": str(slow), "timeout": 1}],
                        "poststop": [hooklog.hook("poststop")]}
    bundle = make_bundle(["true"], edit=edit)
    cid = new_id()
    r = rt("create", "--bundle", bundle, cid, check=False)
    assert r.returncode != 0 and b"timed out after 1s" in r.stderr and str(slow).encode() in r.stderr
    assert hooklog.seq() == ["poststop"]
    assert_nothing_left(rt, cid, [int(pidf.read_text())], bundle)


def test_hooks_config_errors_name_the_field(rt, make_bundle):
    bundle = make_bundle(["true"], hooks={"prestart": [{"path": "relative"}]})
    cid = new_id()
    r = rt("create", "--bundle", bundle, cid, check=False)
    assert r.returncode != 0 and b"hooks.prestart[0].path" in r.stderr
    assert_nothing_left(rt, cid, [], bundle)


def test_hook_output_goes_to_the_log_not_the_container_stdio(rt, make_bundle, tmp_path):
    noisy = tmp_path / "noisy"
    noisy.write_text("#!/bin/sh\necho hook-says-out\necho hook-says-err >&2\n")
    noisy.chmod(0o755)
    bundle = make_bundle(["echo", "container-says"], hooks={
        k: [{"path": str(noisy)}] for k in ("createRuntime", "poststart", "poststop")})
    logf = tmp_path / "runtime.log"
    cid = new_id()
    r = rt("run", "--bundle", bundle, cid, log=str(logf))
    assert r.stdout.decode() == "container-says\n"
    assert b"hook-says" not in r.stdout + r.stderr
    import json
    msgs = [json.loads(line)["msg"] for line in logf.read_text().splitlines()]
    for kind in ("createRuntime", "poststart", "poststop"):
        assert any(kind in m and "hook-says-out" in m for m in msgs), (kind, msgs)
        assert any(kind in m and "hook-says-err" in m for m in msgs), (kind, msgs)
    assert_nothing_left(rt, cid, [], bundle)


def test_start_container_hook_timeout(rt, make_bundle, hooklog):
    def edit(cfg):
        bind_hooklog(cfg, hooklog)
        cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", "echo $$ > /hooklog/sc.pid; exec sleep 600"], "timeout": 1}],
            "poststop": [hooklog.hook("poststop")]}
    bundle = make_bundle(["sh", "-c", "echo process >> /hooklog/seq"], edit=edit)
    # start returned within its 60 s guard while the hook sleeps 600 s: the timeout ended the hook, and
    # nothing of the container (the hook's sleep included) lives on in its pid namespace
    cid, pid, err, pidns = failed_start(rt, bundle)
    assert "tim" in err.lower(), err      # "timed out" / "timeout"
    assert os.path.exists(os.path.join(hooklog.path, "sc.pid")), "the startContainer hook never ran"
    assert pidns_members(pidns) == []
    assert "process" not in hooklog.seq()
    rt("delete", cid)
    assert hooklog.seq() == ["poststop"]
    assert_nothing_left(rt, cid, [pid], bundle)
