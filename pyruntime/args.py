"""A small command-line parser with argparse's ``add_argument`` vocabulary (the subset the
subcommands use), written by hand because importing argparse (and through it re, enum, gettext)
costs more than the rest of a `state`, `kill` or `delete` call together.

Supported: long and short options (``--flag``, ``--flag=value``, ``-f value``, ``-f``), actions
``store``/``store_true``/``append``, ``type``, ``default``, ``choices``, ``--`` to end options,
positionals with ``nargs`` None, ``"?"``, ``"*"`` or ``REMAINDER`` (which stops option parsing, as
runc's ``exec ID CMD ARGS...`` needs).  Errors raise :class:`UsageError`; the CLI prints them and
exits 1 like runc does.  ``-h``/``--help`` raises :class:`HelpRequested`; :meth:`format_help` renders
runc's NAME / USAGE / DESCRIPTION / OPTIONS layout from the same ``help=`` strings the man pages and
the bash completion are generated from (pyruntime/docgen.py).  A help string is a constant: it costs
nothing until printed.
"""

REMAINDER = "..."


class UsageError(Exception):
    pass


class HelpRequested(UsageError):
    """``-h``/``--help`` was given: print the parser's help on stdout and exit 0 (no usage error)."""


class Namespace:
    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)

    def __repr__(self) -> str:
        return f"Namespace({self.__dict__!r})"


class _Arg:
    __slots__ = ("names", "dest", "action", "type", "default", "choices", "nargs", "help", "positional",
                 "metavar")

    def __init__(self, names: tuple[str, ...], action: str = "store", type=None, default=None, choices=None,
                 nargs=None, help: str = "", dest: str | None = None, metavar: str | None = None,
                 required: bool = False) -> None:
        self.names = names
        self.positional = not names[0].startswith("-")
        long = next((n for n in names if n.startswith("--")), names[0])
        self.dest = dest or long.lstrip("-").replace("-", "_")
        self.action, self.type, self.choices, self.nargs, self.help = action, type, choices, nargs, help
        self.metavar = metavar
        if default is None and action == "store_true":
            default = False
        elif default is None and action == "append":
            default = []
        self.default = default


class ArgumentParser:
    def __init__(self, prog: str = "", description: str = "", add_help: bool = True) -> None:
        self.prog, self.description = prog, description
        self._args: list[_Arg] = []
        self._opts: dict[str, _Arg] = {}

    def add_argument(self, *names: str, **kw) -> None:
        a = _Arg(names, **kw)
        self._args.append(a)
        if not a.positional:
            for n in names:
                self._opts[n] = a

    @property
    def arguments(self) -> list[_Arg]:
        """The declared arguments, in order (for help, man pages and completion)."""
        return self._args

    def usage(self) -> str:
        return f"usage: {self.synopsis()}\n"

    def synopsis(self) -> str:
        """``PROG [command options] <id> [signal]``: positionals named as runc names them."""
        parts = [self.prog]
        if any(not a.positional for a in self._args):
            parts.append("[command options]")
        parts += [positional_name(a) for a in self._args if a.positional]
        return " ".join(parts)

    def format_help(self, details: str = "") -> str:
        """runc's help layout: NAME, USAGE, DESCRIPTION (``details``), ARGUMENTS, OPTIONS."""
        out = [f"NAME:\n   {self.prog} - {self.description}\n", f"USAGE:\n   {self.synopsis()}\n"]
        if details:
            out.append("DESCRIPTION:\n" + "".join(f"   {ln}".rstrip() + "\n" for ln in details.strip("\n").split("\n")))
        pos = [(positional_name(a), a.help) for a in self._args if a.positional and a.help]
        if pos:
            out.append("ARGUMENTS:\n" + table(pos))
        opts = [(option_label(a), option_help(a)) for a in self._args if not a.positional]
        if opts:
            out.append("OPTIONS:\n" + table(opts + [("--help, -h", "show help")]))
        return "\n".join(out)

    def _value(self, a: _Arg, raw: str):
        v = raw
        if a.type is not None:
            try:
                v = a.type(raw)
            except (TypeError, ValueError):
                raise UsageError(f"{self.prog}: argument {a.names[0]}: invalid value {raw!r}") from None
        if a.choices is not None and v not in a.choices:
            raise UsageError(f"{self.prog}: argument {a.names[0]}: invalid choice {raw!r} "
                             f"(choose from {', '.join(map(str, a.choices))})")
        return v

    def parse_args(self, argv: list[str]) -> Namespace:
        ns = Namespace(**{a.dest: (list(a.default) if isinstance(a.default, list) else a.default)
                          for a in self._args})
        positionals = [a for a in self._args if a.positional]
        words: list[str] = []
        i = 0
        only_positional = False
        while i < len(argv):
            w = argv[i]
            i += 1
            if only_positional or w == "-" or not w.startswith("-"):
                words.append(w)
                # a REMAINDER positional swallows everything after the positionals before it
                if sum(1 for p in positionals if p.nargs != REMAINDER) <= len(words) and \
                        any(p.nargs == REMAINDER for p in positionals):
                    only_positional = True
                continue
            if w == "--":
                only_positional = True
                continue
            if w in ("-h", "--help") and w not in self._opts:
                raise HelpRequested(self.prog)
            name, eq, inline = w.partition("=") if w.startswith("--") else (w, "", "")
            a = self._opts.get(name)
            if a is None and not w.startswith("--") and len(w) > 2 and w[:2] in self._opts:
                a, inline, eq = self._opts[w[:2]], w[2:], "="     # -pFILE
            if a is None:
                raise UsageError(f"{self.prog}: unrecognized argument: {w}")
            if a.action == "store_true":
                setattr(ns, a.dest, True)
                continue
            if eq:
                raw = inline
            else:
                if i >= len(argv):
                    raise UsageError(f"{self.prog}: argument {name}: expected a value")
                raw = argv[i]
                i += 1
            v = self._value(a, raw)
            if a.action == "append":
                getattr(ns, a.dest).append(v)
            else:
                setattr(ns, a.dest, v)
        for a in positionals:
            if a.nargs == REMAINDER or a.nargs == "*":
                setattr(ns, a.dest, [self._value(a, w) for w in words] if a.type else list(words))
                words = []
            elif a.nargs == "?":
                if words:
                    setattr(ns, a.dest, self._value(a, words.pop(0)))
            else:
                if not words:
                    raise UsageError(f"{self.prog}: the following argument is required: {a.dest}")
                setattr(ns, a.dest, self._value(a, words.pop(0)))
        if words:
            raise UsageError(f"{self.prog}: unrecognized arguments: {' '.join(words)}")
        return ns


# --- help rendering (only runs when help is printed) ---------------------------------------------

def positional_name(a: _Arg) -> str:
    """``<container-id>``, ``[signal]``, ``[command...]``: required in <>, optional in []."""
    name = a.metavar or ("container-id" if a.dest == "id" else a.dest.replace("_", "-"))
    if a.nargs is None:
        return f"<{name}>"
    return f"[{name}]" if a.nargs == "?" else f"[{name}...]"


def option_label(a: _Arg) -> str:
    """``--bundle DIR, -b DIR`` (long names first, as runc lists them)."""
    names = sorted(a.names, key=lambda n: (not n.startswith("--"), a.names.index(n)))
    if a.action == "store_true":
        return ", ".join(names)
    value = a.metavar or "value"
    return ", ".join(f"{n} {value}" for n in names)


def option_help(a: _Arg) -> str:
    """The help text with %(default)s filled in, the choices and a meaningful default appended."""
    text = a.help.replace("%(default)s", str(a.default)) if a.help else ""
    if a.choices is not None and "%(" not in a.help and not any(str(c) in text for c in a.choices):
        text += f" (one of: {', '.join(map(str, a.choices))})"
    if a.default not in (None, False, [], "", 0) and "default" not in text and "%(default)s" not in a.help:
        text += f" (default: {a.default})"
    return text.strip()


def table(rows: list[tuple[str, str]]) -> str:
    """Two indented columns, the second aligned; long help wraps under itself."""
    width = max(len(k) for k, _ in rows) + 2
    out = []
    for k, v in rows:
        lines = _wrap(v, max(60, 110 - width - 3))
        out.append(f"   {k.ljust(width)}{lines[0]}".rstrip() + "\n")
        out += [f"   {' ' * width}{ln}\n" for ln in lines[1:]]
    return "".join(out)


def _wrap(text: str, width: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    lines.append(cur)
    return lines
