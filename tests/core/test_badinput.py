"""Bad input: a clear error naming the field or step, exit 1, JSON in --log, and nothing left behind
(no state dir, no mount, no cgroup, no process)."""
from __future__ import annotations

import json
import os

import pytest


def leftovers(rt, cid, cgname: str | None = None) -> list[str]:
    """What this test's container could have left: its state dir, a mount naming its root, its cgroup,
    a process in its cgroup (other engineers' containers may run at the same time: only ours count)."""
    out = []
    if os.path.exists(os.path.join(rt.root, cid)):
        out.append("state dir")
    with open("/proc/self/mountinfo") as f:
        if any(rt.root in line for line in f):
            out.append("mount")
    if cgname:
        from pyrt_testenv import CG_PARENT, _cgroup_dirs
        if _cgroup_dirs(os.path.join(CG_PARENT, cgname)):
            out.append("cgroup")
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    if cgname in open(f"/proc/{p}/cgroup").read():
                        out.append(f"process {p}")
                except OSError:
                    pass
    return out


def fails(rt, args, cid, expect: str, tmp_path, bundle: str | None = None) -> None:
    log = str(tmp_path / "log.json")
    cp = rt(*args, check=False, log=log)
    assert cp.returncode == 1, cp
    assert expect in cp.stderr.decode(), cp.stderr.decode()
    last = json.loads(open(log).read().splitlines()[-1])
    assert last["level"] == "error" and expect in last["msg"] and last["time"]
    cgname = None
    if bundle:
        cgname = json.load(open(os.path.join(bundle, "config.json")))["linux"]["cgroupsPath"].split("/", 1)[1]
    assert leftovers(rt, cid, cgname) == []


CASES = {
    "unknown namespace": (lambda c: c["linux"]["namespaces"].append({"type": "pdi"}),
                          'config.json: linux.namespaces[6].type: unknown namespace "pdi"'),
    "args missing": (lambda c: c["process"].pop("args"), "config.json: process.args: is required"),
    "args not strings": (lambda c: c["process"].__setitem__("args", ["sh", 3]),
                         "config.json: process.args[1]: must be a string"),
    "relative cwd": (lambda c: c["process"].__setitem__("cwd", "tmp"),
                     "config.json: process.cwd: 'tmp' must be an absolute path"),
    "bad rlimit": (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_FOO", "soft": 1, "hard": 1}),
                   'config.json: process.rlimits[1].type: unknown rlimit "RLIMIT_FOO"'),
    "duplicate rlimit": (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}),
                         'config.json: process.rlimits[1].type: duplicate rlimit "RLIMIT_NOFILE"'),
    "duplicate namespace": (lambda c: c["linux"]["namespaces"].append({"type": "pid"}),
                            'config.json: linux.namespaces[6].type: duplicate namespace "pid"'),
    "unknown personality flag": (lambda c: c["linux"].__setitem__("personality", {"domain": "LINUX",
                                                                                  "flags": ["FLY"]}),
                                 "config.json: linux.personality.flags[0]: unknown personality flag 'FLY'"),
    "unknown scheduler flag": (lambda c: c["process"].__setitem__("scheduler", {"policy": "SCHED_OTHER",
                                                                               "flags": [3]}),
                               "config.json: process.scheduler.flags[0]: unknown flag 3"),
    "soft above hard": (lambda c: c["process"]["rlimits"].__setitem__(0, {"type": "RLIMIT_NOFILE",
                                                                           "soft": 9, "hard": 8}),
                        "config.json: process.rlimits[0]: soft limit 9 is above the hard limit 8"),
    "unknown capability": (lambda c: c["process"]["capabilities"]["bounding"].append("CAP_FLY"),
                           'config.json: process.capabilities.bounding[3]: unknown capability "CAP_FLY"'),
    "hostname without uts": (lambda c: c["linux"].__setitem__(
        "namespaces", [n for n in c["linux"]["namespaces"] if n["type"] != "uts"]),
        "config.json: hostname: cannot set a hostname without a private UTS namespace"),
    "missing rootfs": (lambda c: c["root"].__setitem__("path", "/no/such/rootfs"),
                       "root.path: /no/such/rootfs: no such directory"),
    "missing executable": (lambda c: c["process"].__setitem__("args", ["/no/such/binary"]),
                           "exec: /no/such/binary: no such file or directory"),
    "not in PATH": (lambda c: c["process"].__setitem__("args", ["nosuchprog"]),
                    'exec: "nosuchprog": executable file not found in $PATH'),
    "bad sysctl": (lambda c: c["linux"].__setitem__("sysctl", {"vm.swappiness": "1"}),
                   "config.json: linux.sysctl.vm.swappiness: sysctl is not in a separate kernel namespace"),
    "bad bind source": (lambda c: c["mounts"].append({"destination": "/x", "type": "bind",
                                                      "source": "/no/such/src", "options": ["bind"]}),
                        "mounts[7].source: /no/such/src: no such file or directory"),
    "bad device type": (lambda c: c["linux"].__setitem__("devices", [{"path": "/dev/q", "type": "z"}]),
                        'config.json: linux.devices[0].type: unknown device type "z"'),
    "intel rdt": (lambda c: c["linux"].__setitem__("intelRdt", {"closID": "x"}),
                  "config.json: linux.intelRdt: Intel RDT is not supported by this runtime"),
    "memory policy mode": (lambda c: c["linux"].__setitem__("memoryPolicy", {"mode": "MPOL_FOO"}),
                           'config.json: linux.memoryPolicy.mode: unknown memory policy mode "MPOL_FOO"'),
    "memory policy nodes": (lambda c: c["linux"].__setitem__("memoryPolicy", {"mode": "MPOL_BIND"}),
                            "config.json: linux.memoryPolicy.nodes: MPOL_BIND needs at least one node"),
    # the child's own writes after process.rlimits: EFBIG reported, not a silent SIGXFSZ death (an init
    # in the host's pid namespace is killable by it; a pid-ns init ignores it)
    "tiny RLIMIT_FSIZE": (lambda c: (c["process"]["rlimits"].append({"type": "RLIMIT_FSIZE", "soft": 16, "hard": 16}),
                                     c.__setitem__("hooks", {"startContainer": [{"path": "/bin/true"}]}),
                                     c["linux"].__setitem__("namespaces", [n for n in c["linux"]["namespaces"]
                                                                           if n["type"] != "pid"])),
                          "write the startContainer hooks: file too large"),
    "failing mount": (lambda c: c["mounts"].append({"destination": "/mnt", "type": "nosuchfs",
                                                    "source": "x"}),
                      "mount x (nosuchfs) to /mnt: no such device"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("cmd", ["create", "run"])
def test_bad_config(rt, make_bundle, tmp_path, case, cmd):
    edit, expect = CASES[case]
    b = make_bundle(["true"], edit=edit)
    fails(rt, [cmd, "--bundle", b, "bad"], "bad", expect, tmp_path, b)


def test_malformed_json(rt, tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    fails(rt, ["create", "--bundle", str(tmp_path), "m"], "m", "config.json: (document): invalid JSON", tmp_path)


def test_missing_bundle(rt, tmp_path):
    fails(rt, ["create", "--bundle", "/no/such/bundle", "m"], "m", "bundle: /no/such/bundle: no such directory",
          tmp_path)


def test_missing_config(rt, tmp_path):
    fails(rt, ["create", "--bundle", str(tmp_path), "m"], "m", "config.json: ", tmp_path)


@pytest.mark.parametrize("cid", ["../x", "a/b", "", ".", "-x"])
def test_bad_ids(rt, make_bundle, tmp_path, cid):
    fails(rt, ["create", "--bundle", make_bundle(), "--", cid] if cid.startswith("-") else
          ["create", "--bundle", make_bundle(), cid], cid or "none", "container id", tmp_path)


def test_duplicate_id(rt, make_bundle, tmp_path):
    b = make_bundle(["sleep", "30"])
    rt("create", "--bundle", b, "d")
    cp = rt("create", "--bundle", b, "d", check=False)
    assert cp.returncode == 1 and b"already exists" in cp.stderr
    assert rt.state("d")["status"] == "created"       # the existing one is untouched


def test_unknown_container(rt, tmp_path):
    for cmd in (["state"], ["start"], ["kill"], ["delete"], ["exec"]):
        args = cmd + ["ghost"] + (["true"] if cmd == ["exec"] else [])
        cp = rt(*args, check=False)
        want = 255 if cmd == ["exec"] else 1          # runc: every failure of exec itself is 255
        assert cp.returncode == want and b"container ghost does not exist" in cp.stderr, (cmd, cp.stderr)


def test_exec_sub_cgroup_bad_path(rt, make_bundle, tmp_path):
    """`exec --cgroup PATH` naming no existing sub-cgroup of the container's: one line (exec's status
    255, as runc), nothing started in it (tests/core/test_exec_subcgroup.py covers the rest)."""
    b = make_bundle(["sleep", "100"])
    rt("create", "--bundle", b, "subcg")
    cp = rt("exec", "--cgroup", "inner", "subcg", "true", check=False)
    assert cp.returncode == 255, cp
    err = cp.stderr.decode()
    assert "sub-cgroup inner does not exist" in err and len(err.strip().splitlines()) == 1, err
    assert rt.state("subcg")["status"] == "created"        # nothing was started in it
    rt("delete", "--force", "subcg")


def test_terminal_without_console_socket(rt, make_bundle, tmp_path):
    b = make_bundle(edit=lambda c: c["process"].__setitem__("terminal", True))
    fails(rt, ["create", "--bundle", b, "t"], "t", "cannot allocate tty", tmp_path)


@pytest.mark.parametrize("escaped", [False, True], ids=["no-escape", "with-escape"])
def test_tree_checks_with_and_without_escapes(tmp_path, escaped):
    """spec.check_tree skips its string checks when config.json has no \\u escape (no string can then
    hold a NUL or a lone surrogate): the checks that remain refuse the same documents either way."""
    import sys
    from pyrt_testenv import ROOT
    sys.path.insert(0, ROOT)
    from pyruntime import spec
    from pyruntime.errors import ConfigError
    base = '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"}, ' \
           '"annotations": {"k": %s%s}}'
    extra = ', "e": "a\\u00e9"' if escaped else ""
    deep = "[" * 70 + "]" * 70
    cases = {"NaN": "annotations.k", "[1.5, -Infinity]": "annotations.k[1]", "1e999": "annotations.k",
             deep: "nested more than"}
    if escaped:
        cases['"x\\u0000y"'] = "annotations.k: contains a NUL byte"
        cases['"\\ud800"'] = "annotations.k: contains an invalid unicode code point"
    for value, named in cases.items():
        (tmp_path / "config.json").write_text(base % (value, extra))
        with pytest.raises(ConfigError) as e:
            spec.load(str(tmp_path))
        assert named in str(e.value), (value, str(e.value))
    (tmp_path / "config.json").write_text(base % ('"fine"', extra))
    assert spec.load(str(tmp_path))["annotations"]["k"] == "fine"


_FIELDS = {"process.args[0]": lambda c: c["process"]["args"].__setitem__(0, "@HOSTILE@"),
           "process.env[0]": lambda c: c["process"]["env"].__setitem__(0, "@HOSTILE@"),
           "mounts[0].options[0]": lambda c: c["mounts"][0].__setitem__("options", ["@HOSTILE@"]),
           "hooks.prestart[0].path": lambda c: c.__setitem__("hooks", {"prestart": [{"path": "@HOSTILE@"}]})}
_BYTES = {"escaped NUL": (b"/bin/x\\u0000y", "contains a NUL byte"),
          "escaped surrogate": (b"/bin/x\\udc80", "contains an invalid unicode code point"),
          "raw NUL": (b"/bin/x\x00y", "(document): invalid JSON"),
          "raw control": (b"/bin/x\x01y", "(document): invalid JSON"),
          "UTF-8 surrogate": (b"/bin/x\xed\xa0\x80y", "(document): invalid JSON"),
          "overlong NUL": (b"/bin/x\xc0\x80y", "(document): invalid JSON"),
          "overlong slash": (b"/bin/x\xe0\x80\xafy", "(document): invalid JSON")}


@pytest.mark.parametrize("how", sorted(_BYTES))
@pytest.mark.parametrize("field", sorted(_FIELDS))
def test_nul_and_surrogates_never_reach_c_strings(rt, make_bundle, tmp_path, field, how):
    """Escaped, a NUL or a lone surrogate is refused naming its field; raw (a NUL byte, a control
    character, an encoded surrogate, an overlong encoding) the document is not JSON: either way one
    line, exit 1, nothing left, whatever the field (argv, env, mount data, a hook's path)."""
    b = make_bundle(["true"], edit=_FIELDS[field])
    cfg = os.path.join(b, "config.json")
    raw, expect = _BYTES[how]
    with open(cfg, "rb") as f:
        text = f.read()
    cgname = json.loads(text)["linux"]["cgroupsPath"].split("/", 1)[1]
    with open(cfg, "wb") as f:
        f.write(text.replace(b"@HOSTILE@", raw))
    if "escaped" in how:
        expect = f"config.json: {field}: {expect}"
    log = str(tmp_path / "log.json")
    cp = rt("create", "--bundle", b, "hostile", check=False, log=log)
    assert cp.returncode == 1 and cp.stderr.decode().count("\n") == 1, cp
    assert expect in cp.stderr.decode() and expect in open(log).read().splitlines()[-1], cp
    assert leftovers(rt, "hostile", cgname) == []
