"""Modules the drivers need only when changing limits, imported on first use.

``state``, ``kill`` and ``delete`` rebuild a manager from state.json on every call and never validate
resources or log warnings, so they should not pay for importing the validator (re, dataclasses).
"""
from __future__ import annotations

import importlib
from types import ModuleType


class _Lazy:
    def __init__(self, name: str) -> None:
        self._name = name
        self._mod: ModuleType | None = None

    def __getattr__(self, attr: str):
        if self._mod is None:
            self._mod = importlib.import_module(self._name)
        return getattr(self._mod, attr)


res = _Lazy("pyruntime.cgroups.resources")
log = _Lazy("pyruntime.log")
