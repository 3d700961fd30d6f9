"""``export eml DEST``: one .eml file per message, byte-identical to what was archived.

Files are written under a temporary name and linked into place (never
replacing); a rerun skips files that are already complete (same size and
SHA-256), so an interrupted export resumes. The manifest (CSV + JSON) is
written last: an export without ``manifest.json`` is incomplete. Its rows are in ``msg_id`` order (a mail's
copies in the order written), whatever order the packs were read in (docs/formats.md §12).

Nothing in DEST is followed if it is a symlink: mail files, directories and
the manifest names (``manifest.csv``, ``manifest.json`` and their ``.tmp``)
are created with O_NOFOLLOW|O_EXCL below directory descriptors opened with
O_NOFOLLOW (:func:`exporters.naming.open_exclusive`); a symlink at one of
them is an error naming it. Files get mode 0600 and new directories 0700
unless ``mode`` asks for more.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.archive import Archive
from toolkit.errors import UsageError
from toolkit.reporter import NullReporter, Reporter
from toolkit.errors import IntegrityError, StorageError
from toolkit.retrieval import STREAM_ABOVE, StoredMessage, read_messages, select_paged, stream_message, twins_to_leave_out

from .layout import PartFile, Publishing
from .manifest import csv_chunks, json_chunks
from .naming import DEFAULT_FILE_MODE, message_filename, replace_file, safe_join
from .target_space import stops_when_full

MANIFEST_FIELDS = ["msg_id", "message_id", "blob_id", "sha256", "size", "path"]


@dataclass
class ExportSummary:
    dest: str
    selected: int = 0
    written: int = 0
    already_present: int = 0
    errors: list[dict] = field(default_factory=list)
    bytes: int = 0
    #: converted mails not written because their original MIME (a converted-twin) is in the selection
    twins_left_out: list[dict] = field(default_factory=list)
    #: export imap: the read-back of appended copies (checked, altered, missing, without_uid), None elsewhere
    read_back: dict | None = None

    def as_dict(self) -> dict:
        return {
            "dest": self.dest,
            "selected": self.selected,
            "written": self.written,
            "already_present": self.already_present,
            "errors": self.errors,
            "bytes": self.bytes,
            "converted_twins_left_out": self.twins_left_out,
            **({"read_back": self.read_back} if self.read_back is not None else {}),
        }

    def gone(self, msg_id: int, reporter: Reporter | None = None) -> None:
        """Record a selected mail that left the catalog (purged) before its page of the selection was read."""
        self.errors.append({"msg_id": msg_id, "blob_id": None,
                            "error": "no longer in the catalog (purged while the export ran); not exported"})
        if reporter is not None:
            reporter.error(f"message {msg_id}: no longer in the catalog; not exported")

    def error(self, sm: StoredMessage, exc: BaseException | str, reporter: Reporter | None = None) -> None:
        """Record a mail that was not exported (and say so live, with a reporter)."""
        self.errors.append({"msg_id": sm.msg_id, "blob_id": sm.blob_id, "error": str(exc)})
        if reporter is not None:
            reporter.error(f"message {sm.msg_id}: {exc}")


def readable(archive: Archive, selection: list[StoredMessage], summary: ExportSummary, reporter: Reporter):
    """(message, bytes or None = stream it) for every selected mail that reads; the others go to the summary."""
    for sm, data in read_messages(archive, selection, stream_above=STREAM_ABOVE):
        reporter.advance("export", 1)
        if isinstance(data, Exception):
            summary.error(sm, data, reporter)
            continue
        yield sm, data


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_new(dest: Path, path: Path, data, publishing, mode: int = DEFAULT_FILE_MODE) -> None:
    """Write bytes (or an iterator of chunks) under a temporary name; ``publishing`` fsyncs it and links it into
    place (create-only: never replaces an existing file, never follows a symlink there) with its batch."""
    part = PartFile(dest, path, mode, hashed=False)  # parents made without following symlinks
    publishing.write(part, [data] if isinstance(data, bytes) else data)


LAYOUTS = ("flat", "folder", "date")


@stops_when_full
def export_eml(
    archive: Archive,
    dest: Path,
    where: str | None = None,
    params: list | None = None,
    reporter: Reporter | None = None,
    *,
    filters=None,
    layout: str = "flat",
    mode: int = DEFAULT_FILE_MODE,
    converted_twins: bool = False,
) -> ExportSummary:
    """Export the selection (``filters``, a :class:`exporters.filters.Filters`, ANDed with ``where``).

    A converted mail (built from an Outlook item) whose original MIME is selected too is left out
    and listed in the summary, unless ``converted_twins`` (docs/dedup.md: export prefers the original).

    ``layout``: ``flat`` (all files in DEST), ``folder`` (one copy per source
    folder, in directories named after it, messages without a folder in DEST
    itself) or ``date`` (``DEST/YYYY/MM/``, ``nodate/`` for mail without a date).
    """
    from toolkit.places import refuse_overlap

    refuse_overlap(archive, dest, "export eml", around=False)  # never plaintext into a medium or the home
    from toolkit import faults

    from .layout import FolderDirs, all_folders, make_dest, placements, remove_stale_parts
    from .manifest import check_names
    from .spill import SortedRows

    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    reporter = reporter or NullReporter()
    dest = make_dest(dest, "eml", mode)
    check_names(dest)
    if filters is not None:
        fwhere, fparams = filters.sql()
        if fwhere:
            where = f"({where}) AND {fwhere}" if where else fwhere
            params = list(params or []) + fparams
    selection = select_paged(archive, where, params)
    summary = ExportSummary(dest=str(dest), selected=len(selection))
    if not converted_twins:
        selection, summary.twins_left_out = twins_to_leave_out(archive, selection)
    (dest / "manifest.json").unlink(missing_ok=True)  # the export is incomplete until rewritten
    remove_stale_parts(dest)
    places: dict = {}

    def on_page(page) -> None:  # the placements of one page of the selection at a time (K8)
        if layout == "folder":
            places.clear()
            places.update(placements(archive, [sm.msg_id for sm in page], filters))

    dirs = FolderDirs(dest, all_folders(archive) if layout == "folder" else ())
    rows = SortedRows(dest, _by_msg_id)  # the manifest's rows, spilled beside the export (K8)
    try:
        reporter.start("export", len(selection), "mails")
        mails = selection.mails(on_page, gone=lambda msg_id: summary.gone(msg_id, reporter))
        # each file is counted and put in the manifest when written; a batch that fails to publish fails the
        # export, which then writes no manifest
        with Publishing(after=lambda: faults.hit("export_after_file")) as publishing:
            for sm, data in readable(archive, mails, summary, reporter):
                name = message_filename(sm.msg_id, sm.subject, sm.sent_date or sm.internal_date)
                if layout == "folder":
                    paths = [dirs.file(p.folder, name) for p in places[sm.msg_id]]
                elif layout == "date":
                    when = sm.sent_date or sm.internal_date
                    paths = [dirs.file(f"{when:%Y}/{when:%m}" if when else "nodate", name)]
                else:
                    paths = [safe_join(dest, name)]
                for path in paths:
                    if path.exists() or path.is_symlink():
                        if not path.is_symlink() and path.is_file() and path.stat().st_size == sm.size \
                                and _sha256_file(path) == sm.blob_id:
                            summary.already_present += 1
                        else:
                            summary.error(sm, f"{path} exists with other content; not replaced")
                            continue
                    else:
                        try:
                            _write_new(dest, path, data if data is not None else stream_message(archive, sm),
                                       publishing, mode)
                        except (IntegrityError, StorageError) as exc:
                            summary.error(sm, exc)
                            continue
                        summary.written += 1
                        summary.bytes += sm.size
                    rows.add(_manifest_row(sm, path.relative_to(dest).as_posix()))
        reporter.finish("export")
        _write_manifest(dest, rows, summary, mode, filters.describe() if filters is not None else {})
    finally:
        rows.close()
    return summary


def _by_msg_id(row: dict) -> int:
    """The order of an eml export's manifest rows: by msg_id (a mail's copies in the order they were written)."""
    return row["msg_id"]


def _manifest_row(sm: StoredMessage, rel: str) -> dict:
    return {
        "msg_id": sm.msg_id,
        "message_id": sm.message_id,
        "blob_id": sm.blob_id,
        "sha256": sm.blob_id,
        "size": sm.size,
        "path": rel,
    }


def _write_manifest(dest: Path, rows, summary: ExportSummary, mode: int = DEFAULT_FILE_MODE,
                    selection: dict | None = None) -> None:
    """manifest.csv, then manifest.json, written a block of rows at a time in msg_id order (docs/formats.md)."""
    replace_file(dest, dest / "manifest.csv", csv_chunks(rows, MANIFEST_FIELDS), mode=mode)
    doc = {"complete": not summary.errors, "count": len(rows), "filters": selection or {},
           "errors": summary.errors, "messages": []}
    replace_file(dest, dest / "manifest.json", json_chunks(doc, rows, ensure_ascii=True), mode=mode)
