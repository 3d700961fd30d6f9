"""One MAPI → RFC 5322 builder for Outlook sources (PST/OST, MSG, TNEF).

Every Outlook source is a MAPI property bag per message: properties (tag id → value), a recipient
table and an attachment table. The importers read those with their own library and hand a
:class:`MapiMessage` to :func:`build`, which writes the message as RFC 5322 bytes:

* **Headers.** When the message has transport headers (PR_TRANSPORT_MESSAGE_HEADERS, 0x007D) they
  are kept in their order, without their ``Content-*`` and ``MIME-Version`` fields (the MIME tree is
  rebuilt). Without them, From/Sender/To/Cc/Subject/Date/Message-ID/In-Reply-To/References are
  made from the properties. Bcc comes from the recipient table (type 3), because transport headers
  never carry it. A missing Message-ID (0x1035) or Date (0x0039, else 0x0E06) is filled in. An
  X.500 address (Exchange DN) becomes the SMTP address the store shows for it elsewhere
  (``learn_addresses``: recipient tables, sender SMTP properties, transport From); one found
  nowhere becomes ``unresolved@invalid`` with the display name kept.
* **Bodies.** Plain text (0x1000), HTML (0x1013) and compressed RTF (0x1009, decompressed with
  ``compressed_rtf``). RTF that wraps HTML or text (``\\fromhtml1``/``\\fromtext``) is turned back
  into it when the message has no such body of its own (RTFDE; a body seen lately is not parsed
  again, its result is reused); native RTF is kept as a
  ``body.rtf`` part. Bodies keep their bytes: the charset parameter names the code page they are in
  (0x3FDE internet code page, else 0x3FFD message code page).
* **Attachments.** By value (0x3701) with name (0x3707, 0x3704, 0x3001), type (0x370E, else from the
  name) and Content-ID (0x3712); parts with a Content-ID go with the HTML body into
  ``multipart/related``. An embedded message (method 5) becomes a ``message/rfc822`` part built by
  the same rules. An attachment that could not be read becomes a ``text/plain`` note part naming
  it, and a problem of the result.
* **S/MIME.** ``IPM.Note.SMIME.MultipartSigned``: the ``multipart/signed`` entity in the
  attachment is the message body as it was signed; ``IPM.Note.SMIME``: the PKCS #7 blob becomes an
  ``application/pkcs7-mime`` body.
* **Determinism.** No current time, no random: a multipart boundary is derived from the SHA-256 of
  its serialised children, so the same item always gives the same bytes (``CONVERTER`` names this
  converter and its version; it is recorded with every converted mail). Lines end in CRLF.

Folder, message class, flags and MAPI dates never go into made-up headers: :func:`mail_flags` and
:func:`internal_date` give what the catalog records with each sighting.
"""
from __future__ import annotations

import base64
import contextvars
import datetime as dt
import hashlib
import mimetypes
import quopri
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from email.header import Header
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import encode_rfc2231, format_datetime, formataddr, parseaddr
from typing import Any

#: Name and version of this converter: part of every converted mail's record in the catalog. A
#: change to the bytes it writes for the same item must change the version.
CONVERTER = "mapi2mime/1"
CONVERT_LIMIT = 60.0  # seconds one item's conversion may take (build_guarded) before its fallback
#: False while a conversion runs without RTF de-encapsulation (build_guarded's fallback)
_DEENCAPSULATE: contextvars.ContextVar[bool] = contextvars.ContextVar("deencapsulate", default=True)

PR_MESSAGE_CLASS = 0x001A
PR_IMPORTANCE = 0x0017
PR_SUBJECT = 0x0037
PR_CLIENT_SUBMIT_TIME = 0x0039
PR_SENT_REPRESENTING_NAME = 0x0042
PR_SENT_REPRESENTING_EMAIL = 0x0065
PR_SENT_REPRESENTING_ADDRTYPE = 0x0064
PR_TRANSPORT_MESSAGE_HEADERS = 0x007D
PR_SENDER_NAME = 0x0C1A
PR_SENDER_ADDRTYPE = 0x0C1E
PR_SENDER_EMAIL = 0x0C1F
PR_DELIVERY_TIME = 0x0E06
PR_MESSAGE_FLAGS = 0x0E07
PR_BODY = 0x1000
PR_RTF_COMPRESSED = 0x1009
PR_HTML = 0x1013
PR_INTERNET_MESSAGE_ID = 0x1035
PR_INTERNET_REFERENCES = 0x1039
PR_IN_REPLY_TO = 0x1042
PR_LAST_VERB = 0x1081
PR_FLAG_STATUS = 0x1090
PR_CREATION_TIME = 0x3007
PR_INTERNET_CPID = 0x3FDE
PR_MESSAGE_CODEPAGE = 0x3FFD
PR_SENDER_SMTP = 0x5D01
PR_SENT_REPRESENTING_SMTP = 0x5D02

ATTACH_BY_VALUE, ATTACH_EMBEDDED, ATTACH_OLE = 1, 5, 6


@dataclass
class MapiRecipient:
    kind: int                     # 1 To, 2 Cc, 3 Bcc
    name: str | None = None
    addrtype: str | None = None
    address: str | None = None
    smtp: str | None = None       # PR_SMTP_ADDRESS (0x39FE) when the reader has it


@dataclass
class MapiAttachment:
    name: str | None = None
    mime_type: str | None = None
    content_id: str | None = None
    data: bytes | None = None
    method: int = ATTACH_BY_VALUE
    embedded: "MapiMessage | None" = None
    hidden: bool = False
    #: why the reader could not give the content (``data`` and ``embedded`` are None then)
    missing: str | None = None


@dataclass
class MapiMessage:
    """A message's properties (16-bit property id → str, bytes, int, bool or aware datetime)."""

    props: dict[int, Any]
    recipients: list[MapiRecipient] = field(default_factory=list)
    attachments: list[MapiAttachment] = field(default_factory=list)
    #: code page of 8-bit strings the reader could not decode itself (ANSI stores)
    codepage: int | None = None
    #: the RTF body already decompressed, for a reader that gives no PR_RTF_COMPRESSED (TNEF)
    rtf: bytes | None = None
    #: X.500 DN (lower case) → SMTP address, learnt from the whole store (see ``learn_addresses``)
    directory: dict[str, str] | None = None

    def text(self, pid: int) -> str | None:
        v = self.props.get(pid)
        if isinstance(v, bytes):
            v = decode_ansi(v, self.codepage)
        return v.rstrip("\x00") if isinstance(v, str) and v.strip("\x00") else None

    @property
    def message_class(self) -> str:
        return self.text(PR_MESSAGE_CLASS) or "IPM.Note"


@dataclass
class Built:
    raw: bytes
    problems: list[str]


# -- code pages -------------------------------------------------------------------------------------

_CODEPAGES = {65001: "utf-8", 20127: "us-ascii", 28591: "iso-8859-1", 1200: "utf-16-le", 50220: "iso-2022-jp",
              51932: "euc-jp", 932: "shift_jis", 936: "gbk", 949: "euc-kr", 950: "big5", 54936: "gb18030",
              20866: "koi8-r", 21866: "koi8-u"}


def codec_of(codepage: int | None) -> str | None:
    """The Python codec of a Windows code page number, or None when unknown."""
    if not codepage:
        return None
    name = _CODEPAGES.get(codepage)
    if name is None and 28591 <= codepage <= 28606:
        name = f"iso-8859-{codepage - 28590}"
    if name is None:
        name = f"cp{codepage}"
    try:
        "".encode(name)
    except LookupError:
        return None
    return name


def decode_ansi(data: bytes, codepage: int | None) -> str:
    return data.decode(codec_of(codepage) or "cp1252", "replace")


# -- MIME entities ----------------------------------------------------------------------------------

CRLF = b"\r\n"


@dataclass
class _Part:
    headers: list[tuple[str, str]]
    body: bytes = b""
    children: list["_Part"] | None = None     # a multipart
    subtype: str = "mixed"
    params: str = ""                          # extra Content-Type parameters of a multipart

    def serialize(self) -> bytes:
        if self.children is None:
            return _header_block(self.headers) + CRLF + self.body
        inner = [c.serialize() for c in self.children]
        boundary = _boundary(inner)
        head = self.headers + [("Content-Type", f'multipart/{self.subtype}; boundary="{boundary}"{self.params}')]
        out = [_header_block(head), CRLF]
        for c in inner:
            out += [b"--", boundary.encode(), CRLF, c, CRLF]
        out += [b"--", boundary.encode(), b"--", CRLF]
        return b"".join(out)


def _boundary(children: list[bytes]) -> str:
    h = hashlib.sha256()
    for c in children:
        h.update(len(c).to_bytes(8, "big"))
        h.update(c)
    salt = 0
    while True:
        b = "=_mapi_" + hashlib.sha256(h.digest() + bytes([salt])).hexdigest()[:32]
        if not any(b.encode() in c for c in children):
            return b
        salt += 1


def _header_block(headers: list[tuple[str, str]]) -> bytes:
    out = []
    for name, value in headers:
        text = f"{name}: {value}".replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
        out.append(text.encode("utf-8", "surrogateescape") + CRLF)
    return b"".join(out)


def _wrap76(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", CRLF)


def _leaf(ctype: str, data: bytes, *, disposition: str | None = None, cid: str | None = None,
          force_base64: bool = False) -> _Part:
    headers = [("Content-Type", ctype)]
    if force_base64:
        cte, body = "base64", _wrap76(data)
    elif data.isascii() and all(len(line) <= 998 for line in data.split(b"\n")) and b"\r" not in data.replace(b"\r\n", b""):
        cte, body = "7bit", data.replace(b"\r\n", b"\n").replace(b"\n", CRLF)
    else:
        cte, body = "quoted-printable", quopri.encodestring(data.replace(b"\r\n", b"\n")).replace(b"\n", CRLF)
    headers.append(("Content-Transfer-Encoding", cte))
    if disposition:
        headers.append(("Content-Disposition", disposition))
    if cid:
        headers.append(("Content-ID", f"<{cid.strip('<>')}>"))
    if body and not body.endswith(CRLF):
        body += CRLF
    return _Part(headers, body)


def _param(name: str, value: str) -> str:
    value = value.replace("\r", " ").replace("\n", " ")
    if value.isascii():
        return f'; {name}="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"; {name}*={encode_rfc2231(value, 'utf-8')}"


# -- bodies -----------------------------------------------------------------------------------------

def _charset(msg: MapiMessage) -> str:
    for pid in (PR_INTERNET_CPID, PR_MESSAGE_CODEPAGE):
        v = msg.props.get(pid)
        if isinstance(v, int) and codec_of(v):
            return codec_of(v)
    return "utf-8"


def _html_bytes(msg: MapiMessage) -> tuple[bytes, str] | None:
    v = msg.props.get(PR_HTML)
    if isinstance(v, str):
        v = v.encode("utf-8")
        charset = "utf-8"
    elif isinstance(v, bytes):
        charset = _charset(msg)
    else:
        return None
    v = v.rstrip(b"\x00")
    return (v, charset) if v.strip() else None


def _rtf(msg: MapiMessage, problems: list[str]) -> bytes | None:
    raw = msg.props.get(PR_RTF_COMPRESSED)
    if not isinstance(raw, bytes) or len(raw) < 16:
        return msg.rtf.rstrip(b"\x00") if msg.rtf and msg.rtf.strip(b"\x00") else None
    import compressed_rtf

    try:
        return compressed_rtf.decompress(raw).rstrip(b"\x00")
    except Exception as exc:  # noqa: BLE001 — a damaged RTF body must not lose the mail
        problems.append(f"compressed RTF body not readable: {exc}")
        return None


_RTFDE: list = []


def _deencapsulator():
    """RTFDE's DeEncapsulator with its lark parser built once per process (RTFDE builds it again for
    every message, which costs far more than the parse itself)."""
    if not _RTFDE:
        from lark import Lark
        from RTFDE.deencapsulate import DeEncapsulator
        from RTFDE.grammar import make_concise_grammar

        parser = Lark(make_concise_grammar(), parser="lalr", keep_all_tokens=True, use_bytes=True,
                      propagate_positions=True)

        class Cached(DeEncapsulator):
            def parse_rtf(self, rtf):
                self.parser = parser
                self.full_tree = parser.parse(rtf)

        _RTFDE.append(Cached)
    return _RTFDE[0]


#: RTF bodies de-encapsulated lately (SHA-256 of the RTF → result and problem): RTFDE costs tens of
#: milliseconds per body, and a store often holds the same RTF body many times (Exchange writes one
#: fixed RTF for every item whose text body is empty). Small bodies only, a few dozen of them.
_RTF_MEMO: "OrderedDict[bytes, tuple[tuple[str, str] | None, str | None]]" = OrderedDict()
_RTF_MEMO_ITEMS, _RTF_MEMO_MAX_BYTES = 64, 64 * 1024


def _deencapsulate(rtf: bytes, problems: list[str]) -> tuple[str, str] | None:
    """("html"|"text", content) for RTF that wraps HTML or text, else None (native RTF)."""
    if b"\\fromhtml" not in rtf[:2048] and b"\\fromtext" not in rtf[:2048]:
        return None
    key = hashlib.sha256(rtf).digest() if len(rtf) <= _RTF_MEMO_MAX_BYTES else None
    if key is not None and key in _RTF_MEMO:
        _RTF_MEMO.move_to_end(key)
        got, problem = _RTF_MEMO[key]
    else:
        mark = len(problems)
        got = _deencapsulate_once(rtf, problems)
        problem = problems[mark] if len(problems) > mark else None
        if key is not None:
            _RTF_MEMO[key] = (got, problem)
            if len(_RTF_MEMO) > _RTF_MEMO_ITEMS:
                _RTF_MEMO.popitem(last=False)
        return got
    if problem is not None:
        problems.append(problem)
    return got


def _deencapsulate_once(rtf: bytes, problems: list[str]) -> tuple[str, str] | None:
    try:
        d = _deencapsulator()(rtf)
        d.deencapsulate()
    except Exception as exc:  # noqa: BLE001 — kept as body.rtf then
        problems.append(f"RTF body could not be de-encapsulated ({type(exc).__name__}); kept as body.rtf")
        return None
    if d.content_type == "html":
        content = d.html
    else:
        content = d.text
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    return d.content_type, content


def _body_parts(msg: MapiMessage, problems: list[str]) -> tuple[_Part | None, _Part | None, _Part | None]:
    """(text part, html part, body.rtf part) — each may be None."""
    text = msg.text(PR_BODY)
    html = _html_bytes(msg)
    rtf = _rtf(msg, problems) if html is None or text is None else None  # unused when both bodies exist
    rtf_part = None
    if rtf is not None and (html is None or text is None):
        got = _deencapsulate(rtf, problems) if (html is None or text is None) and _DEENCAPSULATE.get() else None
        if got is not None and got[0] == "html" and html is None:
            html = (got[1].encode("utf-8"), "utf-8")
        elif got is not None and got[0] == "text" and text is None:
            text = got[1]
        elif got is None and (b"\\fromhtml" in rtf[:2048] or b"\\fromtext" in rtf[:2048] or html is None):
            rtf_part = _leaf('application/rtf; name="body.rtf"', rtf, disposition='attachment; filename="body.rtf"',
                             force_base64=True)
    text_part = None
    if text is not None:
        text_part = _leaf("text/plain; charset=utf-8", text.encode("utf-8"))
    html_part = _leaf(f"text/html; charset={html[1]}", html[0]) if html is not None else None
    return text_part, html_part, rtf_part


# -- attachments ------------------------------------------------------------------------------------

def _attachment_part(att: MapiAttachment, problems: list[str], depth: int) -> _Part:
    name = att.name or ("message.eml" if att.embedded is not None else "attachment.bin")
    if att.embedded is not None:
        inner = build(att.embedded, _depth=depth + 1)
        problems.extend(f"embedded message {name!r}: {p}" for p in inner.problems)
        cte = "7bit" if inner.raw.isascii() else "8bit"
        return _Part([("Content-Type", "message/rfc822"), ("Content-Transfer-Encoding", cte),
                      ("Content-Disposition", "attachment" + _param("filename", name))], inner.raw)
    if att.data is None:
        why = att.missing or "no content"
        problems.append(f"attachment {name!r} not converted: {why}")
        note = f"This attachment could not be converted from the Outlook source: {name} ({why}).\n"
        return _leaf("text/plain; charset=utf-8", note.encode("utf-8"),
                     disposition="attachment" + _param("filename", name + ".not-converted.txt"))
    mime = (att.mime_type or "").strip().lower()
    if not re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", mime):
        mime = mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
    if mime.startswith("message/") or mime == "text/rfc822-headers":
        # a message (or report) part is itself MIME: kept as it is, never base64-wrapped
        data = att.data.replace(b"\r\n", b"\n").replace(b"\n", CRLF)
        cte = "7bit" if data.isascii() else "8bit"
        return _Part([("Content-Type", mime), ("Content-Transfer-Encoding", cte),
                      ("Content-Disposition", "attachment" + _param("filename", name))], data)
    inline = bool(att.content_id)
    disp = ("inline" if inline else "attachment") + _param("filename", name)
    return _leaf(mime + _param("name", name), att.data, disposition=disp, cid=att.content_id,
                 force_base64=True)


# -- headers ----------------------------------------------------------------------------------------

_DROP = re.compile(r"(content-[a-z0-9-]+|mime-version)$", re.I)


def _transport_headers(text: str) -> list[tuple[str, str]]:
    text = text.rstrip("\x00")
    head = re.split(r"\r?\n\r?\n", text, maxsplit=1)[0]
    msg = HeaderParser(policy=compat32).parsestr(head + "\n\n", headersonly=True)
    return [(k, v) for k, v in msg.raw_items() if not _DROP.match(k)]


def _encode_text(value: str) -> str:
    value = value.replace("\r", " ").replace("\n", " ")
    if value.isascii():
        return value
    return Header(value, "utf-8").encode()


def learn_addresses(msg: MapiMessage, directory: dict[str, str]) -> None:
    """Add to ``directory`` the X.500 DN → SMTP pairs ``msg`` shows: recipients with both, a sender
    or sent-representing DN with its SMTP property, a sender DN with the From of the transport headers."""
    def pair(dn, smtp):
        if dn and smtp and "@" in smtp and "@" not in dn and dn.startswith("/"):
            directory.setdefault(dn.lower(), smtp.strip())

    for r in msg.recipients:
        pair(r.address, r.smtp)
    pair(msg.text(PR_SENDER_EMAIL), msg.text(PR_SENDER_SMTP))
    pair(msg.text(PR_SENT_REPRESENTING_EMAIL), msg.text(PR_SENT_REPRESENTING_SMTP))
    transport = msg.text(PR_TRANSPORT_MESSAGE_HEADERS)
    if transport and msg.text(PR_SENDER_EMAIL) and "@" not in msg.text(PR_SENDER_EMAIL):
        frm = dict((k.lower(), v) for k, v in _transport_headers(transport)).get("from")
        if frm:
            pair(msg.text(PR_SENDER_EMAIL), parseaddr(frm)[1])


def has_x500_address(msg: MapiMessage) -> bool:
    """Whether a sender or recipient address of ``msg`` is an X.500 DN: only then can the store's
    ``directory`` change the bytes :func:`build` writes (a reader may skip making it otherwise)."""
    values = [msg.text(pid) for pid in (PR_SENDER_EMAIL, PR_SENDER_SMTP, PR_SENT_REPRESENTING_EMAIL,
                                        PR_SENT_REPRESENTING_SMTP)]
    values += [v for r in msg.recipients for v in (r.address, r.smtp)]
    return any(isinstance(v, str) and v.strip().startswith("/") for v in values)


def _address(name: str | None, addr: str | None, directory: dict[str, str] | None = None) -> str:
    name = (name or "").replace("\r", " ").replace("\n", " ")
    addr = (addr or "").strip()
    if directory and addr.lower() in directory:
        addr = directory[addr.lower()]
    if "<" in addr:  # an address property holding "name <addr>": keep the address
        addr = parseaddr(addr)[1] or addr
    if not addr or "@" not in addr:
        # an X.500 DN or no address at all: keep the name, mark the address as not resolvable
        addr = "unresolved@invalid"
    return formataddr((name, addr), charset="utf-8") if name else addr


def _recipient_addr(r: MapiRecipient, directory: dict[str, str] | None = None) -> str:
    addr = r.smtp or (r.address if (r.addrtype or "SMTP").upper() == "SMTP" else None) or r.address
    return _address(r.name, addr, directory)


def _date(v: Any) -> str | None:
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.timezone.utc)
        return format_datetime(v.astimezone(dt.timezone.utc))
    return None


def _made_headers(msg: MapiMessage) -> list[tuple[str, str]]:
    h: list[tuple[str, str]] = []
    date = _date(msg.props.get(PR_CLIENT_SUBMIT_TIME)) or _date(msg.props.get(PR_DELIVERY_TIME))
    if date:
        h.append(("Date", date))
    from_name = msg.text(PR_SENT_REPRESENTING_NAME) or msg.text(PR_SENDER_NAME)
    from_addr = msg.text(PR_SENT_REPRESENTING_SMTP) or msg.text(PR_SENT_REPRESENTING_EMAIL) \
        or msg.text(PR_SENDER_SMTP) or msg.text(PR_SENDER_EMAIL)
    d = msg.directory
    if from_name or from_addr:
        h.append(("From", _address(from_name, from_addr, d)))
    sender_addr = msg.text(PR_SENDER_SMTP) or msg.text(PR_SENDER_EMAIL)
    if sender_addr and from_addr and sender_addr.lower() != from_addr.lower() and "@" in sender_addr:
        h.append(("Sender", _address(msg.text(PR_SENDER_NAME), sender_addr, d)))
    for kind, label in ((1, "To"), (2, "Cc")):
        rs = [_recipient_addr(r, d) for r in msg.recipients if r.kind == kind]
        if rs:
            h.append((label, ",\r\n ".join(rs)))
    subject = msg.text(PR_SUBJECT)
    if subject is not None:
        h.append(("Subject", _encode_text(subject)))
    for pid, label in ((PR_INTERNET_MESSAGE_ID, "Message-ID"), (PR_IN_REPLY_TO, "In-Reply-To"),
                       (PR_INTERNET_REFERENCES, "References")):
        v = msg.text(pid)
        if v:
            h.append((label, _encode_text(v.strip())))
    imp = msg.props.get(PR_IMPORTANCE)
    if imp in (0, 2):
        h.append(("Importance", "low" if imp == 0 else "high"))
    return h


def _headers(msg: MapiMessage) -> list[tuple[str, str]]:
    transport = msg.text(PR_TRANSPORT_MESSAGE_HEADERS)
    headers = _transport_headers(transport) if transport and ":" in transport else []
    if not any(k.lower() in ("from", "date", "subject", "message-id", "to") for k, _ in headers):
        headers = _made_headers(msg)
    names = {k.lower() for k, _ in headers}
    bcc = [_recipient_addr(r, msg.directory) for r in msg.recipients if r.kind == 3]
    if bcc and "bcc" not in names:
        headers.append(("Bcc", ",\r\n ".join(bcc)))
    if "message-id" not in names and msg.text(PR_INTERNET_MESSAGE_ID):
        headers.append(("Message-ID", _encode_text(msg.text(PR_INTERNET_MESSAGE_ID).strip())))
    if "date" not in names:
        date = _date(msg.props.get(PR_CLIENT_SUBMIT_TIME)) or _date(msg.props.get(PR_DELIVERY_TIME))
        if date:
            headers.append(("Date", date))
    return headers


# -- the builder ------------------------------------------------------------------------------------

MAX_DEPTH = 16


def _smime(msg: MapiMessage) -> _Part | None:
    cls = msg.message_class.lower()
    if not cls.startswith("ipm.note.smime") or len(msg.attachments) != 1 or msg.attachments[0].data is None:
        return None
    data = msg.attachments[0].data
    if cls.startswith("ipm.note.smime.multipartsigned"):
        # the attachment is the signed entity itself: its own MIME headers, then its body
        return _Part([], data) if b"\n" in data[:4096] and b":" in data[:200] else None
    return _Part([("Content-Type", 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"'),
                  ("Content-Transfer-Encoding", "base64"),
                  ("Content-Disposition", 'attachment; filename="smime.p7m"')], _wrap76(data))


def build(msg: MapiMessage, _depth: int = 0) -> Built:
    """The RFC 5322 bytes of ``msg`` (deterministic; see the module docstring) and what was lost."""
    problems: list[str] = []
    headers = _headers(msg) + [("MIME-Version", "1.0")]
    root = _smime(msg)
    if root is None:
        root = _tree(msg, problems, _depth)
    if root.children is None and not root.headers:
        raw = _header_block(headers) + root.body  # the signed entity brings its own header lines
    else:
        root.headers = headers + root.headers
        raw = root.serialize()
    return Built(raw, problems)


class ConversionTimeout(Exception):
    """An item's conversion ran past its limit, also without RTF de-encapsulation."""


def build_guarded(msg: MapiMessage, limit: float | None = CONVERT_LIMIT, fallback_limit: float | None = None) -> Built:
    """:func:`build` under a watchdog (``toolkit.prepare``'s SIGALRM timer, in the main thread): a
    conversion that runs past ``limit`` seconds (RTF de-encapsulation of a huge or hostile body) is
    done again without de-encapsulating RTF (the RTF is kept as ``body.rtf`` and the mail says so in
    its problems); when that too runs past ``fallback_limit`` (default ``limit``), ConversionTimeout."""
    from .prepare import ParseTimeout, watchdog

    try:
        with watchdog(limit):
            return build(msg)
    except ParseTimeout:
        pass
    token = _DEENCAPSULATE.set(False)
    try:
        with watchdog(fallback_limit or limit):
            built = build(msg)
    except ParseTimeout:
        raise ConversionTimeout(f"conversion did not finish within {fallback_limit or limit:g} s") from None
    finally:
        _DEENCAPSULATE.reset(token)
    built.problems.append(f"conversion ran past {limit:g} s: the RTF body was not de-encapsulated (kept as body.rtf)")
    return built


def _tree(msg: MapiMessage, problems: list[str], depth: int) -> _Part:
    text_part, html_part, rtf_part = _body_parts(msg, problems)
    related, mixed = [], []
    for att in msg.attachments:
        if depth >= MAX_DEPTH and att.embedded is not None:
            att = MapiAttachment(name=att.name, missing="embedded messages nested too deeply")
        part = _attachment_part(att, problems, depth)
        (related if att.content_id and html_part is not None and att.data is not None else mixed).append(part)
    if text_part is None and html_part is None:
        text_part = _leaf("text/plain; charset=utf-8", b"")
    if html_part is not None and related:
        html_part = _Part([], children=[html_part] + related, subtype="related", params='; type="text/html"')
    if text_part is not None and html_part is not None:
        body = _Part([], children=[text_part, html_part], subtype="alternative")
    else:
        body = text_part or html_part
    if rtf_part is not None:
        mixed.insert(0, rtf_part)
    if mixed:
        return _Part([], children=[body] + mixed, subtype="mixed")
    return body


# -- what goes to the catalog -----------------------------------------------------------------------

def mail_flags(msg: MapiMessage) -> tuple[str, ...]:
    """IMAP-style flags from PR_MESSAGE_FLAGS (read, unsent), PR_FLAG_STATUS and PR_LAST_VERB."""
    flags = set()
    mf = msg.props.get(PR_MESSAGE_FLAGS)
    if isinstance(mf, int):
        if mf & 0x1:
            flags.add("\\Seen")
        if mf & 0x8:
            flags.add("\\Draft")
    if msg.props.get(PR_FLAG_STATUS) == 2:
        flags.add("\\Flagged")
    verb = msg.props.get(PR_LAST_VERB)
    if verb in (102, 103):
        flags.add("\\Answered")
    elif verb == 104:
        flags.add("$Forwarded")
    return tuple(sorted(flags))


def internal_date(msg: MapiMessage) -> dt.datetime | None:
    """When the mail arrived (delivery time), else when it was sent, else when the item was made."""
    for pid in (PR_DELIVERY_TIME, PR_CLIENT_SUBMIT_TIME, PR_CREATION_TIME):
        v = msg.props.get(pid)
        if isinstance(v, dt.datetime):
            return v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)
    return None
