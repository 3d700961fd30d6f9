"""toolkit.journal: Exchange envelope journal reports (docs/reliability.md D13, docs/dedup.md "Journal reports").

The reports here are built by hand so each test controls one property; the real
reports are swept in tests/corpus/test_journal_corpus.py.
"""
from __future__ import annotations

import base64
import hashlib
import quopri

from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.headers import scan
from toolkit.journal import EnvelopeRecipient, is_journal_report, parse_journal_report

ORIGINAL = (
    b"Received: from mx1.example.org by mx2.example.org; Mon, 1 Jan 2024 10:00:01 +0000\n"
    b"From: Alice Example <alice@example.org>\n"
    b"To: Bob <bob@example.net>\n"
    b"Subject: Quarterly report\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0000\n"
    b"Message-ID: <q1.2024@example.org>\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"\n"
    b"Hello Bob,\n"
    b"\n"
    b"the numbers.\n"
)

ENVELOPE = [
    "Sender: alice@example.org",
    "Subject: Quarterly report",
    "Message-Id: <q1.2024@example.org>",
    "To: bob@example.net",
    "Cc: carol@example.net",
    "Bcc: secret@example.com",
]


def build(envelope: list[str] | None = ENVELOPE, originals: list[bytes] = (ORIGINAL,), *,
          eol: str = "\n", boundary: str = "_b0a1b2c3_", original_cte: str | None = None,
          envelope_headers: str = 'Content-Type: text/plain; charset="us-ascii"\nContent-Transfer-Encoding: 7bit',
          envelope_body: bytes | None = None, extra_parts: list[bytes] = (), close: bool = True,
          top_type: str | None = None) -> bytes:
    """A report the way Exchange writes them (header order and layout of the corpus reports)."""
    nl = eol.encode()
    top_type = top_type or f'multipart/mixed;\n\tboundary="{boundary}"'
    head = (
        "Content-Type: " + top_type + "\n"
        "Subject: Quarterly report\n"
        "From: Alice Example <alice@example.org>\n"
        "To: <journal@example.com>\n"
        "MIME-Version: 1.0\n"
        "Sender: <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.com>\n"
        "Message-ID: <0d6f2b1e@journal.report.generator>\n"
        "Date: Mon, 01 Jan 2024 10:00:02 +0000\n"
        "X-MS-Journal-Report:\n"
        "Auto-Submitted: auto-generated\n"
        "\n"
    ).replace("\n", eol).encode()
    out = [head]
    b = boundary.encode()
    if envelope is not None:
        body = envelope_body if envelope_body is not None else (eol.join(envelope) + eol).encode()
        out += [b"--" + b + nl, envelope_headers.replace("\n", eol).encode() + nl + nl, body + nl]
    for orig in originals:
        hdr = "Content-Type: message/rfc822" + eol
        if original_cte:
            hdr += "Content-Transfer-Encoding: " + original_cte + eol
        out += [b"--" + b + nl, hdr.encode() + nl, orig + nl]
    for part in extra_parts:
        out += [b"--" + b + nl, part + nl]
    if close:
        out.append(b"--" + b + b"--" + nl)
    return b"".join(out)


def recips(report) -> list[tuple[str, str, str | None]]:
    return [(r.address, r.kind, r.annotation) for r in report.recipients]


# ---------------------------------------------------------------- detection

def test_is_journal_report_looks_only_at_the_top_level_header_block():
    assert is_journal_report(build())
    assert is_journal_report(b"\xef\xbb\xbf" + build())
    assert is_journal_report(b"Subject: x\nx-ms-journal-report : \n\nbody\n")
    assert not is_journal_report(ORIGINAL)
    assert not is_journal_report(b"Subject: x\n\nX-MS-Journal-Report:\n")  # in the body only
    assert not is_journal_report(b"Subject: x\nX-MS-Journal-Report-Not: 1\n\n")
    assert not is_journal_report(b"")
    # a journal report attached to an ordinary mail does not make that mail a report
    assert not is_journal_report(b"Subject: fwd\nContent-Type: message/rfc822\n\n" + build())


def test_parse_ordinary_mail_is_none():
    assert parse_journal_report(ORIGINAL) is None


# ---------------------------------------------------------------- the envelope

def test_plain_report_to_cc_bcc():
    """D13 baseline: To/Cc are envelope recipients, Bcc is kept as bcc."""
    raw = build()
    r = parse_journal_report(raw)
    assert r is not None and r.defects == []
    assert r.sender == "alice@example.org"
    assert r.subject == "Quarterly report"
    assert r.message_id == "q1.2024@example.org"
    assert recips(r) == [("bob@example.net", "envelope", None), ("carol@example.net", "envelope", None),
                         ("secret@example.com", "bcc", None)]
    assert r.envelope_text == "\n".join(ENVELOPE) + "\n"
    assert r.original == ORIGINAL


def test_expanded_and_forwarded_annotations():
    r = parse_journal_report(build([
        "Sender: alice@example.org",
        "Subject: s",
        "Message-Id: <m@x>",
        "To: member1@example.com, Expanded: team@example.com",
        "Cc: fwd@example.com, Forwarded: user@example.com",
        "Bcc: member2@example.com, Expanded: hidden-dl@example.com",
        "Bcc: Fwd2@Example.COM, Forwarded: boss@example.com",
    ]))
    assert recips(r) == [
        ("member1@example.com", "envelope", "Expanded: team@example.com"),
        ("fwd@example.com", "envelope", "Forwarded: user@example.com"),
        ("member2@example.com", "bcc", "Expanded: hidden-dl@example.com"),
        ("fwd2@example.com", "bcc", "Forwarded: boss@example.com"),
    ]
    assert r.defects == []


def test_recipient_lines_exchange_2013_and_on_behalf_of():
    r = parse_journal_report(build([
        "Sender: Alice@Example.org",
        "Subject: s",
        "Message-Id: <m@x>",
        "On-Behalf-Of: boss@example.org",
        "Recipient: a@example.net",
        "Recipient: b@example.net, Forwarded: old-b@example.net",
    ]))
    assert r.sender == "alice@example.org"
    assert recips(r) == [("a@example.net", "envelope", None),
                         ("b@example.net", "envelope", "Forwarded: old-b@example.net")]
    assert "boss@example.org" not in [x.address for x in r.recipients]
    assert "On-Behalf-Of: boss@example.org" in r.envelope_text


def test_wrapped_continuation_lines():
    r = parse_journal_report(build([
        "Sender: alice@example.org",
        "Subject: a long subject",
        "  that was folded",
        "Message-Id:",
        " <m.folded@example.org>",
        "To: a-very-long-mailbox-name@exam",
        " ple.com",
        "Cc: member@example.com,",
        "\tExpanded: list@example.com",
        "Bcc: hidden@example.com",
        "  Forwarded: orig@example.com",
        "Bcc: hard-wrapped@example",
        ".com, Expanded:",
        " dl@example.com",
    ]))
    assert r.subject == "a long subject  that was folded"
    assert r.message_id == "m.folded@example.org"
    assert recips(r) == [
        ("a-very-long-mailbox-name@example.com", "envelope", None),
        ("member@example.com", "envelope", "Expanded: list@example.com"),
        ("hidden@example.com", "bcc", "Forwarded: orig@example.com"),
        ("hard-wrapped@example.com", "bcc", "Expanded: dl@example.com"),
    ]
    assert r.defects == []


def test_recipients_block_with_role_tags():
    """The export format of eml-helper/journal_report_pst_export.eml, with a Bcc tag."""
    r = parse_journal_report(build([
        "Sender: alice@example.com",
        "Subject: s",
        "Message-Id: <m@x>",
        "Recipients:",
        "   bob@example.com (To)",
        "   carol@example.com (Cc)",
        "   dave@example.com (Bcc)",
    ]))
    assert recips(r) == [("bob@example.com", "envelope", None), ("carol@example.com", "envelope", None),
                         ("dave@example.com", "bcc", None)]


def test_malformed_recipient_lines_never_crash_and_keep_what_is_there():
    """D13: a malformed Recipient: line is flagged; address-like tokens in it are still kept."""
    r = parse_journal_report(build([
        "Sender: alice@example.org",
        "Subject: s",
        "Message-Id: <m@x>",
        "Recipient:",
        "Recipient: not an address",
        "Recipient: <a@example.net> b@example.net",
        "Bcc: Secret Person <secret@example.com>",
        "To: good@example.net",
    ]))
    assert r is not None
    assert "journal-malformed-recipient-line" in r.defects
    assert recips(r) == [("a@example.net", "envelope", None), ("b@example.net", "envelope", None),
                         ("secret@example.com", "bcc", None), ("good@example.net", "envelope", None)]
    assert r.original == ORIGINAL


def test_envelope_without_recipients_is_flagged():
    r = parse_journal_report(build(["Sender: a@x", "Subject: s", "Message-Id: <m@x>"]))
    assert r.recipients == [] and "journal-no-recipients" in r.defects
    assert r.original == ORIGINAL


def test_envelope_charset_and_base64():
    text = "Sender: a@example.com\r\nSubject: Grüße aus München\r\nTo: b@example.com\r\n"
    r = parse_journal_report(build(
        envelope_headers="Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: base64",
        envelope_body=base64.encodebytes(text.encode("iso-8859-1")).rstrip(b"\n")))
    assert r.subject == "Grüße aus München"
    assert r.envelope_text == text
    assert recips(r) == [("b@example.com", "envelope", None)]
    qp = parse_journal_report(build(
        envelope_headers="Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: quoted-printable",
        envelope_body=quopri.encodestring(text.encode("utf-8"))))
    assert qp.subject == "Grüße aus München"


# ---------------------------------------------------------------- the original

def test_original_is_the_exact_slice_of_the_report(tmp_path):
    """The original is never re-serialised: verbatim inside the report, same sha256 as the embedded file."""
    odd = (b"From: x@example.org\r\nSubject:  two  spaces \r\nX-Long: " + b"a" * 2000 + b"\r\n"
           b"Message-ID: <odd@example.org>\r\n\r\nno final newline")
    for name, orig in [("lf.eml", ORIGINAL), ("crlf-nonl.eml", odd), ("blank-tail.eml", ORIGINAL + b"\n\n\n")]:
        path = tmp_path / name
        path.write_bytes(orig)
        raw = build(originals=[path.read_bytes()])
        r = parse_journal_report(raw)
        assert r.original in raw
        assert hashlib.sha256(r.original).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest(), name
        assert raw.index(r.original) == raw.index(orig)


def test_crlf_report():
    crlf_orig = ORIGINAL.replace(b"\n", b"\r\n")
    raw = build(eol="\r\n", originals=[crlf_orig])
    assert b"\n" not in raw.replace(b"\r\n", b"")
    r = parse_journal_report(raw)
    assert r.defects == []
    assert r.original == crlf_orig
    assert recips(r)[-1] == ("secret@example.com", "bcc", None)
    assert r.message_id == "q1.2024@example.org"


def test_base64_and_qp_original_are_decoded_and_flagged():
    raw = build(originals=[base64.encodebytes(ORIGINAL)], original_cte="base64")
    r = parse_journal_report(raw)
    assert r.original == ORIGINAL
    assert "journal-original-encoded" in r.defects
    qp = build(originals=[quopri.encodestring(ORIGINAL.replace(b"Bob", b"B\xc3\xb6b"))],
               original_cte="Quoted-Printable")
    r = parse_journal_report(qp)
    assert r.original == ORIGINAL.replace(b"Bob", b"B\xc3\xb6b")
    assert "journal-original-encoded" in r.defects
    bad = parse_journal_report(build(originals=[b"QUJD\nR"], original_cte="base64"))
    assert bad.original is None and "journal-original-undecodable" in bad.defects
    assert bad.recipients  # the envelope still counts


def test_no_attached_original():
    """D13: no original -> a report with a defect and original None (the pipeline archives it raw)."""
    r = parse_journal_report(build(originals=[]))
    assert r is not None and r.original is None
    assert "journal-no-original" in r.defects
    assert [x.kind for x in r.recipients] == ["envelope", "envelope", "bcc"]
    empty = parse_journal_report(build(originals=[b""]))
    assert empty.original is None and "journal-empty-original" in empty.defects


def test_bare_text_envelope_without_multipart():
    raw = (b"Subject: s\nX-MS-Journal-Report:\nContent-Type: text/plain\n\n"
           b"Sender: a@x.example\nSubject: s\nBcc: hidden@x.example\n")
    r = parse_journal_report(raw)
    assert r.original is None
    assert {"journal-not-multipart", "journal-no-original"} <= set(r.defects)
    assert recips(r) == [("hidden@x.example", "bcc", None)]


def test_two_originals_take_the_first():
    """D13: several attachments."""
    second = ORIGINAL.replace(b"q1.2024", b"other")
    r = parse_journal_report(build(originals=[ORIGINAL, second]))
    assert r.original == ORIGINAL
    assert "journal-several-originals" in r.defects
    extra = parse_journal_report(build(extra_parts=[b"Content-Type: application/pdf\n\n%PDF-1.4"]))
    assert extra.original == ORIGINAL and "journal-extra-parts" in extra.defects


def test_journal_of_journal_unwraps_one_level():
    """D13: a journal report whose original is itself a journal report."""
    inner = build(["Sender: alice@example.org", "Subject: Quarterly report", "Message-Id: <q1.2024@example.org>",
                   "To: bob@example.net", "Bcc: secret@example.com"], boundary="_inner_")
    outer_env = ["Sender: journal@example.com", "Subject: Quarterly report",
                 "Message-Id: <0d6f2b1e@journal.report.generator>", "Recipient: archive@example.com"]
    raw = build(outer_env, originals=[inner], boundary="_outer_")
    r = parse_journal_report(raw)
    assert "journal-of-journal" in r.defects
    assert r.original == ORIGINAL and r.original in raw
    assert r.sender == "alice@example.org"
    assert r.message_id == "q1.2024@example.org"
    assert recips(r) == [("bob@example.net", "envelope", None), ("secret@example.com", "bcc", None)]
    assert r.outer_envelope_text == "\n".join(outer_env) + "\n"
    assert "archive@example.com" not in [x.address for x in r.recipients]

    # three levels: only one is unwrapped, and that is flagged
    raw3 = build(outer_env, originals=[raw], boundary="_third_")
    r3 = parse_journal_report(raw3)
    assert {"journal-of-journal", "journal-of-journal-deep"} <= set(r3.defects)
    assert r3.original == inner


def test_look_alike_is_none():
    """The header is present but there is no envelope part: an ordinary mail."""
    related = build(envelope=None, top_type='multipart/related;\n\tboundary="_b0a1b2c3_"',
                    extra_parts=[b"Content-Type: text/html\n\n<p>hi</p>"])
    assert is_journal_report(related)
    assert parse_journal_report(related) is None
    chatty = build(envelope_body=b"Hi all, please see the attached mail.\nThanks\n")
    assert parse_journal_report(chatty) is None
    plain = b"Subject: hi\nX-MS-Journal-Report:\n\nJust a note.\n"
    assert parse_journal_report(plain) is None


def test_broken_multipart_is_flagged_not_raised():
    no_boundary = build(top_type="multipart/mixed")
    r = parse_journal_report(no_boundary)
    assert r.original is None and "journal-multipart-broken" in r.defects
    wrong = build().replace(b'boundary="_b0a1b2c3_"', b'boundary="_nowhere_"')
    assert "journal-multipart-broken" in parse_journal_report(wrong).defects
    truncated = build(close=False)[:-20]
    t = parse_journal_report(truncated)
    assert t.original is None and "journal-multipart-unterminated" in t.defects
    assert t.recipients  # the envelope before the cut is still read


def test_bifurcated_reports_keep_their_own_recipients():
    """D13: two reports of one mail, each with other envelope recipients; same original content."""
    head = ["Sender: alice@example.org", "Subject: Quarterly report", "Message-Id: <q1.2024@example.org>"]
    a = parse_journal_report(build(head + ["To: bob@example.net"], boundary="_a_"))
    b = parse_journal_report(build(head + ["Bcc: secret@example.com", "Cc: x@example.net, Expanded: dl@example.net"],
                                   boundary="_b_"))
    assert a.original == b.original
    assert scan(a.original).dedup_key == scan(b.original).dedup_key
    assert recips(a) == [("bob@example.net", "envelope", None)]
    assert recips(b) == [("secret@example.com", "bcc", None), ("x@example.net", "envelope", "Expanded: dl@example.net")]


def test_dataclass_shape():
    r = EnvelopeRecipient("a@b", "bcc", None)
    assert (r.address, r.kind, r.annotation) == ("a@b", "bcc", None)


# ---------------------------------------------------------------- never raises

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_never_raises_on_arbitrary_bytes(tail):
    raw = b"X-MS-Journal-Report:\n" + tail
    r = parse_journal_report(raw)
    assert r is None or not any(d.startswith("journal-parse-error") for d in r.defects)
    if r is not None and r.original is not None and "journal-original-encoded" not in r.defects:
        assert r.original in raw


_pieces = st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=b\n", b"Content-Type: text/plain\n", b"Content-Type: message/rfc822\n",
    b"Content-Transfer-Encoding: base64\n", b"Content-Transfer-Encoding: quoted-printable\n",
    b"X-MS-Journal-Report:\n", b"\n", b"\r\n", b"--b\n", b"--b--\n", b"--b\r\n", b"Sender: a@b\n", b"To: c@d\n",
    b"Bcc: e@f, Expanded: g@h\n", b"Recipient: \n", b"Recipients:\n  x@y (Bcc)\n", b" continued\n", b"=?utf-8?q?x?=\n",
    b"Content-Type: multipart/mixed; boundary=\"\"\n", b"\xff\xfe\x00", b"Subject: s\n",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(_pieces, max_size=40))
def test_never_raises_on_report_shaped_garbage(chunks):
    raw = b"X-MS-Journal-Report:\nContent-Type: multipart/mixed; boundary=b\n" + b"".join(chunks)
    r = parse_journal_report(raw)
    assert r is None or not any(d.startswith("journal-parse-error") for d in r.defects)


_NAME_SPELLINGS = st.sampled_from([b"X-MS-Journal-Report", b"x-ms-journal-report", b"X-MS-JOURNAL-REPORT", b"x-Ms-jOurnal-rEport",
                                   b"X-MS-Journal-Repor", b"X-MS-Journal_Report", b"X-MS-Journal-Report-X", b"\xd8-MS-Journal-Report"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_NAME_SPELLINGS, st.sampled_from([b":", b" :", b"\t:", b" ", b"\n", b"\r\n", b"\n ", b"X: y\n",
                                                              b"\n\n", b"a", b"\xff"])), max_size=12).map(b"".join))
def test_prepare_asks_for_a_journal_report_only_where_its_field_name_is(block):
    # prepare's unwrap_split runs is_journal_report only when the block holds the field's name in any case
    # (toolkit/prepare.py, _JOURNAL_NAME): the check it leaves out never says yes
    from toolkit.headers import split_mail
    from toolkit.prepare import _JOURNAL_NAME, unwrap_split

    for raw in (block, b"X: y\n" + block + b"\n\nbody", b"From: a@b\n" + block + b"\r\n\r\nbody"):
        split = split_mail(raw)
        if is_journal_report(raw, split):
            assert _JOURNAL_NAME in split.block.lower()
        if _JOURNAL_NAME not in split.block.lower():
            assert unwrap_split(raw)[:3] == (raw, None, [])
