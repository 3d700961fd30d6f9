"""A migration plan: one source per line, as CSV (header ``kind,location,user,password_file,owner,folders``)
or TOML (``[[source]]`` tables with those keys); see docs/cli.md.

Parsing never stops at the first problem: every broken line is listed with its line number, so
that ``migrate check`` (and a refused ``migrate run``) can name them all at once.
"""
from __future__ import annotations

import csv
import io
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

KINDS = ("imap", "pop3", "mbox", "maildir", "eml", "share", "pst", "msg")
SERVER_KINDS = ("imap", "pop3")
COLUMNS = ("kind", "location", "user", "password_file", "owner", "folders")
PROMPT = "-"  # password_file "-": asked once at the start of the run
_SCHEMES = {"imap": ("imap", "imaps"), "pop3": ("pop3", "pop3s")}


@dataclass(frozen=True)
class PlanLine:
    """One source of a plan; ``number`` is its line in the file (CSV) or its table's position (TOML)."""

    number: int
    kind: str
    location: str               # a server URL (without the user) or a path made absolute from the plan's folder
    user: str | None = None
    password_file: Path | str | None = None  # a Path, or PROMPT
    owner: str | None = None
    folders: tuple[str, ...] = ()

    @property
    def server(self) -> str | None:
        """``host:port`` of a server source (the per-server connection limit counts by it), else None."""
        if self.kind not in SERVER_KINDS:
            return None
        from ..net.url import parse_mail_url
        from importers.imap import SCHEMES as IMAP
        from importers.pop3 import SCHEMES as POP3

        u = parse_mail_url(self.url, IMAP if self.kind == "imap" else POP3)
        return f"{u.host}:{u.port}"

    @property
    def url(self) -> str:
        """The location with the user put in (``imaps://user@host:993``) for a server; the path otherwise."""
        if self.kind not in SERVER_KINDS or not self.user or "@" in self.location.split("://", 1)[-1].split("/", 1)[0]:
            return self.location
        scheme, rest = self.location.split("://", 1)
        return f"{scheme}://{self.user}@{rest}"

    def label(self) -> str:
        """How reports and progress name the line (never a password)."""
        who = f" {self.user}" if self.user else ""
        return f"line {self.number}: {self.kind}{who} {self.location}"


@dataclass
class Plan:
    path: Path
    lines: list[PlanLine] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong)


def load_plan(path: Path) -> Plan:
    """Read and validate a plan (TOML when the file ends in ``.toml``, else CSV)."""
    path = Path(path)
    plan = Plan(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        plan.problems.append((0, f"cannot read the plan {path}: {getattr(exc, 'strerror', None) or exc}"))
        return plan
    rows = _toml_rows(text, plan) if path.suffix.lower() == ".toml" else _csv_rows(text, plan)
    seen: dict[tuple, int] = {}
    for number, row in rows:
        line = _line(number, row, path.parent, plan)
        if line is None:
            continue
        key = _source_key(line)
        if key in seen:  # two runs of one source at once would share its resume point (its cursor)
            plan.problems.append((number, f"the same source as line {seen[key]} ({line.kind} {line.location}"
                                  + (f", user {line.user}" if line.user else "") + "): name each source once"
                                  + ("; to read some folders of an account, list them all in one line's folders"
                                     if line.kind in SERVER_KINDS else "")))
            continue
        seen[key] = number
        plan.lines.append(line)
    if not plan.lines and not plan.problems:
        plan.problems.append((0, "the plan names no source"))
    return plan


def _source_key(line: PlanLine) -> tuple:
    """What makes two lines one source (the cursor an import keeps for it): a server account (scheme, user, host,
    port: folders are not part of it), or the kind and the place of a local (real path) or smb:// source."""
    if line.kind in SERVER_KINDS:
        from ..net.url import parse_mail_url
        from importers.imap import SCHEMES as IMAP
        from importers.pop3 import SCHEMES as POP3

        u = parse_mail_url(line.url, IMAP if line.kind == "imap" else POP3)
        return (line.kind, u.scheme, (u.user or "").lower(), u.host.lower(), u.port)
    if line.location.startswith("smb://"):
        return (line.kind, line.location.rstrip("/").lower())
    return (line.kind, os.path.realpath(line.location))


def _csv_rows(text: str, plan: Plan) -> list[tuple[int, dict]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (StopIteration, csv.Error):
        plan.problems.append((1, f"no header line; expected {','.join(COLUMNS)}"))
        return []
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in ("kind", "location") if c not in header]
    if unknown or missing:
        plan.problems.append((1, f"header {','.join(header)!r}: expected the columns {','.join(COLUMNS)}"))
        return []
    rows = []
    try:
        for values in reader:
            number = reader.line_num
            if not any(v.strip() for v in values) or values[0].lstrip().startswith("#"):
                continue
            if len(values) > len(header):
                plan.problems.append((number, f"{len(values)} fields, the header has {len(header)}"))
                continue
            rows.append((number, dict(zip(header, values))))
    except csv.Error as exc:
        plan.problems.append((reader.line_num, f"not CSV: {exc}"))
    return rows


def _toml_rows(text: str, plan: Plan) -> list[tuple[int, dict]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        plan.problems.append((0, f"not TOML: {exc}"))
        return []
    tables = data.get("source")
    if not isinstance(tables, list):
        plan.problems.append((0, "no [[source]] tables"))
        return []
    rows = []
    for i, t in enumerate(tables, 1):
        unknown = sorted(set(t) - set(COLUMNS)) if isinstance(t, dict) else ["(not a table)"]
        if unknown:
            plan.problems.append((i, f"source {i}: unknown keys {', '.join(unknown)}"))
            continue
        rows.append((i, {k: v if isinstance(v, str) else ";".join(v) if k == "folders" and isinstance(v, list)
                         else str(v) for k, v in t.items()}))
    return rows


def _line(number: int, row: dict, base: Path, plan: Plan) -> PlanLine | None:
    """One validated line, or None (its problems added to the plan)."""
    get = {c: (row.get(c) or "").strip() for c in COLUMNS}
    kind, location = get["kind"].lower(), get["location"]
    wrong = []
    if kind not in KINDS:
        wrong.append(f"unknown kind {get['kind']!r} (one of {', '.join(KINDS)})")
    if not location:
        wrong.append("no location")
    folders = tuple(f.strip() for f in get["folders"].split(";") if f.strip())
    password_file = get["password_file"] or None
    if kind in SERVER_KINDS:
        wrong += _server_problems(kind, location, get["user"], password_file)
    elif kind in KINDS:
        if get["user"] or password_file:
            wrong.append(f"user and password_file are for imap and pop3 sources; leave them empty for {kind}")
        if folders:
            wrong.append("folders is an include list of IMAP folders; leave it empty for " + kind)
        if location and not location.startswith("smb://"):
            location = str((base / location).absolute()) if not Path(location).is_absolute() else location
    if wrong:
        plan.problems.extend((number, w) for w in wrong)
        return None
    if password_file not in (None, PROMPT):
        password_file = Path(password_file) if Path(password_file).is_absolute() else base / password_file
    line = PlanLine(number, kind, location, get["user"] or None, password_file, get["owner"] or None, folders)
    try:
        line.server  # a server URL must parse (host, port, no password in it)
    except UsageError as exc:
        plan.problems.append((number, str(exc)))
        return None
    return line


def _server_problems(kind: str, location: str, user: str, password_file: str | None) -> list[str]:
    wrong = []
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    if location and scheme not in _SCHEMES[kind]:
        wrong.append(f"location {location!r} is not a {' or '.join(s + '://' for s in _SCHEMES[kind])} URL")
    netloc = location.split("://", 1)[-1].split("/", 1)[0]
    if ":" in netloc.rpartition("@")[0]:
        return ["a password in the location: passwords never go into the plan (name a password_file)"]
    has_user = "@" in netloc
    if not user and not has_user:
        wrong.append("no user")
    if not password_file:
        wrong.append(f"no password_file (a file with the password, or {PROMPT} to be asked once at the start; "
                     "passwords are never written into the plan)")
    return wrong
