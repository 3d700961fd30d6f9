"""``export eml --zip FILE``: one zip file for auditors (RELIABILITY N7; docs/reliability.md).

The zip holds one ``.eml`` member per exported copy, byte-identical to what was archived (large
mails are streamed into it, never held whole), laid out like ``export eml`` (flat, per folder or per
date), then ``manifest.csv`` and ``manifest.json`` as its last members: the same rows as a directory
export (in ``msg_id`` order, docs/formats.md §12), plus ``attachments``, the file names a mail gives its parts (RFC 2231 ``filename*=`` and
RFC 2047 forms decoded, control characters escaped). Those names are for display only: no member
name is ever made from them.

Member names come from :class:`exporters.layout.FolderDirs` (every part through
``naming.safe_component``) and are checked once more before they are written: relative, no
``.``/``..``/empty part, no backslash, no control character. Names that are not ASCII are stored as
UTF-8 with the zip's UTF-8 flag (bit 11) set, as ``zipfile`` does.

The file is written under a temporary name next to FILE (created O_CREAT|O_EXCL|O_NOFOLLOW, mode
``mode``), fsynced, then linked to FILE, which must not exist yet (create-only: an existing file or
a symlink there is never replaced or followed). A zip that exists is therefore complete.

Memory (docs/reliability.md K8): the manifest's rows and the central directory's records (``zipfile`` keeps a
``ZipInfo`` per member for it) wait in unnamed temporary files next to FILE while the zip is written
(:mod:`exporters.spill`); ``zipfile`` writes the central directory from them when it closes the zip.
"""
from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import os
import re
import secrets
import zipfile
from pathlib import Path

from toolkit.archive import Archive
from toolkit.errors import IntegrityError, StorageError, UsageError
from toolkit.reporter import NullReporter, Reporter
from toolkit.retrieval import select_paged, stream_message, twins_to_leave_out

from .eml import LAYOUTS, MANIFEST_FIELDS, ExportSummary, readable
from .layout import FolderDirs, all_folders, placements
from .manifest import csv_chunks, json_chunks
from .naming import DEFAULT_FILE_MODE, message_filename
from .spill import SortedRows, Spill
from .target_space import stops_when_full

_FILE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Mails up to this size are parsed for the display names of their attachments.
ATTACHMENT_NAMES_UP_TO = 32 << 20
_EPOCH = (1980, 1, 1, 0, 0, 0)


def check_member(name: str) -> str:
    """``name`` when it is a safe zip member name, else IntegrityError (a bug: names come from FolderDirs)."""
    parts = name.split("/")
    if (not name or name.startswith("/") or "\\" in name or _CONTROL.search(name)
            or any(p in ("", ".", "..") for p in parts) or re.match(r"[A-Za-z]:", name)):
        raise IntegrityError(f"unsafe zip member name {name!r}")
    return name


def display(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def attachment_names(data: bytes | None) -> list[str] | None:
    """The decoded file names of a mail's parts (display only), or None when not looked at."""
    if data is None or len(data) > ATTACHMENT_NAMES_UP_TO:
        return None
    try:
        msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
        return [display(str(n)) for n in (part.get_filename() for part in msg.walk()) if n]
    except Exception:  # a malformed header the parser cannot take: the mail is exported anyway
        return None


def _date_time(when: dt.datetime | None) -> tuple:
    if when is None or not 1980 <= when.year <= 2107:
        return _EPOCH
    return (when.year, when.month, when.day, when.hour, when.minute, when.second)


def _info(name: str, when: dt.datetime | None, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(check_member(name), _date_time(when))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100000 | mode) << 16
    return info


def _open_new(dest: Path, mode: int):
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    try:
        fd = os.open(tmp, _FILE_FLAGS, mode)
    except FileNotFoundError:
        raise UsageError(f"{dest.parent} does not exist: create it, or choose another place for the zip") from None
    except OSError as exc:
        raise UsageError(f"cannot create {tmp}: {exc.strerror}") from None
    return tmp, os.fdopen(fd, "w+b")


@stops_when_full
def export_eml_zip(archive: Archive, dest: Path, reporter: Reporter | None = None, *, filters=None,
                   layout: str = "flat", mode: int = DEFAULT_FILE_MODE, converted_twins: bool = False) -> ExportSummary:
    """Export the selection (``filters``) into the new zip file ``dest``; see the module docstring.

    A converted mail whose original MIME is selected too is left out, as in :func:`exporters.eml.export_eml`,
    unless ``converted_twins``."""
    from toolkit.places import refuse_overlap

    refuse_overlap(archive, dest, "export zip", around=False)  # never plaintext into a medium or the home
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    dest = Path(dest)
    if os.path.lexists(dest):
        raise UsageError(f"{dest} exists (a file, directory or symlink): a zip export creates a new file, "
                         "never replaces one")
    reporter = reporter or NullReporter()
    where, params = filters.sql() if filters is not None else (None, [])
    selection = select_paged(archive, where or None, params)
    summary = ExportSummary(dest=str(dest), selected=len(selection))
    if not converted_twins:
        selection, summary.twins_left_out = twins_to_leave_out(archive, selection)
    tmp, f = _open_new(dest, mode)
    # the manifest's rows and the zip's central directory wait beside the zip, not in memory (K8)
    rows = SortedRows(dest.parent, _by_msg_id)
    infos = _Infos(dest.parent)
    try:
        with f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
                zf.filelist, zf.NameToInfo = infos, _NoNames()
                _members(archive, zf, selection, summary, reporter, filters, layout, mode, rows)
                _manifest(zf, rows, summary, mode)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, dest)
        except FileExistsError:
            raise UsageError(f"refusing to write {str(dest)!r}: something (a file or a symlink) appeared there") from None
    finally:
        rows.close()
        infos.close()
        tmp.unlink(missing_ok=True)
    return summary


def _by_msg_id(row: dict) -> int:
    """The manifest's order: by msg_id (a mail's copies in the order they were written)."""
    return row["msg_id"]


class _Unset:
    """Marks a ZipInfo slot that was never set."""


_SLOTS = tuple(zipfile.ZipInfo.__slots__)


class _Infos:
    """``ZipFile.filelist`` of a zip written by this module: each member's ZipInfo as the values of its slots in a
    :class:`exporters.spill.Spill`, rebuilt one at a time when ``ZipFile.close`` writes the central directory
    (a ZipInfo per member of a million was ~1 GB). ``append``, ``len`` and iteration are all ``zipfile`` uses of
    its ``filelist`` while it writes."""

    def __init__(self, directory: Path):
        self._spill = Spill(directory)

    def append(self, info: zipfile.ZipInfo) -> None:
        self._spill.append(tuple(getattr(info, slot, _Unset) for slot in _SLOTS))

    def __len__(self) -> int:
        return len(self._spill)

    def __iter__(self):
        for values in self._spill:
            info = zipfile.ZipInfo.__new__(zipfile.ZipInfo)
            for slot, value in zip(_SLOTS, values):
                if value is not _Unset:
                    setattr(info, slot, value)
            yield info

    def close(self) -> None:
        self._spill.close()


class _NoNames(dict):
    """``ZipFile.NameToInfo`` that keeps nothing: member names are unique by construction (FolderDirs), so
    zipfile's warning about a duplicate name has nothing to find."""

    def __setitem__(self, key, value) -> None:
        pass


def _members(archive, zf, selection, summary, reporter, filters, layout, mode, rows) -> None:
    places: dict = {}

    def on_page(page) -> None:  # the placements of one page of the selection at a time (K8)
        if layout == "folder":
            places.clear()
            places.update(placements(archive, [sm.msg_id for sm in page], filters))

    dirs = FolderDirs(Path("."), all_folders(archive) if layout == "folder" else ())
    for reserved in ("manifest.csv", "manifest.json"):
        dirs.member(None, reserved)  # no folder or mail takes the manifest's names
    reporter.start("export", len(selection), "mails")
    mails = selection.mails(on_page, gone=lambda msg_id: summary.gone(msg_id, reporter))
    for sm, data in readable(archive, mails, summary, reporter):
        name = message_filename(sm.msg_id, sm.subject, sm.sent_date or sm.internal_date)
        when = sm.sent_date or sm.internal_date
        if layout == "folder":
            folders = [p.folder for p in places[sm.msg_id]]
        elif layout == "date":
            folders = [f"{when:%Y}/{when:%m}" if when else "nodate"]
        else:
            folders = [None]
        names = attachment_names(data)
        for folder in folders:
            member = dirs.member(folder, name)
            try:
                _write_member(zf, _info(member, when, mode), data if data is not None else stream_message(archive, sm))
            except (IntegrityError, StorageError) as exc:
                summary.error(sm, exc)
                continue
            summary.written += 1
            summary.bytes += sm.size
            rows.add({"msg_id": sm.msg_id, "message_id": sm.message_id, "blob_id": sm.blob_id,
                      "sha256": sm.blob_id, "size": sm.size, "path": member, "attachments": names})
    reporter.finish("export")


def _write_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, data) -> None:
    with zf.open(info, "w", force_zip64=True) as out:
        if isinstance(data, bytes):
            out.write(data)
        else:
            for chunk in data:
                out.write(chunk)


def _manifest(zf: zipfile.ZipFile, rows, summary: ExportSummary, mode: int) -> None:
    """manifest.csv and manifest.json as the zip's last members, streamed a block of rows at a time, in msg_id
    order (docs/formats.md)."""
    now = dt.datetime.now(dt.timezone.utc)
    _write_member(zf, _info("manifest.csv", now, mode), csv_chunks(rows, MANIFEST_FIELDS, extrasaction="ignore"))
    doc = {"kind": "eml-zip", "complete": not summary.errors, "count": len(rows), "errors": summary.errors,
           "messages": []}
    _write_member(zf, _info("manifest.json", now, mode), json_chunks(doc, rows, ensure_ascii=False))
