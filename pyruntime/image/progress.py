"""A one-line progress bar on stderr for large layers, only when stderr is a terminal."""
from __future__ import annotations

import sys
import time

MIB = 1 << 20


class Progress:
    THRESHOLD = 8 * MIB          # smaller layers go by too fast to be worth a bar
    WIDTH = 28

    def __init__(self, stream=None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        if enabled is None:
            try:
                enabled = self.stream.isatty()
            except (AttributeError, ValueError):
                enabled = False
        self.enabled = enabled
        self._drawn = False

    def layer(self, n: int, m: int, size: int | None):
        """A callback taking byte counts for layer ``n`` of ``m``, or None when no bar is due."""
        if not self.enabled or not size or size < self.THRESHOLD:
            return None
        state = {"done": 0, "last": 0.0}

        def update(k: int) -> None:
            state["done"] += k
            now = time.monotonic()
            if now - state["last"] < 0.1 and state["done"] < size:
                return
            state["last"] = now
            done = min(state["done"], size)
            fill = int(self.WIDTH * done / size)
            bar = "=" * fill + (">" if fill < self.WIDTH else "") + " " * max(0, self.WIDTH - fill - 1)
            self.stream.write(f"\rlayer {n}/{m} [{bar}] {done / MIB:7.1f}/{size / MIB:.1f} MiB")
            self.stream.flush()
            self._drawn = True
        return update

    def end(self) -> None:
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False
