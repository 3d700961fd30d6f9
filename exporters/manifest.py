"""The export manifest: what was exported, with SHA-256, so the recipient can check it (docs/reliability.md E4).

Two files in the manifest directory: ``manifest.csv`` (one row per exported
copy) and ``manifest.json`` (the same rows plus the export's parameters,
counts and errors). ``manifest.json`` is written *last*, under a temporary
name and renamed into place, and removed when an export starts: an export
directory without ``manifest.json`` is incomplete. ``complete`` in it is
false when some messages could not be exported (they are listed).

Columns: ``msg_id`` (catalog number), ``message_id`` (the Message-ID
header), ``blob_id`` and ``sha256`` (the SHA-256 of the exported bytes:
equal to the blob id, because exports are byte-identical — except IMAP,
whose protocol needs CRLF line ends; there ``sha256`` is of the bytes
sent), ``size``, ``folder`` (source folder), ``path`` (relative file path;
for mbox the file that holds the message) or ``target`` (IMAP folder) and
``uid`` (the new IMAP UID, when the server reports it).

Both files, and their ``.tmp`` names, are written without following a
symlink (:func:`exporters.naming.replace_file`): a symlink or a non-file
at any of those names stops the export with an error naming it, before
anything is written. They get the export's file mode (0600 by default).
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .naming import DEFAULT_FILE_MODE, refuse_link, replace_file

FIELDS = ["msg_id", "message_id", "blob_id", "sha256", "size", "folder", "path", "target", "uid"]
JSON_NAME = "manifest.json"
CSV_NAME = "manifest.csv"


@dataclass
class Manifest:
    directory: Path
    kind: str
    rows: list[dict] = field(default_factory=list)
    mode: int = DEFAULT_FILE_MODE

    def begin(self) -> None:
        """Mark the export incomplete until :meth:`write` (a leftover manifest from an earlier run goes).

        A symlink or non-file at a manifest name (or its temp name) is refused here, before the export writes anything.
        """
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_names(self.directory)
        for name in (JSON_NAME, CSV_NAME):
            try:
                os.unlink(self.directory / name)
            except FileNotFoundError:
                pass

    def add(self, **row) -> None:
        self.rows.append({k: row.get(k) for k in FIELDS})

    def write(self, *, errors: list[dict], extra: dict | None = None) -> None:
        """Write manifest.csv, then manifest.json (atomically, last)."""
        rows = sorted(self.rows, key=lambda r: (r["msg_id"], r.get("folder") or "", r.get("path") or "", r.get("target") or ""))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
        _atomic(self.directory / CSV_NAME, buf.getvalue(), self.mode)
        doc = {
            "kind": self.kind,
            "complete": not errors,
            "count": len(rows),
            "bytes": sum(int(r["size"] or 0) for r in rows),
            **(extra or {}),
            "errors": errors,
            "messages": rows,
        }
        _atomic(self.directory / JSON_NAME, json.dumps(doc, indent=1, ensure_ascii=False, default=str), self.mode)


def check_names(directory: Path) -> None:
    """UsageError naming the first manifest name (or temp name) in ``directory`` held by a symlink or a non-file."""
    for name in (CSV_NAME, JSON_NAME):
        refuse_link(Path(directory) / name)
        refuse_link(Path(directory) / (name + ".tmp"))


def _atomic(path: Path, text: str, mode: int = DEFAULT_FILE_MODE) -> None:
    replace_file(path.parent, path, text.encode("utf-8"), mode=mode)


def read_manifest(directory: Path) -> dict | None:
    """The manifest.json of an export directory, or None when the export is incomplete."""
    try:
        return json.loads((Path(directory) / JSON_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
