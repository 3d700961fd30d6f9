"""Terminal output: rich on stderr for people, exactly one JSON object on stdout for scripts."""
from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

err_console = Console(stderr=True, highlight=False)


@dataclass
class Ui:
    json: bool = False
    quiet: bool = False

    def emit(self, result: Any, human=None) -> None:
        """The command's result: JSON on stdout, or ``human(result)`` rendering for people."""
        if self.json:
            sys.stdout.write(json.dumps(result, default=_json_default, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        elif human is not None and not self.quiet:
            human(result)

    def say(self, text: str) -> None:
        if not self.json and not self.quiet:
            err_console.print(text)

    def table(self, title: str, columns: list[str], rows: list[list[Any]], console: Console | None = None) -> None:
        """A table on stdout. No cell is ever cut: on a terminal a long value (an smb:// location) wraps
        inside its column; into a pipe or file the table is as wide as its longest row."""
        t = Table(title=title, title_justify="left")
        for c in columns:
            t.add_column(c, overflow="fold")
        cells = [["" if v is None else str(v) for v in r] for r in rows]
        for r in cells:
            t.add_row(*r)
        if console is None:
            console = Console(highlight=False)
            if not console.is_terminal:
                widest = sum(max([len(c), *(len(r[i]) for r in cells)]) + 3 for i, c in enumerate(columns)) + 1
                console = Console(highlight=False, width=max(80, widest, len(title)))
        console.print(t)

    def reporter(self):
        if self.json or self.quiet or not err_console.is_terminal:
            return QuietReporter(self)
        return RichReporter()


def human_bytes(n: float) -> str:
    """A byte count in human units (decimal): ``512 B``, ``34.2 KB``, ``1.5 MB``, ``2.0 GB``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _json_default(o: Any):
    if isinstance(o, (dt.datetime, dt.date)):
        return o.isoformat()
    if isinstance(o, bytes):
        return o.hex()
    if isinstance(o, set):
        return sorted(o)
    return str(o)


class QuietReporter:
    """No progress bars; warnings still go to stderr unless --json/--quiet."""

    def __init__(self, ui: Ui):
        self.ui = ui

    def start(self, task, total=None, unit="items"):
        pass

    def advance(self, task, n=1, **fields):
        pass

    def finish(self, task):
        pass

    def warn(self, message):
        if not self.ui.json and not self.ui.quiet:
            err_console.print(f"[yellow]warning:[/] {message}", markup=True)

    def info(self, message):
        pass


class RichReporter:
    def __init__(self):
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}
        self.bytes: dict[str, int] = {}
        self.started = False

    def start(self, task, total=None, unit="items"):
        if not self.started:
            self.progress.start()
            self.started = True
        if task in self.tasks:
            self.progress.update(self.tasks[task], total=total)
            return
        self.tasks[task] = self.progress.add_task(task, total=total, rate="")
        self.bytes[task] = 0

    def advance(self, task, n=1, **fields):
        if task not in self.tasks:
            self.start(task)
        tid = self.tasks[task]
        self.bytes[task] += fields.get("bytes", 0)
        elapsed = self._task(tid).elapsed or 0.0
        rate = f"{self.bytes[task] / 1e6 / elapsed:.1f} MB/s" if elapsed > 0 and self.bytes[task] else ""
        self.progress.update(tid, advance=n, rate=rate)

    def _task(self, tid):
        return next(t for t in self.progress.tasks if t.id == tid)

    def finish(self, task):
        if task in self.tasks:
            tid = self.tasks[task]
            tk = self._task(tid)
            if tk.total is None:
                self.progress.update(tid, total=tk.completed)
        if self.started and all(self._task(t).finished or self._task(t).total is None for t in self.tasks.values()):
            self.progress.stop()
            self.started = False

    def warn(self, message):
        self.progress.console.print(f"[yellow]warning:[/] {message}", markup=True)

    def info(self, message):
        self.progress.console.print(message)
