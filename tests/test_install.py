"""The three ways to install pyruntime give a command that works on its own, for root and for other users:

* ``make install PREFIX=...`` (and ``DESTDIR=``): a self-contained copy run by /usr/bin/python3;
* ``pip install SRC`` into a venv of /usr/bin/python3;
* ``python -m build`` then ``pip install dist/pyruntime-*.tar.gz`` (the sdist must build the C core).

Each builds from a copy of this checkout that is deleted before the installed command is used, so
nothing can lean on the checkout or its .venv.  As root the installed command runs a container; as a
throw-away unprivileged user it runs --version, help, spec, features, list and state in the user's
own --root, and a rootless container (`spec --rootless`).
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
from pyrt_testenv import Runtime
from pyrt_testenv import ROOT

SYS_PYTHON = "/usr/bin/python3"
pytestmark = pytest.mark.skipif(not os.access(SYS_PYTHON, os.X_OK), reason=f"{SYS_PYTHON} is not installed")


def _world_dir(prefix: str) -> str:
    """A temp dir other users can traverse (pytest's tmp_path is 0700)."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    return d


def _copy_checkout(dest: str) -> str:
    """The tracked files as they are in the work tree (what a fresh clone would have, plus edits)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    src = os.path.join(dest, "src")
    for f in filter(None, files.decode().split("\0")):
        if os.path.isfile(os.path.join(ROOT, f)):
            os.makedirs(os.path.dirname(os.path.join(src, f)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, f), os.path.join(src, f))
    return src


def _run(cmd: list[str], timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert cp.returncode == 0, f"{' '.join(cmd)} -> {cp.returncode}\n{cp.stdout[-3000:]}\n{cp.stderr[-3000:]}"
    return cp


@pytest.fixture(scope="module")
def user():
    """A throw-away unprivileged user, removed afterwards."""
    if shutil.which("useradd") is None or shutil.which("setpriv") is None:
        pytest.skip("useradd/setpriv (passwd, util-linux) are not installed")
    name = f"pyrt{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--system", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name], check=True)
    try:
        uid = int(subprocess.run(["id", "-u", name], capture_output=True, text=True, check=True).stdout)
        yield name, uid
    finally:
        subprocess.run(["userdel", name], check=False)


@pytest.fixture(scope="module")
def built():
    """One source copy: make install into a prefix and into a DESTDIR, pip install, sdist + wheel built and
    installed; then the source copy is deleted."""
    work = _world_dir("pyrt-install-")
    try:
        src = _copy_checkout(work)
        prefix = os.path.join(work, "prefix")
        destdir = os.path.join(work, "destdir")
        make = ["make", "-s", "-C", src]
        _run(make + ["install", f"PREFIX={prefix}"])
        _run(make + ["install", f"DESTDIR={destdir}", "PREFIX=/usr/local"])
        venv_pip, venv_sdist = os.path.join(work, "venv-pip"), os.path.join(work, "venv-sdist")
        for v in (venv_pip, venv_sdist):
            _run([SYS_PYTHON, "-m", "venv", v])
        pip = [os.path.join(venv_pip, "bin", "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        _run(pip + [src])
        _run(pip + ["build"])
        _run([os.path.join(venv_pip, "bin", "python"), "-m", "build", "--outdir", os.path.join(work, "dist"), src])
        sdist, = glob.glob(os.path.join(work, "dist", "pyruntime-*.tar.gz"))
        wheels = [os.path.basename(w) for w in glob.glob(os.path.join(work, "dist", "*.whl"))]
        _run([os.path.join(venv_sdist, "bin", "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
              sdist])
        sdist_files = subprocess.run(["tar", "tzf", sdist], capture_output=True, text=True, check=True).stdout
        shutil.rmtree(src)            # from here on nothing may need the checkout copy
        yield {"work": work, "src": src, "prefix": prefix, "destdir": destdir, "wheels": wheels, "sdist_files": sdist_files,
               "commands": {"make install": os.path.join(prefix, "bin", "pyruntime"),
                            "pip install .": os.path.join(venv_pip, "bin", "pyruntime"),
                            "pip install sdist": os.path.join(venv_sdist, "bin", "pyruntime")}}
    finally:
        shutil.rmtree(work, ignore_errors=True)


HOW = ["make install", "pip install .", "pip install sdist"]


def test_make_install_layout(built):
    prefix = built["prefix"]
    launcher = open(os.path.join(prefix, "bin", "pyruntime")).read()
    first = launcher.splitlines()[0]
    assert first == f"#!{os.path.realpath(SYS_PYTHON)} -IS", first        # isolated, no site scan
    assert os.path.join(prefix, "lib", "pyruntime") in launcher and ROOT not in launcher
    cores = glob.glob(os.path.join(prefix, "lib/pyruntime/pyruntime/_core*.so"))
    assert len(cores) == 1, cores
    for dep in ("cffi", "pyroute2", "zstandard"):
        assert os.path.isdir(os.path.join(prefix, "lib/pyruntime", dep)), dep
    # byte-compiled at install: users who cannot write there must not recompile on every call
    pyc, = glob.glob(os.path.join(prefix, "lib/pyruntime/pyruntime/__pycache__/cli.*.pyc"))
    with open(pyc, "rb") as f:
        assert os.path.join(prefix, "lib/pyruntime/pyruntime/cli.py").encode() in f.read()
    with open(cores[0], "rb") as f:
        assert built["src"].encode() not in f.read()        # stripped of the build's debug paths
    pages = sorted(os.listdir(os.path.join(prefix, "share/man/man8")))
    assert "pyruntime.8" in pages and "pyruntime-run.8" in pages and "pyruntime-exec.8" in pages
    assert os.path.isfile(os.path.join(prefix, "share/bash-completion/completions/pyruntime"))
    hook = os.path.join(prefix, "libexec/pyruntime/hooks/bridge-net")
    assert open(hook).readline().strip() == f"#!{os.path.realpath(SYS_PYTHON)} -IS"
    entry = json.loads(open(os.path.join(prefix, "share/pyruntime/oci-hooks.d/pyruntime-bridge-net.json")).read())
    assert entry["hook"]["path"] == hook and entry["stages"] == ["createRuntime", "poststop"]
    # the installed hook runs on its own (pyroute2 from the installed lib): a poststop with nothing to free
    r = subprocess.run([hook], input=json.dumps({"id": "nothing", "status": "stopped", "annotations": {
        "pyruntime.net/bridge": "pyrtinst0"}}), capture_output=True, text=True, timeout=60,
        env={"PYRUNTIME_NET_STATE_DIR": os.path.join(built["work"], "net"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert r.returncode == 0 and "released nothing" in r.stdout, r.stderr
    r = subprocess.run([hook, "poststart"], input="{}", capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "unknown stage" in r.stderr


def test_make_install_destdir_and_uninstall(built):
    destdir = built["destdir"]
    files = [p for p in glob.glob(destdir + "/**", recursive=True) if os.path.isfile(p)]
    assert os.path.join(destdir, "usr/local/bin/pyruntime") in files
    for p in files:     # DESTDIR only says where to write, the checkout is gone: no file may name either
        with open(p, "rb") as f:
            data = f.read()
        assert destdir.encode() not in data and built["src"].encode() not in data, p
    assert "sys.path[:0] = ['/usr/local/lib/pyruntime']" in open(os.path.join(destdir, "usr/local/bin/pyruntime")).read()
    _run(["make", "-s", "-C", ROOT, "uninstall", f"DESTDIR={destdir}", "PREFIX=/usr/local"])
    left = [p for p in glob.glob(destdir + "/**", recursive=True) if os.path.isfile(p) or os.path.islink(p)]
    assert left == []


def test_sdist_and_wheel(built):
    for f in ("_native/build.py", "_native/pyrt.h", "_native/common.h", "_native/trampoline/trampoline.c",
              "_native/spawn.c", "setup.py", "MANIFEST.in"):
        assert f"/{f}\n" in built["sdist_files"], f
    # the core is built for the stable ABI and links the host's libseccomp: cp311-abi3, linux platform
    assert built["wheels"] == ["pyruntime-0.1.0-cp311-abi3-linux_x86_64.whl"] or \
        not os.uname().machine == "x86_64", built["wheels"]


@pytest.mark.parametrize("how", HOW)
def test_installed_runs_a_container_as_root(built, how, make_bundle):
    cmd = built["commands"][how]
    out = _run([cmd, "--version"]).stdout
    assert out.startswith("pyruntime version ") and "libseccomp" in out   # the core loads
    rt = Runtime(f"/run/pyruntime-test-inst-{uuid.uuid4().hex[:8]}", binary=cmd)
    try:
        b = make_bundle(["sh", "-c", "echo installed-ok; cat /proc/1/comm; true"])
        cp = rt("run", "--bundle", b, "inst")
        assert cp.stdout.decode().split() == ["installed-ok", "sh"]
        rt("run", "-d", "--bundle", make_bundle(["sleep", "30"]), "bg")
        assert rt.state("bg")["status"] == "running"
        assert rt("exec", "bg", "true").returncode == 0
        rt("delete", "--force", "bg")
    finally:
        rt.cleanup()


@pytest.mark.parametrize("how", HOW)
def test_installed_as_unprivileged_user(built, how, user):
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            if int(f.read()) == 0:
                pytest.skip("user namespaces are disabled (user.max_user_namespaces = 0)")
    except FileNotFoundError:
        pytest.skip("this kernel has no user namespaces")
    name, uid = user
    cmd = built["commands"][how]
    home = _world_dir("pyrt-user-")
    os.chown(home, uid, uid)
    as_user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    env = {"PATH": "/usr/bin:/bin", "HOME": home}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(as_user + [cmd, "--root", f"{home}/state", *args], capture_output=True, text=True,
                              env=env, cwd=home, timeout=60)
    try:
        r = run("--version")
        assert r.returncode == 0 and r.stdout.startswith("pyruntime version"), r.stderr
        r = run("help", "run")
        assert r.returncode == 0 and "--bundle DIR" in r.stdout, r.stderr
        r = run("features")
        assert r.returncode == 0 and json.loads(r.stdout)["ociVersionMax"] == "1.3.0", r.stderr
        r = run("spec", "--rootless", "--bundle", home)
        assert r.returncode == 0, r.stderr
        cfg = json.loads(open(os.path.join(home, "config.json")).read())
        assert cfg["linux"]["uidMappings"][0]["hostID"] == uid
        r = run("list", "--format", "json")
        assert r.returncode == 0 and r.stdout == "null\n", r.stderr
        r = run("state", "nothing")
        assert r.returncode == 1 and r.stderr.strip() == "container nothing does not exist", r.stderr
        # and a rootless container (spec --rootless: the user's own uid mapped to root)
        os.symlink(os.path.join(ROOT, "bundles/busybox/rootfs"), os.path.join(home, "rootfs"))
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["echo", "rootless-ok"]
        with open(os.path.join(home, "config.json"), "w") as f:
            json.dump(cfg, f)
        r = run("run", "--bundle", home, "u1")
        assert r.returncode == 0 and r.stdout.strip() == "rootless-ok", r.stderr
    finally:
        run("delete", "--force", "u1")
        shutil.rmtree(home, ignore_errors=True)
