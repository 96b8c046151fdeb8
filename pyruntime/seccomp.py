"""linux.seccomp -> a BPF program, compiled in the runtime process with libseccomp.

Why here and not in the container: the init runs only C between clone() and execve() and must not
parse or allocate; so the profile is validated here (every error names its JSON path), compiled
rule by rule through the thin wrappers in ``_native/seccomp.c`` and exported with
``seccomp_export_bpf``.  The init then only passes ``Compiled.prog`` to
``seccomp(SECCOMP_SET_MODE_FILTER, Compiled.flags, ...)``.

Behaviour follows runc where the spec leaves room:

* syscall names this libseccomp does not know are skipped (profiles list syscalls of newer kernels);
* a rule whose action equals the default action is dropped (libseccomp refuses it, it is a no-op);
* ``errnoRet`` defaults to EPERM for SCMP_ACT_ERRNO and SCMP_ACT_TRACE and is an error elsewhere;
* several conditions on the same argument index in one rule are OR-ed (one libseccomp rule each),
  conditions on different indexes are AND-ed;
* filter flags the running kernel lacks are dropped (``Compiled.dropped_flags`` says which);
* SCMP_ACT_NOTIFY needs ``listenerPath``, is refused as the default action and for ``write``
  (the init itself would block on it before the listener has the fd).

``send_listener`` implements the runtime side of runtime.md's seccomp notify protocol.
"""
from __future__ import annotations

import errno as _errno
import os
import sys

from . import fastjson as json
from .errors import ConfigError, RuntimeFailure
from .seccomp_prog import Compiled, libseccomp_version  # noqa: F401  (this module's API too)

# No dataclasses, json, typing, socket here: podman and containerd send a profile with every create,
# so this module is on their hot path; those imports cost more (~35 ms) than compiling the profile.

# SECCOMP_RET_* action bases (linux/seccomp.h, identical to libseccomp's SCMP_ACT_*).
_ACTION_BASE: dict[str, int] = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
# Actions whose low 16 bits carry errnoRet (the errno, or the value a tracer sees).
_WITH_DATA = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"})
ACTIONS = tuple(_ACTION_BASE)

OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}

# runtime-spec architecture name -> libseccomp's name for seccomp_arch_resolve_name().
ARCHS: dict[str, str] = {
    "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips", "SCMP_ARCH_MIPS64": "mips64", "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel", "SCMP_ARCH_MIPSEL64": "mipsel64", "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc", "SCMP_ARCH_PPC64": "ppc64", "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390", "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc", "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64", "SCMP_ARCH_LOONGARCH64": "loongarch64",
    "SCMP_ARCH_M68K": "m68k", "SCMP_ARCH_SH": "sh", "SCMP_ARCH_SHEB": "sheb",
}

# SECCOMP_FILTER_FLAG_* (linux/seccomp.h).
FLAG_TSYNC = 1
FLAG_LOG = 2
FLAG_SPEC_ALLOW = 4
FLAG_NEW_LISTENER = 8
FLAG_TSYNC_ESRCH = 16
FLAG_WAIT_KILLABLE_RECV = 32
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": FLAG_WAIT_KILLABLE_RECV,
}
# Flags that are only valid together with another one when probing the kernel.
_PROBE_WITH = {FLAG_WAIT_KILLABLE_RECV: FLAG_NEW_LISTENER}

_SOCK_FILTER_SIZE = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k
_SPEC_VERSION = "1.2.0"


def _core() -> tuple[object, object]:
    from ._core import ffi, lib  # imported lazily: `pyruntime state` never needs the C core
    return ffi, lib


# ---------------------------------------------------------------------------- kernel / library
def _kernel_flag(value: int) -> bool:
    _, lib = _core()
    return lib.pyrt_sc_kernel_flag(value | _PROBE_WITH.get(value, 0)) == 1


def supported_actions() -> list[str]:
    """Actions this build handles that the running kernel can return."""
    _, lib = _core()
    return [a for a, v in _ACTION_BASE.items() if lib.pyrt_sc_kernel_action(v) == 1]


def supported_operators() -> list[str]:
    return list(OPERATORS)


def supported_archs() -> list[str]:
    """Architectures the linked libseccomp can build filters for."""
    _, lib = _core()
    return [name for name, lsname in ARCHS.items() if lib.pyrt_sc_arch_resolve(lsname.encode()) != 0]


def known_flags() -> list[str]:
    return list(FLAGS)


def supported_flags() -> list[str]:
    """Flags of ``known_flags()`` the running kernel accepts."""
    return [name for name, value in FLAGS.items() if _kernel_flag(value)]


def features() -> dict[str, list[str]]:
    """The features.md seccomp lists, for ``pyruntime features``."""
    return {"actions": supported_actions(), "operators": supported_operators(),
            "archs": supported_archs(), "knownFlags": known_flags(), "supportedFlags": supported_flags()}


# ---------------------------------------------------------------------------------- validation
def _uint(value: object, field: str, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >> bits:
        raise ConfigError(field, f"must be an integer between 0 and {(1 << bits) - 1}")
    return value


def _action(name: object, errno_ret: object, field: str, errno_field: str) -> int:
    """Action name (+ errnoRet) -> the 32-bit SECCOMP_RET_* value."""
    if not isinstance(name, str):
        raise ConfigError(field, "must be a string")
    base = _ACTION_BASE.get(name)
    if base is None:
        raise ConfigError(field, f'unknown action "{name}"')
    if name in _WITH_DATA:
        data = _errno.EPERM if errno_ret is None else _uint(errno_ret, errno_field, 16)
        return base | data
    if errno_ret is not None:
        raise ConfigError(errno_field, f"is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {name}")
    return base


def _args(args: object, field: str) -> list[tuple[int, int, int, int]]:
    if args is None:
        return []
    if not isinstance(args, list):
        raise ConfigError(field, "must be an array")
    out = []
    for i, arg in enumerate(args):
        f = f"{field}[{i}]"
        if not isinstance(arg, dict):
            raise ConfigError(f, "must be an object")
        if "index" not in arg:
            raise ConfigError(f + ".index", "is required")
        index = arg["index"]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 5:
            raise ConfigError(f + ".index", "must be an integer between 0 and 5 (syscalls have six arguments)")
        op = arg.get("op")
        if not isinstance(op, str) or op not in OPERATORS:
            raise ConfigError(f + ".op", f"unknown operator {json.dumps(op)}")
        value = _uint(arg.get("value", 0), f + ".value", 64)
        value_two = _uint(arg.get("valueTwo", 0), f + ".valueTwo", 64)
        out.append((index, OPERATORS[op], value, value_two))
    return out


def _flags(flags: object, field: str, notify: bool) -> tuple[int, list[str]]:
    """Requested flag names -> (value the kernel accepts, names dropped because it does not)."""
    if flags is None:
        flags = []
    if not isinstance(flags, list):
        raise ConfigError(field, "must be an array of strings")
    value, dropped = 0, []
    for i, name in enumerate(flags):
        if not isinstance(name, str) or name not in FLAGS:
            raise ConfigError(f"{field}[{i}]", f"unknown flag {json.dumps(name)}")
        bit = FLAGS[name]
        if bit == FLAG_WAIT_KILLABLE_RECV and not notify:
            dropped.append(name)  # the kernel refuses it without a listener; it has no meaning then
        elif _kernel_flag(bit):
            value |= bit
        else:
            dropped.append(name)
    if notify:
        value |= FLAG_NEW_LISTENER
        if value & FLAG_TSYNC:
            # TSYNC and NEW_LISTENER together need TSYNC_ESRCH; the init is single-threaded anyway.
            if _kernel_flag(FLAG_TSYNC_ESRCH):
                value |= FLAG_TSYNC_ESRCH
            else:
                value &= ~FLAG_TSYNC
                dropped.append("SECCOMP_FILTER_FLAG_TSYNC")
    return value, dropped


# ------------------------------------------------------------------------------------ compiling
def compile(seccomp: dict, field: str = "linux.seccomp") -> Compiled:  # noqa: A001 (the brief's name)
    """Validate ``linux.seccomp`` and compile it; ConfigError names the offending JSON path."""
    if not isinstance(seccomp, dict):
        raise ConfigError(field, "must be an object")
    ffi, lib = _core()

    if "defaultAction" not in seccomp:
        raise ConfigError(f"{field}.defaultAction", "is required")
    default = _action(seccomp["defaultAction"], seccomp.get("defaultErrnoRet"),
                      f"{field}.defaultAction", f"{field}.defaultErrnoRet")
    if seccomp["defaultAction"] == "SCMP_ACT_NOTIFY":
        raise ConfigError(f"{field}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action "
                          "(the container init would block on its own syscalls)")

    arch_tokens: list[int] = []
    archs = seccomp.get("architectures") or []
    if not isinstance(archs, list):
        raise ConfigError(f"{field}.architectures", "must be an array of strings")
    for i, arch in enumerate(archs):
        f = f"{field}.architectures[{i}]"
        if not isinstance(arch, str) or arch not in ARCHS:
            raise ConfigError(f, f"unknown architecture {json.dumps(arch)}")
        token = lib.pyrt_sc_arch_resolve(ARCHS[arch].encode())
        if token == 0:
            raise ConfigError(f, f'architecture "{arch}" is not supported by libseccomp {libseccomp_version()}')
        arch_tokens.append(token)

    syscalls = seccomp.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise ConfigError(f"{field}.syscalls", "must be an array")
    # Validate everything first: a bad rule late in the list must not cost a half-built filter.
    rules: list[tuple[int, str, int, list[str], list[tuple[int, int, int, int]]]] = []
    notify = False
    for i, rule in enumerate(syscalls):
        f = f"{field}.syscalls[{i}]"
        if not isinstance(rule, dict):
            raise ConfigError(f, "must be an object")
        names = rule.get("names")
        if not isinstance(names, list) or not names:
            raise ConfigError(f + ".names", "must be a non-empty array of syscall names")
        for j, name in enumerate(names):
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{f}.names[{j}]", "must be a non-empty string")
        if "action" not in rule:
            raise ConfigError(f + ".action", "is required")
        action = _action(rule["action"], rule.get("errnoRet"), f + ".action", f + ".errnoRet")
        if rule["action"] == "SCMP_ACT_NOTIFY":
            notify = True
            if "write" in names:
                raise ConfigError(f + ".names", "SCMP_ACT_NOTIFY cannot be used for write "
                                  "(the container init writes before the listener has the fd)")
        rules.append((i, rule["action"], action, names, _args(rule.get("args"), f + ".args")))

    listener_path = seccomp.get("listenerPath")
    metadata = seccomp.get("listenerMetadata")
    if listener_path is not None and (not isinstance(listener_path, str) or not listener_path.startswith("/")):
        raise ConfigError(f"{field}.listenerPath", "must be an absolute path")
    if metadata is not None and not isinstance(metadata, str):
        raise ConfigError(f"{field}.listenerMetadata", "must be a string")
    if notify and not listener_path:
        raise ConfigError(f"{field}.listenerPath", "is required when a rule uses SCMP_ACT_NOTIFY")
    flags, dropped = _flags(seccomp.get("flags"), f"{field}.flags", notify)

    ctx = lib.pyrt_sc_new(default)
    if ctx == ffi.NULL:
        raise ConfigError(f"{field}.defaultAction", f'libseccomp rejected "{seccomp["defaultAction"]}"')
    skipped: list[str] = []
    try:
        for i, token in enumerate(arch_tokens):
            rc = lib.pyrt_sc_arch_add(ctx, token)
            if rc < 0:
                raise ConfigError(f"{field}.architectures[{i}]", f"cannot add: {os.strerror(-rc).lower()}")
        for i, action_name, action, names, args in rules:
            if action == default:
                continue  # same as the default: a no-op that libseccomp would refuse
            if action_name == "SCMP_ACT_NOTIFY" and lib.pyrt_sc_kernel_action(action) != 1:
                raise ConfigError(f"{field}.syscalls[{i}].action", "SCMP_ACT_NOTIFY is not supported by this kernel")
            for j, name in enumerate(names):
                nr = lib.pyrt_sc_syscall_resolve(name.encode())
                if nr == lib.PYRT_SC_NR_UNKNOWN:
                    skipped.append(name)
                    continue
                _add_rule(ffi, lib, ctx, action, nr, args, f"{field}.syscalls[{i}]", name)
        prog = _export(lib, ctx)
    finally:
        lib.pyrt_sc_release(ctx)
    if len(prog) % _SOCK_FILTER_SIZE or not prog:
        raise RuntimeFailure(f"libseccomp exported {len(prog)} bytes, not a BPF program", step="seccomp")
    return Compiled(prog=prog, n=len(prog) // _SOCK_FILTER_SIZE, flags=flags, notify=notify,
                    listener_path=listener_path, listener_metadata=metadata,
                    skipped=skipped, dropped_flags=dropped)


def _add_rule(ffi: object, lib: object, ctx: object, action: int, nr: int,
              args: list[tuple[int, int, int, int]], field: str, name: str) -> None:
    """One spec rule for one syscall: AND of its conditions, or OR when an index repeats."""
    indexes = [a[0] for a in args]
    groups = [[a] for a in args] if len(set(indexes)) != len(indexes) else [args]
    for group in groups:
        arr = ffi.new("struct pyrt_sc_arg[]", max(len(group), 1))
        for k, (index, op, value, value_two) in enumerate(group):
            arr[k].index, arr[k].op, arr[k].value, arr[k].value_two = index, op, value, value_two
        rc = lib.pyrt_sc_rule_add(ctx, action, nr, arr, len(group))
        if rc < 0:
            raise ConfigError(field, f'cannot add rule for "{name}": {os.strerror(-rc).lower()}')


def _export(lib: object, ctx: object) -> bytes:
    """seccomp_export_bpf() into a memfd, read back: libseccomp 2.5 has no in-memory export."""
    fd = os.memfd_create("pyruntime-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.pyrt_sc_export(ctx, fd)
        if rc < 0:
            raise RuntimeFailure(os.strerror(-rc).lower(), step="seccomp export", errno=-rc)
        size = os.fstat(fd).st_size
        chunks, off = [], 0
        while off < size:
            chunk = os.pread(fd, size - off, off)
            if not chunk:
                break
            chunks.append(chunk)
            off += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------- notify listener
def listener_message(pid: int, metadata: str | None, state: dict) -> bytes:
    """The containerProcessState document (runtime-spec runtime.md) that goes with the fd."""
    doc = {"ociVersion": state.get("ociVersion", _SPEC_VERSION), "fds": ["seccompFd"], "pid": pid,
           "metadata": metadata or "", "state": state}
    return json.dumps(doc).encode()


def send_listener(fd: int, listener_path: str, listener_metadata: str | None, state: dict,
                  timeout: float = 10.0) -> None:
    """Hand the container's seccomp listener fd to the agent at ``listenerPath``.

    The agent answers the container's notified syscalls from then on; until it has the fd those
    syscalls block, so a listener that cannot be reached is a create failure, not a warning.
    The fd stays owned by the caller (close it afterwards: the agent has its own copy).
    """
    pid = int(state.get("pid") or 0)
    msg = listener_message(pid, listener_metadata, state)
    step = "seccomp listener"
    import _socket    # the C module: `socket` adds enum conversions (see the note on imports above)
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(timeout)
            sock.connect(listener_path)
            rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder, signed=True))]
            sent = sock.sendmsg([msg], rights)
            if sent < len(msg):
                sock.sendall(msg[sent:])
        finally:
            sock.close()
    except TimeoutError:
        raise RuntimeFailure("timed out", step=step, path=listener_path, errno=_errno.ETIMEDOUT) from None
    except OSError as exc:
        raise RuntimeFailure.from_os(exc, step, listener_path) from None
