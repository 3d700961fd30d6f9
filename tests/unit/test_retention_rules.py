"""The pure retention rules of toolkit/retention.py (docs/retention.md): the longest keep wins, a hold blocks,
no policy or no date means never deletable, and the sent date comes before the internal date."""
from __future__ import annotations

import datetime as dt

from toolkit.retention import (DELETABLE, HELD, KEPT, NO_POLICY, UNDATED, MailFacts, Policy, add_years, decide,
                               refusal)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 6, 1, tzinfo=UTC)


def mail(sent=None, internal=None, policies=(), holds=(), msg_id=1, message_id="a@x"):
    return MailFacts(msg_id, message_id, sent, internal, tuple(policies), tuple(holds))


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
