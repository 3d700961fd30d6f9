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

Rows are in ``msg_id`` order, then folder, path and target (docs/formats.md §12). While the export runs
they wait sorted in runs in an unnamed temporary file in the manifest directory (:mod:`exporters.spill`),
so an export of a million mails holds no row per mail (docs/reliability.md K8).

Both files, and their ``.tmp`` names, are written without following a
symlink (:func:`exporters.naming.replace_file`): a symlink or a non-file
at any of those names stops the export with an error naming it, before
anything is written. They get the export's file mode (0600 by default).
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .naming import DEFAULT_FILE_MODE, refuse_link, replace_file
from .spill import SortedRows

FIELDS = ["msg_id", "message_id", "blob_id", "sha256", "size", "folder", "path", "target", "uid"]
JSON_NAME = "manifest.json"
CSV_NAME = "manifest.csv"
_MSG_ID, _SIZE, _FOLDER, _PATH, _TARGET = (FIELDS.index(k) for k in ("msg_id", "size", "folder", "path", "target"))


def _order(row: tuple):
    """The rows' order in both files: by msg_id, then folder, path, target."""
    return (row[_MSG_ID], row[_FOLDER] or "", row[_PATH] or "", row[_TARGET] or "")


@dataclass
class Manifest:
    """The rows of an export's manifest: kept as tuples, sorted and spilled beside the manifest while the export
    runs (:class:`exporters.spill.SortedRows`, docs/reliability.md K8), written by :meth:`write`."""

    directory: Path
    kind: str
    mode: int = DEFAULT_FILE_MODE
    _rows: SortedRows | None = field(default=None, repr=False)
    _bytes: int = 0

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
        if self._rows is None:
            self._rows = SortedRows(self.directory, _order)
        values = tuple(row.get(k) for k in FIELDS)
        self._rows.add(values)
        self._bytes += int(values[_SIZE] or 0)

    def __len__(self) -> int:
        return len(self._rows) if self._rows is not None else 0

    def rows(self) -> Iterator[dict]:
        """The rows as dicts, in the manifest's order."""
        return (dict(zip(FIELDS, r)) for r in (self._rows if self._rows is not None else ()))

    def write(self, *, errors: list[dict], extra: dict | None = None) -> None:
        """Write manifest.csv, then manifest.json (atomically, last), both in msg_id order."""
        try:
            # both files are written a block of rows at a time, the same bytes as one whole text (docs/reliability.md K8)
            replace_file(self.directory, self.directory / CSV_NAME, _csv_chunks(self.rows()), mode=self.mode)
            doc = {
                "kind": self.kind,
                "complete": not errors,
                "count": len(self),
                "bytes": self._bytes,
                **(extra or {}),
                "errors": errors,
                "messages": [],
            }
            replace_file(self.directory, self.directory / JSON_NAME, json_chunks(doc, self.rows()), mode=self.mode)
        finally:
            self.close()

    def close(self) -> None:
        """Let the spilled rows go (their file too)."""
        if self._rows is not None:
            self._rows.close()
            self._rows = None


_BLOCK = 10_000


def blocks(rows: Iterable, size: int | None = None) -> Iterator[list]:
    """``rows`` in lists of :data:`_BLOCK` (the last one shorter; none for no rows)."""
    it = iter(rows)
    size = int(size or _BLOCK)
    while True:
        block = list(itertools.islice(it, size))
        if not block:
            return
        yield block


def _csv_chunks(rows: Iterable[dict]):
    """manifest.csv's bytes (header, then a row per line), :data:`_BLOCK` rows at a time."""
    yield from csv_chunks(rows, FIELDS, lineterminator="\n", blank_none=True)


def csv_chunks(rows: Iterable[dict], fields: list[str], *, lineterminator: str = "\r\n", blank_none: bool = False,
               extrasaction: str = "raise"):
    """The bytes of a ``csv.DictWriter`` of ``fields`` (header, then ``rows``), written :data:`_BLOCK` rows at a
    time; with ``blank_none`` a None value is written as an empty string (DictWriter does the same)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator=lineterminator, extrasaction=extrasaction)
    w.writeheader()
    for block in blocks(rows, _BLOCK):
        for r in block:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()} if blank_none else r)
        yield buf.getvalue().encode("utf-8")
        buf.seek(0)
        buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode("utf-8")


def json_chunks(doc: dict, rows: Iterable[dict], **dump):
    """The bytes of ``json.dumps(doc with "messages": rows, indent=1, **dump)`` (``messages`` its last key, given
    as []), the rows :data:`_BLOCK` at a time: each block dumped as a list and indented one level deeper (JSON text
    holds a line end only between its tokens, never inside a string). ``dump`` defaults to the export manifest's
    ``ensure_ascii=False, default=str``."""
    dump = dump or {"ensure_ascii": False, "default": str}
    text = json.dumps(doc, indent=1, **dump)
    tail = '"messages": []\n}'
    assert text.endswith(tail)
    first = True
    for block in blocks(rows, _BLOCK):
        if first:
            yield (text[: -len(tail)] + '"messages": [\n').encode("utf-8")
        dumped = json.dumps(block, indent=1, **dump)
        inner = " " + dumped[2:-2].replace("\n", "\n ")  # without "[\n" and "\n]", one level deeper
        yield (("" if first else ",\n") + inner).encode("utf-8")
        first = False
    yield (text.encode("utf-8") if first else b"\n ]\n}")


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
