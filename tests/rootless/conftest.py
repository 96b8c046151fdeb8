"""Rootless lane: a dedicated unprivileged user, made for the session and removed afterwards.

The fixture adds two users (the owner of the containers and an outsider), gives the owner a
subuid/subgid range, copies the busybox rootfs into a directory the owner owns, and finds a way for
that user to start pyruntime (the launcher in bin/, or one using the system interpreter of the same
Python version when bin/'s interpreter lives where only root can read).  Every command of the tests
runs as that user, with runc as the control in the same session.  At the end: containers deleted, the
users and their lines in /etc/subuid and /etc/subgid removed, temporary dirs gone.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from pyrt_testenv import LAUNCHER, ROOT, ROOTFS
from .rl_env import SUB_COUNT, mappings



def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


class User:
    """A test user and how to run commands as it (files for stdio: a detached container keeps them)."""

    def __init__(self, name: str, tmp: str) -> None:
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid, self.home = name, pw.pw_uid, pw.pw_gid, pw.pw_dir
        self.xdg = os.path.join(tmp, f"xdg-{name}")
        os.mkdir(self.xdg, 0o700)
        os.chown(self.xdg, self.uid, self.gid)
        self.work = os.path.join(tmp, f"work-{name}")
        os.mkdir(self.work, 0o755)
        os.chown(self.work, self.uid, self.gid)
        self.subuid = self.subgid = 0

    def env(self, **extra: str) -> dict:
        e = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.home,
             "USER": self.name, "LOGNAME": self.name, "XDG_RUNTIME_DIR": self.xdg, "LANG": "C.UTF-8"}
        e.update(extra)
        return {k: v for k, v in e.items() if v is not None}

    def run(self, argv: list[str], *, timeout: float = 60, input: bytes | None = None, cwd: str | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            cp = subprocess.run(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL if input is None else None,
                                input=input, timeout=timeout, cwd=cwd or self.work, env=env or self.env(),
                                user=self.uid, group=self.gid, extra_groups=[])
            out.seek(0)
            err.seek(0)
            cp.stdout, cp.stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        return cp

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(argv, cwd=self.work, env=self.env(), user=self.uid, group=self.gid,
                                extra_groups=[], **kw)


class RT:
    """One runtime (pyruntime or runc) run as the test user with a private --root."""

    def __init__(self, name: str, binary: str, user: User) -> None:
        self.name, self.binary, self.user = name, binary, user
        self.root = os.path.join(user.xdg, f"{name}-{uuid.uuid4().hex[:6]}")

    def __call__(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.user.run([self.binary, "--root", self.root, *args], **kw)

    def ok(self, *args: str, **kw) -> str:
        cp = self(*args, **kw)
        assert cp.returncode == 0, f"{self.name} {' '.join(args)} -> {cp.returncode}\n{cp.stdout}\n{cp.stderr}"
        return cp.stdout

    def state(self, cid: str) -> dict:
        return json.loads(self.ok("state", cid))

    def status(self, cid: str) -> str:
        cp = self("state", cid)
        return json.loads(cp.stdout)["status"] if cp.returncode == 0 else "gone"

    def wait_status(self, cid: str, want: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            s = self.status(cid)
            if s == want or time.monotonic() > deadline:
                return s
            time.sleep(0.05)

    def cleanup(self) -> None:
        if not os.path.isdir(self.root):
            return
        for cid in os.listdir(self.root):
            if os.path.exists(os.path.join(self.root, cid, "state.json")):
                self("delete", "--force", cid)
        shutil.rmtree(self.root, ignore_errors=True)


def _add_subids(name: str, path: str) -> int:
    """The user's range in /etc/sub[ug]id (useradd may have added one); else append one past all others."""
    with open(path) as f:
        lines = f.read().splitlines()
    top = 100000
    for ln in lines:
        parts = ln.split(":")
        if len(parts) == 3 and parts[1].isdigit():
            if parts[0] == name:
                return int(parts[1])
            top = max(top, int(parts[1]) + int(parts[2]))
    with open(path, "a") as f:
        f.write(f"{name}:{top}:{SUB_COUNT}\n")
    return top


def _drop_subids(name: str, path: str) -> None:
    with open(path) as f:
        lines = f.read().splitlines(keepends=True)
    keep = [ln for ln in lines if ln.split(":", 1)[0] != name]
    if keep != lines:
        tmp = path + ".pyrt-tmp"
        with open(tmp, "w") as f:
            f.writelines(keep)
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.rename(tmp, path)


def _launcher_for(user: User, tmp: str) -> str:
    """A pyruntime command the test user can start: $PYRUNTIME_BIN, bin/pyruntime, or a launcher on the
    system interpreter of the same version over this checkout (made in ``tmp``)."""
    for cand in (os.environ.get("PYRUNTIME_BIN"), LAUNCHER):
        try:
            if cand and user.run([cand, "--version"]).returncode == 0:
                return cand
        except PermissionError:     # its interpreter (#!) is not readable by the user
            continue
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    py = f"/usr/bin/python{ver}"
    if not os.path.exists(py):
        pytest.skip(f"bin/pyruntime cannot be started by an unprivileged user (its interpreter is not "
                    f"readable) and there is no {py} to run this checkout with")
    site = os.path.join(ROOT, ".venv", "lib", f"python{ver}", "site-packages")
    paths = [ROOT, site]
    if user.run(["test", "-r", os.path.join(ROOT, "pyruntime", "__init__.py")]).returncode != 0:
        # the checkout is not readable by others: copy what the launcher needs
        dst = os.path.join(tmp, "code")
        shutil.copytree(os.path.join(ROOT, "pyruntime"), os.path.join(dst, "pyruntime"))
        for name in os.listdir(site):
            if name.startswith(("cffi", "_cffi_backend", "pycparser")):
                src = os.path.join(site, name)
                (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, os.path.join(dst, name))
        paths = [dst]
        subprocess.run(["chmod", "-R", "a+rX", dst], check=True)
    path = os.path.join(tmp, "pyruntime")
    with open(path, "w") as f:
        f.write(f"#!{py} -IS\nimport sys\nsys.path[:0] = {paths!r}\n"
                "from pyruntime.cli import main\nsys.exit(main())\n")
    os.chmod(path, 0o755)
    cp = user.run([path, "--version"])
    if cp.returncode != 0:
        pytest.fail(f"no pyruntime launcher usable by {user.name}: {cp.stderr}")
    return path


class Env:
    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyrt-rootless-")
        os.chmod(self.tmp, 0o755)
        tag = uuid.uuid4().hex[:5]
        self.names = [f"pyrtrl{tag}", f"pyrtrx{tag}"]
        self.users: list[User] = []
        self.runtimes: list[RT] = []

    def setup(self) -> None:
        for name in self.names:
            _sh("useradd", "--no-create-home", "--home-dir", os.path.join(self.tmp, f"home-{name}"),
                "--shell", "/bin/sh", "--user-group", name)
            home = os.path.join(self.tmp, f"home-{name}")
            os.mkdir(home, 0o700)
            u = User(name, self.tmp)
            os.chown(home, u.uid, u.gid)
            self.users.append(u)
        self.owner, self.other = self.users
        self.owner.subuid = _add_subids(self.owner.name, "/etc/subuid")
        self.owner.subgid = _add_subids(self.owner.name, "/etc/subgid")
        # the rootfs belongs to the user (as an unpacked image of theirs would)
        self.rootfs = os.path.join(self.owner.work, "rootfs")
        os.mkdir(self.rootfs)
        _sh("cp", "-a", ROOTFS + "/.", self.rootfs)     # the contents: never a link to the shared rootfs
        _sh("chown", "-R", f"{self.owner.uid}:{self.owner.gid}", self.rootfs)
        self.pyruntime = _launcher_for(self.owner, self.tmp)
        self.runc = shutil.which("runc")

    def rt(self, name: str, user: User | None = None) -> RT:
        binary = self.pyruntime if name == "pyruntime" else self.runc
        if binary is None:
            pytest.fail("runc (the control) is not installed: make deps installs it")
        r = RT(name, binary, user or self.owner)
        self.runtimes.append(r)
        return r

    def teardown(self) -> None:
        for r in self.runtimes:
            r.cleanup()
        # anything still running as a test user (a test that failed midway), killed by pid: only
        # processes this lane started can have those uids (a container's pid namespace dies with its init)
        uids = {u.uid for u in self.users}
        for pid in (n for n in os.listdir("/proc") if n.isdigit()):
            try:
                st = os.stat(f"/proc/{pid}")
            except OSError:
                continue
            if st.st_uid in uids:
                try:
                    os.kill(int(pid), 9)
                except OSError:
                    pass
        time.sleep(0.2)
        for name in self.names:
            _drop_subids(name, "/etc/subuid")
            _drop_subids(name, "/etc/subgid")
            subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def rl():
    if os.geteuid() != 0:
        pytest.skip("the rootless lane creates its test users and needs root to do so")
    for tool in ("useradd", "userdel", "newuidmap", "newgidmap"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} missing: `make rootless-deps` installs passwd and uidmap")
    env = Env()
    try:
        env.setup()
        yield env
    finally:
        env.teardown()
        for name in env.names:
            for path in ("/etc/passwd", "/etc/group", "/etc/subuid", "/etc/subgid"):
                with open(path) as f:
                    assert not any(ln.startswith(name + ":") for ln in f), f"{name} left in {path}"


@pytest.fixture
def bundle(rl):
    """bundle(args, mapping="single", edit=None) -> a bundle dir owned by the test user, whose config is
    what `pyruntime spec --rootless` writes, made non-interactive."""
    made: list[str] = []

    def make(args: list[str], mapping: str = "single", edit=None) -> str:
        b = os.path.join(rl.owner.work, f"b-{uuid.uuid4().hex[:8]}")
        os.mkdir(b)
        os.chown(b, rl.owner.uid, rl.owner.gid)
        cp = rl.owner.run([rl.pyruntime, "spec", "--rootless", "--bundle", b])
        assert cp.returncode == 0, cp.stderr
        with open(os.path.join(b, "config.json")) as f:
            cfg = json.load(f)
        cfg["root"]["path"] = rl.rootfs
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = args
        cfg["linux"]["uidMappings"], cfg["linux"]["gidMappings"] = mappings(rl, mapping)
        if edit:
            edit(cfg)
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        made.append(b)
        return b

    yield make
    for b in made:
        shutil.rmtree(b, ignore_errors=True)


@pytest.fixture
def both(rl):
    """(runc, pyruntime) as the test user: every scenario runs with runc, the control, first."""
    rs = (rl.rt("runc"), rl.rt("pyruntime"))
    yield rs
    for r in rs:
        r.cleanup()
