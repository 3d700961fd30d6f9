"""The catalog decides retention in SQL (toolkit/catalog/retention.py ``_DECISIONS``: the retention clock, the
longest keep, held / no-policy / undated / kept / deletable); toolkit/retention.py holds the same rules in Python.
They must agree on every mail, at the edges too: dates just before 1971 and at it, a day after the archive time and
a microsecond past it, 29 February plus whole years, a policy ending exactly at "now", ties of keeps, holds."""
from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa

from importers.mbox import MboxImporter
from toolkit.archive import Archive
from toolkit.catalog import retention as rows
from toolkit.ingest import Ingest
from toolkit.retention import MailFacts, Policy, decide, refusal

UTC = dt.timezone.utc
ARCHIVED = [dt.datetime(2020, 2, 29, 12, tzinfo=UTC), dt.datetime(2024, 6, 1, 8, 30, tzinfo=UTC),
            dt.datetime(1975, 1, 1, tzinfo=UTC)]


def _dates(archived: dt.datetime) -> list[dt.datetime | None]:
    day = dt.timedelta(days=1)
    return [None, dt.datetime(1969, 12, 31, tzinfo=UTC), dt.datetime(1970, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            dt.datetime(1971, 1, 1, tzinfo=UTC), archived + day, archived + day + dt.timedelta(microseconds=1),
            dt.datetime(2016, 2, 29, 23, 59, tzinfo=UTC), dt.datetime(2999, 1, 1, tzinfo=UTC), archived - day]


def test_sql_decisions_are_the_python_rules(tmp_path):
    rnd = random.Random(7)
    n = 120
    mbox = "".join(
        f"From a{i}@example.org Mon Mar  4 10:00:00 2019\nFrom: a{i}@{'example.org' if i % 9 else 'other.net'}\n"
        f"To: {'b@example.com' if i % 2 else 'c@other.net'}\nSubject: s{i}\nMessage-ID: <m{i}@x>\n\nbody {i}\n\n"
        for i in range(n))
    (tmp_path / "in.mbox").write_text(mbox)
    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        assert Ingest(archive, workers=0).run(MboxImporter(str(tmp_path / "in.mbox"))).archived == n
        with archive.catalog.writing() as con:
            ids = [r[0] for r in con.execute("SELECT msg_id FROM messages ORDER BY msg_id").fetchall()]
            for m in ids:
                archived = rnd.choice(ARCHIVED)
                con.execute("UPDATE messages SET archived_at = ?, sent_date = ?, internal_date = ? WHERE msg_id = ?",
                            [archived, rnd.choice(_dates(archived)), rnd.choice(_dates(archived)), m])
            rows.set_policy(con, "domain", "example.org", 5, "lead")
            rows.set_policy(con, "domain", "example.com", rnd.choice([3, 5, 8]), "lead")
            rows.add_hold(con, "address", "a3@example.org", "case", "legal")
            rows.add_hold(con, "query", "m.msg_id % 10 = 4", "case", "legal")
            query_held = {2: pa.chunked_array([pa.array([m for m in ids if m % 10 == 4], pa.int64())])}
            years = {p["value"]: p["years"] for p in rows.policies(con)}
            facts = {}
            for m, mid, sent, internal, archived, frm, to in con.execute(
                    "SELECT m.msg_id, m.message_id, sent_date, internal_date, archived_at, from_addr, "
                    "(SELECT list(address) FROM recipients r WHERE r.msg_id = m.msg_id) FROM messages m").fetchall():
                pols = [Policy("domain", "example.org", years["example.org"])] if frm.endswith("@example.org") else []
                pols += [Policy("domain", "example.com", years["example.com"])] if "b@example.com" in to else []
                hs = ([1] if frm == "a3@example.org" else []) + ([2] if m % 10 == 4 else [])
                facts[m] = MailFacts(m, mid, sent, internal, tuple(pols), tuple(hs), archived)
            deadlines = sorted({d.deletable_from for f in facts.values()
                                for d in [decide(f, dt.datetime(2000, 1, 1, tzinfo=UTC))] if d.deletable_from})
            nows = [dt.datetime(2026, 12, 4, tzinfo=UTC)] + rnd.sample(deadlines, 5)  # "now" exactly at a deadline
            with rows.coverage(con, query_held):
                for now in nows:
                    got = list(rows.decisions(con, "SELECT msg_id FROM messages", now))
                    want = [decide(facts[m], now) for m in sorted(facts)]
                    assert got == want
                    assert [(g.base_date and g.base_date.isoformat(), g.deletable_from and g.deletable_from.isoformat())
                            for g in got] == [(w.base_date and w.base_date.isoformat(),
                                               w.deletable_from and w.deletable_from.isoformat()) for w in want]
                    assert rows.refusal_of(con, "SELECT msg_id FROM messages", now, 3) == refusal(want, 3)
                    assert {g.state for g in got} >= {"held", "no-policy", "kept"}
                    assert {g.date_kind for g in got} == {"sent", "internal", "archived"}
                assert any(g.state == "deletable" for now in nows for g in rows.decisions(con, "SELECT msg_id FROM messages", now))
            con.execute("ROLLBACK")
            con.execute("BEGIN TRANSACTION")
    finally:
        archive.close()
