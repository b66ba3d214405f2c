"""Progress on stderr: phase names and a counter, so a long run shows where it is."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``phase()`` announces a phase ``[n/N] name``; ``count()`` updates its counter.

    On a terminal the counter rewrites one line; otherwise (CI logs, the smoke test) it prints at most
    one line every ``every_s`` seconds, plus the final value.
    """

    def __init__(self, total_phases: int, stream: TextIO | None = None, every_s: float = 2.0) -> None:
        self.total = total_phases
        self.n = 0
        self.stream: TextIO = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s
        self.t0 = time.monotonic()
        self._phase_t0 = self.t0
        self._last = 0.0
        self._open_line = False
        self._again = False

    def again(self) -> None:
        """The next phase() repeats the current phase (same number, marked "again")."""
        self.n -= 1
        self._again = True

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _end_line(self) -> None:
        if self._open_line:
            self._write("\n")
            self._open_line = False

    def phase(self, name: str) -> None:
        self._end_line()
        self.n += 1
        self._phase_t0 = time.monotonic()
        suffix = " (again)" if self._again else ""
        self._again = False
        self._write(f"[{self.n}/{self.total}] {name}{suffix}  (t+{self._phase_t0 - self.t0:.0f}s)\n")

    def note(self, text: str) -> None:
        self._end_line()
        self._write(f"      {text}\n")

    def count(self, done: float, total: float | None = None, unit: str = "", final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < (0.2 if self.tty else self.every_s):
            return
        self._last = now
        of = f"/{total:,.0f}" if total is not None else ""
        text = f"      {done:,.0f}{of} {unit}  {now - self._phase_t0:.1f}s"
        if self.tty:
            self._write("\r" + text.ljust(70))
            self._open_line = True
            if final:
                self._end_line()
        else:
            self._write(text + "\n")
