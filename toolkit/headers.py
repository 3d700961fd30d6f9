"""Fast header scan: raw message bytes -> catalog metadata and the dedup key.

This is the import's hot spot (docs/dedup.md, tests/README.md ("Other measured facts")).
The header block is split off by hand and only that block is parsed, with
``compat32`` semantics; the MIME tree is never built here. A fast splitter
returns exactly what ``BytesHeaderParser(policy=compat32)`` gives for the
few fields we read (tests/corpus pins this on every corpus message) and
hands anything unusual (bare CR, stray non-header lines, a continuation as
first line) to the real compat32 parser, whose defects are recorded.
Address lists take a similar fast path that equals ``getaddresses``. ``scan`` never
raises on any ``bytes`` input: problems become short, stable defect codes in
``MailMeta.defects`` and the body hash and dedup key are always computed.

Compiled scans
    The byte scans (body blanks and CRLF, the wanted header fields, plain
    address lists) run in the optional C module ``toolkit._native`` when it
    was built; each equals the ``_py`` function here, which stays the
    reference and runs when it was not (``NATIVE`` says which;
    docs/architecture.md, "Compiled scans"). A usual header block (plain
    fields, a Message-ID, plain address lists, a date in the usual form, no
    encoded words) is read whole by the compiled ``scan_usual``, equal to the
    Python scan here, which reads every other block.

Header block / body split
    The header block ends at the first empty line (``\\n\\n``, ``\\r\\n\\r\\n``
    or mixed ``\\n\\r\\n``). A message with no ``\\n`` at all may use ``\\r\\r``
    (classic Mac). No separator: if the first line looks like a header, the
    whole message is the header block (defect ``no-header-body-separator``);
    otherwise, and whenever the first line is not a header, the whole message
    is body (defect ``no-headers``).

Body normalisation (``normalise_body``)
    CRLF -> LF; a bare CR is kept; spaces and tabs at the end of each line
    are removed; trailing empty lines are removed (so the final newline is
    gone too). ``body_hash = BLAKE3(normalise_body(body))`` (32 bytes; see
    :mod:`toolkit.hashes`), fed piece by piece by :func:`hash_body` and
    :class:`BodyHasher` without building the normalised body.

Dedup key -- A STORED FORMAT. Changing any byte of this recipe changes the
key of every message and breaks deduplication against existing archives.
Version the prefix instead of editing it (``-v2`` since the body hash became
BLAKE3 with archive format v2; ``-v1`` keys used SHA-256 body hashes).

    With a Message-ID::

        sha256(b"mailarchive-dedup-v2\\0mid\\0" + MID + b"\\0" + body_hash)

    MID is the Message-ID header value (first occurrence), unfolded, with
    all whitespace removed and the angle brackets stripped (the text
    between the first ``<`` and the following ``>`` when both exist), case
    kept, as the header's bytes (``str.encode("utf-8", "surrogateescape")``
    of the compat32 value, so invalid UTF-8 keeps its raw bytes).

    Without a Message-ID (missing or empty after normalisation)::

        sha256(b"mailarchive-dedup-v2\\0nomid\\0"
               + DATE + b"\\0" + FROM + b"\\0" + TO + b"\\0" + CC + b"\\0"
               + SUBJECT + b"\\0" + body_hash)

    each field being the first occurrence of that header, raw (no RFC 2047
    decoding), unfolded, runs of space/tab/CR/LF collapsed to one space,
    stripped, encoded as above; a missing header is the empty string.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import errors as email_errors
from email.header import decode_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import NamedTuple

from . import hashes
from .plausible_dates import AHEAD, plausible

__all__ = ["MailMeta", "Split", "scan", "header_fields", "fallback_scan", "dedup_key", "normalise_body", "normalise_message_id",
           "split_mail", "split_message"]

DEDUP_PREFIX = b"mailarchive-dedup-v2\0"   # v2: the body hash is BLAKE3 (v1: SHA-256)
MAX_VALUE_CHARS = 64 * 1024      # longest header value parsed for addresses / subject
MAX_SUBJECT_CHARS = 2000
MAX_NAME_CHARS = 500

_PARSER = BytesHeaderParser(policy=compat32)
# a header line, or a continuation line followed by one (J1: first line is a continuation)
# (no two quantifiers may overlap: ``[ \t]+[^\r\n]*`` read a long run of blanks quadratically)
_HEADER_LINE = re.compile(rb"(?:From |[!-9;-~]+[ \t]*:|[ \t][^\r\n]*+\r?\n[!-9;-~]+:)")
_BLANK_LINE = re.compile(rb"\n\r?\n")
# literal searches: the re engine finds these two-byte needles about twice as fast as bytes.find
_SPACE_LF = re.compile(rb" \n")
_TAB_LF = re.compile(rb"\t\n")
_LINEBREAKS = re.compile(r"\r\n|\r|\n")
_WS_RUN = re.compile(r"[ \t\r\n]+")
_ALL_WS = re.compile(r"[ \t\r\n]+")
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_ADDR_SPLIT = re.compile(r"[\s,;<>()\"\[\]:]+")
_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0)]}
_ESCAPES[0x0A] = "\\n"
_ESCAPES[0x0D] = "\\r"

_DEFECT_CODES = {
    "MissingHeaderBodySeparatorDefect": "no-header-body-separator",
    "FirstHeaderLineIsContinuationDefect": "first-line-continuation",
    "MisplacedEnvelopeHeaderDefect": "misplaced-envelope-header",
    "InvalidHeaderDefect": "header-invalid",
}


@dataclass(slots=True)
class MailMeta:
    message_id: str | None = None
    subject: str | None = None
    from_addr: str | None = None
    from_name: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    sent_date: datetime | None = None
    spam: bool = False
    defects: list[str] = field(default_factory=list)
    body_hash: bytes = b""
    dedup_key: bytes = b""
    header_size: int = 0
    journal: bool = False


# ---------------------------------------------------------------- body / key

_BLANKS = b" \t"


def _content_end_py(body: bytes, start: int, stop: int) -> int:
    """End of ``body[start:stop]`` without its tail of spaces, tabs and LFs (C-speed rstrip of growing tails)."""
    k = 64
    while True:
        lo = max(start, stop - k)
        kept = len(body[lo:stop].rstrip(b" \t\n"))
        if kept or lo == start:
            return lo + kept
        k *= 16


def _find(pattern: re.Pattern, body: bytes, pos: int, end: int) -> int:
    m = pattern.search(body, pos, end)
    return m.start() if m else -1


def _has_blank_before_lf_py(body: bytes, start: int, end: int) -> bool:
    """Is a LF in ``body[start:end]`` preceded by a space or tab there?"""
    return _SPACE_LF.search(body, start, end) is not None or (
        body.find(b"\t", start, end) >= 0 and _TAB_LF.search(body, start, end) is not None)


def _body_marks_py(buf: bytes, start: int, end: int) -> int:
    """What hash_body's and the scan's checks of a mail ask, as bits: 1 when ``buf[start:]`` holds a CR,
    2 when :func:`_has_blank_before_lf_py` ``(buf, start, end)``, 4 when ``buf`` holds a NUL (offsets
    clamped to the buffer, as the compiled ``body_marks`` does it in one pass)."""
    n = len(buf)
    start = min(max(start, 0), n)
    end = max(min(max(end, 0), n), start)
    return ((1 if buf.find(b"\r", start) >= 0 else 0) | (2 if _has_blank_before_lf_py(buf, start, end) else 0)
            | (4 if b"\0" in buf else 0))


def _feed_stripped(update, body: bytes, start: int, end: int) -> None:
    """``update`` each piece of ``body[start:end]`` (LF line ends) with the blanks before each LF left out.

    Python work per line that has trailing blanks, not per line: the pieces between are
    found by C searches and passed on as views."""
    view = memoryview(body)
    pos = start
    sp = _find(_SPACE_LF, body, pos, end)
    tab = _find(_TAB_LF, body, pos, end) if body.find(b"\t", pos, end) >= 0 else -1
    while sp >= 0 or tab >= 0:
        i = sp if tab < 0 or 0 <= sp < tab else tab     # the blank before the first such LF
        j = i
        while j > pos and body[j - 1] in (0x20, 0x09):
            j -= 1
        update(view[pos:j])
        pos = i + 1                                      # the LF starts the next piece
        if 0 <= sp < pos:
            sp = _find(_SPACE_LF, body, pos, end)
        if 0 <= tab < pos:
            tab = _find(_TAB_LF, body, pos, end)
    update(view[pos:end])


def _strip_blanks_py(body: bytes, start: int, end: int) -> bytes:
    """``body[start:end]`` with the spaces and tabs before each LF left out."""
    pieces: list = []
    _feed_stripped(pieces.append, body, start, end)
    return b"".join(pieces)


def _crlf_to_lf_py(data: bytes, start: int = 0) -> bytes:
    """``data[start:].replace(b"\\r\\n", b"\\n")``, faster for the usual mail: when every CR is followed by a LF
    (as many CRs deleted as there are CRLF pairs, which never overlap) deleting the CRs is the same
    thing, and ``translate`` plus a count cost ~60 % of ``replace`` (bench: IMAP mails are CRLF);
    a bare CR anywhere falls back to ``replace``."""
    if start:
        data = data[start:]
    lf = data.translate(None, b"\r")
    if len(data) - len(lf) == data.count(b"\r\n"):
        return lf
    return data.replace(b"\r\n", b"\n")


# The compiled versions of these scans (toolkit/_native.c; docs/architecture.md, "Compiled scans"):
# each equals its ``_py`` reference above for every input (tests/unit/test_native.py). Without a C
# compiler at install time the module is missing and the references run.
try:
    from . import _native
except ImportError:  # pragma: no cover - a build without a compiler
    _native = None

NATIVE = _native is not None   # which implementation runs (tests assert it under CI=true)
if _native is not None:
    _content_end = _native.content_end
    _has_blank_before_lf = _native.has_blank_before_lf
    _body_marks = _native.body_marks
    _strip_blanks = _native.strip_blanks
    _crlf_to_lf = _native.crlf_to_lf
else:  # pragma: no cover
    _content_end = _content_end_py
    _has_blank_before_lf = _has_blank_before_lf_py
    _body_marks = _body_marks_py
    _strip_blanks = _strip_blanks_py
    _crlf_to_lf = _crlf_to_lf_py


def crlf_to_lf(data: bytes) -> bytes:
    """``data.replace(b"\\r\\n", b"\\n")`` (one pass in compiled code, or :func:`_crlf_to_lf_py`)."""
    return _crlf_to_lf(data)


def normalise_body(body: bytes) -> bytes:
    """CRLF -> LF, bare CR kept, trailing spaces/tabs per line and trailing empty lines removed."""
    if b"\r" in body and b"\r\n" in body:
        body = _crlf_to_lf(body)
    end = _content_end(body, 0, len(body))
    if not _has_blank_before_lf(body, 0, end):
        return body[:end] if end < len(body) else body
    return _strip_blanks(body, 0, end)


def hash_body(raw: bytes, start: int = 0) -> bytes:
    """BLAKE3 of ``normalise_body(raw[start:])``: nothing is copied when the body has no CRLF and no
    line with trailing blanks (most mails); otherwise the normalised body is built in one pass."""
    if raw.find(b"\r", start) >= 0 and raw.find(b"\r\n", start) >= 0:
        raw, start = _crlf_to_lf(raw, start), 0
    end = _content_end(raw, start, len(raw))
    if not _has_blank_before_lf(raw, start, end):
        # nothing to strip inside: one call over the whole body (a view, or the bytes themselves)
        return hashes.body_hasher().update(raw if start == 0 and end == len(raw) else memoryview(raw)[start:end]).digest()
    return hashes.body_hasher().update(_strip_blanks(raw, start, end)).digest()


def _hash_body_nul(raw: bytes, start: int) -> tuple[bytes, bool]:
    """(:func:`hash_body` ``(raw, start)``, whether ``raw`` holds a NUL): the CR, blank-before-LF and NUL checks
    of a mail in one pass (``_body_marks``), then the same hash (tests/unit/test_native.py compares)."""
    end = _content_end(raw, start, len(raw))
    marks = _body_marks(raw, start, end)
    if marks & 1 and raw.find(b"\r\n", start) >= 0:  # CRLF: hash_body normalises a copy first
        return hash_body(raw, start), bool(marks & 4)
    if not marks & 2:
        return hashes.body_hasher().update(raw if start == 0 and end == len(raw) else memoryview(raw)[start:end]).digest(), \
            bool(marks & 4)
    return hashes.body_hasher().update(_strip_blanks(raw, start, end)).digest(), bool(marks & 4)


_CARRY_LIMIT = 1 << 16  # an unfinished line longer than this is hashed up to its trailing blanks


class BodyHasher:
    """BLAKE3 of ``normalise_body(body)`` computed over a body fed in chunks of any size."""

    def __init__(self) -> None:
        self._h = hashes.body_hasher()
        self._carry = b""        # an incomplete last line (may end in a CR that a LF could follow)
        self._newlines = 0       # newlines held back: trailing empty lines are dropped at the end

    def update(self, chunk: bytes) -> None:
        buf = self._carry + chunk
        if b"\r" in buf and b"\r\n" in buf:
            buf = crlf_to_lf(buf)
        cut = buf.rfind(b"\n") + 1    # end of the complete lines (0: none); a CR at the end stays in the carry
        end = _content_end(buf, 0, cut)
        if end:
            if self._newlines:
                self._h.update(b"\n" * self._newlines)
            if _has_blank_before_lf(buf, 0, end):
                self._h.update(_strip_blanks(buf, 0, end))
            else:
                self._h.update(memoryview(buf)[:end] if end < len(buf) else buf)
            self._newlines = 0
        self._newlines += buf.count(b"\n", end, cut)
        self._carry = buf[cut:]
        if len(self._carry) > _CARRY_LIMIT:
            self._flush_line_start()

    def _flush_line_start(self) -> None:
        """Hash the start of a long unfinished line: only its tail of blanks (and a CR a LF may follow)
        can still change, so a body without newlines is not copied again with every chunk."""
        keep = len(self._carry.rstrip(b" \t\r"))
        if keep:
            if self._newlines:
                self._h.update(b"\n" * self._newlines)
                self._newlines = 0
            self._h.update(self._carry[:keep])
            self._carry = self._carry[keep:]

    def digest(self) -> bytes:
        tail = self._carry.rstrip(b" \t")
        if tail:
            self._h.update(b"\n" * self._newlines + tail)
            self._newlines = 0
        return self._h.digest()


def _enc(value: str | None) -> bytes:
    if not value:
        return b""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def normalise_message_id(value: str | None) -> str | None:
    """Whitespace removed, angle brackets stripped, case kept; None if nothing is left."""
    if value is None:
        return None
    v = _ALL_WS.sub("", value)
    lt = v.find("<")
    gt = v.find(">", lt + 1) if lt >= 0 else -1
    if lt >= 0 and gt > lt:
        v = v[lt + 1:gt]
    else:
        v = v.strip("<>")
    return v or None


def _collapse(value: str | None) -> str:
    return _WS_RUN.sub(" ", value).strip() if value else ""


def dedup_key(message_id: str | None, body_hash: bytes, *, date_raw: str | None = None,
              from_raw: str | None = None, to_raw: str | None = None, cc_raw: str | None = None,
              subject_raw: str | None = None) -> bytes:
    """The 32-byte dedup key (stored format, see the module docstring).

    ``message_id`` is the normalised id (``normalise_message_id``); the
    ``*_raw`` values are raw header values and are collapsed here.
    """
    h = hashlib.sha256(DEDUP_PREFIX)
    if message_id:
        h.update(b"mid\0" + _enc(message_id) + b"\0")
    else:
        h.update(b"nomid\0")
        for raw in (date_raw, from_raw, to_raw, cc_raw, subject_raw):
            h.update(_enc(_collapse(raw)) + b"\0")
    h.update(body_hash)
    return h.digest()


# ---------------------------------------------------------------- splitting

def split_message(raw: bytes) -> tuple[bytes, bytes, str | None]:
    """Return (header block, body, defect or None). See the module docstring."""
    header_end, body_start, defect = split_offsets(raw)
    return raw[:header_end], raw[body_start:], defect


class Split(NamedTuple):
    """A mail split once (:func:`split_mail`), handed on to every reader of its header block."""

    skip: int               # bytes of a UTF-8 BOM before the first header (3 or 0)
    header_end: int         # end of the header block in the mail's bytes
    body_start: int         # start of the body in the mail's bytes
    defect: str | None      # what :func:`split_offsets` says about the split
    block: bytes            # the header block, ``raw[skip:header_end]``


def split_mail(raw: bytes) -> Split:
    """The header block / body split of a whole mail (after a UTF-8 BOM, if it has one): for bytes in one
    compiled pass (``_native.split_mail``), equal to :func:`_split_mail_py` (tests/unit/test_native.py)."""
    if _native_split is not None and type(raw) is bytes:
        return _tuple_new(Split, _native_split(raw))
    return _split_mail_py(raw)


def _split_mail_py(raw: bytes) -> Split:
    """:func:`split_mail` in Python: the reference, and what runs without the compiled module."""
    skip = 3 if raw[:3] == b"\xef\xbb\xbf" else 0
    header_end, body_start, defect = split_offsets(raw, skip)
    return Split(skip, header_end, body_start, defect, raw[skip:header_end])


def split_offsets(raw: bytes, pos: int = 0) -> tuple[int, int, str | None]:
    """:func:`split_message` of ``raw[pos:]`` as offsets into ``raw``: (end of the header block,
    start of the body, defect or None). Slices nothing, so the body is never copied."""
    if pos >= len(raw):
        return pos, pos, "empty-message"
    if raw.startswith(b"\n", pos):
        return pos, pos + 1, "no-headers"
    if raw.startswith(b"\r\n", pos):
        return pos, pos + 2, "no-headers"
    if not _HEADER_LINE.match(raw, pos):
        return pos, pos, "no-headers"
    # the first empty line, LF or CRLF: one search that stops there (two finds each scanned a
    # CRLF mail to its end looking for "\n\n")
    m = _BLANK_LINE.search(raw, pos)
    if m is not None:
        return m.start() + 1, m.end(), None
    if raw.find(b"\n", pos) < 0:
        k = raw.find(b"\r\r", pos)
        if k >= 0:
            return k + 1, k + 2, None
    return len(raw), len(raw), "no-header-body-separator"


# ---------------------------------------------------------------- text helpers

def _text(value: str) -> str:
    """compat32 value (ASCII + surrogate escapes) -> text; invalid UTF-8 -> U+FFFD."""
    if value.isascii():
        return value
    try:
        return value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8", "replace")


def _unfold(value: str) -> str:
    if "\n" in value or "\r" in value:
        return _LINEBREAKS.sub("", value)
    return value


def _escape_controls(text: str) -> str:
    if _CONTROLS.search(text):
        return text.translate(_ESCAPES)
    return text


def _decode_words(text: str, defects: list[str]) -> str:
    """RFC 2047 decode via email.header.decode_header; never raises."""
    if "=?" not in text:
        return text
    try:
        parts = decode_header(text)
    except (email_errors.HeaderParseError, ValueError, LookupError, AssertionError):
        _add(defects, "encoded-word-invalid")
        return text
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None:
            try:
                out.append(chunk.decode("raw-unicode-escape"))
            except UnicodeDecodeError:
                out.append(chunk.decode("latin-1"))
        else:
            try:
                out.append(chunk.decode(charset, "replace"))
            except (LookupError, ValueError, TypeError):
                _add(defects, "charset-unknown")
                out.append(chunk.decode("utf-8", "replace"))
    return "".join(out)


def _add(defects: list[str], code: str) -> None:
    if code not in defects:
        defects.append(code)


# ---------------------------------------------------------------- addresses

# Fast path for plain address lists (``a@b``, ``Name <a@b>``, ``"Last, First" <a@b>``,
# comma-separated; no comments, groups, escapes, domain literals or odd spacing). It
# gives exactly what email.utils.getaddresses gives for these (the corpus tests pin
# that); it returns None for anything else, which then goes to getaddresses.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR = rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_ADDR_LINES = re.compile(rf"{_ADDR}(?:\n{_ADDR})*")
# Possessive quantifiers throughout: a run of plain characters and a quoted string can only
# be read one way, so a failed match never backtracks (the old ``(?:[^,"]+|"…"|,)*`` did,
# exponentially, on a quoted string holding a backslash).
_QUOTED_LIST = re.compile(r'(?:[^"]++|"[^"\\\r\n]*+")*+')
_QUOTED_SPLIT = re.compile(r'(?:[^,"]++|"[^"\\\r\n]*+")++')
_QUOTED_STR = re.compile(r'"[^"\\\r\n]*+"')
_NAME_BAD = re.compile(r'[\x00-\x08\x0a-\x1f\x7f"<>@]')


def _fast_addresses_py(value: str) -> list[tuple[str, str]] | None:
    if '"' in value:
        if not _QUOTED_LIST.fullmatch(value):
            return None
        unquoted = _QUOTED_STR.sub("", value)
        parts = _QUOTED_SPLIT.findall(value)
    else:
        unquoted = value
        parts = value.split(",")
    for c in "(;:\\[\r\n":
        if c in unquoted:
            return None
    names, addrs = [], []
    for part in parts:
        part = part.strip(" \t")
        if not part:
            continue
        if part[-1] == ">":
            lt = part.rfind("<")
            if lt < 0:
                return None
            addrs.append(part[lt + 1:-1])
            name = part[:lt].rstrip(" \t")
            if name:
                if name[0] == '"':
                    if len(name) < 2 or name[-1] != '"' or '"' in name[1:-1]:
                        return None
                    name = name[1:-1]
                elif _NAME_BAD.search(name):
                    return None
                elif "  " in name or "\t" in name:
                    name = " ".join([w for w in name.replace("\t", " ").split(" ") if w])
            names.append(name)
        else:
            addrs.append(part)
            names.append("")
    if addrs and not _ADDR_LINES.fullmatch("\n".join(addrs)):
        return None
    return list(zip(names, [a.lower() for a in addrs]))


def _fast_addresses_native(value: str) -> list[tuple[str, str]] | None:
    """:func:`_fast_addresses_py` in compiled code for ASCII text (nearly every address header)."""
    return _native.fast_addresses(value) if value.isascii() else _fast_addresses_py(value)


_fast_addresses = _fast_addresses_native if _native is not None else _fast_addresses_py


def _address_candidates(value: str) -> list[str]:
    """Every token that looks like an addr-spec (linear: split, then filter)."""
    found = []
    for tok in _ADDR_SPLIT.split(value):
        at = tok.find("@")
        if 0 < at < len(tok) - 1:
            found.append(tok.strip(".'`").lower())
    return found


def _parse_addresses(value: str, defects: list[str]) -> list[tuple[str, str]]:
    """(display name raw, lowercased addr) pairs; ambiguous inputs yield every candidate."""
    if len(value) > MAX_VALUE_CHARS:
        cut = max(value.rfind(",", 0, MAX_VALUE_CHARS), value.rfind(";", 0, MAX_VALUE_CHARS))
        value = value[:cut] if cut > 0 else value[:MAX_VALUE_CHARS]
        _add(defects, "headers-capped")
    try:
        pairs = _fast_addresses(value)
        if pairs is None:
            pairs = [(n, a.lower()) for n, a in getaddresses([value]) if a]
    except RecursionError:
        pairs = []
        _add(defects, "address-unparsable")
    ats = value.count("@")
    if ats > len(pairs):
        known = {a for _, a in pairs}
        extra = [c for c in _address_candidates(value) if c not in known]
        if extra:
            _add(defects, "address-ambiguous")
            seen = set(known)
            for c in extra:
                if c not in seen:
                    seen.add(c)
                    pairs.append(("", c))
    return pairs


# ---------------------------------------------------------------- scan

_WANTED = frozenset({"message-id", "subject", "from", "to", "cc", "bcc", "date",
                     "x-spam-flag", "x-spam-status", "x-ms-journal-report"})
_MULTI = frozenset({"to", "cc", "bcc"})
_FIELD_END = re.compile(rb"\n(?![ \t])")
# a line that is neither a field (compat32 name syntax) nor a continuation; the
# match at the very end of the block (after its last newline) is harmless
_BAD_LINE = re.compile(rb"\n(?![ \t]|[!-9;-~]+:|\r?$)")
_WANTED_LINE = re.compile(rb"\n(" + b"|".join(re.escape(n.encode()) for n in sorted(_WANTED)) + rb"):", re.I)


def scan(raw: bytes, *, max_header_bytes: int = 1 << 20, max_addresses: int = 10_000,
         deadline: float = 2.0, body_hash: bytes | None = None, split: Split | None = None) -> MailMeta:
    """Scan one message. Never raises for bytes input; see the module docstring.

    With ``body_hash`` (from :class:`BodyHasher` over a streamed body) ``raw``
    need only hold the header block and its separator: large mails are never
    held in memory whole. ``split``: :func:`split_mail` of ``raw`` when the
    caller already has it (the mail is then not split again).
    """
    meta, first = _scan(raw, max_header_bytes, max_addresses, deadline, body_hash, split, False)
    if first is None:  # the compiled scan read the block and made the key
        return meta
    try:
        mid_raw = normalise_message_id(_unfold(first["message-id"])) if "message-id" in first else None
        meta.dedup_key = dedup_key(
            mid_raw, meta.body_hash, date_raw=first.get("date"), from_raw=first.get("from"),
            to_raw=first.get("to"), cc_raw=first.get("cc"), subject_raw=first.get("subject"))
    except Exception as exc:  # pragma: no cover - dedup_key takes str only
        _add(meta.defects, f"parse-error:{type(exc).__name__}")
        meta.dedup_key = dedup_key(None, meta.body_hash)
    return meta


def header_fields(raw: bytes, *, max_header_bytes: int = 1 << 20, max_addresses: int = 10_000,
                  deadline: float = 2.0) -> MailMeta:
    """The catalog's header fields of a mail exactly as :func:`scan` derives them (``message_id``,
    ``subject``, ``from_addr``, ``to``, ``cc``, ``sent_date``, by the same code), and nothing else: no body
    hash, dedup key, Bcc, sender name, spam or journal flag (``verify --full``'s F04, docs/verification.md).
    ``raw`` need only hold the header block and its separator; ``defects`` is incomplete."""
    return _scan(raw, max_header_bytes, max_addresses, deadline, b"", None, True)[0]


def _scan(raw, max_header_bytes: int, max_addresses: int, deadline: float, body_hash: bytes | None,
          split: Split | None, fields_only: bool) -> tuple[MailMeta, dict[str, str] | None]:
    """:func:`scan` up to the dedup key: the metadata and the first value of each wanted field; or the
    metadata with its dedup key and None, when the compiled scan read a usual block (``_scan_usual``)."""
    if not isinstance(raw, bytes):
        raw = bytes(raw)
    defects: list[str] = []
    skip, _, body_start, split_defect, header_block = split if split is not None else split_mail(raw)
    if skip:  # a UTF-8 BOM before the first header (some exports)
        defects.append("bom")
    if split_defect:
        defects.append(split_defect)
    if body_hash is None:  # the body hash and the NUL check in one pass over the mail
        body_hash, nul = _hash_body_nul(raw, body_start)
    else:
        nul = not fields_only and b"\0" in raw
    if not fields_only and nul:
        defects.append("nul-bytes")
    if _scan_usual is not None and not fields_only and header_block and len(header_block) <= max_header_bytes:
        try:
            usual = _scan_usual(header_block, max_addresses, time.time() + _AHEAD)
        except Exception:  # pragma: no cover - MemoryError: the Python scan below records what happens
            usual = None
        if usual is not None:  # the same values the Python scan gives (tests/unit/test_scan_usual.py)
            mid, subject, from_addr, from_name, to, cc, bcc, sent, spam, more, mid_key, journal, todo = usual
            if todo & 1:  # decoded (and its defects recorded) where _read_identity does it: after header-8bit
                found: list[str] = []
                subject = _escape_controls(_decode_words(subject, found))[:MAX_SUBJECT_CHARS]
                more[1 if more[:1] == ["header-8bit"] else 0:0] = found
            defects += more
            if todo & 2:  # as _read_from does it: after the date's defects (To, Cc and Bcc add none here)
                from_name = _escape_controls(_decode_words(from_name, defects))[:MAX_NAME_CHARS] or None
            # dedup_key(message_id, body_hash) of the normalised Message-ID's bytes (the stored recipe)
            key = _sha256(b"%smid\0%s\0%s" % (DEDUP_PREFIX, mid_key, body_hash)).digest()
            return MailMeta(mid, subject, from_addr, from_name, to, cc, bcc, sent, spam, defects, body_hash, key,
                            len(header_block), journal), None
    meta = MailMeta(defects=defects, body_hash=body_hash, header_size=len(header_block))
    first: dict[str, str] = {}
    t_end = time.monotonic() + deadline  # the deadline is for header parsing, not for hashing a large body
    try:
        if header_block:
            _scan_headers(meta, header_block, first, max_header_bytes, max_addresses, t_end, fields_only)
    except Exception as exc:  # the contract: never raise, record what happened
        _add(defects, f"parse-error:{type(exc).__name__}")
    return meta, first


def _wanted_fields_py(block: bytes) -> list[tuple[str, str]] | None:
    """The wanted (lowercased name, value) pairs, exactly as compat32's ``raw_items`` gives them.

    Fast path for the common case; returns None when the block holds
    anything compat32 treats specially (a bare CR, a first line that is a
    continuation, a line that is neither a header nor a continuation, an
    empty field name), so the caller falls back to the real parser.
    """
    if block[:1] in (b" ", b"\t") or (b"\r" in block and block.count(b"\r") != block.count(b"\r\n")):
        return None
    text = b"\n" + block
    start = 0
    if block.startswith(b"From "):  # mbox envelope line: compat32 keeps it as unixfrom
        start = text.find(b"\n", 1)
        if start < 0 or text[start + 1:start + 2] in (b" ", b"\t"):
            return None
    bad = _BAD_LINE.search(text, start)
    if bad is not None and bad.end() < len(text):
        return None
    out = []
    for m in _WANTED_LINE.finditer(text, start):
        end = _FIELD_END.search(text, m.end())
        value = text[m.end():end.start() if end else len(text)]
        out.append((m.group(1).lower().decode("ascii"),
                    value.lstrip(b" \t").rstrip(b"\r\n").decode("ascii", "surrogateescape")))
    return out


_wanted_fields = _native.wanted_fields if _native is not None else _wanted_fields_py
_native_split = getattr(_native, "split_mail", None)
_tuple_new = tuple.__new__

# The compiled header scan of a usual block (toolkit/_native.c ``scan_usual``): the message's fields, its
# header defects and its Message-ID's key bytes in one pass, equal to what _scan_headers and dedup_key
# give for it (tests/unit/test_scan_usual.py compares them on the corpora and on random blocks); None for
# anything else (encoded words, odd dates or addresses, no Message-ID, ...), which the Python scan reads.
# Without the compiled module the Python scan reads every block.
_scan_usual = _native.scan_usual if _native is not None and hasattr(_native, "scan_usual") else None
_AHEAD = AHEAD.total_seconds()  # a date up to a day after the scan is plausible (toolkit/plausible_dates.py)
_sha256 = hashlib.sha256


def _scan_headers(meta: MailMeta, block: bytes, first: dict[str, str], max_header_bytes: int,
                  max_addresses: int, t_end: float, fields_only: bool = False) -> None:
    defects = meta.defects
    block = _cap_block(block, max_header_bytes, defects)
    if not block.isascii():
        defects.append("header-8bit")
    fields = _header_fields(block, defects)
    if time.monotonic() > t_end:
        _add(defects, "parse-timeout")
        return
    recipients = _first_values(fields, first)
    _read_identity(meta, first, defects, fields_only)
    budget = _read_from(meta, first, defects, max_addresses, fields_only)
    # Bcc comes last: leaving it out (fields_only) changes neither To nor Cc
    _read_recipients(meta, recipients, budget, defects, t_end, ("to", "cc") if fields_only else ("to", "cc", "bcc"))


def _cap_block(block: bytes, max_header_bytes: int, defects: list[str]) -> bytes:
    """The header block cut to ``max_header_bytes`` (defect headers-capped when it was longer)."""
    if len(block) <= max_header_bytes:
        return block
    # Cut at a line boundary; if that would lose most of the budget (one giant
    # line), cut inside the line after a separator so no partial address remains.
    cut = block.rfind(b"\n", 0, max_header_bytes) + 1
    if cut < max_header_bytes // 2:
        cut = max(block.rfind(b",", 0, max_header_bytes), block.rfind(b" ", 0, max_header_bytes), cut)
        if cut < max_header_bytes // 2:
            cut = max_header_bytes
    defects.append("headers-capped")
    return block[:cut]


def _header_fields(block: bytes, defects: list[str]) -> list[tuple[str, str]]:
    """The wanted fields (lower-case name, raw value) of the block, in order."""
    fields = _wanted_fields(block)
    if fields is None:  # anything unusual: let compat32 decide, and record its defects
        msg = _PARSER.parsebytes(block)
        for d in msg.defects:
            _add(defects, _DEFECT_CODES.get(type(d).__name__, "header-defect"))
        fields = [(name.lower(), value) for name, value in msg.raw_items() if name.lower() in _WANTED]
    return fields


def _first_values(fields: list[tuple[str, str]], first: dict[str, str]) -> dict[str, list[str]]:
    """Fill ``first`` with the first value of each field; returns every To/Cc/Bcc value."""
    recipients: dict[str, list[str]] = {"to": [], "cc": [], "bcc": []}
    for lname, value in fields:
        if lname in _MULTI:
            recipients[lname].append(value)
            first.setdefault(lname, value)
        elif lname not in first:
            first[lname] = value
    return recipients


def _read_identity(meta: MailMeta, first: dict[str, str], defects: list[str], fields_only: bool = False) -> None:
    """Message-ID, spam and journal flags (not with ``fields_only``), subject and date."""
    # Message-ID: stored text (invalid UTF-8 replaced); the key uses the raw form.
    if "message-id" in first:
        mid = normalise_message_id(_unfold(first["message-id"]))
        meta.message_id = _text(mid) if mid else None
    if meta.message_id is None:
        defects.append("no-message-id")

    if not fields_only:
        flag = first.get("x-spam-flag")
        status = first.get("x-spam-status")
        meta.spam = bool((flag and flag.strip().upper() == "YES")
                         or (status and status.lstrip().lower().startswith("yes")))
        meta.journal = "x-ms-journal-report" in first

    if "subject" in first:
        subj = _unfold(first["subject"]).strip()
        if len(subj) > MAX_VALUE_CHARS:
            subj = subj[:MAX_VALUE_CHARS]
            _add(defects, "headers-capped")
        subj = _escape_controls(_decode_words(_text(subj), defects))
        meta.subject = subj[:MAX_SUBJECT_CHARS]

    if "date" in first:
        meta.sent_date = _parse_date(_unfold(first["date"]), defects)
    else:
        defects.append("date-missing")


def _read_from(meta: MailMeta, first: dict[str, str], defects: list[str], budget: int, fields_only: bool = False) -> int:
    """The From address and name (not with ``fields_only``); returns the address budget left."""
    if "from" not in first:
        defects.append("from-missing")
        return budget
    pairs = _parse_addresses(_text(_unfold(first["from"])), defects)
    if not pairs:
        _add(defects, "address-unparsable")
        return budget
    name, addr = pairs[0]
    meta.from_addr = addr
    if name and not fields_only:
        meta.from_name = _escape_controls(_decode_words(name, defects))[:MAX_NAME_CHARS] or None
    return budget - 1


def _read_recipients(meta: MailMeta, recipients: dict[str, list[str]], budget: int, defects: list[str],
                     t_end: float, kinds: tuple[str, ...] = ("to", "cc", "bcc")) -> None:
    """To, Cc and Bcc (``kinds``): unique addresses within the budget, stopping at the parse deadline."""
    for kind in kinds:
        values = recipients[kind]
        if not values:
            continue
        addrs: list[str] = []
        for value in values:
            if time.monotonic() > t_end:
                _add(defects, "parse-timeout")
                break
            addrs.extend([a for _, a in _parse_addresses(_text(_unfold(value)), defects)])
        unique = list(dict.fromkeys(addrs))
        if len(unique) > budget:
            unique = unique[:max(budget, 0)]
            _add(defects, "headers-capped")
        budget -= len(unique)
        setattr(meta, kind, unique)
        if "parse-timeout" in defects:
            return


# ---------------------------------------------------------------- fallback

FALLBACK_HEAD = 64 * 1024   # bytes of the header block the fallback reads
_FALLBACK_FIELDS = frozenset({b"message-id", b"from", b"date", b"subject", b"to", b"cc"})


def fallback_scan(raw: bytes, *, body_hash: bytes | None = None) -> MailMeta:
    """What a mail whose :func:`scan` ran out of time still gets: a bounded line scan.

    Reads at most ``FALLBACK_HEAD`` bytes of the header block with plain
    ``bytes`` operations only (no regex, no email package): the first
    Message-ID, From, Date, Subject, To and Cc, unfolded. The sender is the
    text inside the last ``<...>`` of From (or From itself when it is one
    word holding an ``@``); the subject is not RFC 2047 decoded; no
    recipient lists are parsed. The body hash and the dedup key follow the
    normal recipe, so a mail the full scan handles gets the same key. The
    defect ``parse-timeout`` is always recorded.
    """
    meta = MailMeta(defects=["parse-timeout"])
    skip = 3 if raw[:3] == b"\xef\xbb\xbf" else 0
    end = raw.find(b"\n\n", skip, skip + FALLBACK_HEAD)
    crlf = raw.find(b"\n\r\n", skip, skip + FALLBACK_HEAD)
    if crlf >= 0 and (end < 0 or crlf < end):
        end = crlf
    head = raw[skip:end + 1] if end >= 0 else raw[skip:skip + FALLBACK_HEAD]
    if body_hash is None:
        body_start = end + (2 if raw[end:end + 2] == b"\n\n" else 3) if end >= 0 else len(raw)
        body_hash = hash_body(raw, body_start)
    meta.body_hash = body_hash
    meta.header_size = len(head)
    first: dict[str, str] = {}
    name = mid = None
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                first[name] += "\n" + line.rstrip(b"\r").decode("ascii", "surrogateescape")
            continue
        name = None
        field_name, colon, value = line.partition(b":")
        key = field_name.strip(b" \t").lower()
        if colon and key in _FALLBACK_FIELDS and key.decode() not in first:
            name = key.decode()
            first[name] = value.lstrip(b" \t").rstrip(b"\r").decode("ascii", "surrogateescape")
    try:
        mid = normalise_message_id(_unfold(first["message-id"])) if "message-id" in first else None
        meta.message_id = _text(mid) if mid else None
        if "subject" in first:
            meta.subject = _escape_controls(_text(_unfold(first["subject"]).strip()[:MAX_SUBJECT_CHARS]))
        if "from" in first:
            sender = _unfold(first["from"]).strip()
            lt, gt = sender.rfind("<"), sender.rfind(">")
            if 0 <= lt < gt:
                sender = sender[lt + 1:gt].strip()
            if "@" in sender and not any(c in sender for c in " \t<>,;\""):
                meta.from_addr = _text(sender).lower()
        if "date" in first:
            meta.sent_date = _parse_date(_unfold(first["date"])[:200], meta.defects)
    except Exception as exc:  # the contract: never raise
        _add(meta.defects, f"parse-error:{type(exc).__name__}")
    meta.dedup_key = dedup_key(
        mid if meta.message_id else None, body_hash, date_raw=first.get("date"), from_raw=first.get("from"),
        to_raw=first.get("to"), cc_raw=first.get("cc"), subject_raw=first.get("subject"))
    return meta


# The usual RFC 5322 form, "Thu, 16 May 2019 08:16:00 +0000" (an optional comment such as "(UTC)" after it),
# read without email.utils: the same datetime parsedate_to_datetime gives for it, in under half the time.
# Anything else (other spellings, 2-digit years, zone names, "-0000") goes to parsedate_to_datetime.
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                       "Dec"), 1)}
_USUAL_DATE = re.compile(r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?([0-9]{1,2}) (" + "|".join(_MONTHS) + r") "
                         r"([1-9][0-9]{3}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})(?: \([^()]*\))?")
_ZONES: dict[int, timezone] = {}


def _date_value(value: str) -> datetime:
    """``parsedate_to_datetime(value)`` (raises as it does), with a fast path for the usual form."""
    m = _USUAL_DATE.fullmatch(value)
    if m is not None and (m[7] == "+" or m[8] != "00" or m[9] != "00"):   # "-0000" is a naive time there
        seconds = int(m[8]) * 3600 + int(m[9]) * 60
        seconds = -seconds if m[7] == "-" else seconds
        try:
            zone = _ZONES.get(seconds) or _ZONES.setdefault(seconds, timezone(timedelta(seconds=seconds)))
            return datetime(int(m[3]), _MONTHS[m[2]], int(m[1]), int(m[4]), int(m[5]), int(m[6]), tzinfo=zone)
        except ValueError:  # a day, hour or zone out of range: the slow path raises as it should
            pass
    return parsedate_to_datetime(value)


def _parse_date(value: str, defects: list[str]) -> datetime | None:
    value = value.strip()
    if not value:
        defects.append("date-unparsable")
        return None
    try:
        dt = _date_value(value)
        if dt.tzinfo is None:
            defects.append("date-no-zone")
            dt = dt.replace(tzinfo=timezone.utc)
        dt = dt.astimezone(timezone.utc)
    except Exception:  # ValueError, TypeError, OverflowError, IndexError on odd input
        defects.append("date-unparsable")
        return None
    if not plausible(dt, datetime.now(timezone.utc)):  # before 1971 or after tomorrow (toolkit/plausible_dates.py)
        defects.append("date-implausible")
    return dt
