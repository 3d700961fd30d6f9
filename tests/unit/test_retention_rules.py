"""The pure retention rules of toolkit/retention.py (docs/retention.md): the longest keep wins, a hold blocks,
no policy or no date means never deletable, and the sent date comes before the internal date."""
from __future__ import annotations

import datetime as dt

from toolkit.retention import (DELETABLE, HELD, KEPT, NO_POLICY, UNDATED, MailFacts, Policy, add_years, decide,
                               refusal, retention_clock)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 6, 1, tzinfo=UTC)


def mail(sent=None, internal=None, policies=(), holds=(), msg_id=1, message_id="a@x", archived=None):
    return MailFacts(msg_id, message_id, sent, internal, tuple(policies), tuple(holds), archived)


def test_longest_keep_wins_whatever_the_order():
    sent = dt.datetime(2018, 3, 1, 12, tzinfo=UTC)
    short, long_ = Policy("domain", "example.com", 3), Policy("folder", "Archive", 10)
    for order in ([short, long_], [long_, short]):
        d = decide(mail(sent, policies=order), NOW)
        assert d.policy == long_ and d.state == KEPT
        assert d.deletable_from == dt.datetime(2028, 3, 1, 12, tzinfo=UTC)
    assert decide(mail(sent, policies=[short]), NOW).state == DELETABLE


def test_sent_date_first_then_internal_date():
    p = [Policy("user", "anna", 5)]
    both = decide(mail(dt.datetime(2019, 1, 1, tzinfo=UTC), dt.datetime(2022, 1, 1, tzinfo=UTC), p), NOW)
    assert (both.date_kind, both.deletable_from.year, both.state) == ("sent", 2024, DELETABLE)
    only_internal = decide(mail(None, dt.datetime(2022, 1, 1, tzinfo=UTC), p), NOW)
    assert (only_internal.date_kind, only_internal.deletable_from.year, only_internal.state) == ("internal", 2027, KEPT)
    assert decide(mail(None, None, p), NOW).state == UNDATED


def test_no_policy_is_never_deletable_and_a_hold_beats_any_policy():
    old = dt.datetime(1990, 1, 1, tzinfo=UTC)
    assert decide(mail(old), NOW).state == NO_POLICY
    held = decide(mail(old, policies=[Policy("domain", "x.org", 1)], holds=[4]), NOW)
    assert held.state == HELD and held.holds == (4,)


def test_leap_day_and_the_exact_moment():
    leap = dt.datetime(2020, 2, 29, 8, tzinfo=UTC)
    assert add_years(leap, 1) == dt.datetime(2021, 2, 28, 8, tzinfo=UTC)
    p = [Policy("domain", "x.org", 2)]
    at = dt.datetime(2022, 2, 28, 8, tzinfo=UTC)
    assert decide(mail(leap, policies=p), at).state == DELETABLE
    assert decide(mail(leap, policies=p), at - dt.timedelta(microseconds=1)).state == KEPT


def test_refusal_names_count_ids_holds_and_policies():
    p = Policy("folder", "2019", 30)
    ds = [decide(mail(dt.datetime(2019, 1, 1, tzinfo=UTC), policies=[p], msg_id=i, message_id=f"m{i}@x"), NOW)
          for i in range(1, 8)]
    ds.append(decide(mail(dt.datetime(2010, 1, 1, tzinfo=UTC), policies=[p], holds=[2], msg_id=9, message_id=None), NOW))
    why = refusal(ds)
    assert "7 mails kept by policy folder 2019 (30 years)" in why and "m1@x, m2@x, m3@x, m4@x, m5@x, …" in why
    assert "m6@x" not in why
    assert "1 mail under legal hold #2: msg 9" in why
    ok = decide(mail(dt.datetime(2010, 1, 1, tzinfo=UTC), policies=[Policy("domain", "x", 1)]), NOW)
    assert refusal([ok]) is None


# -- J9: the retention clock skips implausible dates (docs/retention.md "The retention clock") ----------------
ARCHIVED = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
INTERNAL = dt.datetime(2024, 5, 6, 7, 0, 0, tzinfo=UTC)


def test_j9_implausible_sent_date_gives_way_to_the_internal_date_then_the_archive_time():
    p = [Policy("domain", "example.com", 10)]
    past, future = dt.datetime(1900, 1, 1, tzinfo=UTC), dt.datetime(2999, 1, 1, tzinfo=UTC)
    for sent in (past, future, dt.datetime(1970, 1, 1, tzinfo=UTC), ARCHIVED + dt.timedelta(days=1, seconds=1)):
        d = decide(mail(sent, INTERNAL, p, archived=ARCHIVED), NOW)
        assert (d.base_date, d.date_kind, d.state) == (INTERNAL, "internal", KEPT), sent
        assert d.deletable_from == dt.datetime(2034, 5, 6, 7, tzinfo=UTC)
        # the 1900 mail is not deletable at once, the 2999 one not kept forever: deletable 10 years on
        assert decide(mail(sent, INTERNAL, p, archived=ARCHIVED), dt.datetime(2034, 5, 6, 7, tzinfo=UTC)).state == DELETABLE
        # an implausible internal date too (a forged From_ line): the time the mail was archived
        for internal in (None, past, future):
            assert retention_clock(mail(sent, internal, p, archived=ARCHIVED), NOW) == (ARCHIVED, "archived")
    # no date at all: the archive time, so not undated once the catalog knows it
    assert decide(mail(None, None, p, archived=ARCHIVED), NOW).date_kind == "archived"


def test_j9_a_plausible_sent_date_counts_as_before_even_next_to_a_later_internal_date():
    p = [Policy("domain", "example.com", 5)]
    for sent in (dt.datetime(1971, 1, 1, tzinfo=UTC), dt.datetime(2010, 3, 4, tzinfo=UTC),
                 ARCHIVED + dt.timedelta(hours=23)):  # a sender's clock a little fast is still believed
        d = decide(mail(sent, INTERNAL, p, archived=ARCHIVED), NOW)
        assert (d.base_date, d.date_kind, d.deletable_from) == (sent, "sent", add_years(sent, 5))
    # without the archive time (a library call) ``now`` bounds the future
    assert retention_clock(mail(dt.datetime(2026, 6, 3, tzinfo=UTC), INTERNAL), NOW) == (INTERNAL, "internal")
