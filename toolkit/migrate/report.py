"""The outcome of a plan run: one row per plan line, totals, warnings; as JSON and as a self-contained
HTML page (no script, no external file)."""
from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from pathlib import Path

from ..json_stream import write_json as _stream_json
from ..problem_list import ProblemList
from .plan import PlanLine

COUNTS = ("seen", "archived", "duplicates", "merged", "errors", "skipped", "bytes")
#: a source's status: complete, failed, interrupted, done-before (finished by an earlier run: skipped),
#: not-run (the run stopped before it)
STATUSES = ("complete", "failed", "interrupted", "done-before", "not-run")


@dataclass
class Outcome:
    line: PlanLine
    status: str = "not-run"
    reason: str | None = None
    run_ids: list[int] = field(default_factory=list)
    seconds: float = 0.0
    attempts: int = 0
    #: every source run's skipped and failed entries, in columns: a source that skips a million files that are
    #: not mail lists them all without a dict each (docs/reliability.md K8)
    problems: ProblemList = field(default_factory=ProblemList)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    decisions: dict[str, int] = field(default_factory=dict)

    def add(self, summary: dict) -> None:
        """Add one ingest run's summary (``RunSummary.as_dict``)."""
        for k in COUNTS:
            self.counts[k] += int(summary.get(k, 0))
        for k, v in summary.get("decisions", {}).items():
            self.decisions[k] = self.decisions.get(k, 0) + v
        for problem in summary.get("problems", ()):
            self.problems.append(problem)
        if summary.get("run_id") is not None:
            self.run_ids.append(summary["run_id"])

    def as_dict(self) -> dict:
        ln = self.line
        return {"line": ln.number, "kind": ln.kind, "location": ln.location, "user": ln.user, "owner": ln.owner,
                "folders": list(ln.folders), "status": self.status, "reason": self.reason, **self.counts,
                "decisions": dict(self.decisions), "seconds": round(self.seconds, 3), "attempts": self.attempts,
                "run_ids": self.run_ids, "problems": self.problems}


@dataclass
class MigrationReport:
    plan: str
    parallel: int
    per_server: int
    outcomes: list[Outcome]
    started: dt.datetime
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        states = {o.status for o in self.outcomes}
        if "interrupted" in states or "not-run" in states:
            return "interrupted"
        return "failed" if "failed" in states else "complete"

    def as_dict(self) -> dict:
        rows = [o.as_dict() for o in self.outcomes]
        totals = {k: sum(r[k] for r in rows) for k in COUNTS}
        by_status = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
        return {"plan": self.plan, "status": self.status, "started": self.started.isoformat(),
                "seconds": round(self.seconds, 3), "parallel": self.parallel, "per_server": self.per_server,
                **totals, "sources_by_status": by_status, "warnings": self.warnings, "sources": rows}


def write_json(report: dict, path: Path) -> None:
    """The report as JSON (indented), its sources' problem lists written a chunk at a time."""
    with open(path, "w", encoding="utf-8") as out:
        _stream_json(out, report, str, indent=1)


_CSS = """body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #bbb;
padding:.25em .5em;text-align:right}td.t{text-align:left}.failed{background:#fdd}.interrupted,.not-run{background:#ffd}
.complete{background:#dfd}.done-before{background:#eef}"""


def render_html(report: dict) -> str:
    """The report as one HTML page: totals, warnings, one row per source with the reason of a failure."""
    e = html.escape
    cols = ("seen", "archived", "duplicates", "errors", "bytes", "seconds")
    head = "".join(f"<th>{c}</th>" for c in ("line", "kind", "source", "owner", "status", *cols, "reason"))
    rows = []
    for r in report["sources"]:
        who = f"{r['user']} " if r["user"] else ""
        cells = [f"<td>{r['line']}</td>", f"<td class=t>{e(r['kind'])}</td>",
                 f"<td class=t>{e(who + r['location'])}</td>", f"<td class=t>{e(r['owner'] or '')}</td>",
                 f"<td class=t>{e(r['status'])}</td>", *(f"<td>{r[c]}</td>" for c in cols),
                 f"<td class=t>{e(r['reason'] or '')}</td>"]
        rows.append(f"<tr class=\"{e(r['status'])}\">{''.join(cells)}</tr>")
    warnings = "".join(f"<li>{e(w)}</li>" for w in report["warnings"])
    totals = ", ".join(f"{k} {report[k]}" for k in COUNTS)
    return (f"<!doctype html><html><head><meta charset=utf-8><title>Migration report</title><style>{_CSS}</style>"
            f"</head><body><h1>Migration of {e(report['plan'])}</h1><p>Status <b>{e(report['status'])}</b>, started "
            f"{e(report['started'])}, {report['seconds']} s, parallel {report['parallel']}, per server "
            f"{report['per_server']}.</p><p>Totals: {e(totals)}.</p>"
            + (f"<h2>Warnings</h2><ul>{warnings}</ul>" if warnings else "")
            + f"<table><tr>{head}</tr>{''.join(rows)}</table></body></html>\n")


def owner_warnings(outcomes: list[Outcome], users: set[str]) -> list[str]:
    """A warning (not an error) for every owner that names no user of the directory."""
    owners = sorted({o.line.owner for o in outcomes if o.line.owner})
    return [f"owner {name!r} names no user of the directory (directory import adds users)"
            for name in owners if name not in users]
