"""The sync protocol's header has one codec (pack_header/unpack_header of pyruntime.syncmsg, which
pyruntime.protocol re-exports), used by create, exec and `start` alike; `start` uses it without loading
the C core, so its numbers are written in syncmsg.py: here they are checked against the core's own
struct pyrt_msg and enums (cffi reads _native/pyrt.h), byte for byte both ways, and protocol.msg()
refuses a core that disagrees."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pyrt_testenv import ROOT

sys.path.insert(0, ROOT)
from pyruntime import protocol  # noqa: E402
from pyruntime._core import ffi, lib  # noqa: E402
from pyruntime.errors import RuntimeFailure  # noqa: E402


def test_constants_are_the_cores():
    assert protocol.HEADER_SIZE == ffi.sizeof("struct pyrt_msg")
    assert (protocol.MSG_GO, protocol.MSG_ERROR, protocol.ERR_MAX) == \
        (lib.PYRT_MSG_GO, lib.PYRT_MSG_ERROR, lib.PYRT_ERR_MAX)
    m = protocol.msg()
    assert (m.size, m.GO, m.ERROR, m.err_max) == (protocol.HEADER_SIZE, protocol.MSG_GO, protocol.MSG_ERROR,
                                                    protocol.ERR_MAX)


@pytest.mark.parametrize("mtype,err,length", [(lib.PYRT_MSG_GO, 0, 0), (lib.PYRT_MSG_ERROR, -22, 4000),
                                              (lib.PYRT_MSG_ERROR, 2**31 - 1, 2**32 - 1),
                                              (lib.PYRT_MSG_PID, -2**31, 4)])
def test_codec_is_the_cores_struct_both_ways(mtype, err, length):
    # what the codec writes, the core's struct reads ...
    data = protocol.pack_header(mtype, err, length)
    assert len(data) == ffi.sizeof("struct pyrt_msg")
    buf = bytearray(data)       # alive while the struct is read through it
    c = ffi.cast("struct pyrt_msg *", ffi.from_buffer(buf))
    assert (c.type, c.err, c.len, c.pad) == (mtype, err, length, 0)
    # ... and what the core's struct holds, the codec reads (trailing payload ignored)
    n = ffi.new("struct pyrt_msg *", {"type": mtype, "err": err, "len": length, "pad": 0})
    raw = bytes(ffi.buffer(n))
    assert raw == data
    assert protocol.unpack_header(raw + b"payload") == (mtype, err, length)


def test_other_byte_order_and_short_header():
    """Another architecture's init (tests/core/test_trampoline_arches.py) speaks its own byte order."""
    big = protocol.pack_header(lib.PYRT_MSG_CREATED, -1, 7, byteorder="big")
    assert big[:4] == lib.PYRT_MSG_CREATED.to_bytes(4, "big") and big[4:8] == b"\xff\xff\xff\xff"
    assert protocol.unpack_header(big, "big") == (lib.PYRT_MSG_CREATED, -1, 7)
    with pytest.raises(ValueError):
        protocol.unpack_header(big[:15])


def test_msg_refuses_a_core_that_disagrees(monkeypatch):
    monkeypatch.setattr(protocol, "MSG_GO", protocol.MSG_GO + 100)
    with pytest.raises(RuntimeFailure, match="does not match"):
        protocol._Msg()


@pytest.mark.parametrize("module", ["syncmsg", "protocol"])
def test_protocol_loads_neither_os_nor_struct_nor_the_core(module):
    """`start` imports syncmsg for the handshake (tests/test_imports.py checks the command; this, the
    modules): neither it nor protocol.py, which re-exports it, loads os, struct or the C core at import."""
    code = (f"import sys; sys.path[:0] = [{ROOT!r}]\nimport pyruntime.{module}\n"
            "print(sorted(m for m in ('os', 'struct', '_struct', 'socket', 'signal', '_cffi_backend',"
            " 'pyruntime._core') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "[]", out.stderr
