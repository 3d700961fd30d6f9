"""The checks ``import eml`` runs where a local file is read (in a worker process, docs/architecture.md): is it mail
(:func:`not_mail`, the item's ``content_check``), and the From_ line or Apple Mail .emlx wrapper cut off
(:func:`cut_wrapper`, :func:`cut_partial_emlx`, the item's ``envelope_cut``); the rules are importers/eml.py's
module docstring. A job carries these functions by reference, so they live in this small module, which imports
only the content check (:mod:`importers.content`) and the From_ line rules (:mod:`importers.from_line`): a
worker does not import the importers themselves."""
from __future__ import annotations

import datetime as dt
import re

from toolkit.prepare import NotMail, Trimmed
from toolkit.source import Unsupported

from .content import HEAD, _HEADER_LINE, _first_line_is_from, mail_content, mail_elsewhere, starts_with_headers
from .from_line import from_line_date, is_from_line


FROM_LINE_REMOVED = "from-line-removed"


#: Apple Mail ``.emlx``: the byte-count line and the plist trailer were removed (docs/sources.md "Apple Mail .emlx")
EMLX_WRAPPER_REMOVED = "emlx-wrapper-removed"


#: the count line disagrees with the file (no plist where the count ends): everything after the line is kept
EMLX_LENGTH_MISMATCH = "emlx-length-mismatch"


#: a ``.partial.emlx``: Apple Mail keeps the attachments in ``Attachments/<n>/`` beside it, not in the message
EMLX_PARTIAL = "emlx-partial"


_EMLX_COUNT = re.compile(rb"[ \t]*(\d{1,12})[ \t]*\r?\n")


_PLIST_START = re.compile(rb"\s*<(?:\?xml|!DOCTYPE plist|plist)")


#: bits of the plist's ``flags`` integer → IMAP flag names (read, deleted, answered, flagged, draft, forwarded)
_EMLX_FLAG_BITS = ((0, "\\Seen"), (1, "\\Deleted"), (2, "\\Answered"), (4, "\\Flagged"), (6, "\\Draft"),
                   (8, "$Forwarded"))


def envelope_length(head: bytes, whole: bool) -> int:
    """The bytes before the message when ``head`` (a file's first bytes) opens with a From_ line, else 0:
    a UTF-8 BOM, empty lines and the From_ line with its line ending."""
    if not _first_line_is_from(head, whole):
        return 0
    return head.index(b"From ") + len(head[head.index(b"From "):].split(b"\n", 1)[0]) + 1


def _envelope_note(head: bytes, cut: int) -> dict:
    return {"flags": (FROM_LINE_REMOVED,), "internal_date": from_line_date(head[head.index(b"From "):cut]),
            "date_source": "from-line"}


#: a file that opened with a From_ line holds more messages after it (From_ lines after an empty line, each
#: followed by a header line): most likely an mbox (a Thunderbird folder file, Apple Mail's ``mbox``)
MORE_FROM_LINES = "holds-more-from-lines"


#: from this many messages on (:func:`mbox_messages`) such a file is refused, not archived as one message: a
#: single mail may carry one or two unquoted From_ lines that look like separators (a patch pasted into a
#: text/plain body), which only get the note
MBOX_REFUSED_FROM = 3


#: the date ``git format-patch`` writes in the From_ line of every patch; never a delivered mail's
_GIT_PATCH_DATE = b"Mon Sep 17 00:00:00 2001"


_BOUNDARY = re.compile(rb'boundary\s*=\s*"?([^";\r\n]+)', re.I)


_MBOX_GIVEN = ("an mbox file holding %s messages, not one message: not imported. Import it as an mbox (the mbox "
               "import splits it, so does the share import); --force-raw archives the whole file as one message")


def mbox_messages(rest: bytes) -> int:
    """How many messages a file holds after its leading From_ line, split as the mbox import splits: 1, plus
    each From_ line after an empty line that a header field follows (importers/mbox.py, L2). Not counted:
    a From_ line inside the first message's MIME body (before its closing boundary: an attached patch or
    mbox) and a ``git format-patch`` From_ line."""
    n = 1
    ends = [e for e in (rest.find(b"\n\n"), rest.find(b"\n\r\n")) if e >= 0]
    header_end = min(ends) if ends else -1
    found = _BOUNDARY.search(rest, 0, header_end if header_end >= 0 else 0)
    pos = 0
    if found is not None:
        close = rest.find(b"\n--" + found.group(1).strip() + b"--", header_end)
        if close < 0:
            return 1
        pos = close + 1
    i = rest.find(b"\nFrom ", pos)
    while i >= 0:
        blank = rest[i - 1:i] == b"\n" or rest[i - 2:i] == b"\n\r"
        start = i + 1
        end = rest.find(b"\n", start)
        line = rest[start:end + 1]
        if blank and end >= 0 and _GIT_PATCH_DATE not in line and is_from_line(line):
            after = rest.find(b"\n", end + 1)
            if _HEADER_LINE.match(rest, end + 1, after + 1 if after >= 0 else len(rest)):
                n += 1
        i = rest.find(b"\nFrom ", start)
    return n


def _more_note(messages: int, note: dict) -> dict:
    """``note`` with the ``holds-more-from-lines`` flag and warning when the file holds ``messages`` > 1."""
    n = messages - 1
    if n:
        note["flags"] = note["flags"] + (MORE_FROM_LINES,)
        note["warning"] = (f"archived as one message, but {n} more From_ line(s) followed by a header block "
                           "come after its first: if this file is an mbox (a Thunderbird folder file, Apple "
                           "Mail's mbox), read it as an mbox to archive each message on its own")
    return note


def cut_envelope(raw: bytes, force_raw: bool = False) -> Trimmed | NotMail | None:
    """A whole file's bytes without a leading From_ line (and what to note on its item), or None when it
    has none; unless ``force_raw``, a NotMail (an error) when the rest holds ``MBOX_REFUSED_FROM`` or more
    messages (an mbox). Module-level: the pipeline runs it where it reads a local file (in a worker), so the
    scan does not open every file to look for the line (``SourceMail.envelope_cut``)."""
    head = raw[:HEAD]
    cut = envelope_length(head, len(head) >= len(raw))
    if not cut:
        return None
    n = mbox_messages(raw[cut:])
    if not force_raw and n >= MBOX_REFUSED_FROM:
        return NotMail(_MBOX_GIVEN % n, error=True)
    return Trimmed(raw[cut:], cut, _more_note(n, _envelope_note(head, cut)))


def emlx_frame(head: bytes) -> tuple[int, int] | None:
    """(bytes before the message, the message's length) when ``head`` (a file's first bytes) opens like an
    Apple Mail .emlx: a line holding only a byte count, then a mail header block; else None."""
    m = _EMLX_COUNT.match(head)  # anchored: a file that does not open with digits costs next to nothing
    if not m or not starts_with_headers(head[m.end():m.end() + HEAD]):
        return None
    return m.end(), int(m.group(1))


def _plist_int(trailer: bytes, key: bytes) -> int | None:
    m = re.search(rb"<key>" + key + rb"</key>\s*<(?:integer|real)>\s*(\d{1,20})", trailer)
    return int(m.group(1)) if m else None


def _emlx_note(trailer: bytes, flags: list[str]) -> dict:
    """The source item's fields from an .emlx plist trailer: its ``flags`` bits as IMAP flags, its
    ``date-received`` as the internal date."""
    bits = _plist_int(trailer, b"flags") or 0
    flags += [name for bit, name in _EMLX_FLAG_BITS if bits >> bit & 1]
    note: dict = {"flags": tuple(flags)}
    received = _plist_int(trailer, b"date-received")
    if received:
        try:
            note["internal_date"] = dt.datetime.fromtimestamp(received, dt.timezone.utc)
            note["date_source"] = "emlx-date-received"
        except (OverflowError, OSError, ValueError):
            pass
    return note


def _cut_emlx(raw: bytes, partial: bool) -> Trimmed | None:
    frame = emlx_frame(raw)
    if frame is None:
        return None
    start, length = frame
    end, flags = start + length, [EMLX_WRAPPER_REMOVED] + ([EMLX_PARTIAL] if partial else [])
    if end > len(raw) or (end < len(raw) and not _PLIST_START.match(raw, end)):
        end = len(raw)
        flags.append(EMLX_LENGTH_MISMATCH)
    return Trimmed(raw[start:end], len(raw) - (end - start), _emlx_note(raw[end:], flags))


def cut_wrapper(raw: bytes, force_raw: bool = False) -> Trimmed | NotMail | None:
    """:func:`cut_envelope`, else the Apple Mail .emlx wrapper (byte-count line, plist trailer) removed."""
    return cut_envelope(raw, force_raw) or _cut_emlx(raw, False)


def cut_partial_emlx(raw: bytes, force_raw: bool = False) -> Trimmed | NotMail | None:
    """:func:`cut_wrapper` for a file named ``.partial.emlx`` (noted ``emlx-partial``)."""
    return cut_envelope(raw, force_raw) or _cut_emlx(raw, True)


def _not_mail_head(head: bytes, size: int) -> str | None:
    """Why the file is not a message: a reason (listed as skipped), or an ``Unsupported`` one (listed as an
    error: it holds mail in a form not archived, or mail another import reads)."""
    if starts_with_headers(head):  # the usual mail: nothing else to look at (what mail_content finds first)
        return None
    if emlx_frame(head) is not None:
        return None  # an Apple Mail .emlx: its wrapper is removed where it is read
    elsewhere = mail_elsewhere(head, size)
    if elsewhere is not None:
        return Unsupported(f"{elsewhere} (--force-raw archives the file as it is)")
    reason = mail_content(head, b"", size, strict=False)
    if reason is None or isinstance(reason, Unsupported):  # mail in a form not archived: an error naming the next step
        return reason
    return f"{reason} (--force-raw archives it anyway)"


def not_mail(raw: bytes) -> str | None:
    """Why a file the user named as a message is not one (None: it is), with the lenient check of
    ``mail_content``. Module-level, so that the pipeline runs it where it reads a local file (in a worker)."""
    return _not_mail_head(raw[:HEAD], len(raw))
