"""The result of a verification run, and the files an auditor files (docs/verification.md).

A :class:`Report` holds :class:`Check` results. Each check has an ID (``Q..``
quick, ``F..`` full), a title, a status and a count of the objects it found,
plus the findings themselves (each a dict naming message/pack/medium/batch).
Statuses:

``ok``        nothing found
``finding``   something is wrong: the run exits 1
``warning``   worth a look, not a failure (e.g. unknown packs left by a crash,
              which are adoptable and never deleted; no DB backup yet): exit 0
``skipped``   not run (e.g. full-only checks in a quick run)

Outputs: :meth:`Report.as_dict` (the JSON report), :func:`render_html` (one
self-contained, printable file: inline CSS and SVG, no scripts), and
:func:`write_findings` (one row per finding, Parquet or CSV via polars).
"""
from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("ok", "finding", "warning", "skipped")
#: examples shown per check in the terminal, JSON and HTML reports
MAX_EXAMPLES = 20
#: findings kept per check for the findings file (the count goes on)
MAX_ITEMS = 100_000
#: the object columns of the findings file, in order
OBJECT_KEYS = ("msg_id", "blob_id", "pack", "medium", "batch", "record", "name")


@dataclass
class Check:
    id: str
    title: str
    tier: str = "quick"            # quick | full
    status: str = "ok"
    count: int = 0
    items: list[dict] = field(default_factory=list)
    note: str = ""                 # one line on what was checked or why skipped
    severity: str = "finding"      # what a hit makes the status: finding | warning

    def add(self, detail: str, next_step: Any = None, **objects: Any) -> None:
        """Record one finding (or warning) about the named objects. ``next_step`` (a
        ``toolkit.errors.NextStep``) is kept in the item as its value: the kind of what to do next, which
        the command line phrases after the detail (the core names no command)."""
        self.count += 1
        if self.status in ("ok", "skipped"):
            self.status = self.severity
        elif self.status == "warning" and self.severity == "finding":
            self.status = "finding"
        if len(self.items) < MAX_ITEMS:
            item = {**{k: v for k, v in objects.items() if v is not None}, "detail": detail}
            if next_step is not None:
                item["next_step"] = next_step.value
            self.items.append(item)

    def warn(self, detail: str, next_step: Any = None, **objects: Any) -> None:
        """A hit that is only a warning, whatever the check's severity."""
        severity, self.severity = self.severity, "warning"
        try:
            self.add(detail, next_step, **objects)
        finally:
            self.severity = severity

    def skip(self, note: str) -> None:
        self.status = "skipped"
        self.note = note

    @property
    def examples(self) -> list[dict]:
        return self.items[:MAX_EXAMPLES]

    def as_dict(self) -> dict:
        return {
            "id": self.id, "title": self.title, "tier": self.tier, "status": self.status,
            "count": self.count, "note": self.note, "examples": [_plain(e) for e in self.examples],
        }


@dataclass
class Report:
    archive: dict = field(default_factory=dict)       # name, uuid, fingerprint, home, media
    mode: str = "quick"
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    host: str = ""
    version: str = ""
    checks: list[Check] = field(default_factory=list)
    stats: dict = field(default_factory=dict)          # messages, packs, bytes_read, by_month, by_medium, stamps

    def check(self, id: str, title: str, tier: str = "quick", severity: str = "finding") -> Check:
        c = Check(id=id, title=title, tier=tier, severity=severity)
        self.checks.append(c)
        return c

    def get(self, id: str) -> Check:
        return next(c for c in self.checks if c.id == id)

    @property
    def findings(self) -> int:
        return sum(c.count for c in self.checks if c.status == "finding")

    @property
    def warnings(self) -> int:
        return sum(c.count for c in self.checks if c.status == "warning")

    @property
    def exit_code(self) -> int:
        """0 clean (warnings allowed), 1 with findings."""
        return 1 if any(c.status == "finding" for c in self.checks) else 0

    def totals(self) -> dict:
        by = {s: sum(1 for c in self.checks if c.status == s) for s in STATUSES}
        return {"checks": len(self.checks), **{f"checks_{s}": n for s, n in by.items()},
                "findings": self.findings, "warnings": self.warnings, "exit_code": self.exit_code}

    def as_dict(self) -> dict:
        return _plain({
            "report": "mailarchive verify",
            "version": self.version,
            "mode": self.mode,
            "archive": self.archive,
            "host": self.host,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "totals": self.totals(),
            "checks": [c.as_dict() for c in self.checks],
            "stats": self.stats,
        })

    def finding_rows(self) -> list[dict]:
        """One row per finding or warning, every check (up to MAX_ITEMS each)."""
        rows = []
        for c in self.checks:
            for item in c.items:
                row = {"check": c.id, "title": c.title, "status": c.status}
                for k in OBJECT_KEYS:
                    v = item.get(k)
                    row[k] = None if v is None else str(v)
                row["detail"] = str(item.get("detail", ""))
                rows.append(row)
        return rows


def _plain(o: Any) -> Any:
    """JSON-ready: datetimes as ISO text, bytes as hex, tuples/sets as lists."""
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, set):
        return sorted(_plain(v) for v in o)
    if isinstance(o, (dt.datetime, dt.date)):
        return o.isoformat()
    if isinstance(o, bytes):
        return o.hex()
    return o


def write_json(report: Report, path: Path) -> None:
    Path(path).write_text(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# -- findings file -------------------------------------------------------------------------------
def write_findings(report: Report, path: Path) -> int:
    """Findings and warnings as Parquet (``.parquet``) or CSV (``.csv``); returns the row count."""
    import polars as pl

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ValueError(f"{path}: the findings file must end in .parquet or .csv")
    columns = ["check", "title", "status", *OBJECT_KEYS, "detail"]
    rows = report.finding_rows()
    df = pl.DataFrame({c: [r[c] for r in rows] for c in columns}, schema={c: pl.Utf8 for c in columns})
    if suffix == ".parquet":
        df.write_parquet(path)
    else:
        df.write_csv(path)
    return len(rows)


# -- HTML ------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em;color:#111;font-size:14px}
h1{font-size:22px;margin:0 0 .3em}h2{font-size:17px;margin:1.4em 0 .4em;border-bottom:1px solid #999}
table{border-collapse:collapse;margin:.4em 0}th,td{border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eee}td.num{text-align:right}.ident td:first-child{font-weight:600}
.status{font-weight:700;text-transform:uppercase;font-size:12px;padding:1px 6px;border-radius:3px}
.s-ok{background:#d7f0d7;color:#124d12}.s-finding{background:#f7d2d2;color:#7a0b0b}
.s-warning{background:#fbebc4;color:#6b4a00}.s-skipped{background:#e4e4e4;color:#444}
.verdict{font-size:18px;font-weight:700;padding:.4em .8em;display:inline-block;border-radius:4px}
.examples{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;margin:.2em 0 .2em 1em}
.small{color:#555;font-size:12px}svg text{font-family:inherit;font-size:11px}
@media print{body{margin:1cm;font-size:11px}h2{break-after:avoid}table,svg,.check{break-inside:avoid}}
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _bar_chart(title: str, data: list[tuple[str, int]], width: int = 760, bar_h: int = 16) -> str:
    """A horizontal bar chart as inline SVG (labels left, values right)."""
    if not data:
        return f'<p class="small">{_e(title)}: no data</p>'
    top = max(v for _, v in data) or 1
    label_w, value_w = 120, 70
    plot_w = width - label_w - value_w
    h = len(data) * (bar_h + 4) + 6
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img" aria-label="{_e(title)}">']
    for i, (label, v) in enumerate(data):
        y = 3 + i * (bar_h + 4)
        w = max(1, round(plot_w * v / top)) if v else 0
        parts.append(f'<text x="{label_w - 6}" y="{y + bar_h - 4}" text-anchor="end">{_e(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="#4a78b5"/>')
        parts.append(f'<text x="{label_w + w + 4}" y="{y + bar_h - 4}">{v:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _coverage_bar(stamped: int, total: int, width: int = 760) -> str:
    frac = stamped / total if total else 1.0
    w = round((width - 2) * frac)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="22" role="img" aria-label="stamp coverage">'
        f'<rect x="1" y="1" width="{width - 2}" height="20" fill="#eee" stroke="#999"/>'
        f'<rect x="1" y="1" width="{w}" height="20" fill="#3f8f3f"/>'
        f'<text x="8" y="15" fill="#000">{stamped:,} of {total:,} messages stamped ({frac:.1%})</text></svg>'
    )


def _example_text(item: dict) -> str:
    objs = ", ".join(f"{k} {item[k]}" for k in OBJECT_KEYS if item.get(k) is not None)
    return (objs + ": " if objs else "") + str(item.get("detail", ""))


def _batch_section(rows: list[dict] | None) -> list[str]:
    """Per stamped batch: the CA it was stamped under, its renewals and "protected until" (full verify only)."""
    if not rows:
        return []
    now = dt.datetime.now(dt.timezone.utc)
    out = ["<h2>Stamp batches</h2>",
           '<table id="batches"><thead><tr><th>Batch</th><th>TSA CA</th><th>CA SHA-256</th><th>Renewals</th>'
           "<th>Protected until</th></tr></thead><tbody>"]
    for r in rows:
        until = r.get("protected_until")
        if isinstance(until, str):
            until = dt.datetime.fromisoformat(until)
        warn = until is not None and until <= now + dt.timedelta(days=90)
        text = f"{until:%Y-%m-%d}" if until else "—"
        out.append(
            f'<tr class="batch-row" data-batch="{_e(r["batch_id"])}" data-warning="{str(warn).lower()}">'
            f'<td>{_e(r["batch_id"])}</td><td>{_e(r.get("ca_subject") or "—")}</td>'
            f'<td class="small">{_e((r.get("ca_fingerprint") or "")[:16])}…</td><td class="num">{len(r.get("renewals") or [])}</td>'
            f'<td class="protected-until">' + (f'<span class="status s-warning">{_e(text)} — renew</span>' if warn else _e(text))
            + "</td></tr>"
        )
    out.append("</tbody></table>")
    return out


def _mode_text(mode: str, subset: dict | None) -> str:
    if mode != "full":
        return "quick (catalog and media listings; packs not read)"
    if subset:
        return (f"sampled full (quick checks + {subset['packs_read']} of {subset['packs_total']} packs read and "
                f"authenticated: subset {subset['spec']}, seed {subset['seed']}, least recently verified first)")
    return "full (quick checks + every pack read and authenticated)"


def render_html(report: Report) -> str:
    """One self-contained HTML page (no scripts, no external files) that prints well."""
    d = report.as_dict()
    a, t, s = d["archive"], d["totals"], d.get("stats", {})
    clean = report.exit_code == 0
    verdict = "CLEAN — no findings" if clean else f"FINDINGS — {t['findings']} in {t['checks_finding']} check(s)"
    vcls = "s-ok" if clean else "s-finding"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Verification report — {_e(a.get('name'))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Archive verification report: {_e(a.get('name'))}</h1>",
        f'<p><span class="verdict {vcls}" id="verdict">{_e(verdict)}</span></p>',
        "<h2>Archive and run</h2>",
        '<table class="ident" id="identity">',
    ]
    ident = [
        ("Archive name", a.get("name")), ("Archive UUID", a.get("uuid")),
        ("Key fingerprint", a.get("fingerprint")), ("Archive home", a.get("home")),
        ("Media", a.get("media")),
        ("Verification", _mode_text(report.mode, s.get("subset"))),
        ("Started", d.get("started_at")), ("Finished", d.get("finished_at")),
        ("Host", d.get("host")), ("Tool version", d.get("version")),
        ("Messages / packs", f"{s.get('messages', 0):,} / {s.get('packs', 0):,}"),
        ("Bytes read", f"{s.get('bytes_read', 0):,}" if report.mode == "full" else "—"),
    ]
    for k, v in ident:
        out.append(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>")
    out += [
        "</table>",
        "<h2>Summary</h2>",
        '<table id="summary"><thead><tr><th>ID</th><th>Check</th><th>Tier</th><th>Result</th><th>Count</th></tr></thead><tbody>',
    ]
    for c in d["checks"]:
        out.append(
            f'<tr class="check-row" data-check="{_e(c["id"])}" data-status="{_e(c["status"])}">'
            f'<td>{_e(c["id"])}</td><td>{_e(c["title"])}</td><td>{_e(c["tier"])}</td>'
            f'<td><span class="status s-{_e(c["status"])}">{_e(c["status"])}</span></td>'
            f'<td class="num">{c["count"]:,}</td></tr>'
        )
    out.append("</tbody></table>")
    out.append(
        f'<p class="small">{t["checks"]} checks: {t["checks_ok"]} ok, {t["checks_finding"]} with findings, '
        f'{t["checks_warning"]} with warnings, {t["checks_skipped"]} skipped. Exit status {t["exit_code"]}.</p>'
    )
    stamps = s.get("stamps", {})
    out.append("<h2>Timestamp coverage</h2>")
    out.append(_coverage_bar(int(stamps.get("stamped_messages", 0)), int(s.get("messages", 0))))
    out.append(
        f'<p class="small">Batches: {stamps.get("batches_stamped", 0)} stamped, {stamps.get("batches_pending", 0)} pending; '
        f'{stamps.get("unbatched_messages", 0)} messages not yet in a batch. '
        f'Latest genTime: {_e(stamps.get("latest_gen_time") or "—")}. TSA: {_e(stamps.get("tsa_url") or "—")}.</p>'
    )
    out += _batch_section(s.get("protection"))
    out.append("<h2>Messages per month (date sent)</h2>")
    out.append(_bar_chart("messages per month", [(m, n) for m, n in s.get("by_month", [])]))
    out.append("<h2>Messages per medium</h2>")
    out.append(_bar_chart("messages per medium", [(f"medium {m}", n) for m, n in s.get("by_medium", [])]))
    out.append("<h2>Checks in detail</h2>")
    for c in d["checks"]:
        out.append(f'<div class="check" id="check-{_e(c["id"])}"><p><b>{_e(c["id"])} {_e(c["title"])}</b> — '
                   f'<span class="status s-{_e(c["status"])}">{_e(c["status"])}</span> ({c["count"]:,})'
                   + (f' <span class="small">{_e(c["note"])}</span>' if c.get("note") else "") + "</p>")
        if c["examples"]:
            shown = len(c["examples"])
            out.append('<ul class="examples">' + "".join(f"<li>{_e(_example_text(x))}</li>" for x in c["examples"]) + "</ul>")
            if c["count"] > shown:
                out.append(f'<p class="small">… and {c["count"] - shown:,} more (see the findings file).</p>')
        out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out)


def write_html(report: Report, path: Path) -> None:
    Path(path).write_text(render_html(report), encoding="utf-8")
