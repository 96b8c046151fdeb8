"""Man pages and bash completion, generated from the parsers the commands really use.

``python -m pyruntime.docgen --man DIR --bash FILE`` (the Makefile runs it at build time) writes
``pyruntime.8``, one ``pyruntime-COMMAND.8`` per subcommand and a bash completion script.  Everything
comes from ``cli.command_parser`` (each command's ``configure``, ``HELP`` and ``help=`` strings) and
pyruntime/helptext.py, so the pages, the completion and ``pyruntime CMD --help`` cannot drift apart.
Not imported by any command.
"""
from __future__ import annotations

import argparse as full
import datetime
import os
import sys

from . import SPEC_VERSION, __version__
from . import args as lean
from .cli import COMMANDS, _global_parser, command_parser
from .helptext import DETAILS, GLOBAL


class Opt:
    """One option or positional, whichever parser declared it."""

    def __init__(self, names: list[str], value: str | None, help: str, choices=None) -> None:
        self.names, self.value, self.help, self.choices = names, value, help, choices


class Section:
    """A command (or an `image` sub-command): its synopsis, options and positionals."""

    def __init__(self, synopsis: str, summary: str, opts: list[Opt], positionals: list[Opt]) -> None:
        self.synopsis, self.summary, self.opts, self.positionals = synopsis, summary, opts, positionals


def _lean_section(p: lean.ArgumentParser) -> Section:
    opts = [Opt(sorted(a.names, key=lambda n: not n.startswith("--")),
                None if a.action == "store_true" else (a.metavar or "value"), lean.option_help(a), a.choices)
            for a in p.arguments if not a.positional]
    pos = [Opt([lean.positional_name(a)], None, a.help) for a in p.arguments if a.positional]
    return Section(p.synopsis(), p.description, opts, pos)


def _full_sections(p: full.ArgumentParser) -> list[tuple[str, Section]]:
    """The real argparse (`image`): one section per sub-command."""
    out = []
    for act in p._actions:
        if isinstance(act, full._SubParsersAction):
            helps = {c.dest: c.help for c in act._choices_actions}
            for name, sp in act.choices.items():
                opts, pos = [], []
                for a in sp._actions:
                    if isinstance(a, full._HelpAction):
                        continue
                    if a.option_strings:
                        val = None if a.nargs == 0 else (a.metavar or a.dest.upper())
                        opts.append(Opt(sorted(a.option_strings, key=lambda n: not n.startswith("--")), val,
                                        a.help or "", a.choices))
                    else:
                        pos.append(Opt([a.metavar or a.dest.upper()], None, a.help or ""))
                syn = " ".join([sp.prog] + (["[options]"] if opts else []) + [o.names[0] for o in pos])
                out.append((name, Section(syn, helps.get(name, ""), opts, pos)))
    return out


# --- roff ------------------------------------------------------------------------------------------

def _esc(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def _paragraphs(text: str) -> str:
    """Blank lines split paragraphs; lines indented by 4 spaces are shown as typed (examples)."""
    out, verbatim = [], False
    for line in text.strip("\n").split("\n"):
        if line.startswith("    "):
            if not verbatim:
                out += [".PP", ".RS 4", ".nf"]
                verbatim = True
            out.append(_esc(line[4:]))
            continue
        if verbatim:
            out += [".fi", ".RE"]
            verbatim = False
        out.append(".PP" if not line.strip() else _esc(line))
    if verbatim:
        out += [".fi", ".RE"]
    return "\n".join(out) + "\n"


def _opt_items(opts: list[Opt]) -> str:
    out = []
    for o in opts:
        label = ", ".join(f"\\fB{_esc(n)}\\fR" + (f" \\fI{_esc(o.value)}\\fR" if o.value else "") for n in o.names)
        out += [".TP", label, _esc(o.help or "")]
    return "\n".join(out) + "\n"


def _header(name: str, summary: str) -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")     # reproducible builds
    date = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch else datetime.date.today()
    return (f'.TH "{name.upper()}" "8" "{date:%B %Y}" "pyruntime {__version__}" "System Administration"\n'
            f".SH NAME\n{_esc(name)} \\- {_esc(summary)}\n")


def man_main() -> str:
    g = _global_parser()
    cmds = []
    for name in sorted(COMMANDS):
        mod, _ = command_parser(name)
        cmds += [".TP", f"\\fB{name}\\fR", _esc(getattr(mod, "HELP", "")) + f" (see \\fBpyruntime\\-{name}\\fR(8))"]
    cmds += [".TP", "\\fBhelp\\fR [\\fICOMMAND\\fR]", "the list of commands, or the help of one command"]
    return (_header("pyruntime", GLOBAL["name"])
            + ".SH SYNOPSIS\n\\fBpyruntime\\fR [\\fIglobal options\\fR] \\fIcommand\\fR [\\fIcommand options\\fR] "
              "[\\fIarguments\\fR...]\n"
            + ".SH DESCRIPTION\n" + _paragraphs(GLOBAL["description"])
            + f".PP\nImplements the OCI runtime specification {SPEC_VERSION}.\n"
            + ".SH COMMANDS\n" + "\n".join(cmds) + "\n"
            + ".SH GLOBAL OPTIONS\n" + _opt_items(_lean_section(g).opts)
            + ".SH FILES\n.TP\n\\fI/run/pyruntime\\fR\nthe default \\-\\-root: one directory of state per container\n"
            + ".SH SEE ALSO\n" + ",\n".join(f"\\fBpyruntime\\-{n}\\fR(8)" for n in sorted(COMMANDS))
            + ",\n\\fBrunc\\fR(8)\n")


def man_command(name: str) -> str:
    mod, p = command_parser(name)
    summary = getattr(mod, "HELP", "")
    page = _header(f"pyruntime-{name}", summary)
    if isinstance(p, lean.ArgumentParser):
        s = _lean_section(p)
        page += f".SH SYNOPSIS\n\\fB{_esc(s.synopsis)}\\fR\n"
        page += ".SH DESCRIPTION\n" + _paragraphs(DETAILS.get(name) or summary)
        if any(o.help for o in s.positionals):
            page += ".SH ARGUMENTS\n" + _opt_items(s.positionals)
        if s.opts:
            page += ".SH OPTIONS\n" + _opt_items(s.opts)
    else:
        subs = _full_sections(p)
        page += ".SH SYNOPSIS\n" + "\n.br\n".join(f"\\fB{_esc(s.synopsis)}\\fR" for _, s in subs) + "\n"
        page += ".SH DESCRIPTION\n" + _paragraphs(DETAILS.get(name) or summary)
        page += ".SH COMMANDS\n"
        for sub, s in subs:
            page += f'.SS "{sub}"\n{_esc(s.summary)}\n.PP\n\\fB{_esc(s.synopsis)}\\fR\n'
            page += _opt_items([o for o in s.positionals if o.help] + s.opts)
    page += ".PP\nThe global options (\\fB\\-\\-root\\fR, \\fB\\-\\-log\\fR, \\fB\\-\\-debug\\fR ...) go before " \
            f"the command: see \\fBpyruntime\\fR(8).\n.SH SEE ALSO\n\\fBpyruntime\\fR(8), \\fBrunc\\-{name}\\fR(8)\n"
    return page


# --- bash completion -------------------------------------------------------------------------------

def _words(opts: list[Opt]) -> str:
    return " ".join(n for o in opts for n in o.names)


def _valued(opts: list[Opt]) -> str:
    return "|".join(n for o in opts if o.value for n in o.names)


def bash_completion() -> str:
    """Commands, their options and values (choices, directories, files) and container ids from
    `pyruntime --root R list -q` for the commands that take one."""
    g = _lean_section(_global_parser())
    cases, takes_id = [], []
    for name in sorted(COMMANDS):
        _, p = command_parser(name)
        if isinstance(p, lean.ArgumentParser):
            s = _lean_section(p)
            if s.positionals and s.positionals[0].names[0] == "<container-id>" and name not in ("create", "run"):
                takes_id.append(name)
            choice = [f"            {'|'.join(o.names)}) COMPREPLY=($(compgen -W '{' '.join(map(str, o.choices))}' "
                      f"-- \"$cur\")); return;;" for o in s.opts if o.choices]
            dirs = "|".join(n for o in s.opts if o.value == "DIR" for n in o.names)
            cases.append(f"        {name})\n            opts='{_words(s.opts)} --help'\n"
                         f"            valued='{_valued(s.opts) or '-'}'\n"
                         + ("            case \"$prev\" in\n" + "\n".join(choice) + "\n            esac\n" if choice else "")
                         + (f"            dirs='{dirs}'\n" if dirs else "") + "            ;;")
        else:
            subs = _full_sections(p)
            cases.append(f"        {name})\n            if [ \"$sub\" = '' ]; then COMPREPLY=($(compgen -W "
                         f"'{' '.join(n for n, _ in subs)}' -- \"$cur\")); return; fi\n"
                         f"            opts='{' '.join(sorted({w for _, s in subs for o in s.opts for w in o.names}))} --help'\n"
                         f"            valued='{'|'.join(sorted({w for _, s in subs for o in s.opts if o.value for w in o.names})) or '-'}'\n"
                         f"            ;;")
    return f"""# bash completion for pyruntime {__version__} -- generated by pyruntime/docgen.py, do not edit
_pyruntime() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    local i w cmd='' sub='' root='' opts valued dirs=''
    local gvalued='{_valued(g.opts)}'
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        if [ -z "$cmd" ]; then
            case "$w" in
                --root) root=${{COMP_WORDS[i+1]}}; ((i++));;
                --root=*) root=${{w#--root=}};;
                -*=*) ;;
                {_valued(g.opts)}) ((i++));;
                -*) ;;
                *) cmd=$w;;
            esac
        elif [ "$cmd" = image ] && [ -z "$sub" ] && [ "${{w:0:1}}" != - ]; then
            sub=$w
        fi
    done
    if [ -z "$cmd" ]; then
        case "$prev" in
            --log-format) COMPREPLY=($(compgen -W 'text json' -- "$cur")); return;;
            --rootless) COMPREPLY=($(compgen -W 'true false auto' -- "$cur")); return;;
            --root) COMPREPLY=($(compgen -d -- "$cur")); return;;
            --log|--criu) COMPREPLY=($(compgen -f -- "$cur")); return;;
        esac
        if [ "${{cur:0:1}}" = - ]; then
            COMPREPLY=($(compgen -W '{_words(g.opts)}' -- "$cur"))
        else
            COMPREPLY=($(compgen -W '{' '.join(sorted(COMMANDS))} help' -- "$cur"))
        fi
        return
    fi
    case "$cmd" in
{chr(10).join(cases)}
        help|h) COMPREPLY=($(compgen -W '{' '.join(sorted(COMMANDS))}' -- "$cur")); return;;
        *) return;;
    esac
    if [ -n "$prev" ] && [[ "$prev" == -* ]] && [[ "|$valued|" == *"|$prev|"* ]]; then
        if [[ "|$dirs|" == *"|$prev|"* ]]; then COMPREPLY=($(compgen -d -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
        return
    fi
    if [ "${{cur:0:1}}" = - ]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi
    case "$cmd" in
        {'|'.join(takes_id)})
            COMPREPLY=($(compgen -W "$(pyruntime ${{root:+--root "$root"}} list -q 2>/dev/null)" -- "$cur"));;
    esac
}}
complete -F _pyruntime pyruntime
"""


def main(argv: list[str] | None = None) -> int:
    ap = full.ArgumentParser(prog="python -m pyruntime.docgen", description=__doc__.split("\n")[0])
    ap.add_argument("--man", metavar="DIR", help="write pyruntime.8 and pyruntime-COMMAND.8 here")
    ap.add_argument("--bash", metavar="FILE", help="write the bash completion script here")
    a = ap.parse_args(argv)
    if a.man:
        os.makedirs(a.man, exist_ok=True)
        pages = {"pyruntime.8": man_main()} | {f"pyruntime-{n}.8": man_command(n) for n in COMMANDS}
        for fname, text in pages.items():
            with open(os.path.join(a.man, fname), "w") as f:
                f.write(text)
    if a.bash:
        os.makedirs(os.path.dirname(os.path.abspath(a.bash)), exist_ok=True)
        with open(a.bash, "w") as f:
            f.write(bash_completion())
    return 0


if __name__ == "__main__":
    sys.exit(main())
