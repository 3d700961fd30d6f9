"""Terminal output: rich on stderr for people, exactly one JSON object on stdout for scripts."""
from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from .. import json_stream
from ..problem_list import ProblemList

err_console = Console(stderr=True, highlight=False)
if not err_console.is_terminal:
    err_console.soft_wrap = True  # a log or a pipe gets whole lines, never wrapped at 80 columns


#: Tables longer than this are written as plain aligned columns: rich lays a table out at ~2,300 rows a second
#: (a retention report of 750,000 mails took 761 s to print, bench/RESULTS.md), and a list that long is read
#: with grep, sort or a pager, a row a line, not by eye.
PLAIN_ROWS = 2000
_CONTROLS = {c: " " for c in [*range(0x20), 0x7F]}


def _plain_table(out, title: str, columns: list[str], cells: list[list[str]]) -> None:
    """``title``, then the header, a rule and every row, each column as wide as its widest cell: a row a line (a
    control character inside a cell, a line break or an escape sequence from a mail's header, becomes a space),
    no cell cut, the last column not padded."""
    cells = [[c.translate(_CONTROLS) for c in r] for r in cells]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]

    def line(values) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values[:-1], widths)) + ("  " if len(values) > 1 else "") + values[-1]

    out.write(title + "\n" + line(columns) + "\n" + line(["-" * w for w in widths]) + "\n")
    out.writelines(line(r) + "\n" for r in cells)
    out.flush()


@dataclass
class Ui:
    json: bool = False
    quiet: bool = False
    progress_interval: float = 30.0
    log: Any = None  # a runlog.RunLog when --log-file or the log_file setting is given
    _reporters: list = field(default_factory=list, repr=False)
    emitted: bool = False  # the command's JSON object is out (an error after it prints no second one)

    def emit(self, result: Any, human=None) -> None:
        """The command's result: JSON on stdout, or ``human(result)`` rendering for people. With ``--json`` the
        warnings the run showed nobody (no progress lines then) go into the result as ``warnings``."""
        if self.json and isinstance(result, dict) and "warnings" not in result:
            warned = [w for r in self._reporters for w in r.warned]
            beyond = sum(r.warned_beyond for r in self._reporters)
            if warned:
                result = {**result, "warnings": warned}
                if beyond:
                    result["warnings_not_listed"] = beyond
        self._stop_progress()
        if self.log is not None:
            self.log.result(result)
        if self.json:
            write_json(sys.stdout, result)
            sys.stdout.flush()
            self.emitted = True
        elif human is not None and not self.quiet:
            human(result)

    def emit_error(self, code: int, message: str) -> None:
        """With ``--json``, a command that ends in an error before its result gives scripts one object too:
        ``{"status": "error", "exit_code": N, "error": "..."}`` (the message as on stderr; docs/cli.md "Output"); the
        status of an interrupted one (exit 130) is ``"interrupted"``."""
        if self.json and not self.emitted:
            self.emitted = True
            status = "interrupted" if code == 130 else "error"
            sys.stdout.write(json.dumps({"status": status, "exit_code": code, "error": message}, ensure_ascii=False)
                             + "\n")
            sys.stdout.flush()

    def say(self, text: str) -> None:
        if not self.json and not self.quiet:
            err_console.print(text)

    def table(self, title: str, columns: list[str], rows: list[list[Any]], console: Console | None = None) -> None:
        """A table on stdout. No cell is ever cut: on a terminal a long value (an smb:// location) wraps
        inside its column; into a pipe or file the table is as wide as its longest row. A table of more than
        :data:`PLAIN_ROWS` rows is written as plain aligned columns, a row a line (:func:`_plain_table`)."""
        cells = [["" if v is None else str(v) for v in r] for r in rows]
        if len(cells) > PLAIN_ROWS and console is None:
            _plain_table(sys.stdout, title, columns, cells)
            return
        from rich.table import Table  # only the commands that print a table load it

        t = Table(title=title, title_justify="left")
        for c in columns:
            t.add_column(c, overflow="fold")
        for r in cells:
            t.add_row(*r)
        if console is None:
            console = Console(highlight=False)
            if not console.is_terminal:
                widest = sum(max([len(c), *(len(r[i]) for r in cells)]) + 3 for i, c in enumerate(columns)) + 1
                console = Console(highlight=False, width=max(80, widest, len(title)))
        console.print(t)

    def reporter(self):
        """Progress for the core: bars on a terminal, a line every ``progress_interval`` s otherwise."""
        from .progress import LineReporter, RichReporter

        if self.json or self.quiet:
            r = LineReporter(self._line, 0, warnings=False, log=self.log)
        elif err_console.is_terminal:
            r = RichReporter(err_console, log=self.log)
        else:
            r = LineReporter(self._line, self.progress_interval, log=self.log)
        self._reporters.append(r)
        return r

    @staticmethod
    def _line(text: str) -> None:
        err_console.out(text, highlight=False)

    def _stop_progress(self) -> None:
        for r in self._reporters:
            for task in list(r.tasks):
                r.finish(task)
            if hasattr(r, "stop"):
                r.stop()
        self._reporters.clear()


def human_bytes(n: float) -> str:
    """A byte count in human units (decimal): ``512 B``, ``34.2 KB``, ``1.5 MB``, ``2.0 GB``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def write_json(out, result: Any) -> None:
    """``json.dumps(result)`` and a newline, written to ``out``, with every :class:`ProblemList` in it written a chunk
    of entries at a time (toolkit/json_stream.py): an import that listed a million skipped files prints them without
    first making a list of a million dicts and one string of them all."""
    json_stream.write_json(out, result, _json_default)


def _json_default(o: Any):
    if isinstance(o, ProblemList):  # an import's skips and errors (toolkit/problem_list.py)
        return o.to_list()
    if isinstance(o, (dt.datetime, dt.date)):
        return o.isoformat()
    if isinstance(o, bytes):
        return o.hex()
    if isinstance(o, set):
        return sorted(o)
    return str(o)
