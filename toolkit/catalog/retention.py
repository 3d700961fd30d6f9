"""The reads and writes of retention and approved deletion (docs/retention.md; tables of migration
``m0060_retention_deletion``): policies, legal holds, deletion requests and their frozen items.

What a policy or hold covers is worked out here in SQL, over ``messages m``, with the
directory's address, domain and folder conditions (:mod:`.directory`):

* a policy or hold on a **domain** covers every mail from or to an address of the domain (for
  a local domain, of any of its aliases too);
* on a **folder**: every mail seen in that source folder or one of its subfolders;
* on a **user**: the user's scope (their addresses and the assigned addresses of their groups);
* a hold on an **address**: every mail from or to it (under every alias of a local domain);
* a hold on a **query**: the mails its restricted WHERE selects; it runs in the restricted
  session (:func:`query_hold_members`), so the caller hands its result in.

The decision itself (longest keep wins; a hold blocks) is :mod:`toolkit.retention`'s.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Iterator

import duckdb

from ..errors import CatalogMemoryLimitError, NothingSelectedError, UsageError
from ..plausible_dates import AHEAD, EARLIEST
from ..process_guard import give_back_freed_memory
from ..retention import Decision, Policy, StateSummary, refusal_from
from . import directory
from .id_tables import registered_table
from .events import log_event, log_stamped_event

if TYPE_CHECKING:  # pyarrow is loaded where an Arrow table is made (a command that only lists holds does not)
    import pyarrow as pa

POLICY_KINDS = ("domain", "folder", "user")
#: DuckDB's memory for the sessions of deletion requests, approvals and the purge (:meth:`toolkit.catalog.
#: connection.Catalog.use_memory_limit`, the import's too): the coverage of the checked mails, their decisions,
#: a request's frozen items; what does not fit goes to the catalog's encrypted temp directory. Without it DuckDB
#: kept the blocks it read: a request of 250,000 of a million mails peaked at 441 MB with 128 MB, 351 MB with this.
MEMORY_LIMIT = 64 << 20
#: the report's: its sort of a million decisions failed to pin a block under 64 MB; ~300 MB peak with this,
#: ~410 MB with no limit (bench/RESULTS.md)
REPORT_MEMORY_LIMIT = 128 << 20
HOLD_KINDS = ("user", "address", "query")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# -- what a scope covers ----------------------------------------------------------------------------
def _scope_condition(con, kind: str, value: str) -> tuple[str, list]:
    if kind == "domain":
        fam = sorted(directory.domain_family(directory.current(con), value))
        return directory._DOMAIN_CONDITION, [fam, fam]
    if kind == "folder":
        return directory._FOLDER_CONDITION, [[value], [value]]
    if kind == "address":
        addrs = sorted(directory.expand(directory.current(con), [value]))
        return directory._ADDRESS_CONDITION, [addrs, addrs]
    if kind == "user":
        s = directory.user_scope(con, value)  # a UsageError when the user is not in the directory
        return s.condition, list(s.params)
    raise ValueError(f"unknown scope kind {kind!r}")


#: what a user types into ``mailarchive sql`` to list what the archive holds, per scope kind (named in the warning of a
#: policy or hold that covers no mail yet)
LIST_SQL = {"domain": "SELECT DISTINCT split_part(from_addr, '@', 2) FROM messages",
            "folder": "SELECT DISTINCT folder FROM sightings",
            "address": "SELECT DISTINCT from_addr FROM messages",
            "user": "SELECT * FROM users"}


def scope_count(con, kind: str, value: str) -> int:
    """How many archived mails a policy or hold on ``kind`` ``value`` covers now (0: a typo, or mail to come)."""
    cond, params = _scope_condition(con, kind, value)
    return con.execute(f"SELECT count(*) FROM messages m WHERE {cond}", params).fetchone()[0]


# -- policies ---------------------------------------------------------------------------------------
def policies(con) -> list[dict]:
    rows = con.execute("SELECT scope_kind, scope_value, years, set_by, set_at FROM retention_policies "
                       "ORDER BY scope_kind, scope_value").fetchall()
    return [{"scope": k, "value": v, "years": y, "set_by": b, "set_at": t} for k, v, y, b, t in rows]


def set_policy(con, kind: str, value: str, years: int, actor: str) -> dict:
    """Set (or replace) the policy of one scope; an event records who, the scope, and the keep before and after."""
    if kind not in POLICY_KINDS:
        raise ValueError(f"unknown policy scope {kind!r}")
    if years < 0:
        raise UsageError(f"a policy keeps mail 0 years or more, not {years}")
    if kind == "user":
        directory.user_scope(con, value)  # the user must exist
    before = con.execute("SELECT years FROM retention_policies WHERE scope_kind = ? AND scope_value = ?",
                         [kind, value]).fetchone()
    con.execute("DELETE FROM retention_policies WHERE scope_kind = ? AND scope_value = ?", [kind, value])
    con.execute("INSERT INTO retention_policies VALUES (?, ?, ?, ?, ?)", [kind, value, years, actor, _now()])
    detail = {"actor": actor, "scope": kind, "value": value, "years": years,
              "years_before": before[0] if before else None}
    log_event(con, "retention-policy-set", detail)
    return detail


# -- holds ------------------------------------------------------------------------------------------
def holds(con, include_released: bool = False) -> list[dict]:
    rows = con.execute(
        "SELECT hold_id, kind, value, reason, set_by, set_at, released_by, released_at FROM legal_holds "
        + ("" if include_released else "WHERE released_at IS NULL ") + "ORDER BY hold_id").fetchall()
    keys = ("hold_id", "kind", "value", "reason", "set_by", "set_at", "released_by", "released_at")
    return [dict(zip(keys, r)) for r in rows]


def add_hold(con, kind: str, value: str, reason: str, actor: str) -> dict:
    if kind not in HOLD_KINDS:
        raise ValueError(f"unknown hold kind {kind!r}")
    if kind == "user":
        directory.user_scope(con, value)
    hid = con.execute("SELECT coalesce(max(hold_id), 0) + 1 FROM legal_holds").fetchone()[0]
    con.execute("INSERT INTO legal_holds (hold_id, kind, value, reason, set_by, set_at) VALUES (?, ?, ?, ?, ?, ?)",
                [hid, kind, value, reason, actor, _now()])
    detail = {"hold_id": hid, "actor": actor, "kind": kind, "value": value, "reason": reason}
    log_event(con, "legal-hold-added", detail)
    return detail


def release_hold(con, hold_id: int, actor: str) -> dict:
    row = con.execute("SELECT kind, value, released_at FROM legal_holds WHERE hold_id = ?", [hold_id]).fetchone()
    if row is None:
        raise UsageError(f"there is no legal hold #{hold_id}")
    if row[2] is not None:
        raise UsageError(f"legal hold #{hold_id} was already released at {row[2]:%Y-%m-%d %H:%M}")
    con.execute("UPDATE legal_holds SET released_by = ?, released_at = ? WHERE hold_id = ?", [actor, _now(), hold_id])
    detail = {"hold_id": hold_id, "actor": actor, "kind": row[0], "value": row[1]}
    log_event(con, "legal-hold-released", detail)
    return detail


def query_hold_members(session, hold_rows: list[dict]) -> dict[int, pa.ChunkedArray]:
    """hold_id → msg_ids (an Arrow column) of every query hold in ``hold_rows``, run in the restricted
    ``querying()`` session."""
    from .user_sql import check_condition

    out = {}
    for h in hold_rows:
        if h["kind"] != "query":
            continue
        cond = check_condition(h["value"], f"the query of legal hold #{h['hold_id']}")
        try:
            out[h["hold_id"]] = session.execute(f"SELECT m.msg_id FROM messages m WHERE {cond}").to_arrow_table().column(0)
        except duckdb.Error as exc:
            raise UsageError(f"the query of legal hold #{h['hold_id']} fails, so what it holds is unknown: "
                             f"{str(exc).strip().splitlines()[0]}") from None
    return out


def selected_ids(session, where: str) -> pa.ChunkedArray:
    """msg_ids the checked condition ``where`` selects, in the restricted session, as an Arrow column."""
    try:
        return session.execute(f"SELECT m.msg_id FROM messages m WHERE {where} ORDER BY m.msg_id").to_arrow_table().column(0)
    except duckdb.Error as exc:
        raise UsageError(f"the condition fails: {str(exc).strip().splitlines()[0]}") from None


# -- what policies and holds cover, as DuckDB temp tables --------------------------------------------
_COVER, _GOV, _RANK, _PAIRS, _HELD, _IDS, _WITHIN = (
    f"temp.retention_{n}" for n in ("cover", "gov", "rank", "pairs", "held", "ids", "within"))


def _ranked_policies(con) -> list[Policy]:
    """The policies, the one that decides first: longest keep, ties by scope (:func:`toolkit.retention.governing_policy`)."""
    return sorted((Policy(p["scope"], p["value"], p["years"]) for p in policies(con)),
                  key=lambda p: (-p.years, p.scope_kind, p.scope_value))


def _id_table(ids) -> pa.Table:
    import pyarrow as pa

    return pa.table({"msg_id": pa.array(ids, pa.int64()) if not isinstance(ids, (pa.Array, pa.ChunkedArray))
                     else ids.cast(pa.int64())})


@contextlib.contextmanager
def coverage(con, query_held: dict, within: str | None = None) -> Iterator[None]:
    """For the session: which policy decides each covered mail and which holds are on it, as two temp tables
    (``retention_gov``: msg_id, rank of the deciding policy in ``retention_rank``; ``retention_held``: msg_id,
    sorted hold ids), worked out by set operations in DuckDB, never a Python object per mail. ``query_held``:
    hold_id → msg_ids of each query hold (:func:`query_hold_members`). ``within``: SQL selecting the msg_ids
    that matter (None: every mail); the coverage of the others is not worked out."""
    only = "" if within is None else f" AND m.msg_id IN (SELECT msg_id FROM {_WITHIN})"
    # one DuckDB thread: under the session's memory limit two threads each pinning their sort and join blocks ran
    # out of it (the report of a catalog after a purge of 250,000 of a million mails); one spills what it must
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    con.execute("SET threads = 1")
    try:
        if within is not None:  # materialised first: nested in each scope's condition it took DuckDB more memory
            con.execute(f"CREATE OR REPLACE TEMP TABLE {_WITHIN} AS SELECT DISTINCT msg_id FROM ({within})")
        for t, cols in ((_RANK, "rank INTEGER, scope_kind VARCHAR, scope_value VARCHAR, years INTEGER"),
                        (_COVER, "msg_id BIGINT, rank INTEGER"), (_PAIRS, "msg_id BIGINT, hold_id BIGINT")):
            con.execute(f"CREATE OR REPLACE TEMP TABLE {t} ({cols})")
        for rank, p in enumerate(_ranked_policies(con)):
            con.execute(f"INSERT INTO {_RANK} VALUES (?, ?, ?, ?)", [rank, p.scope_kind, p.scope_value, p.years])
            try:
                cond, params = _scope_condition(con, p.scope_kind, p.scope_value)
            except UsageError:  # a user no longer in the directory: the policy covers nothing (nothing deletable)
                continue
            con.execute(f"INSERT INTO {_COVER} SELECT m.msg_id, {rank} FROM messages m WHERE ({cond}){only}", params)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_GOV} AS SELECT msg_id, min(rank) AS rank FROM {_COVER} GROUP BY msg_id")
        con.execute(f"DROP TABLE {_COVER}")
        for h in holds(con):
            if h["kind"] == "query":
                if h["hold_id"] not in query_held:
                    raise ValueError(f"legal hold #{h['hold_id']} (a query) was not evaluated")
                with registered_table(con, "retention_query_hold", _id_table(query_held[h["hold_id"]])) as name:
                    con.execute(f"INSERT INTO {_PAIRS} SELECT DISTINCT msg_id, ? FROM {name}", [h["hold_id"]])
                continue
            try:
                cond, params = _scope_condition(con, h["kind"], h["value"])
            except UsageError as exc:
                raise UsageError(f"legal hold #{h['hold_id']} cannot be resolved ({exc}); "
                                 "nothing can be decided while it stands") from None
            con.execute(f"INSERT INTO {_PAIRS} SELECT m.msg_id, ? FROM messages m WHERE ({cond}){only}",
                        [h["hold_id"]] + params)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_HELD} AS SELECT msg_id, list(hold_id ORDER BY hold_id) AS holds "
                    f"FROM {_PAIRS} GROUP BY msg_id")
        con.execute(f"DROP TABLE {_PAIRS}")
        give_back_freed_memory()  # what the scans of messages and recipients freed (their results are in the tables)
        yield
    except duckdb.OutOfMemoryException as exc:
        raise CatalogMemoryLimitError(
            f"retention's work in the catalog needed more memory than this command gives DuckDB "
            f"({str(exc).strip().splitlines()[0]}); this step changed nothing. Report it (docs/retention.md "
            "\"At scale\")") from None
    finally:
        for t in (_COVER, _PAIRS, _GOV, _HELD, _RANK, _IDS, _WITHIN):
            with contextlib.suppress(duckdb.Error):  # an aborted transaction drops them itself
                con.execute(f"DROP TABLE IF EXISTS {t}")
        with contextlib.suppress(duckdb.Error):
            con.execute(f"SET threads = {int(threads)}")


def _plausible(col: str) -> str:
    """:func:`toolkit.plausible_dates.plausible` in SQL: from EARLIEST up to AHEAD after the mail was archived."""
    return (f"({col} IS NOT NULL AND {col} >= TIMESTAMPTZ '{EARLIEST.isoformat()}' AND epoch_us({col}) <= "
            f"epoch_us(coalesce(m.archived_at, c.now)) + {AHEAD // dt.timedelta(microseconds=1)})")


#: the decision of every mail of ``ids`` (a relation of msg_ids) at ``c.now``: :func:`toolkit.retention.decide` in
#: SQL (the retention clock, the longest keep, held / no-policy / undated / kept / deletable), pinned to it by
#: tests/unit/test_retention_sql.py
_DECISIONS = """
WITH c AS (SELECT ?::TIMESTAMPTZ AS now),
f AS (
  SELECT m.msg_id, m.message_id, h.holds, r.scope_kind, r.scope_value, r.years,
         CASE WHEN {sent} THEN m.sent_date WHEN {internal} THEN m.internal_date ELSE m.archived_at END AS base,
         CASE WHEN {sent} THEN 'sent' WHEN {internal} THEN 'internal'
              WHEN m.archived_at IS NOT NULL THEN 'archived' END AS date_kind, c.now
  FROM (SELECT DISTINCT msg_id FROM {ids}) i JOIN messages m USING (msg_id) CROSS JOIN c
  LEFT JOIN {gov} g USING (msg_id) LEFT JOIN {rank} r ON r.rank = g.rank LEFT JOIN {held} h USING (msg_id)),
d AS (SELECT *, base + to_years(years) AS until FROM f)
SELECT msg_id, message_id,
       CASE WHEN holds IS NOT NULL THEN 'held' WHEN years IS NULL THEN 'no-policy' WHEN base IS NULL THEN 'undated'
            WHEN until <= now THEN 'deletable' ELSE 'kept' END AS state,
       base, date_kind, until, scope_kind, scope_value, years, coalesce(holds, []::BIGINT[]) AS holds
FROM d"""


def _decisions(ids: str) -> str:
    return _DECISIONS.format(sent=_plausible("m.sent_date"), internal=_plausible("m.internal_date"), ids=ids,
                             gov=_GOV, rank=_RANK, held=_HELD)


@contextlib.contextmanager
def _ids(con, msg_ids) -> Iterator[str]:
    """``msg_ids`` (a list, a pyarrow array, or SQL text selecting msg_id) as a relation for :func:`_decisions`."""
    if isinstance(msg_ids, str):
        yield f"({msg_ids})"
        return
    with registered_table(con, "retention_ids_given", _id_table(msg_ids)) as name:
        yield name


def _decision(row) -> Decision:
    msg_id, mid, state, base, kind, until, sk, sv, years, hs = row
    return Decision(msg_id, mid, state, base, kind, until, None if years is None else Policy(sk, sv, years), tuple(hs))


PAGE = 2_000


def decisions(con, msg_ids, now: dt.datetime, order: str = "msg_id") -> Iterator[Decision]:
    """The decisions of ``msg_ids`` at ``now`` (inside :func:`coverage`), a page at a time, by ``order``."""
    with _ids(con, msg_ids) as ids:
        cur = con.execute(f"SELECT * FROM ({_decisions(ids)}) ORDER BY {order}", [now])
        while True:
            page = cur.fetchmany(PAGE)
            if not page:
                return
            yield from (_decision(r) for r in page)


def _summaries(con, msg_ids, now: dt.datetime, show: int) -> dict[str, StateSummary]:
    """Per state but deletable: what :func:`toolkit.retention.refusal` names, aggregated in DuckDB."""
    with _ids(con, msg_ids) as ids:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_IDS} AS SELECT * FROM ({_decisions(ids)}) WHERE state <> 'deletable'",
                    [now])
    out = {}
    for state, n, last in con.execute(f"SELECT state, count(*), max(until) FROM {_IDS} GROUP BY state").fetchall():
        first = con.execute(f"SELECT msg_id, message_id FROM {_IDS} WHERE state = ? ORDER BY msg_id LIMIT ?",
                            [state, show + 1]).fetchall()
        hs = [r[0] for r in con.execute(f"SELECT DISTINCT unnest(holds) FROM {_IDS} WHERE state = ?", [state]).fetchall()]
        pols = [Policy(*r) for r in con.execute(
            f"SELECT DISTINCT scope_kind, scope_value, years FROM {_IDS} WHERE state = ? AND years IS NOT NULL",
            [state]).fetchall()]
        out[state] = StateSummary(n, [(m, mid) for m, mid in first], frozenset(hs), frozenset(pols), last)
    con.execute(f"DROP TABLE {_IDS}")
    return out


def refusal_of(con, msg_ids, now: dt.datetime, show: int = 5) -> str | None:
    """:func:`toolkit.retention.refusal` of the mails ``msg_ids`` at ``now`` (inside :func:`coverage`)."""
    return refusal_from(_summaries(con, msg_ids, now, show), show)


def deletable_ids(con, msg_ids, now: dt.datetime) -> pa.Array:
    """Those of ``msg_ids`` deletable at ``now`` (inside :func:`coverage`), sorted, as an Arrow column."""
    with _ids(con, msg_ids) as ids:
        t = con.execute(f"SELECT msg_id FROM ({_decisions(ids)}) WHERE state = 'deletable' ORDER BY msg_id",
                        [now]).to_arrow_table()
    return t.column("msg_id").combine_chunks().cast("int64")


# -- decisions --------------------------------------------------------------------------------------
@contextlib.contextmanager
def reporting(con, query_held: dict, now: dt.datetime) -> Iterator[dict]:
    """The retention report (docs/retention.md): every mail a policy or hold covers with its state and the date it
    becomes deletable, soonest first; counts per state, and how many mails no policy covers. ``mails`` is an
    iterator of one dict per mail, read a page at a time while the context lasts (a million lines are written as
    they come, never held)."""
    with coverage(con, query_held):
        universe = f"SELECT msg_id FROM {_GOV} UNION ALL SELECT msg_id FROM {_HELD}"
        total = con.execute("SELECT count(*) FROM messages").fetchone()[0]
        # counts in the order the report meets each state first (as a dict built along the sorted mails)
        rows = con.execute(
            f"WITH d AS ({_decisions('(' + universe + ')')}), s AS (SELECT state, min(until) AS mu FROM d GROUP BY state) "
            "SELECT d.state, count(*), any_value(s.mu), min(d.msg_id) FILTER (WHERE s.mu IS NULL OR d.until = s.mu) "
            "FROM d JOIN s USING (state) GROUP BY d.state", [now]).fetchall()
        rows.sort(key=lambda r: (r[2] is None, r[2] or now, r[3]))
        counts = {state: n for state, n, _, _ in rows}
        counts["no-policy"] = counts.get("no-policy", 0) + total - sum(counts.values())
        mails = (d.as_dict() for d in decisions(con, universe, now, order="until NULLS LAST, msg_id"))
        yield {"at": now, "policies": policies(con), "holds": holds(con), "counts": counts, "mails": mails}


def report(con, query_held: dict, now: dt.datetime) -> dict:
    """:func:`reporting` with its mails as a list (for a library caller and small archives)."""
    with reporting(con, query_held, now) as r:
        return {**r, "mails": list(r["mails"])}


# -- deletion requests ------------------------------------------------------------------------------
def _same_actor(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def request_deletion(con, where: str, reason: str, actor: str, selected,
                     query_held: dict, now: dt.datetime) -> dict:
    """Record a deletion request for exactly the mails ``selected`` (msg_ids: a list or an Arrow column; frozen in
    ``deletion_items``) if every one is deletable at ``now``; a stamped ``deletion-requested`` event records it.
    Otherwise nothing but a ``deletion-request-refused`` event is written and the result holds ``refused`` (the
    reason). The checks and the frozen items are set operations in DuckDB; only the event's lists are Python's."""
    if not reason or not reason.strip():
        raise UsageError("a deletion request needs a reason")
    if not len(selected):
        raise NothingSelectedError(f"the condition selects no mail: {where}")
    with registered_table(con, "retention_selected", _id_table(selected)) as sel, \
            coverage(con, query_held, f"SELECT msg_id FROM {sel}"):
        why = refusal_of(con, f"SELECT msg_id FROM {sel}", now)
        if why:
            log_event(con, "deletion-request-refused", {"actor": actor, "where": where, "reason": reason,
                                                        "mails": len(selected), "why": why})
            return {"refused": why, "mails": len(selected)}
        rid = con.execute("SELECT coalesce(max(request_id), 0) + 1 FROM deletion_requests").fetchone()[0]
        con.execute("INSERT INTO deletion_requests (request_id, where_sql, reason, requested_by, requested_at, status) "
                    "VALUES (?, ?, ?, ?, ?, 'pending')", [rid, where, reason, actor, _now()])
        con.execute(f"INSERT INTO deletion_items SELECT ?, msg_id FROM {sel}", [rid])
        msg_ids = con.execute(f"SELECT msg_id FROM {sel} ORDER BY msg_id").to_arrow_table().column(0).to_pylist()
        blobs = con.execute(f"SELECT blob_id FROM messages WHERE msg_id IN (SELECT msg_id FROM {sel}) ORDER BY msg_id"
                            ).to_arrow_table().column(0).to_pylist()
    give_back_freed_memory()  # the coverage's tables are dropped: its pages go back before the event's lists grow
    eid = log_stamped_event(con, "deletion-requested", {
        "request_id": rid, "actor": actor, "where": where, "reason": reason, "mails": len(selected),
        "msg_ids": msg_ids, "blob_ids": blobs})
    return {"request_id": rid, "status": "pending", "mails": len(selected), "event_id": eid}


def _request_row(con, request_id: int) -> dict:
    row = con.execute("SELECT request_id, where_sql, reason, requested_by, requested_at, status, decided_by, "
                      "decided_at, decision_note, purged_at FROM deletion_requests WHERE request_id = ?",
                      [request_id]).fetchone()
    if row is None:
        raise UsageError(f"there is no deletion request #{request_id}")
    keys = ("request_id", "where", "reason", "requested_by", "requested_at", "status", "decided_by", "decided_at",
            "note", "purged_at")
    return dict(zip(keys, row))


def request_items(con, request_id: int) -> list[int]:
    return con.execute("SELECT msg_id FROM deletion_items WHERE request_id = ? ORDER BY msg_id",
                       [request_id]).to_arrow_table().column(0).to_pylist()


def decide_request(con, request_id: int, actor: str, approve: bool, note: str | None,
                   query_held: dict, now: dt.datetime) -> dict:
    """Approve or reject a pending request, by an actor other than its requester. An approval checks the frozen
    mails again (a hold placed since the request blocks it). A refusal writes only a
    ``deletion-decision-refused`` event and the result holds ``refused``; a decision is a stamped
    ``deletion-approved`` / ``deletion-rejected`` event."""
    req = _request_row(con, request_id)
    verb = "approve" if approve else "reject"
    why = None
    if req["status"] != "pending":
        why = f"deletion request #{request_id} is {req['status']}, not pending"
    elif _same_actor(req["requested_by"], actor):
        why = (f"{actor} made deletion request #{request_id} and cannot {verb} it too: "
               "another actor (the data officer) must decide")
    elif approve:
        items = f"SELECT msg_id FROM deletion_items WHERE request_id = {int(request_id)}"
        with coverage(con, query_held, items):
            blocked = refusal_of(con, items, now)
        if blocked:
            why = f"deletion request #{request_id} can no longer be approved: {blocked}"
    if why:
        log_event(con, "deletion-decision-refused", {"request_id": request_id, "actor": actor, "decision": verb,
                                                     "why": why})
        return {"refused": why, "request_id": request_id}
    status = "approved" if approve else "rejected"
    con.execute("UPDATE deletion_requests SET status = ?, decided_by = ?, decided_at = ?, decision_note = ? "
                "WHERE request_id = ?", [status, actor, _now(), note, request_id])
    items = request_items(con, request_id)
    eid = log_stamped_event(con, f"deletion-{status}", {
        "request_id": request_id, "actor": actor, "requested_by": req["requested_by"], "note": note,
        "mails": len(items), "msg_ids": items})
    return {"request_id": request_id, "status": status, "mails": len(items), "event_id": eid}


def requests(con, status: str | None = None) -> list[dict]:
    """Every deletion request (or those with ``status``) with its number of frozen mails, oldest first."""
    ids = [r[0] for r in con.execute(
        "SELECT request_id FROM deletion_requests WHERE ? IS NULL OR status = ? ORDER BY request_id",
        [status, status]).fetchall()]
    counts = dict(con.execute("SELECT request_id, count(*) FROM deletion_items GROUP BY 1").fetchall())
    return [{**_request_row(con, i), "mails": counts.get(i, 0)} for i in ids]


def approved_unpurged(con) -> list[tuple[int, int]]:
    """(request_id, msg_id) of every frozen mail of an approved request not purged yet, for the purge."""
    return con.execute("SELECT i.request_id, i.msg_id FROM deletion_items i JOIN deletion_requests r USING (request_id) "
                       "WHERE r.status = 'approved' AND r.purged_at IS NULL ORDER BY 1, 2").fetchall()


def mark_purged(con, request_id: int, when: dt.datetime) -> None:
    """Record that the purge of an approved request is done (status ``purged``); the purge logs its own
    stamped ``deletion-purged`` event (:func:`toolkit.catalog.events.log_stamped_event`)."""
    n = con.execute("UPDATE deletion_requests SET status = 'purged', purged_at = ? "
                    "WHERE request_id = ? AND status = 'approved' RETURNING request_id", [when, request_id]).fetchall()
    if not n:
        raise UsageError(f"deletion request #{request_id} is not an approved request waiting for its purge")
