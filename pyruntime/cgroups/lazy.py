"""Modules the drivers need only when changing limits, imported on first use.

``state``, ``kill`` and ``delete`` rebuild a manager from state.json on every call and never validate
resources or log warnings, so they should not pay for importing the validator (re, dataclasses).
"""
from __future__ import annotations



class _Lazy:
    def __init__(self, name: str) -> None:
        self._name = name
        self._mod: object | None = None

    def __getattr__(self, attr: str):
        if self._mod is None:
            # __import__, not importlib.import_module: the importlib package (warnings, types) is
            # itself an import on every lifecycle call
            self._mod = __import__(self._name, fromlist=["_"])
        return getattr(self._mod, attr)


res = _Lazy("pyruntime.cgroups.resources")
log = _Lazy("pyruntime.log")
