"""The run log (``--log-file FILE`` or the ``log_file`` setting): one plain line per event, appended.

Format, one event a line, made for grep and cut::

    2026-12-03T15:04:05.123Z pid=4711 event=start command="import share smb://u@host/mail" archive=/srv/archive
    2026-12-03T15:04:09.001Z pid=4711 event=skip source=share:/mail ref="junk/a.jpg" reason="not mail: no header block"
    2026-12-03T15:04:09.002Z pid=4711 event=error source=share:/mail ref="x.eml" reason="cannot read: Permission denied"
    2026-12-03T15:04:09.010Z pid=4711 event=source source=share:/mail status=complete seen=61 archived=60 ...
    2026-12-03T15:04:09.020Z pid=4711 event=end exit=1 seconds=3.9

Timestamps are UTC. Values that hold a space, a quote or ``=`` are double-quoted with
backslash escapes; a line never wraps and never holds a newline. ``pid`` tells
interleaved runs apart (cron jobs may write to the same file). Every skip and
error of an import is listed here in full, while the terminal summary counts them
by reason.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import time
import tomllib
from pathlib import Path
from typing import Any

from ..home import Home


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        v = f"{v:.3f}"
    text = str(v)
    if text and not any(c in text for c in ' "=\\\n\r\t') and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)


class RunLog:
    """Appends events to a log file; each write is one ``write`` of one line (O_APPEND)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._t0 = time.monotonic()

    def event(self, kind: str, /, **fields: Any) -> None:
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        parts = [now, f"pid={os.getpid()}", f"event={kind}"]
        parts += [f"{k}={_value(v)}" for k, v in fields.items() if v is not None]
        os.write(self._fd, (" ".join(parts) + "\n").encode("utf-8", "backslashreplace"))

    def result(self, result: Any) -> None:
        """A command's result: per import source its skips, errors and summary; otherwise its counters."""
        if not isinstance(result, dict):
            return
        sources = result.get("sources")
        if isinstance(sources, list) and all(isinstance(s, dict) for s in sources):
            for s in sources:
                for p in s.get("problems") or []:
                    self.event("skip" if p.get("kind") == "skipped" else "error", source=s.get("source"),
                               ref=p.get("ref"), reason=p.get("message"))
                self.event("source", **{k: v for k, v in s.items() if _scalar(v)},
                           **{f"decision.{k}": v for k, v in (s.get("decisions") or {}).items()})
        self.event("result", **{k: v for k, v in result.items() if _scalar(v)})

    def end(self, exit_code: int) -> None:
        self.event("end", exit=exit_code, seconds=time.monotonic() - self._t0)
        os.close(self._fd)


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool)) and v is not None


def log_file_setting(home: Path) -> str | None:
    """The ``log_file`` setting read from archive.toml without opening the archive (no key needed), or None."""
    try:
        data = tomllib.loads(Home(home).config_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    value = (data.get("settings") or {}).get("log_file")
    return value if isinstance(value, str) and value else None
