"""Rendering the core's progress reports (toolkit.reporter.Reporter) for people and for logs.

Two renderers share one text per task (``describe``):

- ``RichReporter``: live bars on a terminal.
- ``LineReporter``: when stderr is not a terminal (cron, ``| tee``, CI), one plain line per
  running task every ``interval`` seconds, e.g.
  ``progress mbox: 12.6 MB of 360.0 MB (3%), 4.1 MB/s, ETA 1m25s`` — nothing is silent until the end.

A task whose unit is ``"bytes"`` counts bytes of a known total (an mbox file's size): it
shows
bytes done of the total, a rate and an ETA. Other tasks count items (``n/total`` or ``n/?``)
and add the bytes passed as ``advance(..., bytes=N)``. Warnings and infos also go to the
run log (``toolkit.cli.runlog``) when one is open.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.filesize import decimal

DEFAULT_INTERVAL = 30.0


@dataclass
class TaskState:
    name: str
    total: int | None = None
    unit: str = "items"
    done: int = 0
    bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: bool = False


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def describe(t: TaskState, now: float | None = None) -> str:
    """One task's progress as text: bytes of total with rate and ETA, or items with bytes and rate."""
    elapsed = max((now if now is not None else time.monotonic()) - t.started, 1e-9)
    if t.unit == "bytes":
        rate = t.done / elapsed
        if t.total:
            text = f"{decimal(t.done)} of {decimal(t.total)} ({100 * t.done / t.total:.0f}%)"
            eta = f", ETA {_duration((t.total - t.done) / rate)}" if rate > 0 and t.done < t.total else ""
        else:
            text, eta = f"{decimal(t.done)}", ""
        return f"{text}, {decimal(int(rate))}/s{eta}"
    count = f"{t.done}/{t.total}" if t.total is not None else f"{t.done}/?"
    text = f"{count} {t.unit}"
    if t.bytes:
        text += f", {decimal(t.bytes)}, {decimal(int(t.bytes / elapsed))}/s"
    if t.total and 0 < t.done < t.total:
        text += f", ETA {_duration((t.total - t.done) * elapsed / t.done)}"
    return text


class _Tasks:
    """The bookkeeping both renderers share."""

    #: warnings kept for the JSON result (``warnings``): at most this many, the rest counted
    KEPT_WARNINGS = 1000

    def __init__(self, log=None):
        self.tasks: dict[str, TaskState] = {}
        self.log = log
        self.warned: list[str] = []
        self.warned_beyond = 0

    def _start(self, task, total, unit) -> TaskState:
        t = self.tasks.get(task)
        if t is None or t.finished:
            t = self.tasks[task] = TaskState(task, total, unit)
        else:
            t.total, t.unit = total, unit
        return t

    def _advance(self, task, n, fields) -> TaskState:
        t = self.tasks.get(task) or self._start(task, None, "items")
        t.done += n
        t.bytes += int(fields.get("bytes", 0) or 0)
        return t

    def _log(self, event: str, message: str) -> None:
        if event == "warning":
            if len(self.warned) < self.KEPT_WARNINGS:
                self.warned.append(message)
            else:
                self.warned_beyond += 1
        if self.log is not None:
            self.log.event(event, message=message)


class LineReporter(_Tasks):
    """Plain progress lines every ``interval`` seconds for output that is not a terminal."""

    def __init__(self, write: Callable[[str], None], interval: float = DEFAULT_INTERVAL, *, warnings: bool = True, log=None):
        super().__init__(log)
        self.write = write
        self.interval = interval
        self.warnings = warnings
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, task, total=None, unit="items"):
        with self._lock:
            self._start(task, total, unit)
        if self._thread is None and self.interval > 0:
            self._wake.clear()
            self._thread = threading.Thread(target=self._tick, name="progress-lines", daemon=True)
            self._thread.start()

    def advance(self, task, n=1, **fields):
        with self._lock:
            self._advance(task, n, fields)

    def finish(self, task):
        with self._lock:
            if task in self.tasks:
                self.tasks[task].finished = True
            idle = all(t.finished for t in self.tasks.values())
        if idle and self._thread is not None:
            self._wake.set()
            self._thread.join()
            self._thread = None

    def lines(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return [f"progress {t.name}: {describe(t, now)}" for t in self.tasks.values() if not t.finished]

    def _tick(self) -> None:
        while not self._wake.wait(self.interval):
            for line in self.lines():
                self.write(line)

    def warn(self, message):
        self._log("warning", message)
        if self.warnings:
            self.write(f"warning: {message}")

    def error(self, message):
        self._log("warning", message)  # the JSON result's "warnings" keeps everything said live
        if self.warnings:
            self.write(f"error: {message}")

    def info(self, message):
        self._log("info", message)


class RichReporter(_Tasks):
    """Live progress bars on a terminal."""

    def __init__(self, console, log=None):
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # a terminal only

        super().__init__(log)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.ids: dict[str, Any] = {}
        self.started = False

    def _render(self, t: TaskState, **kw) -> None:
        self.progress.update(self.ids[t.name], total=t.total, completed=t.done, detail=describe(t), **kw)

    def start(self, task, total=None, unit="items"):
        if not self.started:
            self.progress.start()
            self.started = True
        t = self._start(task, total, unit)
        if task not in self.ids:
            self.ids[task] = self.progress.add_task(task, total=total, detail="")
        self._render(t)

    def advance(self, task, n=1, **fields):
        if task not in self.ids:
            self.start(task)
        self._render(self._advance(task, n, fields))

    def finish(self, task):
        t = self.tasks.get(task)
        if t is not None:
            t.finished = True
            if t.total is None:
                t.total = t.done
            self._render(t)
        if self.started and all(x.finished for x in self.tasks.values()):
            self.progress.stop()
            self.started = False

    def stop(self) -> None:
        if self.started:
            self.progress.stop()
            self.started = False

    def warn(self, message):
        self._log("warning", message)
        self.progress.console.print(f"[yellow]warning:[/] {message}", markup=True)

    def error(self, message):
        self._log("warning", message)
        self.progress.console.print(f"[red]error:[/] {message}", markup=True)

    def info(self, message):
        self._log("info", message)
        self.progress.console.print(message)
