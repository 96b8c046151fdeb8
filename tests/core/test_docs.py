"""docs/ARCHITECTURE.md names every module (issue 11): a new module without a line in its "Module
index" fails here, with the line to add."""
from __future__ import annotations

import glob
import os

from pyrt_testenv import ROOT


def test_architecture_names_every_module():
    doc = open(os.path.join(ROOT, "docs", "ARCHITECTURE.md")).read()
    files = [os.path.relpath(p, ROOT) for pattern in ("pyruntime/**/*.py", "_native/*.c", "_native/*.h",
                                                      "_native/*.py", "_native/cdef/*.h", "_native/trampoline/*.c")
             for p in glob.glob(os.path.join(ROOT, pattern), recursive=True) if "__pycache__" not in p]
    missing = [f for f in sorted(files) if f"`{f}`" not in doc]
    assert not missing, ("docs/ARCHITECTURE.md, section 'Module index', lacks a line for: " + ", ".join(missing)
                         + " (add `  - `PATH`: what it does` under its directory)")


def test_no_stale_exec_fifo_or_host_devnull():
    """The init waits on exec.sock (not runc's exec.fifo) and masks bind the container's verified
    /dev/null, not the host's: no doc or comment may say otherwise."""
    bad = []
    for pattern in ("pyruntime/**/*.py", "_native/**/*.[ch]", "docs/*.md", "README.md"):
        for p in glob.glob(os.path.join(ROOT, pattern), recursive=True):
            text = open(p, errors="replace").read()
            for phrase in ("exec.fifo until", "wait on exec.fifo", "host /dev/null", "host's /dev/null",
                           "checked on the\n * host"):
                if phrase in text:
                    bad.append(f"{os.path.relpath(p, ROOT)}: {phrase!r}")
    assert not bad, bad
