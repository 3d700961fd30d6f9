"""Exchange envelope journal reports: detect them and take them apart (docs/dedup.md, docs/reliability.md D13).

A journal report is a ``multipart/mixed`` mail with the header
``X-MS-Journal-Report:``. Its first ``text/plain`` part is the *envelope*
(TechNet bb738122 / [MS-XJRNL]), one field per line::

    Sender: alice@example.com
    Subject: ...
    Message-Id: <id@example.com>
    On-Behalf-Of: boss@example.com            (kept in the text, not a recipient)
    To: bob@example.com
    Cc: member@example.com, Expanded: list@example.com
    Bcc: carol@example.com, Forwarded: c.old@example.com
    Recipient: dave@example.com               (Exchange 2013+ / Exchange Online)

and its ``message/rfc822`` part is the original mail, unaltered.

Rules implemented here (checked against the reports in the shared corpus
``c-exchange-journal`` and ``sample_data/journal``):

* ``To``/``Cc``/``Recipient`` lines give recipients of kind ``envelope``,
  ``Bcc`` lines kind ``bcc``. The text after the address
  (``Expanded: x``, ``Forwarded: y``) is kept as ``annotation``. Addresses
  are lowercased; ``<...>`` around them is removed. Every line is kept, in
  order, even when an address repeats (e.g. the member of two expanded
  lists); merging is the pipeline's job.
* A line that starts with a space or tab continues the previous field
  (wrapped lines). For address fields the pieces are joined with their
  leading whitespace removed (a wrap inside an address rejoins it; a piece
  starting ``Expanded:``/``Forwarded:`` gets its ``", "`` back); for other
  fields only the line break is removed (RFC 5322 unfolding). A non-empty
  line that is not ``Name: value`` (hard-wrapped, unindented), or that is
  ``Expanded: ...``/``Forwarded: ...``, also continues the previous field;
  with no previous field it is ignored (``journal-envelope-unparsed-line``).
  Other ``Name: value`` lines start a new field; unknown names (and
  ``On-Behalf-Of``) are kept in ``envelope_text`` only.
* A ``Recipients:`` field (a non-Exchange export format seen in the corpus)
  lists one address per line or comma-separated, each optionally followed
  by a role tag ``(To)``/``(Cc)``/``(Bcc)``; ``(Bcc)`` gives kind ``bcc``.
* A recipient line whose address part is not one plain address records
  ``journal-malformed-recipient-line``; every address-like token found in
  it is still returned (Bcc is never dropped), nothing is invented.
* ``original`` is the payload of the first ``message/rfc822`` part, sliced
  out of the report's raw bytes between the part's header/body separator
  and the line break that belongs to the next boundary delimiter (RFC 2046)
  -- never re-serialised, so it appears verbatim in the report. If that part
  has a base64 or quoted-printable Content-Transfer-Encoding it is decoded
  (``journal-original-encoded``); then it is no longer a slice.
* Journal of journal: if the original is itself a journal report it is
  unwrapped ONE level: the result describes the inner report (its sender,
  subject, Message-Id, recipients, original, envelope text and defects)
  plus ``journal-of-journal``; the outer envelope text is kept in
  ``outer_envelope_text``. If the inner original is again a journal report
  it is not unwrapped further (``journal-of-journal-deep``).

Result:

* ``None`` -- a look-alike: the header is present but there is no envelope
  (no ``text/plain`` part, or the first one holds no envelope field). The
  pipeline archives such a mail as an ordinary message.
* otherwise a ``JournalReport``. ``original is None`` means the report is
  malformed (no original, truncated, undecodable, or a multipart whose
  boundary is missing or never occurs -- then the envelope is unknown too):
  the pipeline archives the report raw and flags it (D13). A report whose
  envelope has no recipient line still returns its original
  (``journal-no-recipients``).

Defect codes: ``journal-no-original``, ``journal-empty-original``,
``journal-several-originals``, ``journal-extra-parts``,
``journal-original-encoded``, ``journal-original-undecodable``,
``journal-of-journal``, ``journal-of-journal-deep``,
``journal-malformed-recipient-line``, ``journal-no-recipients``,
``journal-envelope-unparsed-line``, ``journal-envelope-encoded-unknown``,
``journal-envelope-charset-unknown``, ``journal-envelope-undecodable``,
``journal-not-multipart``, ``journal-multipart-broken``,
``journal-multipart-unterminated``, ``journal-parse-error:<Type>``
(an unexpected exception; the function still returns).

Bifurcated reports (several reports for one original, each listing other
envelope recipients) need nothing special here: each report yields its own
recipients, and the pipeline dedups the originals and merges them.
"""
from __future__ import annotations

import base64
import binascii
import quopri
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from .headers import Split, normalise_message_id, split_mail, split_message

__all__ = ["EnvelopeRecipient", "JournalReport", "is_journal_report", "parse_journal_report"]


@dataclass
class EnvelopeRecipient:
    address: str                 # lowercased addr-spec
    kind: str                    # "envelope" (To/Cc/Recipient) or "bcc"
    annotation: str | None = None  # e.g. "Expanded: list@example.com"


@dataclass
class JournalReport:
    original: bytes | None
    envelope_text: str
    sender: str | None = None
    subject: str | None = None
    message_id: str | None = None
    recipients: list[EnvelopeRecipient] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    outer_envelope_text: str | None = None  # journal-of-journal only: the outer report's envelope
    original_split: Split | None = field(default=None, repr=False, compare=False)  # split_mail(original)


_JOURNAL_HEADER = re.compile(rb"(?im)^x-ms-journal-report[ \t]*:")
_PARSER = BytesHeaderParser(policy=compat32)
_FIELD = re.compile(r"([A-Za-z][A-Za-z0-9-]*)[ \t]*:(.*)\Z", re.S)
_ADDR_FIELDS = {"to": "envelope", "cc": "envelope", "recipient": "envelope", "bcc": "bcc"}
_KNOWN = frozenset({"sender", "subject", "message-id", "on-behalf-of", "recipients", *_ADDR_FIELDS})
# starts only at the beginning of a run of address characters (the lookbehind), so a search
# over a long run without "@" reads it once, not once per starting position
_PLAIN_ADDR = re.compile(r"(?<![^\s@<>,;:()\"])[^\s@<>,;:()\"]++@[^\s@<>,;:()\"]++")
_ANNOTATION = re.compile(r",\s*([A-Za-z][A-Za-z-]*\s*:.*)\Z", re.S)
_ROLE_TAG = re.compile(r"\((to|cc|bcc|recipient)\)\s*\Z", re.I)
_REDIRECTIONS = frozenset({"expanded", "forwarded"})
_REDIRECTION_START = re.compile(r"(?i)(expanded|forwarded)\s*:")
_ANNOTATION_PARTS = re.compile(r"([A-Za-z][A-Za-z-]*)\s*:\s*(.*)\Z", re.S)


def _add(defects: list[str], code: str) -> None:
    if code not in defects:
        defects.append(code)


# ---------------------------------------------------------------- detection

def is_journal_report(raw: bytes, split: Split | None = None) -> bool:
    """True when the top-level header block has an ``X-MS-Journal-Report`` field (``split``: the
    caller's :func:`~toolkit.headers.split_mail` of ``raw``, so that it is not split again)."""
    try:
        block = (split if split is not None else split_mail(bytes(raw))).block
    except Exception:  # pragma: no cover - split_mail takes any bytes
        return False
    return bool(_JOURNAL_HEADER.search(block))


# ---------------------------------------------------------------- MIME slicing

@dataclass
class _Part:
    headers: Message
    body_start: int     # offsets into the raw bytes
    body_end: int
    ctype: str


def _header_message(block: bytes) -> Message:
    return _PARSER.parsebytes(block)


def _boundary(msg: Message) -> bytes | None:
    b = msg.get_boundary()
    if not b:
        return None
    try:
        return b.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return b.encode("utf-8", "replace")


def _split_parts(raw: bytes, start: int, boundary: bytes, default_ctype: str,
                 defects: list[str]) -> list[_Part] | None:
    """The parts of the multipart body raw[start:], or None if no delimiter is found."""
    delim = re.compile(rb"(?m)^--" + re.escape(boundary) + rb"(--)?[ \t]*\r?$")
    bounds: list[tuple[int, int, bool]] = []  # (line start, after line end, is close)
    for m in delim.finditer(raw, start):
        if m.start() < start:
            continue
        end = m.end()
        if raw[end:end + 1] == b"\n":
            end += 1
        bounds.append((m.start(), end, m.group(1) is not None))
        if m.group(1) is not None:
            break
    if not bounds:
        return None
    if not bounds[-1][2]:
        _add(defects, "journal-multipart-unterminated")
        bounds.append((len(raw), len(raw), True))
    parts = []
    for (_, p_start, close), (next_line, _, _) in zip(bounds, bounds[1:]):
        if close:
            break
        p_end = next_line
        if next_line < len(raw):  # the line break before a delimiter belongs to it (RFC 2046)
            if p_end - 2 >= p_start and raw[p_end - 2:p_end] == b"\r\n":
                p_end -= 2
            elif p_end - 1 >= p_start and raw[p_end - 1:p_end] == b"\n":
                p_end -= 1
        block, body, _ = split_message(raw[p_start:p_end])
        msg = _header_message(block) if block else Message()
        ctype = msg.get_content_type() if "content-type" in msg else default_ctype
        parts.append(_Part(msg, p_end - len(body), p_end, ctype))
    return parts


def _cte(msg: Message) -> str:
    return str(msg.get("content-transfer-encoding", "")).strip().lower()


def _decode_cte(data: bytes, cte: str) -> bytes:
    """Undo base64 / quoted-printable; raises binascii.Error on broken base64."""
    if cte == "base64":
        clean = re.sub(rb"[^A-Za-z0-9+/=]+", b"", data)
        clean = clean.rstrip(b"=")
        clean += b"=" * (-len(clean) % 4)
        return base64.b64decode(clean)
    if cte == "quoted-printable":
        return quopri.decodestring(data)
    return data


# ---------------------------------------------------------------- envelope text

def _decode_text(data: bytes, msg: Message, defects: list[str]) -> str:
    cte = _cte(msg)
    if cte in ("base64", "quoted-printable"):
        try:
            data = _decode_cte(data, cte)
        except (binascii.Error, ValueError):
            _add(defects, "journal-envelope-undecodable")
    elif cte not in ("", "7bit", "8bit", "binary"):
        _add(defects, "journal-envelope-encoded-unknown")
    charset = msg.get_content_charset("us-ascii") or "us-ascii"
    try:
        return data.decode(charset)
    except LookupError:
        _add(defects, "journal-envelope-charset-unknown")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    _add(defects, "journal-envelope-undecodable")
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _fields(text: str, defects: list[str]) -> list[tuple[str, list[str]]]:
    """Envelope text -> [(lowercased field name, [first line value, continuation lines...])]."""
    out: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line.strip():
            current = None
            continue
        m = None if line[:1] in (" ", "\t") else _FIELD.match(line)
        if m and m.group(1).lower() not in _REDIRECTIONS:
            current = [m.group(2).strip()]
            out.append((m.group(1).lower(), current))
        elif current is not None:
            current.append(line)  # an indented or hard-wrapped continuation
        else:
            _add(defects, "journal-envelope-unparsed-line")
    return out


def _join_address_lines(lines: list[str]) -> str:
    """Rejoin a wrapped address field: pieces without their leading whitespace."""
    value = lines[0]
    for piece in lines[1:]:
        piece = piece.strip()
        if _REDIRECTION_START.match(piece) and not value.rstrip().endswith(","):
            value = value.rstrip() + ", "
        value += piece
    return value


def _addresses(value: str) -> tuple[list[str], bool]:
    """(addresses, clean) for an address part; clean = exactly one plain address."""
    v = value.strip()
    if v.lower().startswith("smtp:"):
        v = v[5:].strip()
    inner = re.fullmatch(r"[^<>]*<([^<>]*)>\s*", v)
    if inner:
        v = inner.group(1).strip()
    if _PLAIN_ADDR.fullmatch(v):
        return [v.lower()], True
    return [a.lower() for a in _PLAIN_ADDR.findall(value)], False


def _recipient_line(value: str, kind: str, out: list[EnvelopeRecipient], defects: list[str]) -> None:
    annotation = None
    m = _ANNOTATION.search(value)
    if m:
        annotation = re.sub(r"\s+", " ", m.group(1)).strip()
        parts = _ANNOTATION_PARTS.match(annotation)
        if parts:
            annotation = f"{parts.group(1)}: {parts.group(2)}".rstrip()
        value = value[:m.start()]
    addrs, clean = _addresses(value)
    if not clean:
        _add(defects, "journal-malformed-recipient-line")
    for a in addrs:
        out.append(EnvelopeRecipient(a, kind, annotation))


def _recipients_block(lines: list[str], out: list[EnvelopeRecipient], defects: list[str]) -> None:
    for line in lines:
        for entry in line.split(","):
            entry = entry.strip()
            if not entry:
                continue
            kind = "envelope"
            tag = _ROLE_TAG.search(entry)
            if tag:
                kind = "bcc" if tag.group(1).lower() == "bcc" else "envelope"
                entry = entry[:tag.start()]
            addrs, clean = _addresses(entry)
            if not clean:
                _add(defects, "journal-malformed-recipient-line")
            for a in addrs:
                out.append(EnvelopeRecipient(a, kind, None))


def _decode_subject(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # any broken encoded word: keep the text as it was
        return value


def _parse_envelope(text: str, report: JournalReport) -> bool:
    """Fill report from the envelope text; False when it holds no envelope field at all."""
    defects = report.defects
    fields = _fields(text, defects)
    if not any(name in _KNOWN for name, _ in fields):
        return False
    for name, lines in fields:
        if name in _ADDR_FIELDS:
            _recipient_line(_join_address_lines(lines), _ADDR_FIELDS[name], report.recipients, defects)
        elif name == "recipients":
            _recipients_block(lines, report.recipients, defects)
        elif name == "sender" and report.sender is None:
            value = _join_address_lines(lines)
            addrs, _ = _addresses(value)
            report.sender = addrs[0] if addrs else (value.strip() or None)
        elif name == "subject" and report.subject is None:
            report.subject = _decode_subject("".join(lines).strip())
        elif name == "message-id" and report.message_id is None:
            report.message_id = normalise_message_id("".join(lines))
    if not report.recipients:
        _add(defects, "journal-no-recipients")
    return True


# ---------------------------------------------------------------- parse

def parse_journal_report(raw: bytes, split: Split | None = None) -> JournalReport | None:
    """Take a journal report apart (module docstring). Never raises. ``split``: as for
    :func:`is_journal_report`; the report's ``original_split`` is the split of its original."""
    try:
        raw = bytes(raw)
        return _parse(raw, unwrap=True, split=split)
    except Exception as exc:  # the contract: never raise; archive raw and flag
        return JournalReport(original=None, envelope_text="",
                             defects=[f"journal-parse-error:{type(exc).__name__}"])


def _parse(raw: bytes, unwrap: bool, split: Split | None = None) -> JournalReport | None:
    split = split if split is not None else split_mail(raw)
    block, body_start = split.block, split.body_start
    if not _JOURNAL_HEADER.search(block):
        return None
    top = _header_message(block)
    report = JournalReport(original=None, envelope_text="")
    defects = report.defects

    if top.get_content_maintype() != "multipart":
        # A bare envelope without attachment: a report only if it reads like one.
        if top.get_content_type() != "text/plain":
            return None
        report.envelope_text = _decode_text(raw[body_start:], top, defects)
        if not _parse_envelope(report.envelope_text, report):
            return None
        _add(defects, "journal-not-multipart")
        _add(defects, "journal-no-original")
        return report

    boundary = _boundary(top)
    parts = _split_parts(raw, body_start, boundary, "message/rfc822" if top.get_content_subtype() == "digest"
                         else "text/plain", defects) if boundary else None
    if parts is None:
        _add(defects, "journal-multipart-broken")
        _add(defects, "journal-no-original")
        return report

    envelope = next((p for p in parts if p.ctype == "text/plain"), None)
    if envelope is None:
        return None
    report.envelope_text = _decode_text(raw[envelope.body_start:envelope.body_end], envelope.headers, defects)
    if not _parse_envelope(report.envelope_text, report):
        return None

    originals = [p for p in parts if p.ctype == "message/rfc822"]
    if len(parts) > 1 + len(originals):
        _add(defects, "journal-extra-parts")
    if not originals:
        _add(defects, "journal-no-original")
        return report
    if len(originals) > 1:
        _add(defects, "journal-several-originals")
    first = originals[0]
    if "journal-multipart-unterminated" in defects and first is parts[-1]:
        return report  # possibly truncated: no original, the report is archived raw
    data = raw[first.body_start:first.body_end]
    cte = _cte(first.headers)
    if cte in ("base64", "quoted-printable"):
        _add(defects, "journal-original-encoded")
        try:
            data = _decode_cte(data, cte)
        except (binascii.Error, ValueError):
            _add(defects, "journal-original-undecodable")
            return report
    if not data.strip():
        _add(defects, "journal-empty-original")
        return report
    report.original, report.original_split = data, split_mail(data)

    if is_journal_report(data, report.original_split):
        if not unwrap:
            _add(defects, "journal-of-journal-deep")
            return report
        inner = _parse(data, unwrap=False, split=report.original_split)
        if inner is not None:
            inner.outer_envelope_text = report.envelope_text
            inner.defects[:0] = [d for d in ["journal-of-journal", *defects] if d not in inner.defects]
            return inner
    return report
