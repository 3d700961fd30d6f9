"""The selection filters every exporter shares (docs/cli.md).

A :class:`Filters` value turns the operator's options into one SQL condition
over the catalog plus its parameters, for :func:`toolkit.retrieval.select_messages`
(where ``m`` is ``messages`` and ``p`` is ``packs``). All given filters must
hold (AND); the values of one repeatable filter are alternatives (OR).

* ``since``/``until``: the date the mail shows (``sent_date``), or its
  internal date when it has none. A date without a time covers the whole
  day: ``until=2019-12-31`` includes that day. Times without a zone are UTC.
* ``addresses``: the sender or any recipient of any kind (to, cc, bcc —
  also Bcc recipients learned from a journal report — and envelope),
  compared case-insensitively.
* ``domains``: likewise, the part after ``@``; a domain also matches its
  subdomains (``example.com`` matches ``a@mail.example.com``).
* ``folders``: a source folder from any sighting (``INBOX``,
  ``Archive/2019``), and its subfolders.
* ``spam``: True only spam, False no spam, None both.
* ``scope``: what one person may see (``--as-user``/``--as-revisor``), a
  :class:`toolkit.catalog.directory.Scope` the store built from the directory:
  its SQL condition is ANDed with the rest, so the catalog query itself
  selects only mail in scope. ``describe()`` records it with the directory
  version it came from (the export manifests hold that).
* ``where``: an SQL condition, ANDed with the rest. It must be exactly one
  expression (``toolkit.catalog.user_sql.check_condition``) and runs in the catalog's
  restricted read session: it can read the catalog, nothing else.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from toolkit.archive import Archive
from toolkit.errors import UsageError
from toolkit.retrieval import StoredMessage, select_messages, selection_totals
from toolkit.catalog.directory import Scope
from toolkit.catalog.user_sql import check_condition

_DATE_EXPR = "coalesce(m.sent_date, m.internal_date)"


def parse_when(text: str) -> tuple[dt.datetime, bool]:
    """``2019-01-31`` or an ISO date-time → (aware datetime, was it a bare date?)."""
    text = text.strip()
    try:
        if len(text) == 10:
            d = dt.date.fromisoformat(text)
            return dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc), True
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value, False


def _norm_domain(d: str) -> str:
    d = d.strip().lower().lstrip("@").rstrip(".")
    if not d or "@" in d or " " in d:
        raise UsageError(f"{d!r} is not a mail domain (e.g. example.com)")
    return d


def _norm_address(a: str) -> str:
    a = a.strip().lower()
    if a.startswith("<") and a.endswith(">"):
        a = a[1:-1]
    if not a or "@" not in a:
        raise UsageError(f"{a!r} is not a mail address (e.g. anna@example.com)")
    return a


def _norm_folder(f: str) -> str:
    f = f.strip().strip("/")
    if not f:
        raise UsageError("--folder needs a folder name (e.g. INBOX or Archive/2019)")
    return f


@dataclass(frozen=True)
class Filters:
    since: str | None = None
    until: str | None = None
    addresses: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    spam: bool | None = None
    where: str | None = None
    scope: Scope | None = None

    def sql(self) -> tuple[str | None, list]:
        """(condition or None, parameters) for ``select_messages``; raises UsageError on bad values."""
        parts: list[str] = []
        params: list = []
        since = parse_when(self.since)[0] if self.since else None
        if since is not None:
            parts.append(f"{_DATE_EXPR} >= ?")
            params.append(since)
        if self.until:
            value, bare = parse_when(self.until)
            if since is not None and since > value:
                raise UsageError(f"the start date {self.since} lies after the end date {self.until}: no mail can "
                                 "match; swapped?")
            if bare:
                parts.append(f"{_DATE_EXPR} < ?")
                params.append(value + dt.timedelta(days=1))
            else:
                parts.append(f"{_DATE_EXPR} <= ?")
                params.append(value)
        if self.addresses:
            addrs = sorted({_norm_address(a) for a in self.addresses})
            parts.append(
                "(lower(m.from_addr) IN (SELECT unnest(?::VARCHAR[])) OR m.msg_id IN "
                "(SELECT r.msg_id FROM recipients r WHERE lower(r.address) IN (SELECT unnest(?::VARCHAR[]))))"
            )
            params += [addrs, addrs]
        if self.domains:
            doms = sorted({_norm_domain(d) for d in self.domains})
            match = ("list_bool_or([ends_with(lower({col}), '@' || d) OR ends_with(lower({col}), '.' || d) "
                     "FOR d IN ?::VARCHAR[]])")
            parts.append(
                f"(coalesce({match.format(col='m.from_addr')}, false) OR m.msg_id IN "
                f"(SELECT r.msg_id FROM recipients r WHERE {match.format(col='r.address')}))"
            )
            params += [doms, doms]
        if self.folders:
            folders = sorted({_norm_folder(f) for f in self.folders})
            parts.append(
                "m.msg_id IN (SELECT s.msg_id FROM sightings s WHERE s.folder IN (SELECT unnest(?::VARCHAR[])) "
                "OR list_bool_or([starts_with(s.folder, f || '/') FOR f IN ?::VARCHAR[]]))"
            )
            params += [folders, folders]
        if self.spam is not None:
            parts.append("m.spam = ?")
            params.append(self.spam)
        if self.scope is not None:
            parts.append(self.scope.condition)
            params += list(self.scope.params)
        if self.where is not None:
            parts.append(check_condition(self.where))
        if not parts:
            return None, []
        return " AND ".join(parts), params

    def folder_wanted(self, folder: str | None) -> bool:
        """Does a placement in ``folder`` belong to the export (always, without --folder)?"""
        if not self.folders:
            return True
        if not folder:
            return False
        return any(folder == f or folder.startswith(f + "/") for f in (_norm_folder(x) for x in self.folders))

    def describe(self) -> dict:
        """The filters as given, for manifests and summaries."""
        out: dict = {}
        for key in ("since", "until", "where"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        for key in ("addresses", "domains", "folders"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.spam is not None:
            out["spam"] = self.spam
        if self.scope is not None:
            out["scope"] = self.scope.describe()
        return out


def select(archive: Archive, filters: Filters | None = None) -> list[StoredMessage]:
    """The messages the filters select, in pack order (see ``select_messages``)."""
    where, params = (filters or Filters()).sql()
    return select_messages(archive, where, params)


def dry_run(archive: Archive, filters: Filters | None = None) -> dict:
    """What an export with these filters would take: ``{"count", "bytes"}`` (nothing is written)."""
    where, params = (filters or Filters()).sql()
    count, nbytes = selection_totals(archive, where, params)  # counted in the catalog: no object per message (K8)
    return {"count": count, "bytes": nbytes, "dry_run": True}
