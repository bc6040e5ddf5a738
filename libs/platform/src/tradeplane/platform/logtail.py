"""Follows a child's log file: echoes its errors to the console (prefixed, rate-limited) and
returns its last lines when something went wrong."""

from __future__ import annotations

import collections
import json
import threading
import time
from pathlib import Path
from typing import TextIO

_ECHO_LEVELS = frozenset({"ERROR", "CRITICAL"})
_ECHO_BUDGET = 10  # lines per window, so a crash loop cannot flood the console
_ECHO_WINDOW = 10.0
_MAX_LINE = 300


def summarize(line: str) -> str | None:
    """The console form of a log line, or None when it is not worth echoing.

    The services log JSON lines; only ERROR/CRITICAL ones are shown. Anything that is not JSON
    (a traceback before logging was configured, a fail-fast config error) is shown as is.
    """
    text = line.rstrip("\n")
    if not text.strip():
        return None
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            level = str(doc.get("level", "")).upper()
            if level not in _ECHO_LEVELS:
                return None
            text = f"{level} {doc.get('msg', '')}"
            if doc.get("exc"):
                text += f" ({str(doc['exc']).strip().splitlines()[-1]})"
    return text if len(text) <= _MAX_LINE else text[: _MAX_LINE - 3] + "..."


def tail_lines(path: Path, start: int = 0, count: int = 20) -> list[str]:
    """The last ``count`` lines written to ``path`` after byte offset ``start``."""
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-count:]


class LogFollower(threading.Thread):
    """Polls one log file from an offset and echoes summarized lines as ``[name] ...``."""

    def __init__(self, name: str, path: Path, start: int, out: TextIO) -> None:
        super().__init__(name=f"tail-{name}", daemon=True)
        self.label = name
        self.path = path
        self.offset = start
        self.out = out
        self._stopped = threading.Event()
        self._recent: collections.deque[float] = collections.deque()
        self._muted_until = 0.0

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=2)
        self._drain()  # whatever the child wrote last

    def run(self) -> None:
        while not self._stopped.wait(0.2):
            self._drain()

    def _drain(self) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return
        complete = data.rfind(b"\n") + 1  # keep a partial last line for the next poll
        self.offset += complete
        for raw in data[:complete].decode("utf-8", "replace").splitlines():
            text = summarize(raw)
            if text is not None:
                self._echo(text)

    def _echo(self, text: str) -> None:
        now = time.monotonic()
        while self._recent and now - self._recent[0] > _ECHO_WINDOW:
            self._recent.popleft()
        if now < self._muted_until:
            return
        if len(self._recent) >= _ECHO_BUDGET:
            self._muted_until = now + _ECHO_WINDOW
            print(f"[{self.label}] ... more in {self.path}", file=self.out, flush=True)
            return
        self._recent.append(now)
        print(f"[{self.label}] {text}", file=self.out, flush=True)
