"""Layering (issue 11): the CLI layer (cli.py, commands/) is imported by nothing below it, and no
module reaches into another's private names (execproc.py once took container.py's _helpers and a
class from commands/run.py)."""
from __future__ import annotations

import ast
import glob
import os

from pyrt_testenv import ROOT

CLI = {"pyruntime.cli", "pyruntime.commands", "pyruntime.docgen", "pyruntime.__main__"}


def _modules():
    for p in glob.glob(os.path.join(ROOT, "pyruntime", "**", "*.py"), recursive=True):
        if "__pycache__" in p:
            continue
        rel = os.path.relpath(p, ROOT)[:-3].replace(os.sep, ".")
        name = rel[:-9] if rel.endswith(".__init__") else rel
        yield name, ast.parse(open(p).read())


def _imports(name: str, tree: ast.AST):
    """(imported module, imported names) for every import, relative ones resolved."""
    pkg = name.split(".")
    is_pkg = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod, [a.name for a in node.names]


def test_cli_layer_imported_by_nothing():
    bad = []
    for name, tree in _modules():
        if any(name == c or name.startswith(c + ".") for c in CLI):
            continue
        for mod, names in _imports(name, tree):
            targets = [mod] + [f"{mod}.{n}" for n in names]
            if any(t == c or t.startswith(c + ".") for t in targets for c in CLI):
                bad.append(f"{name} imports {mod} {names}")
    assert not bad, bad


def test_no_private_imports_across_modules():
    bad = []
    for name, tree in _modules():
        for mod, names in _imports(name, tree):
            if not mod.startswith("pyruntime") or mod == name:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__") and n != "_core"
                       and not mod.startswith(name + ".")]
            # a package's own submodules may share its private helpers (cgroups/, image/)
            if private and mod.rsplit(".", 1)[0] != name.rsplit(".", 1)[0]:
                bad.append(f"{name} imports {private} from {mod}")
    assert not bad, bad
