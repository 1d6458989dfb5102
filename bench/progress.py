"""Progress lines on stderr while a scenario runs: rewritten in place on a terminal, throttled otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, *, interval: float = 2.0) -> None:
        self._tty = sys.stderr.isatty()
        self._interval = interval
        self._last = 0.0
        self._open_line = False
        self._started = time.monotonic()

    def say(self, message: str) -> None:
        """A line that stays."""
        self._end_line()
        sys.stderr.write(f"[bench {self._clock()}] {message}\n")
        sys.stderr.flush()

    def update(self, message: str, *, force: bool = False) -> None:
        """A line that the next update replaces (on a terminal), or at most one per interval (in a log)."""
        now = time.monotonic()
        if not force and now - self._last < (0.2 if self._tty else self._interval):
            return
        self._last = now
        if self._tty:
            sys.stderr.write(f"\r\033[K[bench {self._clock()}]   {message}")
            self._open_line = True
        else:
            sys.stderr.write(f"[bench {self._clock()}]   {message}\n")
        sys.stderr.flush()

    def _end_line(self) -> None:
        if self._open_line:
            sys.stderr.write("\n")
            self._open_line = False

    def _clock(self) -> str:
        elapsed = int(time.monotonic() - self._started)
        return f"{elapsed // 60:02d}:{elapsed % 60:02d}"
