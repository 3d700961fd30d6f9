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
        # both files are written a block of rows at a time, the same bytes as one whole text (docs/reliability.md K8)
        replace_file(self.directory, self.directory / CSV_NAME, _csv_chunks(rows), mode=self.mode)
        doc = {
            "kind": self.kind,
            "complete": not errors,
            "count": len(rows),
            "bytes": sum(int(r["size"] or 0) for r in rows),
            **(extra or {}),
            "errors": errors,
            "messages": [],
        }
        replace_file(self.directory, self.directory / JSON_NAME, _json_chunks(doc, rows), mode=self.mode)


_BLOCK = 10_000


def _csv_chunks(rows: list[dict]):
    """manifest.csv's bytes (header, then a row per line), :data:`_BLOCK` rows at a time."""
    for start in range(0, max(len(rows), 1), _BLOCK):
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
        if start == 0:
            w.writeheader()
        for r in rows[start:start + _BLOCK]:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
        yield buf.getvalue().encode("utf-8")


def _json_chunks(doc: dict, rows: list[dict]):
    """The bytes of ``json.dumps(doc with "messages": rows, indent=1)`` (``messages`` its last key), the rows
    :data:`_BLOCK` at a time: each block dumped as a list and indented one level deeper (JSON text holds a line
    end only between its tokens, never inside a string)."""
    text = json.dumps(doc, indent=1, ensure_ascii=False, default=str)
    tail = '"messages": []\n}'
    assert text.endswith(tail)
    if not rows:
        yield text.encode("utf-8")
        return
    yield (text[: -len(tail)] + '"messages": [\n').encode("utf-8")
    for start in range(0, len(rows), _BLOCK):
        block = json.dumps(rows[start:start + _BLOCK], indent=1, ensure_ascii=False, default=str)
        inner = " " + block[2:-2].replace("\n", "\n ")  # without "[\n" and "\n]", one level deeper
        yield ((",\n" if start else "") + inner).encode("utf-8")
    yield b"\n ]\n}"


def check_names(directory: Path) -> None:
    """UsageError naming the first manifest name (or temp name) in ``directory`` held by a symlink or a non-file."""
    for name in (CSV_NAME, JSON_NAME):
        refuse_link(Path(directory) / name)
        refuse_link(Path(directory) / (name + ".tmp"))


def read_manifest(directory: Path) -> dict | None:
    """The manifest.json of an export directory, or None when the export is incomplete."""
    try:
        return json.loads((Path(directory) / JSON_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
