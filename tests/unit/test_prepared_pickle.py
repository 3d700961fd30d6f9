"""A Prepared pickles as tuples of field values (toolkit/prepare.py ``Prepared.__reduce__``), and a pack
task's PreparedBatch as one marshal string of the usual mails' values: what the driver unpickles must equal
what the worker prepared, field by field and type by type, on the test corpora and on random bytes (the
question of a two-phase pack task carries them: docs/architecture.md)."""
from __future__ import annotations

import dataclasses
import pickle
import uuid
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from multiprocessing.reduction import ForkingPickler

from tests.corpora import corpora_dir
from toolkit.prepare import Envelope, NotMail, Prepared, PreparedBatch, ReadFailure, Trimmed, _plain_row, prepare

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


# ---- a task's batch (toolkit/prepare.py ``PreparedBatch``): one marshal string of the usual mails' values


def batch_round_trip(items: list) -> list:
    """What the driver unpickles from a PreparedBatch of ``items``: a plain list, equal item by item, field by
    field and type by type, with the other items (failures, unusual mails) in their places."""
    batch = PreparedBatch(items)
    for back in (pickle.loads(pickle.dumps(batch, 5)), pickle.loads(bytes(ForkingPickler.dumps(batch)))):
        assert type(back) is list and len(back) == len(items)
        for b, p in zip(back, items):
            assert type(b) is type(p)
            if type(p) is Prepared:
                assert fields(b) == fields(p) and b == p
                assert list(vars(b)) == list(vars(p))   # the same attributes, in the same order
            else:
                assert b == p
    return back


def test_a_batch_of_corpus_mails_comes_back_the_same():
    files = [f for f in sorted(corpora_dir().rglob("*")) if f.is_file()][:600]
    batch = [prepare(f.read_bytes(), None, AU, None, limit=None) for f in files]
    for p in batch:
        p.data = None  # as a pack task sends them
    usual = [p for p in batch if _plain_row(p) is not None]
    assert len(usual) >= 0.9 * len(batch)  # the marshalled rows are the usual case
    assert any(p.meta.sent_date is not None for p in usual) and any(p.meta.sent_date is None for p in usual)
    batch_round_trip(batch)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=2000), max_size=8))
def test_a_batch_of_random_mails_comes_back_the_same(raws):
    batch_round_trip([prepare(raw, None, AU, None, limit=None) for raw in raws])


def test_a_batch_mixing_failures_and_unusual_mails_keeps_them_in_place():
    def mail(date: str) -> Prepared:
        return prepare(f"From: a@example.com\r\nDate: {date}\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n".encode(), None, AU,
                       None, limit=None)

    usual = mail("Mon, 1 Mar 2021 10:00:00 +0100")
    micro = mail("Mon, 1 Mar 2021 10:00:00 +0100")
    micro.meta.sent_date = micro.meta.sent_date.replace(microsecond=123456)
    early = mail("Mon, 1 Mar 1960 10:00:00 -0700")      # before 1970: negative days
    zoned = mail("Mon, 1 Mar 2021 10:00:00 +0100")
    zoned.meta.sent_date = datetime(2021, 3, 1, 10, tzinfo=timezone(timedelta(hours=1)))  # not UTC: pickled as before
    naive = mail("Mon, 1 Mar 2021 10:00:00 +0100")
    naive.meta.sent_date = datetime(2021, 3, 1, 10)
    noted = mail("Mon, 1 Mar 2021 10:00:00 +0100")
    noted.source_note = Trimmed(b"", 40, {"flags": ("\\Seen",), "date_source": "from-line"})
    held = mail("Mon, 1 Mar 2021 10:00:00 +0100")
    held.data = b"other bytes"
    wrapped = mail("Mon, 1 Mar 2021 10:00:00 +0100")
    wrapped.envelope = Envelope("text", "ab" * 32, [("bcc", "x@example.com")])
    sealed = prepare(b"Subject: s\r\n\r\nb\r\n", bytes(32), AU, b"p" * 16, limit=None)
    items = [usual, ReadFailure(13, "Permission denied"), micro, early, zoned, NotMail("no header", False), naive,
             noted, held, wrapped, sealed, usual]
    assert [_plain_row(p) is not None if type(p) is Prepared else None for p in items] == [
        True, None, True, True, False, None, False, False, False, False, False, True]
    back = batch_round_trip(items)
    assert back[4].meta.sent_date.utcoffset() == timedelta(hours=1) and back[6].meta.sent_date.tzinfo is None
    assert back[3].meta.sent_date == datetime(1960, 3, 1, 17, tzinfo=timezone.utc)
    assert batch_round_trip([]) == []
