"""Which mails are deletable, and from when: the pure rules of retention (docs/retention.md).

A policy keeps mail N years from its **retention clock** (:func:`retention_clock`): the sent
date when plausible, else the source's internal date when plausible, else the time it was archived
(plausible: toolkit/plausible_dates.py). Several policies may cover one mail (its domain, a folder it was seen in, a
user whose mail it is): the **longest keep wins**, so adding a policy can only keep a
mail longer, never make it deletable sooner. A mail no policy covers is never
deletable; nor is a mail with no date at all (not even the time it was archived). A legal hold in force on a mail blocks its
deletion whatever the policies say.

The catalog side (:mod:`toolkit.catalog.retention`) works out which policies and holds
cover each mail; this module decides, with no SQL and no clock of its own.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .plausible_dates import plausible

#: the states of a mail under retention, in the order a report lists them
HELD, NO_POLICY, UNDATED, KEPT, DELETABLE = "held", "no-policy", "undated", "kept", "deletable"


@dataclass(frozen=True)
class Policy:
    scope_kind: str   # "domain", "folder" or "user"
    scope_value: str
    years: int

    def label(self) -> str:
        return f"{self.scope_kind} {self.scope_value} ({self.years} years)"


@dataclass(frozen=True)
class MailFacts:
    msg_id: int
    message_id: str | None
    sent_date: dt.datetime | None
    internal_date: dt.datetime | None
    policies: tuple[Policy, ...] = ()
    holds: tuple[int, ...] = ()   # hold_ids of the holds in force on the mail
    archived_at: dt.datetime | None = None  # when the archive took the mail in (catalog ``archived_at``)


@dataclass(frozen=True)
class Decision:
    msg_id: int
    message_id: str | None
    state: str                         # one of HELD, NO_POLICY, UNDATED, KEPT, DELETABLE
    base_date: dt.datetime | None      # the retention clock: the date the keep runs from
    date_kind: str | None              # "sent", "internal" or "archived"
    deletable_from: dt.datetime | None  # base date + the longest keep (None: never, under the current policies)
    policy: Policy | None              # the policy that decides (the longest keep)
    holds: tuple[int, ...] = field(default=())

    def as_dict(self) -> dict:
        return {"msg_id": self.msg_id, "message_id": self.message_id, "state": self.state,
                "date": self.base_date, "date_kind": self.date_kind, "deletable_from": self.deletable_from,
                "policy": None if self.policy is None else {"scope": self.policy.scope_kind,
                                                            "value": self.policy.scope_value,
                                                            "years": self.policy.years},
                "holds": list(self.holds)}


def add_years(t: dt.datetime, years: int) -> dt.datetime:
    """``t`` plus whole calendar years; 29 February becomes 28 February in a year that has none."""
    try:
        return t.replace(year=t.year + years)
    except ValueError:
        return t.replace(year=t.year + years, day=28)


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def governing_policy(policies) -> Policy | None:
    """The policy that decides among those covering one mail: the longest keep (ties: the first by scope)."""
    ranked = sorted(policies, key=lambda p: (-p.years, p.scope_kind, p.scope_value))
    return ranked[0] if ranked else None


def retention_clock(mail: MailFacts, now: dt.datetime) -> tuple[dt.datetime | None, str | None]:
    """The date a mail's keep runs from, and which date it is (docs/retention.md "The retention clock").

    The sent date when it is plausible; else the internal date (IMAP INTERNALDATE, mbox From_ line,
    Maildir or file time) when plausible; else the time the mail was archived. Plausible: from 1971 up
    to a day after the mail was archived (``now`` when that is unknown). A forged ``Date: 1900`` thus
    cannot make a mail deletable at once, nor a ``Date: 2999`` keep it forever; and the fallbacks only
    ever lie later than the mail's real sending (it was received, then archived, after it was sent), so
    a keep counted from them never ends before the law intends."""
    archived = _aware(mail.archived_at)
    reference = archived if archived is not None else _aware(now)
    for t, kind in ((mail.sent_date, "sent"), (mail.internal_date, "internal")):
        if plausible(t, reference):
            return _aware(t), kind
    return (archived, "archived") if archived is not None else (None, None)


def decide(mail: MailFacts, now: dt.datetime) -> Decision:
    """The state of one mail at ``now``: held, not covered by any policy, undated, kept until a date, or deletable."""
    base, kind = retention_clock(mail, now)
    policy = governing_policy(mail.policies)
    until = add_years(base, policy.years) if (policy is not None and base is not None) else None
    if mail.holds:
        state = HELD
    elif policy is None:
        state = NO_POLICY
    elif base is None:
        state = UNDATED
    else:
        state = DELETABLE if until <= _aware(now) else KEPT
    return Decision(mail.msg_id, mail.message_id, state, base, kind, until, policy, tuple(sorted(mail.holds)))


def decide_all(mails, now: dt.datetime) -> list[Decision]:
    return [decide(m, now) for m in mails]


@dataclass(frozen=True)
class StateSummary:
    """What a refusal names of the mails in one state: how many, the first few (msg_id, Message-ID) in order,
    the holds on them, the policies that decide them, and the latest date one of them becomes deletable."""
    count: int
    first: list[tuple[int, str | None]]
    holds: frozenset[int] = frozenset()
    policies: frozenset[Policy] = frozenset()
    last: dt.datetime | None = None


def summarise(decisions, show: int = 5) -> dict[str, StateSummary]:
    """Per state but deletable, the :class:`StateSummary` of ``decisions`` (in their order)."""
    acc: dict[str, list] = {}
    for d in decisions:
        if d.state == DELETABLE:
            continue
        a = acc.setdefault(d.state, [0, [], set(), set(), None])
        a[0] += 1
        if len(a[1]) <= show:
            a[1].append((d.msg_id, d.message_id))
        a[2].update(d.holds)
        if d.policy is not None:
            a[3].add(d.policy)
        if d.deletable_from is not None and (a[4] is None or d.deletable_from > a[4]):
            a[4] = d.deletable_from
    return {k: StateSummary(n, first, frozenset(h), frozenset(p), last) for k, (n, first, h, p, last) in acc.items()}


def refusal(decisions, show: int = 5) -> str | None:
    """Why a deletion of exactly these mails must be refused (None: every one is deletable now).

    Names, per reason, how many mails, the first few Message-IDs (msg ids when a mail has none), and
    which holds or policies stand in the way."""
    return refusal_from(summarise(decisions, show), show)


def refusal_from(by_state: dict[str, StateSummary], show: int = 5) -> str | None:
    """:func:`refusal` from the :class:`StateSummary` of each state (as :func:`summarise` or the catalog's SQL
    makes them)."""
    parts = []
    for state in (HELD, KEPT, NO_POLICY, UNDATED):
        s = by_state.get(state)
        if not s or not s.count:
            continue
        first = ", ".join(mid or f"msg {m}" for m, mid in s.first[:show]) + (", …" if s.count > show else "")
        if state == HELD:
            why = f"under legal hold {', '.join(f'#{h}' for h in sorted(s.holds))}"
        elif state == KEPT:
            pols = sorted({p.label() for p in s.policies})
            why = f"kept by policy {'; '.join(pols)} (the last one until {s.last:%Y-%m-%d})"
        elif state == NO_POLICY:
            why = "covered by no retention policy (nothing is deletable without one)"
        else:
            why = "with no date to count the keep from (the keep cannot be computed)"
        parts.append(f"{s.count} mail{'s' if s.count != 1 else ''} {why}: {first}")
    return "; ".join(parts) or None
