"""``export mbox DEST``: mboxrd files that ``import mbox --variant mboxrd`` reads back byte for byte (L3).

Format (mboxrd)
---------------
Each message is ``From SENDER DATE`` (SENDER the catalog's sender address,
or ``MAILER-DAEMON`` when there is none or it is not one token; DATE the
asctime of the internal date — the delivery time, which re-import makes
the internal date again — else the sent date, else the archiving time, in
UTC), then the archived bytes with every line matching ``^>*From `` given
one more ``>``, then one empty line. The importer removes exactly that
empty line and one ``>`` per quoted line, so the bytes and the blob ids
come back the same.

Two kinds of message cannot share an mbox file with a message after them:

* a message whose last line has no line ending (the empty separator line
  would join it): each one is written into a file of its own,
  ``NAME-2.mbox``, ``NAME-3.mbox``…;
* a message with a line that is just ``From`` (no space after it, so
  mboxrd cannot quote it and a reader would split there): not exported,
  listed as an error (export it as eml).

Files
-----
DEST is a directory. Without ``per_folder`` every selected message is in
``DEST/messages.mbox``; with it, one file per source folder, named after it
(``Archive/2019`` → ``DEST/Archive/2019.mbox``, safe names as in
:mod:`exporters.layout`), a message seen in several folders in each of
them; messages without a folder go to ``INBOX.mbox``.

Flags
-----
mboxrd keeps no flags besides the messages' own header. By default the
archived bytes are written unchanged (the round trip above). With ``flags``
(``--flags``) each copy gets ``Status:``, ``X-Status:`` and
``X-Mozilla-Status:`` fields for its flags instead of any such fields it
had (:mod:`exporters.mbox_status`), so mutt, Thunderbird and ``import mbox``
show it read, answered, flagged as the archive recorded it; the manifest's
``sha256`` is then that of the message as written.

Each file is written under a temporary name and linked into place when
complete (create-only); ``manifest.csv``/``manifest.json`` follow last
(:mod:`exporters.manifest`). A rerun after an interruption writes the
missing files; a file that is already there with the same SHA-256 is kept
(the output is deterministic for the same selection), one with other
content is never replaced.

Other readers (checked by hand, tests/README.md "Servers other than Dovecot")
-------------------------------------------------------------------------
Python's ``mailbox.mbox``, Dovecot 2.3 (``mail_location = mbox:DEST``),
mutt 2.2 and formail 3.22 find every message of ``messages.mbox``. None of
them removes the mboxrd quoting (they read mboxo: a body line ``From x``
shows as ``>From x``); Dovecot gives a CRLF message's header lines with
LF, mutt adds ``Content-Length:`` and ``Lines:`` when it copies; apart
from that the bytes are the archived ones. A message without a final line
end (alone in ``NAME-2.mbox``) is read exactly by Python and Dovecot, but
mutt drops its last character (it takes the last byte of the file for the
separator): export such mail as eml for mutt. Dovecot names mbox folders
by their file names in modified UTF-7, so it shows ``Entwürfe.mbox`` of
``per_folder`` as an empty folder (the files are named in UTF-8, as mutt and
Thunderbird expect).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Iterable, Iterator

from toolkit import faults
from toolkit.archive import Archive
from toolkit.errors import IntegrityError, StorageError
from toolkit.reporter import NullReporter, Reporter
from toolkit.retrieval import StoredMessage, select_paged, stream_message

from .eml import ExportSummary, readable
from .filters import Filters
from .layout import DEFAULT_FOLDER, FolderDirs, PartFile, message_facts, open_export_dir, placements
from .mbox_status import status_stream, with_status
from .naming import DEFAULT_FILE_MODE
from .target_space import stops_when_full

SINGLE_NAME = "messages"
#: a line ``>*From `` after the first (mboxrd quotes it), and the same at the start: each anchored on a literal
#: (a newline; the data's start), so the search runs at C speed from one newline to the next instead of trying the
#: pattern at every byte as ``^…`` with re.M does (export mbox spent half its CPU there: 148 against 1,017 MB/s on the
#: bench corpus; tests/unit/test_mbox_quote.py pins them to the ``^…$`` patterns they replace)
_QUOTE = re.compile(rb"\n(>*From )")
_QUOTE_FIRST = re.compile(rb">*From ")
#: a line that is just ``From`` (mboxrd cannot quote it): after a newline, and at the start
_BARE_FROM = re.compile(rb"\nFrom[ \t]*\r?(?=\n|\Z)")
_BARE_FROM_FIRST = re.compile(rb"From[ \t]*\r?(?=\n|\Z)")
_SENDER = re.compile(r"(?=[!-~]*+\Z)[!-~]+@[!-~]+")  # the lookahead first: linear when it fails


class Unrepresentable(ValueError):
    """The message cannot be written as mboxrd without changing its bytes on re-import."""


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def from_line(sender: str | None, when: dt.datetime | None) -> bytes:
    """``From anna@example.com Mon Jan  7 09:15:00 2019\\n`` (asctime, UTC, independent of the locale)."""
    who = sender if sender and _SENDER.fullmatch(sender) else "MAILER-DAEMON"
    when = when or dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc)
    stamp = f"{_DAYS[when.weekday()]} {_MONTHS[when.month - 1]} {when.day:2d} {when:%H:%M:%S} {when.year:04d}"
    return f"From {who} {stamp}\n".encode("ascii")


def has_bare_from(data: bytes) -> bool:
    """Whether ``data`` (whole lines) holds a line that is just ``From`` (blanks and a CR allowed after it)."""
    return _BARE_FROM.search(data) is not None or (data[:4] == b"From" and _BARE_FROM_FIRST.match(data) is not None)


def quote(data: bytes) -> bytes:
    """mboxrd quoting of a whole message: one more '>' before every ``^>*From `` line."""
    if has_bare_from(data):
        raise Unrepresentable("a line that is just 'From' cannot be quoted in mboxrd; export this message as eml")
    out = _QUOTE.sub(rb"\n>\1", data)
    return b">" + out if _QUOTE_FIRST.match(out) else out


def quote_stream(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """:func:`quote` over chunks (whole lines are quoted; a partial line waits for its end)."""
    rest = b""
    for chunk in chunks:
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if cut:
            yield quote(data[:cut])
    if rest:
        yield quote(rest)


class _Box:
    """One output mbox: a part file that grows while messages arrive (its manifest rows go out as they come;
    only how many and their bytes are kept)."""

    def __init__(self, root: Path, path: Path, mode: int):
        self.path = path
        self.rel = path.relative_to(root).as_posix()
        self.part = PartFile(root, path, mode)
        self.count = 0
        self.bytes = 0


class _Boxes:
    """The output mboxes of one export, by folder (a message without a final line ending gets its own file,
    linked into place as soon as it is written)."""

    def __init__(self, dest: Path, per_folder: bool, mode: int, manifest, summary: ExportSummary, counts: dict):
        self.dest = dest
        self.per_folder = per_folder
        self.mode = mode
        self.manifest, self.summary, self.counts = manifest, summary, counts
        self.dirs = FolderDirs(dest)
        self.boxes: dict[str, _Box] = {}
        self.spill: dict[str, int] = {}

    def box_for(self, folder: str | None, alone: bool) -> _Box:
        per_folder, dirs = self.per_folder, self.dirs
        key = folder if per_folder else None
        base = (key or DEFAULT_FOLDER) if per_folder else None
        if alone:
            n = self.spill.get(base or "", 1) + 1
            self.spill[base or ""] = n
            path = dirs.file(base, f"-{n}.mbox", as_leaf=True) if per_folder else dirs.file(None, f"{SINGLE_NAME}-{n}.mbox")
            return _Box(self.dest, path, self.mode)
        k = base or ""
        if k not in self.boxes:
            path = dirs.file(base, ".mbox", as_leaf=True) if per_folder else dirs.file(None, f"{SINGLE_NAME}.mbox")
            self.boxes[k] = _Box(self.dest, path, self.mode)
        return self.boxes[k]

    def add(self, sm: StoredMessage, line: bytes, body, ends_nl: bool, copies: list[tuple[str | None, tuple | None]]) -> None:
        """Append one message (its From_ line, quoted body and separator) to the box of each (folder, flags)
        copy; ``body(flags)`` gives the quoted chunks and then the SHA-256 of the message as written."""
        for folder, flags in copies:
            box = self.box_for(folder, alone=not ends_nl)
            try:
                box.part.write(line)
                chunks, digest = body(flags)
                for chunk in chunks:
                    box.part.write(chunk)
                if ends_nl:
                    box.part.write(b"\n")
            except BaseException:
                if not ends_nl:
                    box.part.abort()
                raise
            self.manifest.add(msg_id=sm.msg_id, message_id=sm.message_id, blob_id=sm.blob_id, sha256=digest(),
                              size=sm.size, folder=folder, path=box.rel)
            box.count += 1
            box.bytes += sm.size
            if not ends_nl:
                self._finish(box)

    def _finish(self, box: _Box) -> None:
        state = box.part.finish()
        self.counts["files_written" if state == "written" else "files_present"] += 1
        if state == "written":
            self.summary.written += box.count
            self.summary.bytes += box.bytes
        else:
            self.summary.already_present += box.count
        faults.hit("export_after_file")

    def finish(self) -> None:
        """Link every complete box into place."""
        for box in self.boxes.values():
            self._finish(box)

    def abort(self) -> None:
        for box in self.boxes.values():
            box.part.abort()


@stops_when_full
def export_mbox(
    archive: Archive,
    dest: Path,
    filters: Filters | None = None,
    *,
    per_folder: bool = False,
    flags: bool = False,
    reporter: Reporter | None = None,
    mode: int = DEFAULT_FILE_MODE,
) -> ExportSummary:
    """Export the selected messages as mboxrd into the directory DEST (see the module docstring).

    Files get ``mode`` (0600 unless asked), new directories the matching directory mode. With ``flags``
    each copy gets the ``Status:`` fields of its flags (:mod:`exporters.mbox_status`: the folder's
    latest sighting with ``per_folder``, else those of all its folders together) and the manifest's
    ``sha256`` is that of the message as written.
    """
    from toolkit.places import refuse_overlap

    refuse_overlap(archive, dest, "export mbox", around=False)  # never plaintext into a medium or the home
    reporter = reporter or NullReporter()
    dest, manifest = open_export_dir(dest, "mbox", mode)
    selection = select_paged(archive, *(filters or Filters()).sql())
    summary = ExportSummary(dest=str(dest), selected=len(selection))
    facts: dict = {}
    places: dict = {}

    def on_page(page) -> None:  # the facts and placements of one page of the selection at a time (K8)
        ids = [sm.msg_id for sm in page]
        facts.clear()
        facts.update(message_facts(archive, ids))
        if per_folder or flags:
            places.clear()
            places.update(placements(archive, ids, filters))

    counts = {"files_written": 0, "files_present": 0}
    boxes = _Boxes(dest, per_folder, mode, manifest, summary, counts)

    reporter.start("export", len(selection), "mails")
    try:
        mails = selection.mails(on_page, gone=lambda msg_id: summary.gone(msg_id, reporter))
        for sm, data in readable(archive, mails, summary, reporter):
            try:
                body, ends_nl = _prepare(archive, sm, data)
            except (Unrepresentable, IntegrityError, StorageError) as exc:
                summary.error(sm, exc, reporter)
                continue
            f = facts.get(sm.msg_id, {})
            line = from_line(f.get("from_addr"), f.get("internal_date") or f.get("sent_date") or f.get("archived_at"))
            boxes.add(sm, line, body, ends_nl, _copies(places.get(sm.msg_id, ()), per_folder, flags))
        boxes.finish()
    except BaseException:
        boxes.abort()
        manifest.close()
        raise
    finally:
        reporter.finish("export")
    manifest.write(errors=summary.errors, extra={"filters": (filters or Filters()).describe(), "per_folder": per_folder,
                                                 "flag_fields": flags, **counts})
    return summary


def _copies(places, per_folder: bool, flags: bool) -> list[tuple[str | None, tuple | None]]:
    """(folder, flags or None = the archived bytes) of each copy of one message."""
    if per_folder:
        return [(p.folder, p.flags if flags else None) for p in places]
    if flags:
        return [(None, tuple(sorted({f for p in places for f in p.flags})))]
    return [(None, None)]


def _archived(blob_id: str):
    return lambda: blob_id


def _prepare(archive: Archive, sm: StoredMessage, data: bytes | None):
    """(``body(flags)``: the quoted chunks and a callable giving the SHA-256 of the message as written once
    they are consumed; does the message end with a line ending?). ``flags`` None: the archived bytes."""
    if data is not None:
        quoted = quote(data)

        def body(flags):
            if flags is None:
                return [quoted], _archived(sm.blob_id)
            changed = with_status(data, flags)
            return [quote(changed)], _archived(hashlib.sha256(changed).hexdigest())
        return body, data.endswith(b"\n")
    # a large message: check it once (bare From lines, the last byte), then stream it again per copy
    last = b""
    rest = b""
    for chunk in stream_message(archive, sm):
        if chunk:
            last = chunk[-1:]
            data2 = rest + chunk
            cut = data2.rfind(b"\n") + 1
            if has_bare_from(data2[:cut]):
                raise Unrepresentable("a line that is just 'From' cannot be quoted in mboxrd; export this message as eml")
            rest = data2[cut:]
    if rest and has_bare_from(rest):
        raise Unrepresentable("a line that is just 'From' cannot be quoted in mboxrd; export this message as eml")

    def streamed(flags):
        if flags is None:
            return quote_stream(stream_message(archive, sm)), _archived(sm.blob_id)
        h = hashlib.sha256()

        def hashed(chunks):
            for chunk in chunks:
                h.update(chunk)
                yield chunk
        return quote_stream(hashed(status_stream(stream_message(archive, sm), flags))), lambda: h.hexdigest()
    return streamed, last == b"\n"

