"""From_ lines, the envelope line of an mbox (docs/sources.md), and the other marks of an mbox a file's first bytes
show (compression, MMDF): what ``import mbox`` splits on and what the content checks of ``import eml``/``share``
(:mod:`importers.content`) look for. Apart from the splitter (importers/mbox.py), so that a worker process that runs
those checks imports only this."""
from __future__ import annotations

import datetime as dt
import re

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


#: the usual date of a From_ line (``Mon Jan  7 09:15:00 2019``, a year from 1000 on, no zone): ``from_line_date``
#: reads it without ``email.utils.parsedate_tz`` (the same result: tests/unit/test_mbox_fast.py)
_ASCTIME = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +([0-9]{1,2}) "
                      r"([0-9]{1,2}):([0-9]{2}):([0-9]{2}) ([1-9][0-9]{3})\Z")
_MONTHS = {name: i for i, name in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                              "Nov", "Dec"), 1)}
_UTC = dt.timezone(dt.timedelta(0))


def from_line_date(from_line: bytes) -> dt.datetime | None:
    """The date of a From_ line as an aware datetime (UTC when the line names no zone), else None."""
    m = _FULL.match(from_line.removeprefix(_BOM)) or _loose(from_line.removeprefix(_BOM))
    if not m:
        return None
    text = m.group("date").decode("ascii", "replace").strip()
    fast = _ASCTIME.match(text)
    if fast is not None:  # what parsedate_tz gives for this shape, without its general parsing (pinned by a test)
        wd, mon, day, hh, mi, ss, year = fast.groups()
        try:
            return dt.datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mi), int(ss), tzinfo=_UTC)
        except ValueError:
            return None
    import email.utils  # only for the dates of other shapes

    parsed = email.utils.parsedate_tz(text)
    if not parsed or parsed[0] < 1000:
        return None
    try:
        tz = dt.timezone(dt.timedelta(seconds=parsed[9] or 0))
        return dt.datetime(*parsed[:6], tzinfo=tz)
    except (ValueError, OverflowError):
        return None


_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"LZIP", "lzip"))

def compression_of(head: bytes) -> str | None:
    """The compression named by a stream's first bytes (gzip, bzip2, xz, lzip) or None."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


MMDF_UNSUPPORTED = ("an MMDF mailbox (each message between lines of four Ctrl-A bytes, as mutt writes with "
                    "mbox_type=MMDF): not supported; convert it to mbox first (in mutt: set mbox_type=mbox, then "
                    "copy all its messages to a new folder), then import that")


def is_mmdf_separator(line: bytes) -> bool:
    """Is this line the MMDF message separator (four Ctrl-A bytes)?"""
    return line.rstrip(b"\r\n") == b"\x01\x01\x01\x01"
