"""The command line explains itself (help, man pages, completion from the same definitions) and behaves
like runc where clients look: command list, unknown commands, checkpoint/restore, `list` output,
`--debug` lines, a closed pipe."""
from __future__ import annotations

import argparse as full
import json
import os
import re
import subprocess
import sys
import time

import pytest
from pyrt_testenv import LAUNCHER, ROOT

from pyruntime import args as lean
from pyruntime.cli import COMMANDS, _global_parser, command_parser


def pyrt(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([LAUNCHER, *args], capture_output=True, text=True, timeout=60, **kw)


def _options(name: str) -> list[tuple[str, str]]:
    """(option, help) for every option of a command, `image`'s sub-commands included."""
    _, p = command_parser(name)
    if isinstance(p, lean.ArgumentParser):
        return [(a.names[0], a.help) for a in p.arguments if not a.positional]
    out = []
    for act in p._actions:
        if isinstance(act, full._SubParsersAction):
            for sp in act.choices.values():
                out += [(a.option_strings[0], a.help or "") for a in sp._actions
                        if a.option_strings and not isinstance(a, full._HelpAction)]
    return out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help_shown_by_both_forms(name):
    opts = _options(name)
    missing = [o for o, h in opts if not h.strip()]
    assert not missing, f"{name}: options without help: {missing}"
    a, b = pyrt(name, "--help"), pyrt("help", name)
    assert a.returncode == 0 and b.returncode == 0 and a.stdout == b.stdout, (a.stderr, b.stderr)
    if name != "image":
        assert a.stdout.startswith(f"NAME:\n   pyruntime {name} - ")
        assert "USAGE:" in a.stdout and "DESCRIPTION:" in a.stdout
        for opt, help_text in opts:
            assert opt in a.stdout and help_text.split()[0] in a.stdout, (opt, a.stdout)


def test_global_options_have_help():
    assert all(a.help for a in _global_parser().arguments if not a.positional)


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h"], ["help"], ["h"]])
def test_command_list(argv):
    r = pyrt(*argv)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    commands = text.split("COMMANDS:\n")[1].split("\n\n")[0].splitlines()
    listed = [line.split()[0] for line in commands if not line.startswith("     ")]   # one per line
    assert listed == sorted(COMMANDS) + ["help,"], commands
    assert not {"checkpoint", "restore"} & set(listed)
    for opt in ("--root DIR", "--log FILE", "--log-format FORMAT", "--debug", "--systemd-cgroup"):
        assert opt in text.split("GLOBAL OPTIONS:")[1]


def test_unknown_command_and_topic_are_runc_status_3():
    for argv in (["frobnicate"], ["help", "frobnicate"]):
        r = pyrt(*argv)
        assert r.returncode == 3 and r.stderr == "No help topic for 'frobnicate'\n" and r.stdout == ""


@pytest.mark.parametrize("name", ["checkpoint", "restore"])
def test_checkpoint_restore_clear_error(name, tmp_path):
    log = tmp_path / "log.json"
    r = pyrt("--log", str(log), "--log-format", "json", name, "--image-path", "/x", "c1")
    assert r.returncode == 1 and r.stderr == f"{name} is not supported by pyruntime (no CRIU support)\n"
    assert "Traceback" not in r.stderr
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["level"] == "error" and "no CRIU support" in last["msg"]


def test_usage_error_exit_1_names_the_flag():
    """runc answers a usage error with status 1 (podman and the shims treat 2 no differently, but
    scripts compare)."""
    r = pyrt("kill", "--bogus", "x")
    assert r.returncode == 1 and "--bogus" in r.stderr and "Traceback" not in r.stderr
    r = pyrt("state")
    assert r.returncode == 1 and "id" in r.stderr and "Traceback" not in r.stderr
    r = pyrt("--bogus")
    assert r.returncode == 1 and "--bogus" in r.stderr


def test_man_pages_and_completion_match_the_parsers(tmp_path):
    from pyruntime import docgen
    docgen.main(["--man", str(tmp_path / "man"), "--bash", str(tmp_path / "pyruntime.bash")])
    pages = sorted(os.listdir(tmp_path / "man"))
    assert pages == sorted(["pyruntime.8"] + [f"pyruntime-{n}.8" for n in COMMANDS])
    main_page = (tmp_path / "man/pyruntime.8").read_text()
    for n in COMMANDS:
        assert f"\\fB{n}\\fR" in main_page
        page = (tmp_path / f"man/pyruntime-{n}.8").read_text()
        assert page.startswith(f'.TH "PYRUNTIME-{n.upper()}" "8"') and ".SH SYNOPSIS" in page
        for opt, _ in _options(n):
            assert opt.replace("-", "\\-") in page, (n, opt)
    if subprocess.run(["sh", "-c", "command -v man"], capture_output=True).returncode == 0:
        r = subprocess.run(["man", "-l", str(tmp_path / "man/pyruntime-exec.8")], capture_output=True, text=True,
                           env={**os.environ, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": "0"})
        plain = re.sub(".\b", "", r.stdout).replace("\u2010", "-")      # no overstrike bold, plain hyphens
        assert r.returncode == 0 and "--preserve-fds N" in plain, r.stderr
    # the completion script: what bash offers for a few command lines
    script = tmp_path / "pyruntime.bash"
    rootdir = tmp_path / "root"

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        prog = (f"source {script}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
                f"COMP_CWORD={len(words) - 1}; _pyruntime; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        env = {"PATH": f"{os.path.dirname(LAUNCHER)}:/usr/bin:/bin"}
        r = subprocess.run(["bash", "--norc", "-c", prog], capture_output=True, text=True, env=env, timeout=30)
        assert r.returncode == 0, r.stderr
        return [w for w in r.stdout.splitlines() if w]

    assert complete("pyruntime de") == ["delete"]
    assert complete("pyruntime --root /x st") == ["start", "state"]
    assert "--preserve-fds" in complete("pyruntime exec --pre")
    assert complete("pyruntime list --format ") == ["table", "json"]
    assert complete("pyruntime --log-format j") == ["json"]
    assert complete("pyruntime image un") == ["unpack"]
    os.makedirs(rootdir / "box1")
    json.dump({"id": "box1"}, open(rootdir / "box1/state.json", "w"))   # not loadable: list skips it
    assert complete(f"pyruntime --root {rootdir} kill b") == []


def test_list_json_empty_is_null_and_table_aligned(rt, make_bundle):
    r = rt("list", "--format", "json")
    assert r.stdout == b"null\n"           # what runc 1.1.5 prints for no containers
    long_id = "c" * 64                     # containerd's ids
    rt("create", "--bundle", make_bundle(["sleep", "30"]), long_id)
    rt("create", "--bundle", make_bundle(["sleep", "30"]), "s")
    lines = rt.out("list").splitlines()
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    cols = [lines[0].index(h) for h in ("PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    for line in lines[1:]:
        # every column starts where its header does, after at least one blank
        for c in cols:
            assert line[c - 1] == " " and line[c] != " ", (lines, c)
    assert [json.loads(rt.out("list", "--format", "json"))[i]["id"] for i in (0, 1)].count(long_id) == 1


def test_debug_logs_the_steps(rt, make_bundle, tmp_path):
    log = tmp_path / "debug.log"
    rt("--debug", "run", "--bundle", make_bundle(["true"]), "dbg", log=str(log))
    msgs = [json.loads(line)["msg"] for line in log.read_text().splitlines()
            if json.loads(line)["level"] == "debug"]
    steps = ["create dbg: bundle", "create dbg: spawned init pid", "create dbg: init pid", "start dbg: init pid",
             "run dbg: process pid", "delete dbg: was stopped"]
    found = [next((i for i, m in enumerate(msgs) if m.startswith(s)), None) for s in steps]
    assert None not in found and found == sorted(found), msgs
    # exec: its steps too; without --log, runc's text lines on stderr
    rt("run", "-d", "--bundle", make_bundle(["sleep", "30"]), "dbgx")
    err = rt("--debug", "exec", "dbgx", "true").stderr.decode()
    assert 'level=debug msg="exec dbgx: spawned pid' in err and 'msg="exec dbgx: pid' in err, err
    assert "exited, status 0" in err, err
    # without --debug: no debug lines
    rt("run", "--bundle", make_bundle(["true"]), "quiet", log=str(tmp_path / "quiet.log"))
    assert not (tmp_path / "quiet.log").exists() or "debug" not in (tmp_path / "quiet.log").read_text()


def test_events_into_closed_pipe_ends_quietly(rt, make_bundle):
    rt("run", "-d", "--bundle", make_bundle(["sleep", "30"]), "ev")
    p = subprocess.Popen([rt.binary, "--root", rt.root, "events", "--interval", "100ms", "ev"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline()
    assert json.loads(first)["type"] == "stats"
    p.stdout.close()                       # `| head -1`: the reader is gone
    deadline = time.monotonic() + 15
    while p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if p.poll() is None:
        p.kill()
        p.wait()
        pytest.fail("events kept running after its reader left")
    err = p.stderr.read().decode()
    assert err == "" and p.returncode == 0, err


def test_help_costs_nothing_on_the_hot_path():
    """`state` must not import the help machinery (helptext, docgen) nor anything the rules forbid."""
    code = ("import sys; sys.argv=['pyruntime','--root','/nonexistent-pyrt','state','x']\n"
            "from pyruntime.cli import main\nmain()\n"
            "bad = {'pyruntime.helptext','pyruntime.docgen','argparse','re','json','enum','typing'} & set(sys.modules)\n"
            "print(sorted(bad))")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0]=[{ROOT!r}]\n" + code],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip().splitlines()[-1] == "[]", (r.stdout, r.stderr)


def test_short_commands_exit_with_all_their_output(rt, make_bundle, tmp_path):
    """state, kill, start, delete, list and --version end with _exit (cli.launch: no interpreter
    finalization): what they wrote must still all be there, through a pipe and into a file, with
    their exit status and their error line."""
    for i in range(12):      # list: a table longer than one small write
        rt("run", "-d", "--bundle", make_bundle(["sleep", "30"]), f"quick-{i:02d}")
    piped = subprocess.run([rt.binary, "--root", rt.root, "state", "quick-00"], capture_output=True, timeout=30)
    assert piped.returncode == 0 and json.loads(piped.stdout)["status"] == "running", piped
    out = tmp_path / "out"
    with open(out, "wb") as f:
        cp = subprocess.run([rt.binary, "--root", rt.root, "list", "-q"], stdout=f, timeout=30)
    assert cp.returncode == 0 and out.read_text().split() == [f"quick-{i:02d}" for i in range(12)]
    with open(out, "wb") as f:
        cp = subprocess.run([rt.binary, "--version"], stdout=f, timeout=30)
    assert cp.returncode == 0 and out.read_text().startswith("pyruntime version ") and \
        out.read_text().endswith("\n")
    gone = subprocess.run([rt.binary, "--root", rt.root, "state", "quick-none"], capture_output=True, timeout=30)
    assert (gone.returncode, gone.stdout, gone.stderr) == (1, b"", b"container quick-none does not exist\n")
    bad = subprocess.run([rt.binary, "--root", rt.root, "kill", "quick-00", "NOSUCH"], capture_output=True,
                         timeout=30)
    assert bad.returncode == 1 and bad.stderr.decode().count("\n") == 1, bad
    for i in range(12):
        cp = subprocess.run([rt.binary, "--root", rt.root, "delete", "--force", f"quick-{i:02d}"],
                            capture_output=True, timeout=30)
        assert (cp.returncode, cp.stderr) == (0, b""), cp
