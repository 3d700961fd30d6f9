"""Which dates a mail carries are believable (docs/formats.md "Dates of a mail", docs/retention.md
"The retention clock").

A date is plausible from 1 January 1971 (no Internet mail is older: the first network mail was
sent in late 1971, so a date before it -- the zero time stamp 1 January 1970 among them -- is a
broken clock or a forgery) up to one day after a reference time (the import for the catalog's
``archived_at``; a day covers any time zone and a sender's clock a little fast). The one rule
serves the ``date-implausible`` flag of the header scan and the retention clock.
"""
from __future__ import annotations

import datetime as dt

#: the earliest plausible date of a mail
EARLIEST = dt.datetime(1971, 1, 1, tzinfo=dt.timezone.utc)
#: how far after the reference time (the import) a date may lie and still be plausible
AHEAD = dt.timedelta(days=1)


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def plausible(t: dt.datetime | None, reference: dt.datetime) -> bool:
    """Whether ``t`` is a believable date of a mail known to exist at ``reference`` (None: no date, not plausible)."""
    return t is not None and EARLIEST <= _aware(t) <= _aware(reference) + AHEAD
