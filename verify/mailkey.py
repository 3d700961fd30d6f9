"""F04's key of a mail: the catalog's header fields re-derived from its bytes, as one string (docs/verification.md, F04).

:func:`f04_key` builds the key from the fields :func:`toolkit.headers.header_fields` gives; the catalog query
of :mod:`verify.deep` (``_F04_KEY``) builds it from a row the same way, so equal keys mean equal fields.
:func:`mail_key` is ``f04_key(header_fields(raw))`` for every input, in about a third of the time for the usual
mail. First the compiled scan of a usual header block (``toolkit._native.scan_usual``, :func:`_usual_key`): the
import's :func:`toolkit.headers.scan` takes its fields for such a block, tests/unit/test_scan_usual.py proves them
the Python scan's, and header_fields is that Python scan. A block it declines (no Message-ID, an odd date or
address, ...) takes the Python short path, :func:`_fast_key`, for a block the compiled field split reads, with a
short header block: it calls the same field readers
of :mod:`toolkit.headers` in the same order, but builds no :class:`~toolkit.headers.MailMeta`, keeps no defect
list, checks no parse deadline and no date plausibility (neither changes a field). Anything else (a BOM, no
header block, a block the compiled scan hands to the compat32 parser, more addresses than the budget, a
subject past the value cap, any exception) takes ``f04_key(header_fields(raw))`` itself. The addresses of a
From/To/Cc value are kept per process for the next mail with the same value (bounded, :data:`ADDRESS_CACHE`):
the same senders and lists recur, and reading them was a third of the key's time. A date of the usual form
("Thu, 16 May 2019 08:16:00 +0200") becomes its microseconds since 1970 by integer arithmetic, without a datetime.
tests/unit/test_mail_key.py compares the two on the test corpora and on random header blocks.

:func:`fields_of_key` reads the fields back out of a key, for naming the fields of a row that differs.
"""
from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from toolkit import headers as _h
from toolkit.headers import header_fields

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MICROSECOND = dt.timedelta(microseconds=1)
_UTC = dt.timezone.utc
#: header blocks up to this size take the fast path: parsing them never comes near header_fields' 2 s deadline
FAST_BLOCK = 64 * 1024
#: the address budget of header_fields (``max_addresses``): From, then To, then Cc take from it
_BUDGET = 10_000


def _text_key(value: str | None) -> str:
    """One field in the key: ``N`` for NULL, else ``S<UTF-8 bytes>:<value>`` (the length keeps the fields
    apart whatever they hold)."""
    if value is None:
        return "N"
    return f"S{len(value) if value.isascii() else len(value.encode('utf-8', 'surrogatepass'))}:{value}"


def _list_key(values) -> str:
    """A recipient list as a set: each distinct address ``<UTF-8 bytes>:<address>``, sorted by address."""
    return "".join(f"{len(v) if v.isascii() else len(v.encode('utf-8', 'surrogatepass'))}:{v}"
                   for v in sorted(set(values)))


#: a worker's recent address fields: the raw value -> its addresses, as :func:`_fast_key` reads them. From, To
#: and Cc repeat from mail to mail (the same people, the same lists), and a field's addresses depend on its
#: value alone; cleared when it holds this many
ADDRESS_CACHE = 4096
#: only values up to this long are kept: a mail with a huge To: list is read each time, so the cache stays
#: within ADDRESS_CACHE x this many characters (a hostile archive could otherwise fill a worker's memory)
CACHED_VALUE_MAX = 2048
_addresses_of: dict[str, tuple[str, ...]] = {}


def _addresses(value: str) -> tuple[str, ...]:
    """The addresses of a From, To or Cc value (``header_fields``' reading of it), in order, repeats kept."""
    got = _addresses_of.get(value)
    if got is None:
        got = tuple([a for _, a in _h._parse_addresses(_h._text(_h._unfold(value)), [])])
        if len(value) <= CACHED_VALUE_MAX:
            if len(_addresses_of) >= ADDRESS_CACHE:
                _addresses_of.clear()
            _addresses_of[value] = got
    return got


_list_of: dict[str, tuple[int, str]] = {}


def _one_list(value: str) -> tuple[int, str]:
    """A recipient field that is the only one of its kind: (its distinct addresses, :func:`_list_key` of them)."""
    got = _list_of.get(value)
    if got is None:
        unique = set(_addresses(value))
        got = (len(unique), _list_key(unique))
        if len(value) <= CACHED_VALUE_MAX:
            if len(_list_of) >= ADDRESS_CACHE:
                _list_of.clear()
            _list_of[value] = got
    return got


#: a worker's recent days of the usual date form: (day, month, year) as written -> days since 1970; only valid
#: days are kept, cleared when it holds this many (mails of one pack come from a few months)
DAYS_CACHE = 4096
_days_of: dict[tuple[str, str, str], int] = {}


def _usual_date_key(value: str) -> str | None:
    """The date's part of the key, ``T<microseconds since 1970>``, for a date in the usual form that
    :func:`toolkit.headers._date_value` reads on its short path (to a valid time, in years 2–9998, where moving it to
    UTC cannot overflow), by integer arithmetic; None for any other date (the caller reads it as header_fields does).
    The day's number is kept per worker for the next mail of that day (:data:`DAYS_CACHE`)."""
    m = _h._USUAL_DATE.fullmatch(value)
    if m is None:
        return None
    day, month, year, hour, minute, second, sign, zh, zm = m.groups()
    if sign == "-" and zh == "00" and zm == "00":   # "-0000": a naive time there
        return None
    hour, minute, second = int(hour), int(minute), int(second)
    offset = int(zh) * 3600 + int(zm) * 60
    if not (hour < 24 and minute < 60 and second < 60 and offset < 86400):
        return None
    dmy = (day, month, year)
    days = _days_of.get(dmy)
    if days is None:
        y = int(year)
        if not 1 < y < 9999:
            return None
        try:
            days = dt.date(y, _h._MONTHS[month], int(day)).toordinal() - _EPOCH_DAY
        except ValueError:
            return None
        if len(_days_of) >= DAYS_CACHE:
            _days_of.clear()
        _days_of[dmy] = days
    offset = -offset if sign == "-" else offset
    return f"T{(days * 86400 + hour * 3600 + minute * 60 + second - offset) * 1_000_000}"


_EPOCH_DAY = dt.date(1970, 1, 1).toordinal()


def _when_key(when: dt.datetime | None) -> str:
    return "N" if when is None else f"T{(when - _EPOCH) // _MICROSECOND}"


def f04_key(meta) -> str:
    """The compared header fields of a mail (:func:`toolkit.headers.header_fields`) as one string, built as
    ``verify.deep._F04_KEY`` builds it from a catalog row: equal keys, equal fields (docs/verification.md, F04)."""
    return (_text_key(meta.message_id) + _text_key(meta.from_addr) + _text_key(meta.subject)
            + _when_key(meta.sent_date) + "|" + _list_key(meta.to) + "|" + _list_key(meta.cc))


def mail_key(raw: bytes) -> str:
    """``f04_key(header_fields(raw))`` (see the module docstring)."""
    try:
        key = _usual_key(raw)
        if key is None:
            key = _fast_key(raw)
    except Exception:  # the reference path decides what an exception leaves of the fields
        key = None
    return key if key is not None else f04_key(header_fields(raw))


_scan_usual = _h._scan_usual
#: scan_usual and the key of its fields in one compiled call: the key, or scan_usual's tuple when the subject is
#: still to be decoded (here), or None (None also where the compiled module is older than this function)
_native_key = getattr(_h._native, "f04_usual_key", None) if _scan_usual is not None else None
_split_mail = _h.split_mail


def _sorted_key(unique: list[str]) -> str:
    """:func:`_list_key` of a list without repeats (the compiled scan's To and Cc)."""
    unique.sort()
    return "".join([f"{len(v) if v.isascii() else len(v.encode('utf-8', 'surrogatepass'))}:{v}" for v in unique])


def _usual_key(raw: bytes) -> str | None:
    """The key from the compiled scan of a usual header block (``toolkit._native.scan_usual``, which
    :func:`toolkit.headers.scan` takes for such a block: the same fields as the Python scan, which
    tests/unit/test_scan_usual.py proves, and :func:`~toolkit.headers.header_fields` reads them by that Python
    scan); None without the compiled module, for a BOM, a block longer than :data:`FAST_BLOCK` or one the
    compiled scan declines. Its defects, Bcc, From name and flags are left unread, the date's plausibility
    (``latest``) only adds a defect. The compiled ``f04_usual_key`` builds the key from the fields as
    :func:`f04_key` does; a subject with encoded words or controls is decoded here, and the key built here too."""
    if _scan_usual is None or type(raw) is not bytes:
        return None
    skip, _end, _body, _defect, block = _split_mail(raw)
    if skip or not 0 < len(block) <= FAST_BLOCK:
        return None
    if _native_key is not None:  # the key built in the same call (toolkit/_native.c f04_usual_key)
        got = _native_key(block, _BUDGET)
        if got is None or type(got) is str:
            return got
    else:
        got = _scan_usual(block, _BUDGET, 0.0)
        if got is None:
            return None
    subject, sent, todo = got[1], got[7], got[12]
    if todo & 1:  # encoded words or controls: decoded as headers._scan does it (its defects go unread)
        subject = _h._escape_controls(_h._decode_words(subject, []))[:_h.MAX_SUBJECT_CHARS]
    return (_text_key(got[0]) + _text_key(got[2]) + _text_key(subject)
            + ("N" if sent is None else f"T{(sent - _EPOCH) // _MICROSECOND}")
            + "|" + _sorted_key(got[4]) + "|" + _sorted_key(got[5]))


def _fast_key(raw: bytes) -> str | None:
    """The key by :func:`toolkit.headers.header_fields`' own readers, or None where this path does not apply."""
    if type(raw) is not bytes or raw[:3] == b"\xef\xbb\xbf":
        return None
    header_end, _body, _defect = _h.split_offsets(raw)
    if not 0 < header_end <= FAST_BLOCK:
        return None
    fields = _h._wanted_fields(raw[:header_end])
    if fields is None:
        return None
    first: dict[str, str] = {}
    to: list[str] = []
    cc: list[str] = []
    for name, value in fields:
        if name == "to":
            to.append(value)
        elif name == "cc":
            cc.append(value)
        elif name not in first:
            first[name] = value
    unfold, text = _h._unfold, _h._text

    value = first.get("message-id")
    mid_key = "N"
    if value is not None:
        mid = _message_id(unfold(value))
        if mid:
            mid_key = _text_key(text(mid))

    value = first.get("subject")
    subject = None
    if value is not None:
        subj = unfold(value).strip()
        if len(subj) > _h.MAX_VALUE_CHARS:
            return None
        subj = text(subj)
        if "=?" in subj:   # encoded words (_decode_words returns any other text as it is); the defects go unread
            subj = _h._decode_words(subj, [])
        subject = _h._escape_controls(subj)[:_h.MAX_SUBJECT_CHARS]

    value = first.get("date")
    when = "N"
    if value is not None:
        value = unfold(value).strip()
        if value and (when := _usual_date_key(value)) is None:
            when = "N"
            try:
                sent = _h._date_value(value)
                sent = (sent if sent.tzinfo is not None else sent.replace(tzinfo=_UTC)).astimezone(_UTC)
            except Exception:  # as _parse_date: no date
                pass
            else:
                when = f"T{(sent - _EPOCH) // _MICROSECOND}"

    budget = _BUDGET
    value = first.get("from")
    from_addr = None
    if value is not None:
        addrs = _addresses(value)
        if addrs:
            from_addr = addrs[0]
            budget -= 1

    lists = []
    for values in (to, cc):
        if len(values) == 1:
            count, key = _one_list(values[0])
        else:
            unique: set[str] = set()
            for value in values:
                unique.update(_addresses(value))
            count, key = len(unique), _list_key(unique)
        if count > budget:
            return None
        budget -= count
        lists.append(key)

    return mid_key + _text_key(from_addr) + _text_key(subject) + when + "|" + lists[0] + "|" + lists[1]


def _message_id(value: str) -> str | None:
    """:func:`toolkit.headers.normalise_message_id` of an unfolded value; a value without blanks (the usual one)
    skips its whitespace pass, which would remove nothing."""
    if " " in value or "\t" in value or "\r" in value or "\n" in value:
        return _h.normalise_message_id(value)
    lt = value.find("<")
    gt = value.find(">", lt + 1) if lt >= 0 else -1
    v = value[lt + 1:gt] if lt >= 0 and gt > lt else value.strip("<>")
    return v or None


class MailFields(NamedTuple):
    """The header fields a key holds (:func:`fields_of_key`)."""

    message_id: str | None
    from_addr: str | None
    subject: str | None
    sent_date: dt.datetime | None
    to: list[str]
    cc: list[str]


def fields_of_key(key: str) -> MailFields:
    """The header fields a mail's :func:`f04_key` was built from (the recipient lists sorted, without repeats)."""
    raw = key.encode("utf-8", "surrogatepass")
    pos = 0

    def text() -> str | None:
        nonlocal pos
        if raw[pos:pos + 1] == b"N":
            pos += 1
            return None
        colon = raw.index(b":", pos)
        end = colon + 1 + int(raw[pos + 1:colon])
        pos = end
        return raw[colon + 1:end].decode("utf-8", "surrogatepass")

    def addresses() -> list[str]:
        nonlocal pos
        out = []
        while pos < len(raw) and raw[pos:pos + 1] != b"|":
            colon = raw.index(b":", pos)
            end = colon + 1 + int(raw[pos:colon])
            out.append(raw[colon + 1:end].decode("utf-8", "surrogatepass"))
            pos = end
        return out

    message_id, from_addr, subject = text(), text(), text()
    bar = raw.index(b"|", pos)
    when = raw[pos:bar]
    pos = bar + 1
    sent_date = None if when == b"N" else _EPOCH + int(when[1:]) * _MICROSECOND
    to = addresses()
    pos += 1
    cc = addresses()
    return MailFields(message_id, from_addr, subject, sent_date, to, cc)
