"""F04's key (verify/deep.py): the catalog query builds it from a row as f04_key builds it from a mail's fields.

Equal fields must give equal keys (else every such mail would take the slow field-by-field path) and different
fields different keys (else an edited row would pass): both checked on a real DuckDB table holding the fields
in the catalog's column types, with text that holds the key's own separators, NULL against empty text and lists,
repeated and multi-byte addresses, and times before 1970 and with microseconds. A row's recipient lists are keyed
as stored: a row that lists an address twice (which no import writes: the header reader keeps each address
once) gets another key than the mail and is compared field by field, as sets; an equal key still means equal
fields.
"""
from __future__ import annotations

import datetime as dt

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.headers import MailMeta
from verify.deep import _task_rows_sql, f04_key

_TEXT = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["", "S3:abc", "N", "|", "1:a", "é€😀", "a:b|c"]))
_ADDRS = st.lists(st.sampled_from(["a@x.org", "b@x.org", "1:a@x.org", "é@x.org", "|@x", ""]), max_size=4)
_WHEN = st.one_of(st.none(), st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1),
                                          timezones=st.just(dt.timezone.utc)))
_FIELDS = st.tuples(_TEXT, _TEXT, _TEXT, _WHEN, _ADDRS, _ADDRS)


def _catalog_keys(rows: list[tuple]) -> list[str]:
    """The key column of the tasks' query over a catalog holding ``rows`` (message_id, from, subject, date, to, cc)."""
    con = duckdb.connect()
    con.execute("""CREATE TABLE messages (msg_id BIGINT, blob_id VARCHAR, pack_id VARCHAR, "offset" BIGINT, length BIGINT,
                   size BIGINT, csize BIGINT, message_id VARCHAR, from_addr VARCHAR, subject VARCHAR,
                   sent_date TIMESTAMPTZ, batch_id BIGINT)""")
    con.execute("CREATE TABLE recipients (msg_id BIGINT, kind VARCHAR, address VARCHAR)")
    con.executemany("INSERT INTO messages VALUES (?, '', 'p', ?, 0, 0, 0, ?, ?, ?, ?, NULL)",
                    [[i, i, mid, frm, subj, when] for i, (mid, frm, subj, when, _to, _cc) in enumerate(rows)])
    recipients = [[i, kind, a] for i, r in enumerate(rows)
                  for kind, addrs in (("to", r[4]), ("cc", r[5]), ("bcc", ["hidden@x.org"])) for a in addrs]
    con.executemany("INSERT INTO recipients VALUES (?, ?, ?)", recipients)
    table = con.execute(_task_rows_sql()).arrow()
    table = table.read_all() if hasattr(table, "read_all") else table
    return table.column("f04").to_pylist()


def _mail_key(fields: tuple) -> str:
    mid, frm, subj, when, to, cc = fields
    return f04_key(MailMeta(message_id=mid, from_addr=frm, subject=subj, sent_date=when, to=list(to), cc=list(cc)))


@settings(max_examples=30, deadline=None)
@given(st.lists(_FIELDS, min_size=2, max_size=6))
def test_catalog_and_mail_keys_agree_exactly_when_the_fields_do(rows):
    keys = _catalog_keys(rows)
    for fields, key in zip(rows, keys):
        if _as_imported(fields):
            assert key == _mail_key(fields), fields
    for a, ka in zip(rows, keys):
        for b, kb in zip(rows, keys):
            same = a[:4] == b[:4] and set(a[4]) == set(b[4]) and set(a[5]) == set(b[5])
            if ka == kb or ka == _mail_key(b):  # an equal key: equal fields, always
                assert same, (a, b)
            if same and _as_imported(a) and _as_imported(b):
                assert ka == kb, (a, b)


def _as_imported(fields: tuple) -> bool:
    """Recipient lists without repeats, as every import stores them."""
    return all(len(set(addrs)) == len(addrs) for addrs in fields[4:])


def test_text_moved_between_fields_and_null_against_empty_give_other_keys():
    when = dt.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=dt.timezone.utc)
    rows = [("ab", "c", "d", when, [], []), ("a", "bc", "d", when, [], []), ("ab", "c", "", when, [], []),
            ("ab", "c", None, when, [], []), ("ab", "c", "d", None, [], []), ("ab", "c", "d", when, ["a@x.org"], []),
            ("ab", "c", "d", when, [], ["a@x.org"])]
    keys = _catalog_keys(rows)
    assert keys == [_mail_key(r) for r in rows]
    assert len(set(keys)) == len(rows)
