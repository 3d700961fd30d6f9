"""``import mbox``: the project's own mbox splitter (docs/reliability.md L1-L10, A5, C7, K3).

Python's ``mailbox.mbox`` splits on every line that starts with ``From ``;
this module decides per line, streams in bounded memory (one message, two
when a possible false split must flag the previous one), works on
non-seekable (decompressed) streams and accounts for every byte. A
compressed file cut short or damaged gives the messages it still holds, the
last one flagged ``source-truncated``, and an error (importers/stream_end.py).

Separator rule
--------------
A line starting with ``From `` is a *From_ line* when it matches one of

* **full**: ``From SENDER [(comment)] DATE`` where SENDER is one token (or
  the Pipermail form ``user at host``) and DATE starts like an asctime
  (``[Mon ]Jan  7 09:15[:00]`` then anything: year, zone, "extra info"),
  an RFC 5322 date (``[Mon, ]7 Jan 2019 09:15``) or an ISO date
  (``2019-01-07 09:15``); ``From - Mon Jun  3 12:50:27 1996`` is full too;
* **weak** (Thunderbird, GYB, MimeKit writers): ``From -`` alone,
  ``From addr@host`` alone, or a bare ``From`` with nothing after it;
* **several words** (older MTAs: ``From someone@[10.1.2.3] [host]  Sun Aug  5
  09:51:15 2001``, ``From Hello Support Tue Jul 10 18:50:15 2012``): any sender
  when a complete asctime date with its year (and an optional zone) ends the line;
* at the very start of a stream (after empty lines and a BOM at most): any
  line starting with ``From `` (not a ``From :`` header field) when a header
  line follows it.

``From here on…``, ``From Russia with love``, ``From time to time`` and
``From experience: …`` are not From_ lines, wherever they stand (L1).

A From_ line separates messages

* at the start of the stream (after an optional UTF-8 BOM, which then
  belongs to that From_ line);
* after an empty line (L2: this always splits; when the line after the From_
  line is not a header field, both halves are flagged
  ``possible-false-split`` — unless a consistent Content-Length of the
  message before covers it);
* after a non-empty line only when the next line is a header field
  (``Name: value``). Real writers do this (mailutils, Netscape/MimeKit,
  Pipermail ``malformed.txt``); such messages carry the flag
  ``separator-without-blank-line``. This relaxes docs/reliability.md L1 ("needs the
  preceding blank line") on purpose: a text line is never split on, but
  the corpora's oracles count these separators.

Thunderbird folder files
------------------------
A message whose ``X-Mozilla-Status`` header has bit 0x0008 set was deleted in Thunderbird and stays
in the file until the folder is compacted: it is archived like every other message and flagged
``mozilla-expunged`` (docs/sources.md).

Content-Length (L5, mboxcl/mboxcl2)
-----------------------------------
When the header block has ``Content-Length: N``, the claimed end is
``body start + N``. It is *consistent* when that position is a line start
and holds EOF, a From_ line, or one empty line followed by a From_ line or
EOF. A consistent value decides the end of the message, so From_ lines inside
the body do not split (flag ``content-length-used`` when it overrode at
least one split). An inconsistent value (too long, too short, past EOF, mid
line) is ignored (flag ``content-length-ignored``) and the From_ split
applies. It never swallows the next message: if a From_ line inside the
claimed range starts a real message (after an empty line, followed by a
header block that has its own Content-Length), or the claimed end lies more
than ``CL_LOOKAHEAD`` bytes past the first such line, the value is ignored.

What is archived
----------------
A message's *region* in the file is ``from_line + stored + separator``;
regions and an optional leading prefix tile the stream without gaps, so
``prefix + sum(region lengths) == stream size`` (checked in the tests).

* ``from_line``: the From_ line with its line ending (not archived; its
  date becomes the internal date).
* ``separator``: exactly one trailing empty line (``\\n`` or ``\\r\\n``)
  that mbox writers put before the next From_ line, or at EOF; empty when
  the next From_ line follows without one (with a consistent Content-Length
  the body is exactly N bytes and the empty line after it, if any, is the
  separator).
* ``raw`` (archived): ``stored``, the bytes between the two, with the line
  ending of the message's last line kept. With ``variant="mboxrd"`` exactly
  one ``>`` is removed from every line matching ``^>+From `` (L3); in every
  other variant, including the default ``auto``, nothing is unquoted (L4:
  mboxo and mboxrd cannot be told apart, and mboxo quoting is irreversible).

A non-From_ prefix before the first From_ line is not a message; it is
exposed as ``MboxSplitter.prefix_length`` (the importer reports it, L7).

Bounds
------
Time is linear in the stream, however long a line (see ``_Lines``). With
``max_message`` a message whose bytes pass it is never held whole: no line
is read whole beyond the cap, the rest is read in one-block pieces, and the
message comes back ``oversized`` with its offset, length and CRC-32 but no
bytes (flag ``over-max-message-size``); its end is a consistent
Content-Length end, else the next separating From_ line. The importer lists
it as an error (a rerun with a larger cap imports it: dedup skips the rest).
A decompressed stream stops (``ExpansionStopped``, listed as an error naming
the file) once it passes ``max_ratio_after`` bytes and ``max_ratio`` times
the compressed bytes read so far.

Speed (issue 15)
----------------
The driver reads a plain local mbox once; per byte it pays one search for the next line starting with
``From`` (``_Lines.chunk``), one CRC-32, one memchr for ``>`` (the ``>From `` count only runs from the first
``>`` on) and the copy of each chunk out of the read block (a block is never copied whole to prepend the
line that began in the block before). Per message, the header lines that stand whole in the read block are
taken in one regex match (``_HEADER_RUN``), the items' CRC-32, quoting and emptiness come from one pass and
the header facts (X-Mozilla-Status, Content-Length) from another, and the usual asctime date of a From_ line
is read without ``email.utils.parsedate_tz``. With the compiled module (toolkit/_native.c) the plain messages of
a read block come from one scan (``MboxSplitter._fast``, importers/mbox_scan.py): the loop above then reads only
the rest (a Content-Length, a From_ line after a text line or before a non-header line, the message across a block
boundary, the last one). None of this changes a split: tests/unit/test_mbox_fast.py compares every field with
the splitter as it was (tests/unit/mbox_reference.py), with the compiled scan and without it. The usual From_ line
(``From sender Mon Jan  7 09:15:00 2019``) is checked and its date read in one match (``_plain_date``; any other shape
goes through ``is_from_line`` and ``from_line_date``), and the progress moves in steps of a 64th of the bytes counted.
A plain local mbox is read in blocks of ``LOCAL_BLOCK`` (4 MiB: fewer messages across a block boundary, which go the
line way), and its scan runs ahead of the pipeline in a thread (``MboxImporter.scan``, toolkit/scan_ahead.py).
A plain local mbox that is not in the page cache is read past it (``O_DIRECT``, toolkit/direct_read.py), by the scan
and by the workers (toolkit/file_region.py): on a VM that hands its free memory back to the host, the first touch of
freshly cached pages cost more than the scan itself.
"""
from __future__ import annotations

import bz2
import datetime as dt
import gzip
import hashlib
import lzma
import os
import re
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Iterator

from toolkit.crc import crc32
from toolkit.direct_read import DirectStream, cold, open_direct
from toolkit.errors import SourceError, SourceMissingError, NextStep, StorageError, UsageError
from toolkit.file_region import QUOTED_FROM, FileRegion
from toolkit.read_ahead import ReadAhead
from toolkit.reporter import Reporter
from toolkit.scan_ahead import scan_ahead
from toolkit.source import SourceItem, SourceMail, SourceProblem, SourceSkip
from toolkit.storage import Location, open_storage, parse_location

from . import mbox_flags
from .content import ZSTD_MAGIC, tar_member_names
from .mbox_scan import find_from_line, find_from_line_py, mbox_scan
from .stream_end import CHECKSUM, TRUNCATED, EndOfData
from .from_line import (  # noqa: F401 - importers.mbox names these too (share, eml, exporters import them from here)
    _BOM, MMDF_UNSUPPORTED, compression_of, from_line_date, is_envelope_line, is_from_line, is_mmdf_separator,
)

VARIANTS = ("auto", "mboxo", "mboxrd", "mboxcl", "mboxcl2")
BLOCK = 1 << 20
#: The read block of a plain local mbox (issue 15): the compiled scan takes the messages that stand whole in a block,
#: the one across each block boundary goes the line way (``MboxSplitter._message``, a copy of its bytes or more);
#: at 116 KB a mail that was one message in 12 with 1 MiB blocks (408 of the 5,000 of bench/RESULTS.md's corpus),
#: one in 39 with these. A compressed stream or one
#: on a share is read in ``BLOCK``s (the expansion guard's steps and the share's reads stay as they were).
LOCAL_BLOCK = 4 << 20
#: the least rest of a cold local mbox that is read past the page cache (below it the reads cost too little to matter)
DIRECT_MIN = 64 << 20
#: How far past the first From_ line inside its claimed body a Content-Length may reach.
CL_LOOKAHEAD = 64 << 20

POSSIBLE_FALSE_SPLIT = "possible-false-split"
CL_USED = "content-length-used"
CL_IGNORED = "content-length-ignored"
NO_TRAILING_NEWLINE = "no-trailing-newline"
NO_BLANK_BEFORE = "separator-without-blank-line"
OVERSIZED = "over-max-message-size"
#: a message Thunderbird marked deleted but had not yet removed from its folder file (archived all the same)
MOZILLA_EXPUNGED = "mozilla-expunged"
#: the last message of a compressed mbox that ends early (importers/stream_end.py): it may be cut short
SOURCE_TRUNCATED = "source-truncated"
#: The default per-message cap of ``import mbox`` / ``import share`` (``--max-message-size``).
MAX_MESSAGE = 2 << 30

_HEADER = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")
#: Header lines (a field, then fields or continuation lines), each whole, none starting with ``From `` (the only
#: header-shaped lines that can be From_ lines): what ``MboxSplitter._header_run`` takes at once. Linear: each
#: line is matched once (its first byte decides field or continuation), a field name's backtracking stays in its line.
_HEADER_RUN = re.compile(rb"(?!From )[\x21-\x39\x3b-\x7e]+[ \t]*:[^\n]*\n"
                         rb"(?:(?!From )(?:[\x21-\x39\x3b-\x7e]+[ \t]*:|[ \t])[^\n]*\n)*")
_QUOTED_M = QUOTED_FROM  # ^>+From lines (the pack task's FileRegion unquotes with the same pattern)
#: Thunderbird's status of a message in its folder file; bit 0x0008: deleted ("expunged"), still in the
#: file until the folder is compacted
#: the start of a field importers/mbox_flags.py reads (its FIELDS)
_FLAG_FIELD = re.compile(rb"(?:status|x-status|x-mozilla-status|x-mozilla-keys|x-gmail-labels)[ \t]*:", re.I)
_MOZ_STATUS = re.compile(rb"x-mozilla-status[ \t]*:[ \t]*([0-9a-f]{4})[ \t]*\r?\n?\Z", re.I)
_CL = re.compile(rb"content-length[ \t]*:[ \t]*(\d{1,15})[ \t]*\r?\n?\Z", re.I)
#: The usual From_ line, whole (``From sender Mon Jan  7 09:15:00 2019`` and its line end): one sender token, then an
#: asctime date with seconds and a year, nothing else. Such a line is a From_ line (``is_from_line``) and its date is
#: read from this one match (``_plain_date``: what ``from_line_date`` gives, tests/unit/test_mbox_fast.py compares
#: them on random lines). Linear: the sender token ends at the first space, every later part is fixed or bounded.
_PLAIN_FROM = re.compile(rb"From \S+ (?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
                         rb" +([0-9]{1,2}) ([0-9]{1,2}):([0-9]{2}):([0-9]{2}) ([1-9][0-9]{3})\r?\n?\Z")
_MONTH_NO = {name.encode(): i for i, name in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                                                          "Oct", "Nov", "Dec"), 1)}
#: a message's date not read yet (``MboxMessage.date`` reads it from the From_ line when asked)
_UNREAD = object()
_UTC = dt.timezone(dt.timedelta(0))  # as importers/from_line.py gives it


def _plain_date(line: bytes):
    """``from_line_date(line)`` when ``line`` matches ``_PLAIN_FROM`` (then it is a From_ line), else ``_UNREAD``."""
    m = _PLAIN_FROM.match(line)
    if m is None:
        return _UNREAD
    mon, day, hh, mi, ss, year = m.groups()
    try:
        return dt.datetime(int(year), _MONTH_NO[mon], int(day), int(hh), int(mi), int(ss), tzinfo=_UTC)
    except ValueError:
        return None


def _blank(line: bytes | None) -> bool:
    return line in (b"\n", b"\r\n")


def _header(line: bytes | None) -> bool:
    return line is not None and bool(_HEADER.match(line))


def _quoted(text: bytes) -> int:
    """How many lines of ``text`` (whole lines) match ``^>+From ``. The search for ``>`` is a memchr, far cheaper
    than the search for ``>From `` that only runs from the first ``>`` on (most mail bodies have none)."""
    i = text.find(b">")
    if i < 0 or text.find(b">From ", i) < 0:
        return 0
    return len(_QUOTED_M.findall(text))


def _last_line(text: bytes) -> bytes:
    """The last line of a run of whole lines."""
    cut = text.rfind(b"\n", 0, len(text) - 1)
    return text if cut < 0 else text[cut + 1:]


def _pop_blank(acc: list[tuple[int, bytes]], trim: bool = True) -> tuple[bytes, int]:
    """Remove the empty line ending ``acc`` (the separator an mbox writer adds) and return it, and 0; with
    ``trim`` false, an empty line that ends a longer item stays there (no copy of the item): then its length
    is returned as the second value (the bytes of the separator still in ``acc``)."""
    if not acc:
        return b"", 0
    off, text = acc[-1]
    if _blank(text):
        acc.pop()
        return text, 0
    for sep in (b"\r\n", b"\n"):
        if text.endswith(b"\n" + sep):
            if not trim:
                return sep, len(sep)
            acc[-1] = (off, text[: -len(sep)])
            return sep, 0
    return b"", 0


@dataclass
class MboxMessage:
    offset: int                  # byte offset of the From_ line in the (decompressed) stream
    from_line: bytes
    raw: bytes                   # what is archived
    end_offset: int              # offset after the separator: the next From_ line, or EOF
    separator: bytes = b""
    flags: list[str] = field(default_factory=list)
    variant: str = "unknown"
    crc32: int = 0               # of the region as it stands in the file: from_line + stored + separator
    unquoted: int = 0            # lines from which one '>' was removed (mboxrd only)
    oversized: bool = False      # over the splitter's max_message: raw is empty, never read whole
    empty: bool = False          # nothing but empty lines (or nothing) between the From_ line and the next
    #: the flags its header gives (importers/mbox_flags.py: Status, X-Mozilla-Status, Gmail labels), sorted
    mail_flags: tuple[str, ...] = ()
    #: the folders its Gmail labels name (a Takeout mbox), in the order given
    label_folders: tuple[str, ...] = ()
    #: the date of its From_ line when the splitter read it already (``_plain_date``), else ``_UNREAD``
    from_date: Any = field(default=_UNREAD, repr=False, compare=False)

    @property
    def archived_length(self) -> int:
        """The length of what is archived (``raw``, also when the splitter did not keep it)."""
        return self.stored_length - self.unquoted

    @property
    def stored_length(self) -> int:
        return self.end_offset - self.offset - len(self.from_line) - len(self.separator)

    @property
    def date(self) -> dt.datetime | None:
        d = self.from_date
        if d is _UNREAD:
            d = _plain_date(self.from_line)
            if d is _UNREAD:
                d = from_line_date(self.from_line)
        return d


class _Lines:
    """Lines of a binary stream with their offsets, one at a time, with push-back (bounded: the current message).

    Linear in the stream: every byte is searched for a line end once and copied into the buffer once,
    however long its line (a line is assembled from a list of blocks joined once, never by repeated
    concatenation). With ``limit`` set, reading stops once more than ``limit`` bytes without a line
    end are buffered, and a longer line comes in pieces of more than ``limit`` and at most
    ``limit + block`` bytes (the last piece ends with the line end): no line is held whole beyond that.
    """

    def __init__(self, f: BinaryIO, base: int = 0, block: int = BLOCK):
        self.f, self.block = f, block
        self.buf, self.pos, self.offset = b"", 0, base
        self.eof = False
        self.back: list[tuple[int, bytes]] = []   # a stack: last pushed is read first
        self.limit: int | None = None
        #: the next line when it began in the block before ``buf``: that block's rest joined with the line's
        #: start in ``buf`` (``buf`` itself is the block as read, never copied to prepend a line's start)
        self.head: bytes | None = None
        #: ``buf.find(b"\nFrom", start)``: compiled when toolkit._native has it (importers/mbox_scan.py)
        self.find_from_line = find_from_line

    def _fill(self) -> int:
        """The index in ``buf`` of the next line end at or after ``pos``, reading blocks as needed;
        -1 at EOF without one, or when ``limit`` bytes are buffered without one; -1 too when the next line
        is ``head`` (the callers take it first)."""
        if self.head is not None:
            return -1
        nl = self.buf.find(b"\n", self.pos)
        if nl >= 0 or self.eof:
            return nl
        rest = self.buf[self.pos:]
        parts = [rest]
        have = len(rest)
        while self.limit is None or have <= self.limit:
            chunk = self.f.read(self.block)
            if not chunk:
                self.eof = True
                break
            i = chunk.find(b"\n")
            if i >= 0 and len(parts) == 1:  # the line ends in the first block read: only the line is joined
                self.buf = chunk
                if not rest:
                    self.pos = 0
                    return i
                self.head, self.pos = rest + chunk[: i + 1], i + 1
                return -1
            parts.append(chunk)
            have += len(chunk)
            if i >= 0:
                nl = have - len(chunk) + i
                break
        self.buf, self.pos = b"".join(parts), 0
        return nl

    def next(self) -> tuple[int, bytes] | None:
        if self.back:
            return self.back.pop()
        nl = self.buf.find(b"\n", self.pos) if self.head is None else -1
        if nl < 0:
            nl = self._fill()
        off = self.offset
        if self.head is not None:
            line, self.head = self.head, None
            self.offset += len(line)
            return off, line
        end = nl + 1 if nl >= 0 else len(self.buf)  # the whole buffer: no copy when pos is 0
        if end == self.pos:
            return None
        line = self.buf[self.pos:end]
        self.pos, self.offset = end, off + len(line)
        return off, line

    def chunk(self) -> tuple[int, bytes] | None:
        """Whole lines up to (not including) the next line that starts with ``From`` (at least one line)."""
        if self.back:
            return self.back.pop()
        nl = self._fill()
        head = self.head
        if head is not None:  # the same lines as when the block was joined to the rest of the one before
            if head.startswith(b"From") or (self.limit is not None and len(head) - 1 >= self.limit):
                return self.next()
            nl = self.pos - 1
        elif nl < 0 or self.buf.startswith(b"From", self.pos) or (self.limit is not None and nl - self.pos >= self.limit):
            return self.next()
        idx = self.find_from_line(self.buf, nl)
        if idx >= 0:
            end = idx + 1
        else:
            end = len(self.buf) if self.eof else self.buf.rfind(b"\n", nl) + 1
        text = self.buf[self.pos:end]
        if head is not None:
            text, self.head = head + text, None
        off = self.offset
        self.pos, self.offset = end, off + len(text)
        return off, text

    def push(self, items: list[tuple[int, bytes]]) -> None:
        self.back.extend(reversed(items))

    def peek(self, n: int = 1) -> list[bytes | None]:
        got = []
        for _ in range(n):
            got.append(self.next())
        self.push([g for g in got if g is not None])
        return [g[1] if g else None for g in got]


PREFIX_HEAD = 8192


class MboxSplitter:
    """Iterate the messages of one mbox stream (see the module docstring for the rules).

    ``prefix_length``/``prefix_blank_only`` describe bytes before the first From_
    line; they are set before the first message is yielded (or at the end).
    ``base`` is the stream offset of the first byte of ``f`` (for resumed scans). With
    ``keep_bytes=False`` a message's ``raw`` stays empty (its region says where it lies in the
    stream; the importer has the pipeline read it there: :class:`toolkit.file_region.FileRegion`).
    """

    def __init__(self, f: BinaryIO, variant: str = "auto", base: int = 0, block: int = BLOCK,
                 max_message: int | None = None, keep_bytes: bool = True, native: bool | None = None):
        if variant not in VARIANTS:
            raise UsageError(f"unknown mbox variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        self.variant = variant
        self.base = base
        self._lines = _Lines(f, base, block)
        self._block = block
        self.max_message = max_message
        self.keep_bytes = keep_bytes
        if max_message is not None:
            self._lines.limit = max_message + 3  # a longer line already makes its message too big
        self.prefix_length = 0
        self.prefix_blank_only = True
        self.prefix_head = b""     # the prefix's first bytes (up to PREFIX_HEAD): what the file is instead
        self.prefix_mmdf = False   # the stream opens with an MMDF separator (four Ctrl-A bytes): not an mbox
        self.size = base           # stream size once exhausted
        self.quoted_lines = 0      # ^>+From lines seen (stored as-is unless mboxrd)
        #: the plain messages in one compiled scan per read block (``_fast``; None: every message by ``_message``,
        #: the reference): ``native`` None takes it when toolkit._native has it, False never (nor the compiled
        #: search of ``_Lines.chunk``: the splitter as it runs without the compiled module), True insists
        if native and mbox_scan is None:
            raise RuntimeError("toolkit._native with mbox_scan is not built")
        self._scan = mbox_scan if native is not False else None
        if native is False:  # all Python: what runs without the compiled module
            self._lines.find_from_line = find_from_line_py
        self._fixed_variant = variant if variant != "auto" else "unknown"

    def __iter__(self) -> Iterator[MboxMessage]:
        lines = self._lines
        # prefix: everything before the first From_ line
        first = lines.next()
        if first is not None and is_from_line(first[1].removeprefix(_BOM) if self.base == 0 else first[1]):
            pass  # the stream starts with a From_ line (a UTF-8 BOM before it belongs to it)
        else:
            self.prefix_mmdf = self.base == 0 and first is not None and is_mmdf_separator(first[1])
            while first is not None and not self._starts_message(first[1], self.base == 0 and self.prefix_blank_only):
                self.prefix_length += len(first[1])
                self.prefix_blank_only &= _blank(first[1])
                if len(self.prefix_head) < PREFIX_HEAD:
                    self.prefix_head += first[1][:PREFIX_HEAD]
                first = lines.next()
        if first is None:
            self.size = self.base + self.prefix_length
            return
        pending: MboxMessage | None = None
        start: tuple[int, bytes] | None = first
        start_flags: list[str] = []
        fast = self._scan is not None
        while start is not None:
            if fast and not start_flags:
                msgs, start = self._fast(start)
                for msg in msgs:
                    if pending is not None:
                        yield pending
                    pending = msg
            msg, start, start_flags_next = self._message(start, start_flags)
            if POSSIBLE_FALSE_SPLIT in start_flags_next and POSSIBLE_FALSE_SPLIT not in msg.flags:
                msg.flags.append(POSSIBLE_FALSE_SPLIT)
            if pending is not None:
                yield pending
            pending, start_flags = msg, start_flags_next
        if pending is not None:
            self.size = pending.end_offset
            yield pending

    def _fast(self, start: tuple[int, bytes]) -> tuple[list[MboxMessage], tuple[int, bytes]]:
        """The plain messages from ``start`` on that stand whole in the read buffer, from one compiled scan
        (importers/mbox_scan.py says what *plain* is: the cases in which ``_message`` reads a header block ended by an
        empty line, then a body up to the first line starting with ``From``, which follows an empty line and precedes
        a header line, an empty line or EOF, and where a Content-Length ends): each message exactly as ``_message`` makes it, and the
        From_ line after the last (the read position then after it). The scan takes every such ``From`` line for a
        From_ line; here ``is_from_line`` checks each, and the first that is not one ends the run (that message is
        read by ``_message``). Nothing taken: ``[]`` and ``start``."""
        lines = self._lines
        if lines.head is not None:
            return [], start
        buf, pos = lines.buf, lines.pos
        if lines.back:  # the line peeked after the From_ line: read again from the buffer where it stands
            if len(lines.back) > 1:
                return [], start
            off, text = lines.back[0]
            if (off + len(text) != lines.offset or pos < len(text) or text.find(b"\n") != len(text) - 1
                    or not buf.startswith(text, pos - len(text))):
                return [], start
            lines.back.clear()
            pos -= len(text)
            lines.pos, lines.offset = pos, off
        found = self._scan(buf, pos, lines.eof, -1 if self.max_message is None else self.max_message)
        if not found:
            return [], start
        base = lines.offset - pos        # the stream offset of buf[0]
        view = memoryview(buf)
        keep, rd, variant, auto = self.keep_bytes, self.variant == "mboxrd", self._fixed_variant, self.variant == "auto"
        msgs = []
        offset, from_line = start
        from_date = _UNREAD  # the date of from_line, read with the check of the line (the first: when asked)
        quoted_lines = 0
        for sep, nxt, after, blank_at, quoted, empty, flagged in found:
            line = buf[nxt:after]
            line_date = _plain_date(line)  # the usual From_ line and its date in one match
            if line_date is _UNREAD and not is_from_line(line):
                break
            crc = crc32(view[pos:nxt], crc32(from_line))
            raw = buf[pos:sep] if keep else b""
            unquoted = 0
            if quoted:
                quoted_lines += quoted
                if rd:
                    unquoted = quoted
                    if raw:
                        raw = _QUOTED_M.sub(rb"\1", raw)
            msg = MboxMessage(offset, from_line, raw, base + nxt, b"\n" if nxt - sep == 1 else b"\r\n", [],
                              "mboxcl" if flagged & 2 and auto else variant, crc, unquoted, empty=bool(empty),
                              from_date=from_date)
            if flagged & 1:
                items = [(0, h + b"\n") for h in buf[pos:blank_at - 1].split(b"\n")]  # whole lines, LF-split
                expunged, _, flag_lines = self._header_facts(items, 0, False)
                if expunged:
                    msg.flags.append(MOZILLA_EXPUNGED)
                if flag_lines:
                    got = mbox_flags.read(mbox_flags.header_fields(flag_lines))
                    msg.mail_flags, msg.label_folders = tuple(sorted(got.flags)), got.folders
            msgs.append(msg)
            offset, from_line, from_date, pos = base + nxt, line, line_date, after
        self.quoted_lines += quoted_lines
        lines.pos, lines.offset = pos, base + pos
        return msgs, (offset, from_line)

    def _starts_message(self, line: bytes, at_start: bool = False) -> bool:
        """The first From_ line of a stream (after a prefix): a From_ line followed by a header or a blank line.
        ``at_start`` (nothing but empty lines before it, a BOM allowed): any ``From `` line followed by a header."""
        if at_start and is_envelope_line(line.removeprefix(_BOM)):
            nxt = self._lines.peek(1)[0]
            if _header(nxt):
                return True
        if not is_from_line(line):
            return False
        nxt = self._lines.peek(1)[0]
        return nxt is None or _header(nxt) or _blank(nxt)

    def _separator(self, line: bytes, prev: bytes | None) -> str | None:
        """None, or "blank" / "noblank" / "false" (after a blank line but no header follows)."""
        if not line.startswith(b"From") or not is_from_line(line):
            return None
        nxt = self._lines.peek(1)[0]
        if prev is None or _blank(prev):
            return "blank" if (nxt is None or _header(nxt) or _blank(nxt)) else "false"
        return "noblank" if _header(nxt) else None

    def _message(self, start: tuple[int, bytes], flags: list[str]):
        """Read one message from its From_ line; returns (message, next start or None, flags of the next)."""
        lines = self._lines
        offset, from_line = start
        acc: list[tuple[int, bytes]] = []
        in_headers, header_lines = True, []
        claimed: int | None = None      # where a Content-Length says the message ends
        cl_flag: str | None = None
        inner: list[tuple[int, str]] = []  # (index in acc, kind) of From_ lines inside the claimed range
        prev: bytes | None = from_line
        size, cap = 0, self.max_message
        run = self._header_run(cap)
        if run is not None:  # the header lines the loop below would read one by one (the same items)
            acc.extend(run)
            header_lines.extend(line for _, line in run)
            prev = run[-1][1]
            size = run[-1][0] + len(prev) - run[0][0]
        while True:
            item = lines.next() if in_headers or claimed is not None else lines.chunk()
            if item is None:
                if claimed is not None:   # the claimed end lies past EOF
                    cl_flag = CL_IGNORED
                    if inner:
                        return self._cut(start, acc, inner[0], flags)
                sep, inside = _pop_blank(acc, self.keep_bytes)
                return self._finish(offset, from_line, acc, sep, flags, cl_flag, inside), None, []
            off, line = item
            if in_headers:
                if _HEADER.match(line) or (header_lines and line[:1] in (b" ", b"\t")):
                    header_lines.append(line)
                else:
                    in_headers = False
                    if _blank(line):
                        claimed = self._claimed(header_lines, off + len(line))
            kind = self._separator(line, prev) if line.startswith(b"From") else None
            if kind is not None:
                if claimed is not None and not self._swallows(off, claimed, kind):
                    inner.append((len(acc), kind))
                else:
                    if claimed is not None:
                        cl_flag, claimed = CL_IGNORED, None
                    if inner:
                        acc.append((off, line))
                        return self._cut(start, acc, inner[0], flags)
                    acc.append((off, line))
                    return self._cut(start, acc, (len(acc) - 1, kind), flags, cl_flag)
            acc.append((off, line))
            size += len(line)
            if cap is not None and size > cap + 2:  # + the empty line before the next From_ line
                return self._oversized(start, acc, flags, claimed)
            cut = line.rfind(b"\n", 0, len(line) - 1)  # prev = _last_line(line), inline: once per line
            prev = line if cut < 0 else line[cut + 1:]
            if claimed is None:
                continue
            end = off + len(line)
            if end < claimed:
                continue
            verdict = self._consistent_after() if end == claimed else None
            if verdict is None:           # too short, too long or mid-line: ignore it
                cl_flag, claimed = CL_IGNORED, None
                if inner:
                    return self._cut(start, acc, inner[0], flags)
                continue
            sep = lines.next()[1] if verdict else b""
            nxt = lines.next()
            msg = self._finish(offset, from_line, acc, sep, flags, CL_USED if inner else None)
            return msg, nxt, []

    def _header_run(self, cap: int | None) -> list[tuple[int, bytes]] | None:
        """The items (offset, line) of the header lines at the read position when they stand whole in the read buffer (see
        ``_HEADER_RUN``), taken at once, else None (nothing taken). In the loop of ``_message`` such lines only
        join the header block (none is a From_ line; all together stay within ``cap``). A line pushed back
        (the peek after the From_ line) is taken again from the buffer where it was read."""
        lines = self._lines
        if lines.head is not None or len(lines.back) > 1:
            return None
        buf, pos, offset = lines.buf, lines.pos, lines.offset
        if lines.back:
            off, text = lines.back[0]
            if off + len(text) != offset or pos < len(text) or not buf.startswith(text, pos - len(text)):
                return None
            pos, offset = pos - len(text), off
        m = _HEADER_RUN.match(buf, pos)
        end = m.end() if m is not None else pos
        if m is None or (cap is not None and end - pos > cap + 2):
            return None
        lines.back.clear()
        lines.pos, lines.offset = end, offset + end - pos
        items, base = [], offset - pos
        while pos < end:
            nl = buf.find(b"\n", pos) + 1
            items.append((base + pos, buf[pos:nl]))
            pos = nl
        return items

    def _oversized(self, start, acc, flags, claimed: int | None):
        """Read past a message over ``max_message`` in pieces of at most one block, keeping only its
        CRC-32 and length: the message comes back with ``oversized`` set and no bytes. Its end is
        a consistent Content-Length end, else the next From_ line that separates (From_ lines
        inside the range a Content-Length claims do not split here)."""
        lines = self._lines
        offset, from_line = start
        crc = crc32(from_line)
        for _, line in acc:
            crc = crc32(line, crc)
        last = acc[-1][1] if acc else from_line
        prev: bytes = last            # the last piece that began a line (b"x" once a piece did not)
        acc.clear()
        saved, lines.limit = lines.limit, min(self._block, BLOCK)
        sep, nxt, nxt_flags = b"", None, []
        try:
            while True:
                item = lines.next()
                if item is None:
                    break
                off, piece = item
                at_start = last.endswith(b"\n")
                if at_start and claimed is not None and off >= claimed:
                    if off == claimed:
                        verdict = self._consistent_after_piece(piece)
                        if verdict is False:       # the From_ line (or EOF) right at the claimed end
                            nxt = item
                            break
                        if verdict is True:        # one empty line, then a From_ line or EOF
                            sep, crc = piece, crc32(piece, crc)
                            nxt = lines.next()
                            break
                    claimed = None
                kind = self._separator(piece, prev) if at_start and claimed is None else None
                if kind is not None:
                    if kind != "noblank" and _blank(prev):
                        sep = prev
                    nxt = item
                    nxt_flags = {"noblank": [NO_BLANK_BEFORE], "false": [POSSIBLE_FALSE_SPLIT]}.get(kind, [])
                    break
                crc = crc32(piece, crc)
                prev = piece if at_start else b"x"
                last = piece
        finally:
            lines.limit = saved
        end = nxt[0] if nxt is not None else lines.offset
        flags = list(flags) + [OVERSIZED]
        msg = MboxMessage(offset, from_line, b"", end, sep, flags, self.variant if self.variant != "auto" else "unknown",
                          crc, oversized=True)
        return msg, nxt, nxt_flags

    def _consistent_after_piece(self, piece: bytes) -> bool | None:
        """``_consistent_after`` for a piece just read at the claimed end."""
        if is_from_line(piece):
            return False
        if _blank(piece):
            b = self._lines.peek(1)[0]
            if b is None or is_from_line(b):
                return True
        return None

    def _cut(self, start, acc, at: tuple[int, str], flags, cl_flag: str | None = CL_IGNORED):
        """End the message before the From_ line acc[at]; the lines from there on are read again."""
        offset, from_line = start
        cut, kind = at
        self._lines.push(acc[cut + 1:])
        head = acc[:cut]
        sep, inside = _pop_blank(head, self.keep_bytes) if kind != "noblank" else (b"", 0)
        nxt_flags = {"noblank": [NO_BLANK_BEFORE], "false": [POSSIBLE_FALSE_SPLIT]}.get(kind, [])
        return self._finish(offset, from_line, head, sep, flags, cl_flag, inside), acc[cut], nxt_flags

    def _claimed(self, header_lines: list[bytes], body_start: int) -> int | None:
        for h in header_lines:
            m = _CL.match(h)
            if m:
                return body_start + int(m.group(1))
        return None

    def _consistent_after(self) -> bool | None:
        """At a claimed end: None = inconsistent; False = From_ line or EOF follows; True = one blank line, then that."""
        a, b = self._lines.peek(2)
        if a is None or is_from_line(a):
            return False
        if _blank(a) and (b is None or is_from_line(b)):
            return True
        return None

    def _swallows(self, off: int, claimed: int, kind: str) -> bool:
        """Would a Content-Length reaching past this From_ line swallow a real message?"""
        if claimed - off > CL_LOOKAHEAD:
            return True
        if kind != "blank":
            return False
        # a real message after an empty line with its own Content-Length header: the outer value lies
        got, found = [], False
        while len(got) < 200:
            item = self._lines.next()
            if item is None:
                break
            got.append(item)
            if _blank(item[1]) or not (_header(item[1]) or item[1][:1] in (b" ", b"\t")):
                break
            if _CL.match(item[1]):
                found = True
                break
        self._lines.push(got)
        return found

    def _finish(self, offset, from_line, acc, sep, flags, cl_flag, inside: int = 0) -> MboxMessage:
        """The message of the From_ line, the lines ``acc`` and the separator ``sep``; ``inside`` (only without
        ``keep_bytes``) is how many bytes of ``sep`` the last item of ``acc`` still ends with (see ``_pop_blank``):
        the counts below are the same with them as without (a blank line holds no '>From ' and no text)."""
        crc = crc32(from_line)
        if self.keep_bytes:
            for _, line in acc:
                crc = crc32(line, crc)
            raw = b"".join(line for _, line in acc)
            quoted = _quoted(raw)
            empty = not raw or raw.isspace()
        else:  # the same counts item by item (every item of acc is whole lines), the bytes not joined
            raw = b""
            quoted, empty = 0, True
            for _, text in acc:
                crc = crc32(text, crc)
                if b">" in text:
                    quoted += _quoted(text)
                if empty and not text.isspace():
                    empty = False
        if not inside:
            crc = crc32(sep, crc)
        self.quoted_lines += quoted
        unquoted = 0
        if self.variant == "mboxrd" and quoted:
            if raw:
                raw = _QUOTED_M.sub(rb"\1", raw)
            unquoted = quoted
        flags = list(flags)
        if cl_flag:
            flags.append(cl_flag)
        if acc and not acc[-1][1].endswith(b"\n"):
            flags.append(NO_TRAILING_NEWLINE)
        need_cl = self.variant == "auto" and cl_flag is None
        expunged, had_cl, flag_lines = self._header_facts(acc, inside, need_cl)
        if expunged:
            flags.append(MOZILLA_EXPUNGED)
        found = mbox_flags.read(mbox_flags.header_fields(flag_lines)) if flag_lines else None
        end = (acc[-1][0] + len(acc[-1][1]) if acc else offset + len(from_line)) + len(sep) - inside
        if self.variant != "auto":
            variant = self.variant
        else:
            variant = "mboxcl" if cl_flag == CL_USED or had_cl else "unknown"
        if found is None:
            return MboxMessage(offset, from_line, raw, end, sep, flags, variant, crc, unquoted, empty=empty)
        return MboxMessage(offset, from_line, raw, end, sep, flags, variant, crc, unquoted, empty=empty,
                           mail_flags=tuple(sorted(found.flags)), label_folders=found.folders)

    @staticmethod
    def _header_facts(acc, inside: int, need_cl: bool) -> tuple[bool, bool, list[bytes]]:
        """(does the header block say Thunderbird deleted the message: ``X-Mozilla-Status`` bit 0x0008, the
        first such line decides; with ``need_cl``: does it have a ``Content-Length``; the lines of the fields
        that carry flags, importers/mbox_flags.py, with their continuations), read from the items of ``acc`` up
        to the first empty one; the last item without the ``inside`` bytes of the separator (see ``_finish``).
        Only lines beginning with an x, s or c can match, and a blank one continues a field."""
        moz: bool | None = None
        cl = False
        picked: list[bytes] = []
        taking = False
        last = len(acc) - 1
        for i, (_, line) in enumerate(acc):
            if inside and i == last:
                line = line[:-inside]
            if line == b"\n" or line == b"\r\n":
                break
            c = line[:1]
            if c == b" " or c == b"\t":
                if taking:
                    picked.append(line)
                continue
            taking = False
            if c == b"x" or c == b"X":
                if moz is None:
                    m = _MOZ_STATUS.match(line)
                    if m:
                        moz = bool(int(m.group(1), 16) & 0x0008)
                taking = _FLAG_FIELD.match(line) is not None
            elif c == b"s" or c == b"S":
                taking = _FLAG_FIELD.match(line) is not None
            elif need_cl and not cl and (c == b"c" or c == b"C") and _CL.match(line):
                cl = True
            if taking:
                picked.append(line)
        return bool(moz), cl, picked


def split_mbox(f: BinaryIO, variant: str = "auto", base: int = 0) -> Iterator[MboxMessage]:
    """The messages of ``f``; use MboxSplitter directly to learn about a prefix before the first From_ line."""
    return iter(MboxSplitter(f, variant, base))


# -- the importer ------------------------------------------------------------------------------------

_SUFFIXES = (".gz", ".bz2", ".xz", ".lz")
_MBOX_SUFFIXES = (".mbox", ".mbx")


def open_decompressed(f: BinaryIO) -> BinaryIO:
    """``f`` (at offset 0) itself, or a streaming decompressor over it; lzip and zstd are refused, and so is a tar
    archive (plain or compressed: mail packed in it is no mbox)."""
    head = f.read(512)
    f.seek(0)
    kind = compression_of(head)
    if kind == "lzip":
        raise SourceError("lzip-compressed mbox: not supported (decompress it with `lzip -d` first)")
    if head.startswith(ZSTD_MAGIC):
        raise SourceError("zstd-compressed file: not supported as an mbox (decompress it with `zstd -d` first)")
    if kind == "gzip":
        stream = gzip.GzipFile(fileobj=f, mode="rb")
    elif kind == "bzip2":
        stream = bz2.BZ2File(f, "rb")
    elif kind == "xz":
        stream = lzma.LZMAFile(f, "rb")
    else:
        _refuse_tar(head, "")
        return f
    try:
        first = stream.peek(512)[:512]
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error):
        first = b""  # the reader proper reports the damage (importers/stream_end.py)
    _refuse_tar(first, f"{kind}-compressed ")
    return stream


def _refuse_tar(head: bytes, packed: str) -> None:
    names = tar_member_names(head)
    if names is not None:
        raise SourceError(f"a {packed}tar archive (its first member {names[0]!r}), not an mbox: extract it "
                          "(`tar -xf FILE -C DIR`) and import what it holds (the share import reads a whole tree)")


#: Defaults of the decompression guard (``--max-expansion-ratio``, ``--max-expansion-after``).
MAX_RATIO = 100
MAX_RATIO_AFTER = 1 << 30


class ExpansionStopped(Exception):
    """A compressed input expanded past the guard (see ``GuardedStream``)."""

    def __init__(self, expanded: int, compressed: int):
        super().__init__(expanded, compressed)
        self.expanded, self.compressed = expanded, compressed


class GuardedStream:
    """A decompressed stream that stops (``ExpansionStopped``) once it has given more than ``after``
    bytes AND more than ``ratio`` times the compressed bytes read so far (a decompression bomb):
    the check runs after every read, so at most one read's worth passes the guard."""

    def __init__(self, stream: BinaryIO, raw: BinaryIO, ratio: float, after: int):
        self.stream, self.raw, self.ratio, self.after = stream, raw, ratio, after
        self.expanded = 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.expanded += len(data)
        if self.expanded > self.after:
            compressed = max(self.raw.tell(), 1)
            if self.expanded > self.ratio * compressed:
                raise ExpansionStopped(self.expanded, compressed)
        return data

    def close(self) -> None:
        self.stream.close()


def _direct_stream(raw_f: BinaryIO, path: bytes, base: int, size: int) -> DirectStream | None:
    """A stream reading the rest of a plain local mbox past the page cache, when the rest is not cached, is large
    enough to matter and the file system allows it (docs/architecture.md "Reading a cold mbox past the page
    cache"); else None."""
    if size - base < DIRECT_MIN or not cold(raw_f.fileno(), base, size):
        return None
    fd = open_direct(path)
    if fd is None:
        return None
    try:
        return DirectStream(fd, base, path)
    except (OSError, RuntimeError):  # no memory for its buffers, no thread: read as before
        os.close(fd)
        return None


def _end_problem(name: str, end: EndOfData, messages: int) -> str:
    """The error of a compressed mbox whose data ended early (:class:`importers.stream_end.EndOfData`)."""
    if end.stop == CHECKSUM:
        return (f"the data do not match the checksum gzip stores at the end of the file ({end.detail}): the file is "
                f"damaged, and gzip checks only there, so any of the {messages} messages imported from it may hold "
                f"damaged bytes. Compare them with another copy of the file (they are named {name}@OFFSET)")
    why = ("the compressed file ends before its end-of-stream marker (cut short: an interrupted copy or download?)"
           if end.stop == TRUNCATED else f"the compressed data are damaged from some point on ({end.detail})")
    if not messages:
        return f"{why}; no message could be read before that point. Another copy of the file may be whole"
    return (f"{why}; the {messages} messages in the {end.given} bytes before that point are imported, the last one "
            f"flagged {SOURCE_TRUNCATED} (it may be cut short). If another copy of the file is whole, import it too: "
            "dedup keeps every mail once")


def apple_mail_bundle(path: str) -> str | None:
    """``path`` when it is the directory Apple Mail's "Export Mailbox" writes (``Name.mbox/`` holding the
    messages in a file ``mbox``, beside ``table_of_contents`` and ``Info.plist``), else None."""
    inner = os.path.join(path, "mbox")
    if os.path.isdir(path) and not os.path.islink(path) and os.path.isfile(inner) and not os.path.islink(inner):
        return path
    parent = os.path.dirname(path.rstrip("/"))
    if os.path.basename(path.rstrip("/")) == "mbox" and parent.lower().endswith(".mbox"):
        return parent  # the bundle's file named itself: the folder is still the bundle's name
    return None


def _bundle_sidecars(bundle: str) -> Iterator[SourceItem]:
    """The bundle's other files, listed as skipped (Apple Mail's index and settings, never mail)."""
    try:
        names = sorted(os.listdir(bundle))
    except OSError:
        return
    for name in names:
        if name != "mbox":
            yield SourceSkip(f"{os.path.basename(bundle)}/{name}",
                             "Apple Mail export bundle: index or settings beside its mbox file, not mail")


def folder_name(filename: str) -> str:
    """``archive-2018.mbox.gz`` → ``archive-2018``: compression suffixes and .mbox/.mbx are removed."""
    name = filename
    for suffixes in (_SUFFIXES, _MBOX_SUFFIXES):
        for suf in suffixes:
            if name.lower().endswith(suf) and len(name) > len(suf):
                name = name[: -len(suf)]
                break
    return name


def _skip(f: BinaryIO, n: int) -> int:
    """Advance a (possibly non-seekable) stream by n bytes; returns how many were there."""
    done = 0
    while done < n:
        chunk = f.read(min(BLOCK, n - done))
        if not chunk:
            break
        done += len(chunk)
    return done


def _read_exact(f: BinaryIO, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = f.read(min(BLOCK, n - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class MboxImporter:
    """One mbox file (plain, .gz, .bz2 or .xz, detected from its first bytes), local or ``smb://``.

    Cursor (A5/C7/K3): after each message ``{"offset": end of its region,
    "start": start of its region, "crc32": of the region, "size", "mtime"}``
    of the file. A resume skips to ``start``, checks the CRC-32 of the region
    up to ``offset`` and continues from there; if the file is shorter or the
    check differs it warns and reads the file again from the start (dedup decides).
    The check guards against a rewritten mbox, not an adversary (who could edit
    the source anyway), so a CRC-32 is enough; it spares a SHA-256 pass over
    every byte. Cursors of older runs carry "sha256" instead, and still work.

    Of a plain (uncompressed) local mbox the scan keeps no mail bytes: each
    message is handed over as a :class:`toolkit.file_region.FileRegion` (the
    file, the region, its CRC-32, the mboxrd unquoting) that the pack task's
    worker reads and checks itself; a region that no longer holds what the scan
    read is listed as a problem naming the mbox and the message. A compressed
    mbox (offsets of the decompressed stream) or one on a share is handed over
    as bytes.
    """

    via = "mbox"

    def __init__(self, location: str | Location, smb_password: str | None = None, variant: str = "auto",
                 max_message: int | None = MAX_MESSAGE, max_ratio: float = MAX_RATIO,
                 max_ratio_after: int = MAX_RATIO_AFTER):
        if variant not in VARIANTS:
            raise UsageError(f"unknown mbox variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        self.location = location if isinstance(location, Location) else parse_location(location)
        self.source_uri = f"mbox:{self.location}"
        self._end: EndOfData | None = None  # the compressed stream being read (``_stream``)
        self.variant = variant
        self.max_message = max_message
        self.max_ratio, self.max_ratio_after = max_ratio, max_ratio_after
        self._smb_password = smb_password
        #: the mbox file read: the location, or the ``mbox`` inside an Apple Mail export bundle it names
        self._path = self.location.path
        bundle = None if self.location.is_smb else apple_mail_bundle(self.location.path)
        if bundle is not None:
            self._path = os.path.join(bundle, "mbox")
        self.name = os.path.basename((bundle or self.location.path).rstrip("/")) or str(self.location)
        self._folder = folder_name(self.name)
        self._region_path: bytes | None = None  # the file the pack tasks read regions of (plain local mbox)

    # -- opening -------------------------------------------------------------------------------------
    def _open_raw(self):
        """(seekable binary file, size, mtime) of the mbox file; the caller closes it (and self._storage)."""
        loc = self.location
        if not loc.is_smb:
            if os.path.isdir(self._path):
                raise UsageError(f"{loc.path} is a directory", next_step=NextStep.MBOX_TAKES_FILES)
            try:
                f = open(self._path, "rb")
                st = os.fstat(f.fileno())
            except FileNotFoundError:
                raise SourceMissingError(f"{loc.path} does not exist: check the path") from None
            except OSError as exc:
                raise SourceError(f"{loc.path}: cannot open: {exc.strerror or exc}") from None
            return f, st.st_size, st.st_mtime
        parent, _, name = loc.path.rpartition("/")
        if not name:
            raise UsageError(f"{loc}: name an mbox file, not a share")
        try:
            self._storage = open_storage(replace(loc, path=parent), self._smb_password)
            entry = self._storage.stat(name)
            if entry is None:
                raise SourceMissingError(f"{loc}: no such file on the share")
            return self._storage.open_read(name), entry.size, entry.mtime
        except StorageError as exc:
            raise SourceError.wrapping(f"{loc}: {exc}", exc) from None

    def _close(self, f) -> None:
        f.close()
        storage = getattr(self, "_storage", None)
        if storage is not None:
            storage.close()
            self._storage = None

    # -- scanning ------------------------------------------------------------------------------------
    def scan(self, cursor: Any, reporter: Reporter) -> Iterator[SourceItem]:
        raw_f, size, mtime = self._open_raw()
        try:
            if self.location.is_smb or not self._plain(raw_f):
                yield from self._scan(raw_f, size, mtime, cursor, reporter)
            else:  # its items hold no mail bytes, its reads cannot hang: scanned ahead in a thread (toolkit/scan_ahead.py)
                yield from scan_ahead(lambda rep: self._scan(raw_f, size, mtime, cursor, rep), reporter)
        finally:
            self._close(raw_f)

    @staticmethod
    def _plain(raw_f) -> bool:
        """Is the (local) file an uncompressed mbox, whose messages are handed over as regions (no bytes)?"""
        head = raw_f.read(6)
        raw_f.seek(0)
        return compression_of(head) is None

    def _stream(self, raw_f) -> BinaryIO:
        raw_f.seek(0)
        try:
            stream = open_decompressed(raw_f)
        except SourceError as exc:  # named here: the message says what the file is, the run which file
            raise SourceError(f"{self.name}: {exc}") from None
        if stream is raw_f:
            self._end = None
            return raw_f
        self._end = EndOfData(stream)  # a file cut short: its messages up to the cut (importers/stream_end.py)
        return GuardedStream(self._end, raw_f, self.max_ratio, self.max_ratio_after)

    def _resume(self, raw_f, size, cursor, reporter) -> tuple[BinaryIO, int]:
        """The stream positioned where the scan continues, and that offset."""
        stream = self._stream(raw_f)
        if not (isinstance(cursor, dict) and {"offset", "start"} <= cursor.keys()
                and ("crc32" in cursor or "sha256" in cursor)):
            return stream, 0
        start, end = int(cursor["start"]), int(cursor["offset"])
        compressed = stream is not raw_f
        ok = False
        if compressed or size >= end:
            if not compressed:
                stream.seek(start)
            elif _skip(stream, start) < start:
                stream = None
            if stream is not None:
                region = _read_exact(stream, end - start)
                if "crc32" in cursor:
                    ok = crc32(region) == cursor["crc32"]
                else:
                    ok = hashlib.sha256(region).hexdigest() == cursor["sha256"]
        if ok:
            return stream, end
        reporter.warn(
            f"{self.name}: the mbox was rewritten since the last run (the message ending at byte {end} "
            f"is no longer there); reading it again from the start, dedup decides"
        )
        return self._stream(raw_f), 0

    def _scan(self, raw_f, size, mtime, cursor, reporter) -> Iterator[SourceItem]:
        if self._path != self.location.path and cursor is None:
            yield from _bundle_sidecars(os.path.dirname(self._path))
        if size == 0:
            reporter.warn(f"{self.name}: empty mbox file (0 bytes): no messages")
            return
        try:
            yield from self._split(raw_f, size, mtime, cursor, reporter)
        except ExpansionStopped as exc:
            yield SourceProblem(self.name, (
                f"{self.name}: decompression stopped after {exc.expanded} bytes from {exc.compressed} compressed "
                f"bytes (over {self.max_ratio:g} times, past {self.max_ratio_after} bytes): a decompression bomb, "
                f"or an mbox that really is this compressible; the messages before this point are imported. "
                f"To read it all, rerun with a larger --max-expansion-ratio or --max-expansion-after"))

    def _split(self, raw_f, size, mtime, cursor, reporter) -> Iterator[SourceItem]:
        stream, base = self._resume(raw_f, size, cursor, reporter)
        plain_local = stream is raw_f and not self.location.is_smb
        # the pack tasks read the regions by this name (a symlink named on the command line resolved: the
        # worker follows none); what lies there then is checked against the scan's CRC-32
        self._region_path = os.fsencode(os.path.realpath(self._path)) if plain_local else None
        # a local file not in the page cache is read past it, in a thread (toolkit/direct_read.py); else, when
        # that cannot be, read ahead of the scan on the other core (toolkit/read_ahead.py)
        direct = _direct_stream(raw_f, self._region_path, base, size) if plain_local else None
        splitter = MboxSplitter(direct or stream, self.variant, base, LOCAL_BLOCK if plain_local else BLOCK,
                                max_message=self.max_message, keep_bytes=not plain_local)
        counts = {"messages": 0, POSSIBLE_FALSE_SPLIT: 0, CL_USED: 0, CL_IGNORED: 0, NO_BLANK_BEFORE: 0, MOZILLA_EXPUNGED: 0}
        prefix_done = False
        # progress in bytes of the file (compressed bytes read for a compressed mbox)
        position = (lambda msg: raw_f.tell()) if stream is not raw_f else (lambda msg: msg.end_offset)
        reporter.start("mbox", size, "bytes")
        ahead = ReadAhead(raw_f.fileno(), base, size) if plain_local and direct is None else None
        counted = min(base, size) if stream is raw_f else 0  # the bytes the progress counted
        reporter.advance("mbox", counted)
        # the progress moves message by message at first, then in steps of a 64th of the bytes counted (as the
        # scan of a tree does, importers/walk.py: a call per message cost more than the figure shown once a second)
        try:
            for msg in splitter:
                if not prefix_done:
                    prefix_done = True
                    yield from self._prefix(splitter, base, reporter)
                    if splitter.prefix_mmdf:  # its From_ lines would split it, the separators left in the mails
                        break
                now = min(position(msg), size)
                if ahead is not None:
                    ahead.position = msg.end_offset
                if now - counted > (counted >> 6):
                    reporter.advance("mbox", now - counted)
                    counted = now
                end = self._end
                if end is not None and end.cut and msg.end_offset >= end.given:
                    yield self._cut_item(msg, size, mtime, counts, reporter)
                else:
                    yield self._item(msg, size, mtime, counts, reporter)
            if not prefix_done:
                yield from self._prefix(splitter, base, reporter)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise SourceError(f"{self.name}: cannot read the mbox: {exc}") from None
        finally:
            if ahead is not None:
                ahead.close()
            if direct is not None:
                direct.close()
        if self._end is not None and self._end.stop is not None:
            yield SourceProblem(self.name, _end_problem(self.name, self._end, counts["messages"]))
        reporter.advance("mbox", size - counted)
        reporter.finish("mbox")
        if base == 0 and splitter.size == 0:
            reporter.warn(f"{self.name}: empty mbox (no data after decompression): no messages")
        note = ", ".join(f"{v} {k}" for k, v in counts.items() if v and k != "messages")
        quoted = splitter.quoted_lines
        rd = ""
        if quoted:
            rd = (f"; {quoted} '>From ' lines " + ("unquoted (mboxrd)" if self.variant == "mboxrd"
                  else "stored as-is (quoting cannot be undone unless the mbox is mboxrd: --variant mboxrd)"))
        reporter.info(
            f"{self.name}: {counts['messages']} messages read from byte {base} (variant {self.variant})"
            + (f"; {note}" if note else "") + rd
        )

    def _cut_item(self, msg: MboxMessage, size: int, mtime: float, counts: dict, reporter: Reporter) -> SourceItem:
        """The last message of a compressed mbox whose data end early (truncated or damaged): archived, flagged, named
        in a warning, and with no cursor of its own (a run resumed after it reads it again, from a whole copy too)."""
        msg.flags.append(SOURCE_TRUNCATED)
        item = self._item(msg, size, mtime, counts, reporter)
        if isinstance(item, SourceMail):
            item = replace(item, cursor=None, warning=(
                f"the file's readable data end inside or right after this message: it may be cut short (flagged "
                f"{SOURCE_TRUNCATED})"))
        return item

    def _prefix(self, splitter: MboxSplitter, base: int, reporter: Reporter) -> Iterator[SourceItem]:
        n = splitter.prefix_length
        if not n:
            return
        if splitter.prefix_blank_only:
            reporter.warn(f"{self.name}@{base}: {n} bytes of empty lines before the first From_ line skipped")
        elif splitter.prefix_mmdf:
            yield SourceProblem(f"{self.name}@{base}", MMDF_UNSUPPORTED)
        else:
            whole = base == 0 and splitter.size == n  # no From_ line at all: what is the file instead?
            yield SourceProblem(f"{self.name}@{base}", f"{n} bytes before the first From_ line are not a message"
                                + (_not_an_mbox(splitter.prefix_head, n) if whole else ""))

    def _item(self, msg: MboxMessage, size: int, mtime: float, counts: dict, reporter: Reporter) -> SourceItem:
        ref = f"{self.name}@{msg.offset}"
        cur = {"offset": msg.end_offset, "start": msg.offset, "crc32": msg.crc32, "size": size, "mtime": mtime}
        counts["messages"] += 1
        notes = msg.flags
        if notes:
            for flag in notes:
                if flag in counts:
                    counts[flag] += 1
            if POSSIBLE_FALSE_SPLIT in notes:
                reporter.warn(f"{ref}: possible false split (an unquoted From_ line after an empty line, no header after it)")
        if msg.oversized:
            return SourceProblem(ref, (
                f"{self.name}: the message at byte {msg.offset} is {msg.stored_length} bytes, over the "
                f"--max-message-size of {self.max_message} bytes: not imported (never read whole); "
                f"rerun with --max-message-size {msg.stored_length} or more to import it"), cur)
        if msg.empty:
            return SourceProblem(ref, "empty message (nothing between this From_ line and the next)", cur)
        # the notes as one token (sightings.flags joins the tuple with spaces), then the header's mail flags
        note = ",".join(sorted(notes) + [f"variant={msg.variant}"]) if notes else "variant=" + msg.variant
        also_in = tuple(f for f in msg.label_folders if f != self._folder) if msg.label_folders else ()
        if self._region_path is None:
            return SourceMail(raw=msg.raw, ref=ref, folder=self._folder, flags=(note, *msg.mail_flags),
                              internal_date=msg.date, date_source="from-line", cursor=cur, also_in=also_in)
        # the worker reads it (see the class docstring)
        offset, length, head, tail = msg.offset, msg.end_offset - msg.offset, len(msg.from_line), len(msg.separator)
        return SourceMail(raw=None, ref=ref, folder=self._folder, flags=(note, *msg.mail_flags),
                          internal_date=msg.date, date_source="from-line", cursor=cur,
                          size=length - head - tail - msg.unquoted,  # msg.archived_length
                          on_read_error=self._changed(ref, counts["messages"], offset, cur),
                          # unquoted only where the scan counted ^>+From lines in these very bytes (the worker
                          # accepts them only with the scan's CRC-32): searching every mail for them cost a 116 KB
                          # mail ~60 µs (bench/RESULTS.md "mboxrd regions")
                          job=FileRegion(self._region_path, offset, length, msg.crc32, head, tail,
                                         msg.unquoted > 0, size, mtime),
                          also_in=also_in)

    def _changed(self, ref: str, index: int, offset: int, cur: dict):
        """What a region the worker could not read as scanned becomes: a problem naming the mbox and the message."""
        def problem(exc: OSError) -> SourceProblem:
            return SourceProblem(ref, (
                f"{self.name}: message {index} of this run (at byte {offset}) not imported: "
                f"{exc.strerror or exc}. Rerun the import once nothing writes to the mbox (what is archived "
                f"already is skipped)"), cur)
        return problem


def _not_an_mbox(head: bytes, size: int) -> str:
    """What a file without any From_ line is instead, when another import reads it (for the problem's text)."""
    from .share import EML, MSG, PST, TNEF, ZIP, detect  # share imports this module

    kind, _ = detect(head, b"", size)
    return {EML: ": it is one message without a From_ line, not an mbox; the eml import reads it",
            PST: ": it is an Outlook PST/OST store; the pst import reads it",
            MSG: ": it is an Outlook .msg item; the msg import reads it",
            TNEF: ": it is a TNEF file (winmail.dat); the share import converts it",
            ZIP: ": it is a zip file; the eml and share imports read the mail inside"}.get(kind, "")
