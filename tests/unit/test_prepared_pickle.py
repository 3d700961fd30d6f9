"""A Prepared pickles as tuples of field values (toolkit/prepare.py ``Prepared.__reduce__``): what the
driver unpickles must equal what the worker prepared, field by field and type by type, on the test corpora
and on random bytes (the question of a two-phase pack task carries them: docs/architecture.md)."""
from __future__ import annotations

import dataclasses
import pickle
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st
from multiprocessing.reduction import ForkingPickler

from tests.corpora import corpora_dir
from toolkit.prepare import Envelope, Prepared, Trimmed, prepare

AU = uuid.uuid4()


def fields(p: Prepared) -> list:
    """Every field, MailMeta's too, with its type (a list stays a list, a datetime keeps its zone)."""
    out = []
    for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        if f.name == "meta":
            out += [(g.name, type(getattr(v, g.name)), getattr(v, g.name)) for g in dataclasses.fields(v)]
            sent = v.sent_date
            out.append(("tz", None if sent is None else sent.utcoffset()))
        else:
            out.append((f.name, type(v), v))
    return out


def round_trip(p: Prepared) -> None:
    for back in (pickle.loads(pickle.dumps(p, 5)), pickle.loads(bytes(ForkingPickler.dumps(p)))):
        assert type(back) is Prepared
        assert fields(back) == fields(p)
        assert back == p


def test_corpus_mails_come_back_the_same():
    files = [f for f in sorted(corpora_dir().rglob("*")) if f.is_file()][:600]
    assert len(files) >= 100
    for f in files:
        p = prepare(f.read_bytes(), None, AU, None, limit=None)
        round_trip(p)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_random_mails_come_back_the_same(raw):
    round_trip(prepare(raw, None, AU, None, limit=None))


def test_every_optional_field_comes_back():
    p = prepare(b"From: a@example.com\r\nSubject: s\r\nDate: Mon, 1 Mar 2021 10:00:00 +0100\r\n\r\nbody\r\n",
                bytes(32), AU, b"p" * 16, limit=None)
    p.data = b"other bytes"
    p.envelope = Envelope("text", "ab" * 32, [("bcc", "x@example.com")])
    p.defects = ["journal-unwrapped"]
    p.source_note = Trimmed(b"", 40, {"flags": ("\\Seen",), "date_source": "from-line"})
    p.streamed = True
    assert p.record is not None and p.sealed_for == b"p" * 16
    round_trip(p)
    many = [p, prepare(b"Subject: t\r\n\r\n", None, AU, None, limit=None)]
    assert pickle.loads(pickle.dumps(many)) == many
