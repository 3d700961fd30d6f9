"""The dedup decider without a catalog: every decision kind of docs/dedup.md from keys alone.

Targets: ("new", i) is the i-th message stored since the last commit, ("old", msg_id) an archived one.
"""
from __future__ import annotations

import subprocess
import sys

from toolkit.dedup import (CONVERTED_TWIN, DECISIONS, DUPLICATE, EXACT, ID_CONFLICT, JOURNAL_MERGE, NEW, DedupDecider,
                           Keys, Known, Placement, conversion_of)


def keys(n: int, *, key: int | None = None, mid: str | None = None) -> Keys:
    """Keys of a mail: blob id from n, dedup key from ``key`` (default n), Message-ID as given."""
    return Keys(f"{n:064x}", f"{(n if key is None else key) + 1000:064x}", mid)


NOTHING = Known()


def test_unknown_keys_are_new_and_numbered_in_order():
    d = DedupDecider()
    assert d.place(keys(1, mid="a@x"), NOTHING) == Placement(NEW, ("new", 0))
    assert d.place(keys(2), NOTHING) == Placement(NEW, ("new", 1))
    assert d.new_count == 2


def test_same_bytes_twice_in_one_commit_is_an_exact_duplicate_of_the_first():
    d = DedupDecider()
    d.place(keys(1, mid="a@x"), NOTHING)
    assert d.place(keys(1, mid="a@x"), NOTHING) == Placement(EXACT, ("new", 0))
    assert d.new_count == 1


def test_bytes_the_catalog_holds_are_an_exact_duplicate_of_the_archived_message():
    d = DedupDecider()
    known = Known(blobs={keys(1).blob_id: 7}, keys={keys(1).dedup_key: 7})
    assert d.place(keys(1), known) == Placement(EXACT, ("old", 7))
    assert d.new_count == 0


def test_same_dedup_key_with_other_bytes_is_a_duplicate():
    d = DedupDecider()
    d.place(keys(1, mid="a@x"), NOTHING)
    # other bytes (another transport header), same Message-ID and body: the same dedup key
    assert d.place(keys(2, key=1, mid="a@x"), NOTHING) == Placement(DUPLICATE, ("new", 0))
    assert d.place(keys(3, key=9), Known(keys={keys(9).dedup_key: 4})) == Placement(DUPLICATE, ("old", 4))


def test_exact_wins_over_duplicate_and_the_commit_over_the_catalog():
    d = DedupDecider()
    d.place(keys(1), NOTHING)
    # the catalog also holds the key (an older copy): the arrival matches this commit's copy by its bytes first
    assert d.place(keys(1), Known(keys={keys(1).dedup_key: 3})).decision == EXACT
    assert d.place(keys(5, key=1), Known(blobs={keys(5).blob_id: 2})) == Placement(EXACT, ("old", 2))


def test_known_message_id_with_another_body_is_an_id_conflict_and_both_are_kept():
    d = DedupDecider()
    first = d.place(keys(1, mid="same@x"), NOTHING)
    second = d.place(keys(2, mid="same@x"), NOTHING)
    assert first == Placement(NEW, ("new", 0))
    assert second == Placement(ID_CONFLICT, ("new", 1), conflict_with=("new", 0))
    third = d.place(keys(3, mid="old@x"), Known(mids={"old@x": 11}))
    assert third == Placement(ID_CONFLICT, ("new", 2), conflict_with=("old", 11))
    assert d.new_count == 3  # an id-conflict is stored like a new mail


def test_a_conflict_points_at_the_first_message_with_that_id():
    d = DedupDecider()
    d.place(keys(1, mid="m@x"), NOTHING)
    d.place(keys(2, mid="m@x"), NOTHING)
    assert d.place(keys(3, mid="m@x"), NOTHING).conflict_with == ("new", 0)


def test_mail_without_message_id_never_conflicts():
    d = DedupDecider()
    d.place(keys(1), NOTHING)
    assert d.place(keys(2), Known(mids={"": 1})) == Placement(NEW, ("new", 1))


def test_journal_report_with_new_recipients_for_an_archived_mail_is_a_journal_merge():
    d = DedupDecider()
    placement = d.place(keys(1), Known(blobs={keys(1).blob_id: 5}))
    assert d.evidence_wanted([placement.target]) == [5]
    d.take_evidence([5], [(5, "to", "a@x")], [])
    decision, added, new_envelope = d.settle(placement, [("to", "a@x"), ("bcc", "hidden@x")], "e1")
    assert (decision, added, new_envelope) == (JOURNAL_MERGE, [("bcc", "hidden@x")], True)
    assert d.evidence_wanted([placement.target]) == []  # loaded once per commit


def test_journal_report_that_brings_nothing_new_stays_a_duplicate():
    d = DedupDecider()
    placement = d.place(keys(2, key=1), Known(keys={keys(1).dedup_key: 5}))
    d.take_evidence([5], [(5, "to", "a@x"), (5, "bcc", "b@x")], [(5, "e1")])
    assert d.settle(placement, [("bcc", "b@x"), ("to", "a@x")], "e1") == (DUPLICATE, [], False)


def test_journal_report_and_gateway_copy_in_one_commit_merge_into_one_message():
    d = DedupDecider()
    gateway = d.place(keys(1, mid="j@x"), NOTHING)
    assert d.add_recipients(gateway.target, [("to", "a@x")]) == [("to", "a@x")]
    report = d.place(keys(1, mid="j@x"), NOTHING)  # the unwrapped original: the same bytes
    assert report == Placement(EXACT, ("new", 0))
    assert d.evidence_wanted([report.target]) == []  # a message of this commit needs no catalog answer
    assert d.settle(report, [("to", "a@x"), ("bcc", "c@x")], "e2") == (JOURNAL_MERGE, [("bcc", "c@x")], True)
    # the same report again: nothing new any more
    assert d.settle(d.place(keys(1, mid="j@x"), NOTHING), [("bcc", "c@x")], "e2") == (EXACT, [], False)


def test_envelope_of_a_new_mail_keeps_the_decision_new():
    d = DedupDecider()
    placement = d.place(keys(1), NOTHING)
    assert d.settle(placement, [("envelope", "s@x")], "e3") == (NEW, [("envelope", "s@x")], True)


def test_reset_after_a_commit_forgets_the_commit_but_numbers_anew():
    d = DedupDecider()
    d.place(keys(1, mid="a@x"), NOTHING)
    d.reset()
    assert d.new_count == 0
    # after the commit the catalog answers for the message (the caller looks it up)
    assert d.place(keys(1, mid="a@x"), Known(blobs={keys(1).blob_id: 1})) == Placement(EXACT, ("old", 1))
    assert d.place(keys(2), NOTHING) == Placement(NEW, ("new", 0))


def test_every_documented_decision_kind_is_produced():
    """The decisions table of docs/dedup.md, in one sequence of arrivals."""
    d = DedupDecider()
    seen = set()
    seen.add(d.place(keys(1, mid="a@x"), NOTHING).decision)                      # new
    seen.add(d.place(keys(1, mid="a@x"), NOTHING).decision)                      # exact-duplicate
    seen.add(d.place(keys(2, key=1, mid="a@x"), NOTHING).decision)               # duplicate
    seen.add(d.place(keys(3, mid="a@x"), NOTHING).decision)                      # id-conflict
    merge = d.place(keys(1, mid="a@x"), NOTHING)
    seen.add(d.settle(merge, [("bcc", "z@x")], "e")[0])                          # journal-merge
    seen.add(d.place(converted(4, key=1, mid="a@x"), NOTHING).decision)          # converted-twin
    assert seen == set(DECISIONS) == {NEW, EXACT, DUPLICATE, ID_CONFLICT, JOURNAL_MERGE, CONVERTED_TWIN}


def converted(n: int, *, key: int | None = None, mid: str | None = None) -> Keys:
    """Keys of a mail built by a converter (an Outlook item), not received as MIME."""
    k = keys(n, key=key, mid=mid)
    return Keys(k.blob_id, k.dedup_key, k.message_id, converted=True)


def test_a_converted_copy_of_an_original_is_kept_as_its_twin_not_merged():
    d = DedupDecider()
    assert d.place(keys(1, mid="a@x"), NOTHING) == Placement(NEW, ("new", 0))
    # same dedup key (same Message-ID and body) but converted from an Outlook item: both kept, linked
    assert d.place(converted(2, key=1, mid="a@x"), NOTHING) == Placement(CONVERTED_TWIN, ("new", 1), twin_of=("new", 0))
    # another converted copy is a duplicate of the converted one, another original of the original
    assert d.place(converted(3, key=1, mid="a@x"), NOTHING) == Placement(DUPLICATE, ("new", 1))
    assert d.place(keys(4, key=1, mid="a@x"), NOTHING) == Placement(DUPLICATE, ("new", 0))
    assert d.new_count == 2


def test_an_original_arriving_after_its_converted_copy_is_its_twin():
    d = DedupDecider()
    known = Known(converted_keys={keys(1).dedup_key: 5}, mids={"a@x": 5}, converted={5})
    assert d.place(keys(2, key=1, mid="a@x"), known) == Placement(CONVERTED_TWIN, ("new", 0), twin_of=("old", 5))
    # the converted side of the archive is a duplicate for a converted arrival
    assert d.place(converted(3, key=1, mid="a@x"), known) == Placement(DUPLICATE, ("old", 5))


def test_same_message_id_other_content_across_kinds_is_a_twin_not_an_id_conflict():
    d = DedupDecider()
    known = Known(keys={keys(1).dedup_key: 7}, mids={"a@x": 7})
    # converted bodies often differ from the original MIME (RTF, rebuilt parts): the key differs
    assert d.place(converted(2, key=9, mid="a@x"), known) == Placement(CONVERTED_TWIN, ("new", 0), twin_of=("old", 7))
    # within one kind it is still an id-conflict
    assert d.place(keys(3, key=8, mid="a@x"), known) == Placement(ID_CONFLICT, ("new", 1), ("old", 7))
    assert d.place(converted(4, key=6, mid="a@x"), Known(mids={"a@x": 9}, converted={9})).decision == ID_CONFLICT


def test_conversion_of_names_source_kind_and_converter():
    assert conversion_of("pst:mapi2mime/1") == ("pst", "mapi2mime/1")
    assert conversion_of("pst:readpst") == ("pst", "readpst")
    assert conversion_of("imap") is None and conversion_of(None) is None and conversion_of("eml") is None


def test_the_decider_needs_no_catalog():
    """Importing the decider loads neither the catalog store nor DuckDB (keys in, decisions out)."""
    code = ("import sys, toolkit.dedup; bad = [m for m in ('duckdb', 'toolkit.catalog', 'pyarrow') if m in sys.modules];"
            " sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
