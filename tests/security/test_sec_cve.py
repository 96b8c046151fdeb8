"""Hostile bundles, one per known container-escape class.  Every test asserts on the host side
(sentinel files, inode numbers, mount tables), never on the runtime's own word.

Nothing here writes to a host binary, even when the runtime is vulnerable: the probes only stat
and open read-only / O_PATH and compare inode and mount identities.
"""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import both, err, out, wait_for

HOST_PYTHON = os.path.realpath(sys.executable)


def _host_exes() -> dict[tuple[int, int], str]:
    """(st_dev, st_ino) of the host executables a container must never get hold of."""
    exes = {}
    for p in {HOST_PYTHON, os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
              "/usr/bin/runc", "/usr/bin/busybox", "/usr/bin/python3"}:
        try:
            st = os.stat(p)
        except OSError:
            continue
        exes[(st.st_dev, st.st_ino)] = p
    return exes


def _sentinel(path: Path, text: str = "host sentinel, must stay untouched\n") -> tuple[str, int]:
    path.write_text(text)
    os.chmod(path, 0o640)
    st = os.stat(path)
    return text, st.st_mode


def _host_mountpoints(under: Path) -> set[str]:
    """Host mount points below `under` (other suites may mount elsewhere at the same time)."""
    with open("/proc/self/mountinfo") as f:
        return {mp for mp in (line.split()[4] for line in f) if mp.startswith(str(under))}


# ------------------------------------------------------------------------- CVE-2019-5736 class
PROBER = r"""
end=$(( $(date +%s) + {secs} ))
while [ $(date +%s) -lt $end ] && [ ! -e /ctl/stop ]; do
  for p in /proc/[0-9]*; do
    n=${{p#/proc/}}
    [ "$n" = "$$" ] && continue
    s=$(stat -L -c '%d:%i' $p/exe 2>/dev/null) || continue
    echo "SEEN $n $s $(tr '\0' ' ' < $p/cmdline 2>/dev/null)"
    if ( true 3<$p/exe ) 2>/dev/null; then echo "OPENED-R $n $s"; fi
    if ( true 4>>$p/exe ) 2>/dev/null; then echo "OPENED-W $n $s"; fi
  done
done
echo PROBER-DONE
"""


def _check_probe_output(text: str, rootfs: Path, marker: str) -> set[int]:
    """No host executable seen or opened; returns the pids seen running busybox with `marker`
    in their command line (the control: the prober really saw the racing processes)."""
    host = _host_exes()
    bb = os.stat(rootfs / "bin" / "busybox")
    busybox_pids = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[0] not in ("SEEN", "OPENED-R", "OPENED-W"):
            continue
        dev, ino = (int(x) for x in parts[2].split(":"))
        assert (dev, ino) not in host, f"container reached host executable {host[(dev, ino)]}: {line}"
        assert parts[0] != "OPENED-W", f"container opened an executable for writing: {line}"
        if (dev, ino) == (bb.st_dev, bb.st_ino) and parts[0] == "SEEN" and marker in parts[3:]:
            busybox_pids.add(int(parts[1]))
    return busybox_pids


def proc_result(proc: subprocess.Popen, stdout: bytes, stderr: bytes) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _start_prober(runtime, make_bundle, rootfs, ctl: Path, secs: int = 60):
    """The prober runs until `ctl`/stop exists (or `secs` pass)."""
    ctl.mkdir(exist_ok=True)
    prober = make_bundle()
    prober.add_mount("/ctl", str(ctl), options=["rbind", "ro"])
    prober.sh(PROBER.format(secs=secs))
    cid = runtime.new_id("prober")
    prober.write()
    runtime.ids.add(cid)
    runtime._track(prober)
    proc = runtime.popen("run", "--bundle", str(prober.path), cid,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(lambda: (runtime.state(cid) or {}).get("status") == "running", 20), "prober did not start"
    return cid, proc


def test_cve_2019_5736_create_start_in_shared_pidns(runtime, make_bundle, rootfs, tmp_path):
    """A prober container watches /proc/*/exe while other containers are created (init waiting,
    still the runtime's image) and started in its pid namespace."""
    cid, proc = _start_prober(runtime, make_bundle, rootfs, tmp_path / "ctl")
    try:
        pid = runtime.state(cid)["pid"]
        for i in range(4):
            victim = make_bundle()
            victim.linux["namespaces"] = [ns if ns["type"] != "pid" else {"type": "pid", "path": f"/proc/{pid}/ns/pid"}
                                          for ns in victim.linux["namespaces"]]
            victim.args("/bin/sleep", "0.61")
            vid, res = runtime.create(victim)
            assert res.returncode == 0, both(res)
            time.sleep(0.8)  # the created init sits there: the window CVE-2019-5736 needs
            res = runtime("start", vid)
            assert res.returncode == 0, both(res)
            wait_for(lambda: (runtime.state(vid) or {}).get("status") == "stopped", 10)
            runtime("delete", "--force", vid)
    finally:
        (tmp_path / "ctl" / "stop").touch()
        stdout, stderr = proc.communicate(timeout=90)
    text = stdout.decode(errors="replace")
    assert "PROBER-DONE" in text, both(proc_result(proc, stdout, stderr))
    seen_busybox = _check_probe_output(text, rootfs, "0.61")
    # control: the prober really saw the victims' processes (after their execve) in its namespace
    assert len(seen_busybox) >= 1, text[-2000:]


def test_cve_2019_5736_exec_race(runtime, make_bundle, rootfs, tmp_path):
    """`pyruntime exec` joins the container: its helper must never be reachable through /proc/PID/exe."""
    if runtime("exec", "--help").returncode != 0:
        pytest.skip("pyruntime exec is not implemented yet")
    cid, proc = _start_prober(runtime, make_bundle, rootfs, tmp_path / "ctl")
    results = []
    try:
        for i in range(12):
            results.append(runtime("exec", cid, "/bin/sleep", "0.21"))
    finally:
        (tmp_path / "ctl" / "stop").touch()
        stdout, stderr = proc.communicate(timeout=90)
    text = stdout.decode(errors="replace")
    prober = proc_result(proc, stdout, stderr)
    assert "PROBER-DONE" in text, both(prober)
    for res in results:
        assert res.returncode == 0, both(res) + "\nprober:\n" + both(prober)[-3000:]
    assert len(_check_probe_output(text, rootfs, "0.21")) >= 1, text[-2000:]


EVIL = """#!/proc/self/exe
# Runs only if the kernel executed the runtime's own interpreter for the container (shebang
# pointing at /proc/self/exe).  Read-only probing: which inode is /proc/self/exe, and on which mount.
import json, os
fd = os.open("/proc/self/exe", os.O_PATH)
st = os.fstat(fd)
with open(f"/proc/self/fdinfo/{fd}") as f:
    mnt = int(next(l for l in f if l.startswith("mnt_id:")).split()[1])
with open("/proc/self/mountinfo") as f:
    mine = [int(l.split()[0]) for l in f]
print("EVIL " + json.dumps({"dev": st.st_dev, "ino": st.st_ino, "mnt": mnt, "mounts": mine}), flush=True)
"""


@pytest.fixture
def evil_bundle(make_bundle, rootfs_copy, runtime):
    """Factory of bundles on a rootfs that has a C library (as real images do), the runtime
    interpreter's prefix bound read-only, and /evil: a script whose interpreter is /proc/self/exe.
    A control run checks the probe itself works (through the read-only bind)."""
    prefix = Path(sys.base_prefix)
    if not Path("/usr/lib").exists():
        pytest.skip("host has no /usr/lib to give the container a dynamic loader")
    for name in ("lib", "lib64"):
        if Path(f"/usr/{name}").exists() and not (rootfs_copy / name).exists():
            (rootfs_copy / name).symlink_to(f"usr/{name}")
    (rootfs_copy / prefix.relative_to("/")).mkdir(parents=True, exist_ok=True)
    (rootfs_copy / "evil").write_text(EVIL)
    os.chmod(rootfs_copy / "evil", 0o755)
    (rootfs_copy / "evil.py").write_text(EVIL)

    def make(*args: str):
        b = make_bundle(rootfs_copy)
        b.add_mount("/usr", "/usr", options=["rbind", "ro"])
        b.add_mount(str(prefix), str(prefix), options=["rbind", "ro"])
        b.process["env"] = [e for e in b.process["env"] if not e.startswith("PYTHON")]
        b.args(*args)
        return b

    control = runtime.run(make(HOST_PYTHON, "-S", "/evil.py"))
    assert control.returncode == 0 and "EVIL " in out(control), both(control)
    ctl = json.loads(out(control).split("EVIL ", 1)[1])
    assert ctl["mnt"] in ctl["mounts"]
    return make


def _assert_no_host_exe(res) -> None:
    """If /evil ran under the runtime's interpreter, that interpreter must not be the host file on a
    host mount: from such a /proc/self/exe a container can reopen the binary for writing."""
    if "EVIL " not in out(res):
        # the interpreter was not the runtime's: nothing of the host reached (the run may fail)
        assert "EVIL" not in err(res)
        return
    got = json.loads(out(res).split("EVIL ", 1)[1])
    host = os.stat(HOST_PYTHON)
    on_host_mount = got["mnt"] not in got["mounts"]
    assert not ((got["dev"], got["ino"]) == (host.st_dev, host.st_ino) and on_host_mount), (
        "the container executed the runtime's interpreter through a host mount "
        f"(/proc/self/exe = {HOST_PYTHON}, mount id {got['mnt']} not in the container's mount table)")


def test_cve_2019_5736_shebang_proc_self_exe(runtime, evil_bundle):
    """process.args is a script whose interpreter is /proc/self/exe: the kernel then executes
    whatever the container init's /proc/self/exe is at execve."""
    _assert_no_host_exe(runtime.run(evil_bundle("/evil")))


def test_cve_2019_5736_shebang_proc_self_exe_exec(runtime, evil_bundle):
    """The same through `pyruntime exec`: the exec helper is the runtime's image until execve."""
    if runtime("exec", "--help").returncode != 0:
        pytest.skip("pyruntime exec is not implemented yet")
    b = evil_bundle("/bin/sleep", "30")
    cid, res = runtime.create(b)
    assert res.returncode == 0, both(res)
    assert runtime("start", cid).returncode == 0
    _assert_no_host_exe(runtime("exec", cid, "/evil"))


# ------------------------------------------------------------------------ CVE-2024-21626 class
def _fd_list(text: str) -> list[int]:
    return sorted(int(x) for x in text.split() if x.isdigit())


def test_cve_2024_21626_no_host_fds(runtime, bundle):
    bundle.sh("ls /proc/$$/fd; echo --; ls -l /proc/$$/fd")
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    names, _, detail = out(res).partition("--")
    assert _fd_list(names) == [0, 1, 2], both(res)


def test_cve_2024_21626_no_host_fds_in_exec(runtime, make_bundle):
    if runtime("exec", "--help").returncode != 0:
        pytest.skip("pyruntime exec is not implemented yet")
    b = make_bundle()
    b.args("/bin/sleep", "30")
    cid, res = runtime.create(b)
    assert res.returncode == 0, both(res)
    assert runtime("start", cid).returncode == 0
    res = runtime("exec", cid, "/bin/sh", "-c", "ls /proc/$$/fd; echo --; ls -l /proc/$$/fd")
    assert res.returncode == 0, both(res)
    assert _fd_list(out(res).partition("--")[0]) == [0, 1, 2], both(res)
    res = runtime("exec", "--cwd", "/proc/self/fd/3", cid, "/bin/sh", "-c", "pwd; ls")
    assert "host sentinel" not in out(res)


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8, 9])
def test_cve_2024_21626_cwd_proc_self_fd(runtime, bundle, tmp_path, n):
    """process.cwd = /proc/self/fd/N: either refused, or a directory inside the container."""
    text, _ = _sentinel(tmp_path / "sentinel")
    rel = "../" * 40 + str(tmp_path / "sentinel").lstrip("/")
    bundle.process["cwd"] = f"/proc/self/fd/{n}"
    bundle.sh(f"pwd; cat {rel} 2>/dev/null; ls -la . 2>/dev/null | head -50")
    cid = runtime.new_id()
    res = runtime.run(bundle, cid)
    assert text.strip() not in out(res), both(res)
    if res.returncode != 0:
        assert runtime.state(cid) is None


# -------------------------------------------------------------- symlinks on mount destinations
def test_mount_destination_symlink_to_host(runtime, make_bundle, rootfs_copy, tmp_path):
    """Mount destinations that are (absolute or relative) symlinks to host directories resolve
    inside the rootfs: nothing is created on, mounted on or written to the host."""
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    hostfile = tmp_path / "hostfile"
    text, mode = _sentinel(hostfile)
    (rootfs_copy / "abs").symlink_to(str(hostdir))
    (rootfs_copy / "rel").symlink_to("../" * 30 + str(hostdir).lstrip("/"))
    (rootfs_copy / "filelink").symlink_to(str(hostfile))
    before = _host_mountpoints(tmp_path)
    b = make_bundle(rootfs_copy)
    b.config["root"]["readonly"] = False
    b.add_mount("/abs/sub", "tmpfs", "tmpfs", [])
    b.add_mount("/rel/sub2", "tmpfs", "tmpfs", [])
    b.add_mount("/filelink", str(tmp_path / "bindsrc"), "bind", ["bind", "ro"])
    (tmp_path / "bindsrc").write_text("bound\n")
    b.sh("echo hostile > /abs/sub/x 2>/dev/null; echo hostile > /filelink 2>/dev/null; cat /filelink; true")
    res = runtime.run(b)
    assert sorted(os.listdir(hostdir)) == [], both(res)
    assert hostfile.read_text() == text
    assert os.stat(hostfile).st_mode == mode
    assert _host_mountpoints(tmp_path) - before == set()


def test_mount_destination_symlink_race(runtime, make_bundle, rootfs_copy, tmp_path):
    """A container flips a directory of another container's rootfs between a real directory and a
    symlink to the host while that container is being created with a mount below it."""
    hostdir = tmp_path / "race-target"
    hostdir.mkdir()
    (rootfs_copy / "flip").mkdir()
    flipper = make_bundle()
    flipper.add_mount("/victim", str(rootfs_copy))
    flipper.sh(f"end=$(( $(date +%s) + 12 )); while [ $(date +%s) -lt $end ]; do "
               f"rm -rf /victim/flip; mkdir /victim/flip; rm -rf /victim/flip; ln -s {hostdir} /victim/flip; "
               f"rm -f /victim/flip; ln -s {'../' * 20}{str(hostdir).lstrip('/')} /victim/flip; done; echo FLIP-DONE")
    fid = runtime.new_id("flipper")
    flipper.write()
    runtime._track(flipper)
    proc = runtime.popen("run", "--bundle", str(flipper.path), fid, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: (runtime.state(fid) or {}).get("status") == "running", 20)
        deadline = time.monotonic() + 9
        attempts = 0
        while time.monotonic() < deadline:
            victim = make_bundle(rootfs_copy)
            victim.config["root"]["readonly"] = False
            victim.add_mount("/flip/mnt", "tmpfs", "tmpfs", [])
            victim.add_mount("/flip/file", str(tmp_path / "src-file"), "bind", ["bind", "ro"])
            (tmp_path / "src-file").write_text("x\n")
            victim.args("/bin/true")
            runtime.run(victim, timeout=60)
            attempts += 1
    finally:
        stdout, _ = proc.communicate(timeout=60)
    assert attempts >= 3
    assert b"FLIP-DONE" in stdout
    assert sorted(os.listdir(hostdir)) == []


# --------------------------------------------------------------- masked paths and /dev/null
def test_dev_null_symlink_to_host_file(runtime, make_bundle, rootfs_copy, tmp_path):
    """No /dev mount: the runtime creates devices in the rootfs itself, where dev/null is a
    symlink to a host file.  The host file must stay exactly as it was."""
    hostfile = tmp_path / "victim"
    text, mode = _sentinel(hostfile)
    owner = os.stat(hostfile)
    devdir = rootfs_copy / "dev"
    for child in devdir.iterdir():
        child.unlink()
    (devdir / "null").symlink_to(str(hostfile))
    (devdir / "zero").symlink_to("../" * 20 + str(hostfile).lstrip("/"))
    b = make_bundle(rootfs_copy)
    b.config["root"]["readonly"] = False
    b.config["mounts"] = [m for m in b.config["mounts"] if not m["destination"].startswith("/dev")]
    b.sh("echo overwritten > /dev/null; echo overwritten > /dev/zero; ls -l /dev/null /dev/zero; true")
    before = _host_mountpoints(tmp_path)
    res = runtime.run(b)
    st = os.stat(hostfile)
    assert hostfile.read_text() == text, both(res)
    assert (st.st_mode, st.st_uid, st.st_gid) == (mode, owner.st_uid, owner.st_gid), both(res)
    assert stat.S_ISREG(st.st_mode)
    assert _host_mountpoints(tmp_path) - before == set()


def test_masked_path_symlink_to_host_file(runtime, make_bundle, rootfs_copy, tmp_path):
    hostfile = tmp_path / "masked-victim"
    text, mode = _sentinel(hostfile)
    hostdir = tmp_path / "masked-dir"
    hostdir.mkdir()
    (hostdir / "keep").write_text("keep\n")
    (rootfs_copy / "maskme").symlink_to(str(hostfile))
    (rootfs_copy / "maskdir").symlink_to("../" * 20 + str(hostdir).lstrip("/"))
    b = make_bundle(rootfs_copy)
    b.linux["maskedPaths"] = list(b.linux.get("maskedPaths", [])) + ["/maskme", "/maskdir"]
    b.linux["readonlyPaths"] = list(b.linux.get("readonlyPaths", [])) + ["/maskdir"]
    b.sh("cat /maskme 2>&1; ls /maskdir 2>&1; true")
    before = _host_mountpoints(tmp_path)
    res = runtime.run(b)
    assert text.strip() not in out(res), both(res)
    assert hostfile.read_text() == text and os.stat(hostfile).st_mode == mode
    assert sorted(os.listdir(hostdir)) == ["keep"]
    assert _host_mountpoints(tmp_path) - before == set()


# ------------------------------------------------------------- /proc and /sys stay locked down
ATTEMPTS = {
    "proc": "mount -o remount,rw /proc",
    "sys": "mount -o remount,rw /sys",
    "procsys": "mount -o remount,rw,bind /proc/sys",
    "umount-procsys": "umount -l /proc/sys",
    "newproc": "mkdir -p /tmp/p && mount -t proc proc /tmp/p",
    "newsys": "mkdir -p /tmp/s && mount -t sysfs sysfs /tmp/s",
    "write-procsys": "echo 1 > /proc/sys/kernel/panic_on_oops",
    "sysrq": "echo h > /proc/sysrq-trigger",
    "write-sys": "touch /sys/kernel/pyrt-x",
}


def test_proc_sys_cannot_be_remounted_rw(runtime, bundle):
    """With the default capabilities nothing in /proc or /sys can be made writable or unmasked."""
    masked = [p for p in bundle.linux["maskedPaths"] if os.path.exists(p)]
    assert masked, "none of the default masked paths exists on this host"
    script = []
    for key, cmd in ATTEMPTS.items():
        script.append(f"( {cmd} ) 2>/dev/null; echo {key}=$?")
    for p in masked:
        script.append(f"umount {p} 2>/dev/null; echo umount{p}=$?")
        look = f"ls -A {p}" if os.path.isdir(p) else f"cat {p}"
        script.append(f"echo CONTENT{p}=$( {look} 2>/dev/null | wc -c)")
    script.append("grep -E ' /proc/sys | /sys ' /proc/self/mountinfo | sed 's/^/MOUNT /'")
    bundle.sh("; ".join(script))
    with open("/proc/sys/kernel/panic_on_oops") as f:
        host_panic = f.read()
    res = runtime.run(bundle)
    assert res.returncode == 0, both(res)
    o = out(res)
    for key in list(ATTEMPTS) + [f"umount{p}" for p in masked]:
        m = re.search(rf"^{re.escape(key)}=(\d+)$", o, re.M)
        assert m, f"no result for {key}:\n{both(res)}"
        assert m.group(1) != "0", f"{key} succeeded:\n{both(res)}"
    for p in masked:
        m = re.search(rf"^CONTENT{re.escape(p)}=\s*(\d+)$", o, re.M)
        assert m and m.group(1) == "0", f"{p} is not masked:\n{both(res)}"
    mounts = [ln for ln in o.splitlines() if ln.startswith("MOUNT ")]
    assert len(mounts) >= 2, both(res)
    for ln in mounts:
        assert "ro" in ln.split()[6].split(","), f"not read-only: {ln}"
    with open("/proc/sys/kernel/panic_on_oops") as f:
        assert f.read() == host_panic
