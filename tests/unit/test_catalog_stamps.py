"""The store's named reads and writes of stamp batches and renewals (toolkit.catalog.stamps), on a bare catalog (the
``catalog`` fixture of tests/fixtures_catalog.py)."""
from __future__ import annotations

import datetime as dt

from toolkit.catalog import stamps

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


def _stamp(con, batch_id: int, token: bytes, fp: str = "ab" * 32) -> None:
    stamps.mark_batch_stamped(con, batch_id, token=token, tsa_url="http://tsa", ca_fingerprint=fp, gen_time=T0,
                              serial="1f", nonce="7", manifest_name=f"stamps/{batch_id:08d}.manifest", medium_id=1)


def test_a_batch_goes_from_open_to_stamped_once(catalog):
    with catalog.writing() as con:
        assert stamps.next_batch_id(con) == 1
        stamps.open_batch(con, 1, None, None, 3, "cd" * 32, T0)
        stamps.open_batch(con, stamps.next_batch_id(con), None, None, 2, "ef" * 32, T0)
    with catalog.reading() as con:
        assert stamps.open_batch_ids(con) == [1, 2]
        assert stamps.sealed_batch(con, 2)[:2] == ("ef" * 32, 2)
    with catalog.writing() as con:
        _stamp(con, 1, b"first token")
        _stamp(con, 1, b"a second token")  # only a pending batch is marked: the first token stays
    with catalog.reading() as con:
        assert stamps.open_batch_ids(con) == [2]
        assert [r[0] for r in stamps.open_batches(con)] == [2]
        assert stamps.stamped_summary(con)[:2] == (1, 3)
        assert [(b, bytes(tok)) for b, _root, tok, *_ in stamps.stamped_tokens(con)] == [(1, b"first token")]
        assert stamps.stamped_count_by_ca(con) == {"ab" * 32: 1}
        assert stamps.stamped_count_for_ca(con, "ab" * 32) == 1
        assert stamps.batch_roots(con) == {1: "cd" * 32, 2: "ef" * 32}


def test_a_renewal_is_recorded_with_its_links_in_order(catalog):
    with catalog.writing() as con:
        stamps.open_batch(con, 1, None, None, 1, "cd" * 32, T0)
        stamps.open_batch(con, 2, None, None, 1, "ef" * 32, T0)
        rid = stamps.next_renewal_id(con)
        stamps.record_renewal(con, rid, root_hex="12" * 32, token=b"renewal token", tsa_url="http://tsa",
                              ca_fingerprint="ab" * 32, gen_time=T0, serial="2", nonce="9", created_at=T0,
                              manifest_name="stamps/renewal-00000001-2.renewal", medium_id=1,
                              links=[(1, 2, None, "bb" * 32), (0, 1, None, "aa" * 32)])
    with catalog.reading() as con:
        assert rid == 1 and stamps.next_renewal_id(con) == 2 and stamps.renewal_count(con) == 1
        (r_id, root, token, fp, _gen, _url, count), = stamps.renewals(con)
        assert (r_id, root, bytes(token), count) == (1, "12" * 32, b"renewal token", 2)
        assert stamps.renewal_links(con, 1) == [(1, 0, "aa" * 32), (2, 1, "bb" * 32)]
