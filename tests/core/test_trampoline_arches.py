"""The trampoline (_native/trampoline/trampoline.c) on every architecture it has a port to
(_native/trampoline_build.py ARCHES), not just the one this host builds: each is cross-built with the
Debian cross compiler and run under qemu-user, called by name (the host's binfmt_misc is never used or
changed).  The image then execs a native host binary, which the host kernel runs itself, so what runs
emulated is exactly the trampoline: its _start, its syscall stub and the syscall numbers of its target.
The host's own architecture runs natively (no qemu).  The init mode is driven with the real protocol
(pyruntime.protocol's header and message ids): CREATED on the sync socket, GO over a listening socket
like exec.sock, the startContainer hooks from a memfd in spawn.c's format.  Not covered under qemu:
loading the seccomp filter (qemu-user does not apply a guest's filter to itself); that path runs natively
in tests/security.  The whole C core (_native/*.c) is compiled for each of them too: it must build there,
and its architecture-dependent parts (libc's SYS_* numbers, clone's argument order) compile per target."""
from __future__ import annotations

import errno
import glob
import importlib.util
import os
import platform
import shutil
import socket
import subprocess
from typing import NamedTuple

import pytest

from pyrt_testenv import ROOT
from pyruntime import protocol

_spec = importlib.util.spec_from_file_location("trampoline_build", os.path.join(ROOT, "_native", "trampoline_build.py"))
tb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tb)

HOST = platform.machine()
# Debian's architecture name in the cross kernel-header package (linux-libc-dev-<debarch>-cross)
DEBARCH = {"aarch64": "arm64", "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64", "x86_64": "amd64"}
BIG_ENDIAN = {"s390x"}     # the header is in the init's byte order (native on a real host of that arch)
ENV = {"PATH": "/usr/bin:/bin", "PYRT_ARCH_VAR": "from the env"}


class Tramp(NamedTuple):
    machine: str
    cmd: list[str]      # [qemu-<arch>, image] under emulation, [image] on the host's own architecture

    @property
    def byteorder(self) -> str:
        """The init's byte order: struct pyrt_msg is spoken in it (pyruntime.protocol's codec)."""
        return "big" if self.machine in BIG_ENDIAN else "little"


@pytest.fixture(scope="module", params=sorted(tb.ARCHES))
def tramp(request, tmp_path_factory) -> Tramp:
    """The trampoline built for one architecture and how to run it (argv[0] is left to the caller)."""
    machine = request.param
    triplet, qemu = tb.ARCHES[machine]
    out = str(tmp_path_factory.mktemp(f"tramp-{machine}") / "trampoline")
    if machine == HOST:
        tb.compile_trampoline(out, machine)
        return Tramp(machine, [out])
    if shutil.which(f"{triplet}-gcc") is None:
        pytest.skip(f"{triplet}-gcc not installed (apt-get install --no-install-recommends gcc-{triplet})")
    if not os.path.exists(f"/usr/{triplet}/include/asm/unistd.h"):
        pytest.skip(f"{machine} kernel headers not installed (apt-get install --no-install-recommends "
                    f"linux-libc-dev-{DEBARCH[machine]}-cross)")
    if shutil.which(f"qemu-{qemu}") is None:
        pytest.skip(f"qemu-{qemu} not installed (apt-get install --no-install-recommends qemu-user)")
    tb.compile_trampoline(out, machine, native=False)
    return Tramp(machine, [shutil.which(f"qemu-{qemu}"), out])


def _run(tramp: Tramp, mode: str, args: list[str], **kw) -> subprocess.Popen:
    """Start the trampoline with argv[0] = mode (how it chooses its mode), the rest of argv = args."""
    if len(tramp.cmd) == 2:                             # qemu-<arch> -0 ARGV0 image args...
        cmd = [tramp.cmd[0], "-0", mode, tramp.cmd[1], *args]
    else:
        cmd = [mode, *args]
    exe = tramp.cmd[0]
    return subprocess.Popen(cmd, executable=exe, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_exec_mode_runs_program_with_argv_and_env(tramp):
    p = _run(tramp, "pyruntime-exec", ["/bin/sh", "sh", "-c", 'printf "%s|%s|%s\\n" "$0" "$1" "$PYRT_ARCH_VAR"',
                                       "argzero", "one"])
    out, err = p.communicate(timeout=60)
    assert (p.returncode, out, err) == (0, b"argzero|one|from the env\n", b"")


def test_exec_mode_missing_program(tramp):
    p = _run(tramp, "pyruntime-exec", ["/nonexistent/pyrt-arch-test", "x"])
    out, err = p.communicate(timeout=60)
    assert (p.returncode, out, err) == (127, b"", b"pyruntime: exec of the container process failed\n")


def _hooks_memfd(state: bytes, hooks: list[tuple[int, str, list[str], list[str]]]) -> int:
    """spawn.c's hooks_memfd format: count, state JSON, then per hook timeout, path, argc, argv...,
    envc, envp..., each NUL-terminated."""
    parts = [str(len(hooks)).encode(), state]
    for timeout, path, argv, envp in hooks:
        parts += [str(timeout).encode(), path.encode(), str(len(argv)).encode(), *map(str.encode, argv),
                  str(len(envp)).encode(), *map(str.encode, envp)]
    fd = os.memfd_create("pyrt-arch-hooks", 0)
    os.write(fd, b"".join(x + b"\0" for x in parts))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _init(tramp, tmp_path, hooks, program: list[str]) -> tuple[bytes, bytes, bytes]:
    """Run the waiting init like create and start do: CREATED on the sync socketpair, then connect to
    the listener and send GO.  Returns (start's reply: empty when the program was exec'd, else the
    ERROR message; the init's stdout; its stderr)."""
    m, order = protocol.msg(), tramp.byteorder
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    lsn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    path = str(tmp_path / "exec.sock")
    lsn.bind(path)
    lsn.listen(1)
    hfd = _hooks_memfd(b'{"ociVersion":"1.2.0","id":"pyrt-arch"}', hooks) if hooks else -1
    fds = [child.fileno(), lsn.fileno()] + ([hfd] if hfd >= 0 else [])
    p = _run(tramp, "pyruntime-init", [str(child.fileno()), str(lsn.fileno()), "-1", "0", str(hfd), *program],
             pass_fds=fds)
    try:
        child.close()
        lsn.close()
        if hfd >= 0:
            os.close(hfd)
        parent.settimeout(60)
        created = parent.recv(64)
        assert protocol.unpack_header(created, order) == (m.CREATED, 0, 0) and len(created) == m.size
        assert parent.recv(64) == b""        # the init closed its end of the sync socket
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        conn.settimeout(60)
        conn.connect(path)
        conn.sendmsg([protocol.pack_header(m.GO, byteorder=order)])
        reply = conn.recv(m.size + m.err_max)
        conn.close()
        out, err = p.communicate(timeout=60)
    finally:
        parent.close()
        if p.poll() is None:
            p.kill()
            p.wait()
    return reply, out, err


def _error(tramp: Tramp, reply: bytes) -> tuple[int, str]:
    """(errno, text) of the init's PYRT_MSG_ERROR."""
    m = protocol.msg()
    mtype, err, length = protocol.unpack_header(reply, tramp.byteorder)
    assert mtype == m.ERROR and len(reply) == m.size + length
    return err, reply[m.size:].decode()


def test_init_mode_hooks_then_program(tramp, tmp_path):
    seen = tmp_path / "hook.out"
    hooks = [(5, "/bin/sh", ["sh", "-c", 'cat > "$0"; echo "$HOOKVAR" >> "$0"', str(seen)], ["HOOKVAR=hook env"]),
             (0, "/bin/sh", ["sh", "-c", 'echo second >> "$0"', str(seen)], [])]
    reply, out, err = _init(tramp, tmp_path, hooks,
                            ["/bin/sh", "sh", "-c", 'echo "started $PYRT_ARCH_VAR"'])
    assert (reply, out, err) == (b"", b"started from the env\n", b"")
    assert seen.read_text() == '{"ociVersion":"1.2.0","id":"pyrt-arch"}hook env\nsecond\n'


def test_init_mode_exec_failure_reaches_start(tramp, tmp_path):
    reply, out, _ = _init(tramp, tmp_path, [], ["/nonexistent/pyrt-arch-test", "x"])
    assert _error(tramp, reply) == (errno.ENOENT, "exec: /nonexistent/pyrt-arch-test") and out == b""


def test_init_mode_failing_hook(tramp, tmp_path):
    reply, out, _ = _init(tramp, tmp_path, [(5, "/bin/sh", ["sh", "-c", "echo boom >&2; exit 3"], [])],
                          ["/bin/echo", "echo", "never"])
    assert _error(tramp, reply) == (0, "startContainer hook #0 /bin/sh: exit status 3: boom") and out == b""


def test_init_mode_hook_timeout(tramp, tmp_path):
    """A hook past its timeout (1 s) is killed: the kill, the clock and ppoll's timeout of each port."""
    reply, out, _ = _init(tramp, tmp_path, [(1, "/bin/sh", ["sh", "-c", "exec sleep 30"], [])],
                          ["/bin/echo", "echo", "never"])
    assert _error(tramp, reply) == (0, "startContainer hook #0 /bin/sh: timed out after 1s") and out == b""


def test_c_core_compiles_for_arch(tramp, tmp_path):
    """Every _native/*.c compiles for the target with build.py's warning flags, warnings as errors (the
    cffi glue needs the target's Python headers: not here).  libseccomp's header is the host's (it has
    nothing architecture-specific); trampoline_bin.h is the host's build (only its shape matters)."""
    triplet = tb.ARCHES[tramp.machine][0]
    gcc = "gcc" if tramp.machine == HOST else f"{triplet}-gcc"
    if tramp.machine != HOST and not os.path.exists(f"/usr/{triplet}/include/stdio.h"):
        pytest.skip(f"{tramp.machine} libc headers not installed (apt-get install --no-install-recommends "
                    f"libc6-dev-{DEBARCH[tramp.machine]}-cross)")
    if not os.path.exists(os.path.join(ROOT, "build", "trampoline_bin.h")):
        pytest.skip("build/trampoline_bin.h missing: run `make build` first")
    sources = sorted(glob.glob(os.path.join(ROOT, "_native", "*.c")))
    assert sources
    for src in sources:
        r = subprocess.run([gcc, "-c", "-O2", "-D_GNU_SOURCE", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                            "-Werror", "-I" + os.path.join(ROOT, "_native"), "-I" + os.path.join(ROOT, "build"),
                            "-idirafter", "/usr/include", "-o", str(tmp_path / "out.o"), src],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"{os.path.basename(src)} for {tramp.machine}:\n{r.stderr}"
