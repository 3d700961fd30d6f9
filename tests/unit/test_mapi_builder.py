"""The MAPI → RFC 5322 builder (toolkit.mapi): deterministic bytes, Bcc, related parts, code pages."""
from __future__ import annotations

import datetime as dt
import email
import email.policy

from toolkit import mapi

WHEN = dt.datetime(2021, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3


def _message(extra: dict | None = None) -> mapi.MapiMessage:
    props = {
        mapi.PR_SUBJECT: "Quartalszahlen für März",
        mapi.PR_CLIENT_SUBMIT_TIME: WHEN,
        mapi.PR_SENT_REPRESENTING_NAME: "Anna Absender",
        mapi.PR_SENT_REPRESENTING_EMAIL: "anna@example.com",
        mapi.PR_INTERNET_MESSAGE_ID: "<q1@example.com>",
        mapi.PR_BODY: "Hallo,\r\nsiehe Bild.\r\n",
        mapi.PR_HTML: b'<html><body><p>Hallo</p><img src="cid:img1@x"></body></html>',
        mapi.PR_INTERNET_CPID: 65001,
        mapi.PR_MESSAGE_FLAGS: 0x1,
        **(extra or {}),
    }
    return mapi.MapiMessage(
        props=props,
        recipients=[mapi.MapiRecipient(1, "Bob", "SMTP", "bob@example.com"),
                    mapi.MapiRecipient(2, "Carla", "EX", "/o=org/cn=carla", smtp="carla@example.com"),
                    mapi.MapiRecipient(3, "Geheim", "SMTP", "hidden@example.com")],
        attachments=[mapi.MapiAttachment("bild.png", "image/png", "img1@x", PNG),
                     mapi.MapiAttachment("bericht.pdf", None, None, b"%PDF-1.4 test")],
    )


def _parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def _defects(msg) -> list:
    out = []
    for part in msg.walk():
        out += part.defects
        for _, v in part.items():
            out += list(getattr(v, "defects", ()))
    return out


def test_same_item_same_bytes_and_boundaries_follow_content():
    a, b = mapi.build(_message()).raw, mapi.build(_message()).raw
    assert a == b
    c = mapi.build(_message({mapi.PR_BODY: "Hallo,\r\nanderes Bild.\r\n"})).raw
    bound = lambda raw: sorted(set(p.get_boundary() for p in _parse(raw).walk() if p.is_multipart()))
    assert bound(a) != bound(c)  # a boundary is derived from the content, not fixed


def test_headers_bcc_and_no_invented_metadata():
    raw = mapi.build(_message()).raw
    msg = _parse(raw)
    assert _defects(msg) == []
    assert msg["Subject"] == "Quartalszahlen für März"
    assert msg["From"].addresses[0].addr_spec == "anna@example.com"
    assert [a.addr_spec for a in msg["To"].addresses] == ["bob@example.com"]
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["carla@example.com"]  # SMTP address, not the X.500 DN
    assert [a.addr_spec for a in msg["Bcc"].addresses] == ["hidden@example.com"]
    assert msg["Date"].datetime == WHEN
    assert not [k for k in msg.keys() if k.lower().startswith("x-")]  # folder, class, flags stay out
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_inline_image_in_related_and_attachment_bytes_kept():
    msg = _parse(mapi.build(_message()).raw)
    assert msg.get_content_type() == "multipart/mixed"
    types = [p.get_content_type() for p in msg.walk()]
    assert types == ["multipart/mixed", "multipart/alternative", "text/plain", "multipart/related",
                     "text/html", "image/png", "application/pdf"]
    img = next(p for p in msg.walk() if p.get_content_type() == "image/png")
    assert img["Content-ID"] == "<img1@x>" and img.get_content() == PNG
    pdf = next(p for p in msg.walk() if p.get_content_type() == "application/pdf")
    assert pdf.get_filename() == "bericht.pdf" and pdf.get_content() == b"%PDF-1.4 test"


def test_transport_headers_kept_mime_rebuilt_and_bcc_added():
    headers = ("Received: from a by b; Thu, 4 Mar 2021 05:06:07 +0000\r\nFrom: x@example.com\r\n"
               "To: y@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/mixed; boundary=\"old\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
    msg = _parse(mapi.build(_message({mapi.PR_TRANSPORT_MESSAGE_HEADERS: headers})).raw)
    assert _defects(msg) == []
    assert msg["Received"].startswith("from a by b")
    assert msg["Subject"] == "s" and msg.get_boundary() != "old"
    assert "Content-Transfer-Encoding" not in msg
    assert [a.addr_spec for a in msg["Bcc"].addresses] == ["hidden@example.com"]


def test_ansi_strings_decoded_with_the_code_page():
    m = _message({mapi.PR_SUBJECT: "Отчёт".encode("cp1251"), mapi.PR_MESSAGE_CODEPAGE: 1251})
    m.codepage = 1251
    assert _parse(mapi.build(m).raw)["Subject"] == "Отчёт"


def test_embedded_message_is_message_rfc822_and_unreadable_attachment_is_named():
    inner = mapi.MapiMessage(props={mapi.PR_SUBJECT: "inner", mapi.PR_BODY: "inner body"})
    m = _message()
    m.attachments += [mapi.MapiAttachment("fwd.msg", method=5, embedded=inner),
                      mapi.MapiAttachment("ole", method=6, missing="OLE object")]
    built = mapi.build(m)
    msg = _parse(built.raw)
    fwd = next(p for p in msg.walk() if p.get_content_type() == "message/rfc822")
    assert fwd.get_content()["Subject"] == "inner"
    assert any("ole" in p for p in built.problems)
    assert _defects(msg) == []


def test_flags_and_internal_date_for_the_catalog():
    m = _message({mapi.PR_FLAG_STATUS: 2, mapi.PR_LAST_VERB: 102, mapi.PR_DELIVERY_TIME: WHEN})
    assert mapi.mail_flags(m) == ("\\Answered", "\\Flagged", "\\Seen")
    assert mapi.internal_date(m) == WHEN


def test_x500_sender_resolved_through_what_the_store_shows_elsewhere():
    dn = "/O=ORG/OU=EXCHANGE ADMINISTRATIVE GROUP/CN=RECIPIENTS/CN=ANNA"
    seen = mapi.MapiMessage(props={}, recipients=[mapi.MapiRecipient(1, "Anna", "EX", dn.lower(), smtp="anna@org.example")])
    directory: dict[str, str] = {}
    mapi.learn_addresses(seen, directory)
    sent = mapi.MapiMessage(props={mapi.PR_SENT_REPRESENTING_NAME: "Anna", mapi.PR_SENT_REPRESENTING_EMAIL: dn,
                                   mapi.PR_SUBJECT: "s", mapi.PR_BODY: "b"},
                            recipients=[mapi.MapiRecipient(1, "Anna", "EX", dn)])
    unresolved = _parse(mapi.build(sent).raw)
    assert unresolved["From"].addresses[0].addr_spec == "unresolved@invalid"
    sent.directory = directory
    msg = _parse(mapi.build(sent).raw)
    assert msg["From"].addresses[0].addr_spec == "anna@org.example"
    assert msg["To"].addresses[0].addr_spec == "anna@org.example"
