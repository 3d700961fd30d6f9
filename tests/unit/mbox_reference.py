"""The mbox splitter as it stood before the CPU cut of issue 15 (main at e6b2d7b), kept verbatim as the
reference that tests/unit/test_mbox_fast.py compares the current splitter with (docs/reliability.md
L1-L9: the same messages, offsets, bytes, flags and CRC-32 on every input). Not used by the toolkit."""
# ruff: noqa
from __future__ import annotations

import datetime as dt
import email.utils
import re
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

from toolkit.errors import UsageError
from toolkit.file_region import QUOTED_FROM

VARIANTS = ("auto", "mboxo", "mboxrd", "mboxcl", "mboxcl2")
BLOCK = 1 << 20
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
#: The default per-message cap of ``import mbox`` / ``import share`` (``--max-message-size``).
MAX_MESSAGE = 2 << 30

_BOM = b"\xef\xbb\xbf"
_WD = rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"
_MON = rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_DATE = (
    rb"(?:(?:" + _WD + rb",? +)?" + _MON + rb" +\d{1,2},? +\d{1,2}:\d{2}"      # asctime
    + rb"|(?:" + _WD + rb", +)?\d{1,2} +" + _MON + rb" +\d{2,4} +\d{1,2}:\d{2}"  # RFC 5322
    + rb"|\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2})"                                 # ISO 8601
)
_FULL = re.compile(rb"From ++(?:\S+(?: at \S+)?(?: +\([^)\r\n]*\))? +)?(?P<date>" + _DATE + rb"[^\r\n]*)", re.I)
_WEAK = re.compile(rb"From(?: ++-| ++[^\s@]++@[^\s@]++)?[ \t]*+\r?\n?\Z")  # possessive: linear on long runs of blanks
#: A sender of several words (``someone@[10.1.2.3] [host]``, ``Hello Support``): only with a complete
#: asctime date ending the line (seconds optional, a zone before or after the year). ``search`` is
#: linear: every start is a space before a weekday, and no two adjacent quantifiers match the same bytes.
_LOOSE = re.compile(
    rb" (?P<date>" + _WD + rb" +" + _MON + rb" +\d{1,2} +\d{1,2}:\d{2}(?::\d{2})?"
    rb"(?: +(?:[A-Za-z]{1,5}|[+-]\d{4}))? +\d{4}(?: +(?:[A-Za-z]{1,5}|[+-]\d{4}))?)[ \t]*\r?\n?\Z"
)
#: ``From :`` / ``From  : x`` is a header field with space before its colon, never a From_ line.
_FROM_FIELD = re.compile(rb"From[ \t]*:")
_HEADER = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")
_QUOTED_M = QUOTED_FROM  # ^>+From lines (the pack task's FileRegion unquotes with the same pattern)
#: Thunderbird's status of a message in its folder file; bit 0x0008: deleted ("expunged"), still in the
#: file until the folder is compacted
_MOZ_STATUS = re.compile(rb"x-mozilla-status[ \t]*:[ \t]*([0-9a-f]{4})[ \t]*\r?\n?\Z", re.I)
_CL = re.compile(rb"content-length[ \t]*:[ \t]*(\d{1,15})[ \t]*\r?\n?\Z", re.I)


def is_from_line(line: bytes) -> bool:
    """Does ``line`` (with or without its line ending) match the relaxed From_ pattern?"""
    if not line.startswith(b"From"):
        return False
    return bool(_FULL.match(line) or _WEAK.match(line) or _loose(line))


def _loose(line: bytes) -> re.Match | None:
    """The date of a From_ line whose sender has spaces or brackets (see ``_LOOSE``), else None."""
    if not line.startswith(b"From ") or _FROM_FIELD.match(line):
        return None
    m = _LOOSE.search(line, 4)
    return m if m is not None and line[5 : m.start()].strip() else None


def is_envelope_line(line: bytes) -> bool:
    """Any line starting with ``From `` that is not a ``From:`` header field: a From_ line when it
    opens a stream and a header line follows (older MTAs wrote senders and dates in any shape)."""
    return line.startswith(b"From ") and not _FROM_FIELD.match(line)


def _blank(line: bytes | None) -> bool:
    return line in (b"\n", b"\r\n")


def _header(line: bytes | None) -> bool:
    return line is not None and bool(_HEADER.match(line))


def _last_line(text: bytes) -> bytes:
    """The last line of a run of whole lines."""
    cut = text.rfind(b"\n", 0, len(text) - 1)
    return text if cut < 0 else text[cut + 1:]


def _pop_blank(acc: list[tuple[int, bytes]]) -> bytes:
    """Remove the empty line ending ``acc`` (the separator an mbox writer adds) and return it."""
    if not acc:
        return b""
    off, text = acc[-1]
    if _blank(text):
        acc.pop()
        return text
    for sep in (b"\r\n", b"\n"):
        if text.endswith(b"\n" + sep):
            acc[-1] = (off, text[: -len(sep)])
            return sep
    return b""


def from_line_date(from_line: bytes) -> dt.datetime | None:
    """The date of a From_ line as an aware datetime (UTC when the line names no zone), else None."""
    m = _FULL.match(from_line.removeprefix(_BOM)) or _loose(from_line.removeprefix(_BOM))
    if not m:
        return None
    parsed = email.utils.parsedate_tz(m.group("date").decode("ascii", "replace").strip())
    if not parsed or parsed[0] < 1000:
        return None
    try:
        tz = dt.timezone(dt.timedelta(seconds=parsed[9] or 0))
        return dt.datetime(*parsed[:6], tzinfo=tz)
    except (ValueError, OverflowError):
        return None


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

    @property
    def archived_length(self) -> int:
        """The length of what is archived (``raw``, also when the splitter did not keep it)."""
        return self.stored_length - self.unquoted

    @property
    def stored_length(self) -> int:
        return self.end_offset - self.offset - len(self.from_line) - len(self.separator)

    @property
    def date(self) -> dt.datetime | None:
        return from_line_date(self.from_line)


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

    def _fill(self) -> int:
        """The index in ``buf`` of the next line end at or after ``pos``, reading blocks as needed;
        -1 at EOF without one, or when ``limit`` bytes are buffered without one."""
        nl = self.buf.find(b"\n", self.pos)
        if nl >= 0 or self.eof:
            return nl
        parts = [self.buf[self.pos:]]
        have = len(parts[0])
        while self.limit is None or have <= self.limit:
            chunk = self.f.read(self.block)
            if not chunk:
                self.eof = True
                break
            i = chunk.find(b"\n")
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
        nl = self._fill()
        end = nl + 1 if nl >= 0 else len(self.buf)  # the whole buffer: no copy when pos is 0
        if end == self.pos:
            return None
        line = self.buf[self.pos:end]
        off = self.offset
        self.pos, self.offset = end, self.offset + len(line)
        return off, line

    def chunk(self) -> tuple[int, bytes] | None:
        """Whole lines up to (not including) the next line that starts with ``From`` (at least one line)."""
        if self.back:
            return self.back.pop()
        nl = self._fill()
        if nl < 0 or self.buf.startswith(b"From", self.pos) or (self.limit is not None and nl - self.pos >= self.limit):
            return self.next()
        idx = self.buf.find(b"\nFrom", nl)
        if idx >= 0:
            end = idx + 1
        else:
            end = len(self.buf) if self.eof else self.buf.rfind(b"\n", nl) + 1
        text = self.buf[self.pos:end]
        off = self.offset
        self.pos, self.offset = end, self.offset + len(text)
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
                 max_message: int | None = None, keep_bytes: bool = True):
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
        while start is not None:
            msg, start, start_flags_next = self._message(start, start_flags)
            if POSSIBLE_FALSE_SPLIT in start_flags_next and POSSIBLE_FALSE_SPLIT not in msg.flags:
                msg.flags.append(POSSIBLE_FALSE_SPLIT)
            if pending is not None:
                yield pending
            pending, start_flags = msg, start_flags_next
        if pending is not None:
            self.size = pending.end_offset
            yield pending

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
        while True:
            item = lines.next() if in_headers or claimed is not None else lines.chunk()
            if item is None:
                if claimed is not None:   # the claimed end lies past EOF
                    cl_flag = CL_IGNORED
                    if inner:
                        return self._cut(start, acc, inner[0], flags)
                sep = _pop_blank(acc)
                return self._finish(offset, from_line, acc, sep, flags, cl_flag), None, []
            off, line = item
            if in_headers:
                if _header(line) or (header_lines and line[:1] in (b" ", b"\t")):
                    header_lines.append(line)
                else:
                    in_headers = False
                    if _blank(line):
                        claimed = self._claimed(header_lines, off + len(line))
            kind = self._separator(line, prev)
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
            prev = _last_line(line)
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

    def _oversized(self, start, acc, flags, claimed: int | None):
        """Read past a message over ``max_message`` in pieces of at most one block, keeping only its
        CRC-32 and length: the message comes back with ``oversized`` set and no bytes. Its end is
        a consistent Content-Length end, else the next From_ line that separates (From_ lines
        inside the range a Content-Length claims do not split here)."""
        lines = self._lines
        offset, from_line = start
        crc = zlib.crc32(from_line)
        for _, line in acc:
            crc = zlib.crc32(line, crc)
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
                            sep, crc = piece, zlib.crc32(piece, crc)
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
                crc = zlib.crc32(piece, crc)
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
        sep = _pop_blank(head) if kind != "noblank" else b""
        nxt_flags = {"noblank": [NO_BLANK_BEFORE], "false": [POSSIBLE_FALSE_SPLIT]}.get(kind, [])
        return self._finish(offset, from_line, head, sep, flags, cl_flag), acc[cut], nxt_flags

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

    def _finish(self, offset, from_line, acc, sep, flags, cl_flag) -> MboxMessage:
        crc = zlib.crc32(from_line)
        for _, line in acc:
            crc = zlib.crc32(line, crc)
        crc = zlib.crc32(sep, crc)
        if self.keep_bytes:
            raw = b"".join(line for _, line in acc)
            quoted = len(_QUOTED_M.findall(raw)) if b">From " in raw else 0
            empty = not raw or raw.isspace()
        else:  # the same counts line by line (every item of acc is whole lines), the bytes not joined
            raw = b""
            quoted = sum(len(_QUOTED_M.findall(text)) for _, text in acc if b">From " in text)
            empty = all(text.isspace() for _, text in acc)
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
        if self._expunged(acc):
            flags.append(MOZILLA_EXPUNGED)
        end = (acc[-1][0] + len(acc[-1][1]) if acc else offset + len(from_line)) + len(sep)
        if self.variant != "auto":
            variant = self.variant
        else:
            variant = "mboxcl" if cl_flag == CL_USED or (cl_flag is None and self._had_cl(acc)) else "unknown"
        return MboxMessage(offset, from_line, raw, end, sep, flags, variant, crc, unquoted, empty=empty)

    @staticmethod
    def _expunged(acc) -> bool:
        """Does the header block say Thunderbird deleted the message (``X-Mozilla-Status`` bit 0x0008)?"""
        for _, line in acc:
            if _blank(line):
                return False
            m = _MOZ_STATUS.match(line)
            if m:
                return bool(int(m.group(1), 16) & 0x0008)
        return False

    @staticmethod
    def _had_cl(acc) -> bool:
        for _, line in acc:
            if _blank(line):
                return False
            if _CL.match(line):
                return True
        return False


def split_mbox(f: BinaryIO, variant: str = "auto", base: int = 0) -> Iterator[MboxMessage]:
    """The messages of ``f``; use MboxSplitter directly to learn about a prefix before the first From_ line."""
    return iter(MboxSplitter(f, variant, base))




def is_mmdf_separator(line: bytes) -> bool:
    """Is this line the MMDF message separator (four Ctrl-A bytes)?"""
    return line.rstrip(b"\r\n") == b"\x01\x01\x01\x01"

