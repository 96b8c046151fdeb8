"""A small command-line parser with argparse's ``add_argument`` vocabulary (the subset the
subcommands use), written by hand because importing argparse (and through it re, enum, gettext)
costs more than the rest of a `state`, `kill` or `delete` call together.

Supported: long and short options (``--flag``, ``--flag=value``, ``-f value``, ``-f``), actions
``store``/``store_true``/``append``, ``type``, ``default``, ``choices``, ``--`` to end options,
positionals with ``nargs`` None, ``"?"``, ``"*"`` or ``REMAINDER`` (which stops option parsing, as
runc's ``exec ID CMD ARGS...`` needs).  Errors raise :class:`UsageError`; the CLI prints them and
exits 2 like argparse does.
"""
from __future__ import annotations

REMAINDER = "..."


class UsageError(Exception):
    pass


class Namespace:
    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)

    def __repr__(self) -> str:
        return f"Namespace({self.__dict__!r})"


class _Arg:
    __slots__ = ("names", "dest", "action", "type", "default", "choices", "nargs", "help", "positional")

    def __init__(self, names: tuple[str, ...], action: str = "store", type=None, default=None, choices=None,
                 nargs=None, help: str = "", dest: str | None = None, metavar: str | None = None,
                 required: bool = False) -> None:
        self.names = names
        self.positional = not names[0].startswith("-")
        long = next((n for n in names if n.startswith("--")), names[0])
        self.dest = dest or long.lstrip("-").replace("-", "_")
        self.action, self.type, self.choices, self.nargs, self.help = action, type, choices, nargs, help
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

    def usage(self) -> str:
        parts = [f"usage: {self.prog}"]
        for a in self._args:
            if a.positional:
                parts.append(a.dest.upper() if a.nargs is None else f"[{a.dest.upper()}...]")
            else:
                parts.append(f"[{a.names[0]}{'' if a.action == 'store_true' else ' ' + a.dest.upper()}]")
        return " ".join(parts) + (f"\n{self.description}" if self.description else "") + "\n"

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
                raise UsageError(self.usage())
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
