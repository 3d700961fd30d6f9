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

import datetime as dt

import duckdb

from ..errors import NothingSelectedError, UsageError
from ..retention import DELETABLE, MailFacts, Policy, decide_all, refusal
from . import directory
from .events import log_event, log_stamped_event

POLICY_KINDS = ("domain", "folder", "user")
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


def _covered(con, kind: str, value: str) -> set[int]:
    cond, params = _scope_condition(con, kind, value)
    return {r[0] for r in con.execute(f"SELECT m.msg_id FROM messages m WHERE {cond}", params).fetchall()}


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


def _policy_coverage(con) -> dict[int, list[Policy]]:
    out: dict[int, list[Policy]] = {}
    for p in policies(con):
        try:
            ids = _covered(con, p["scope"], p["value"])
        except UsageError:  # a user no longer in the directory: the policy covers nothing (nothing deletable)
            ids = set()
        for i in ids:
            out.setdefault(i, []).append(Policy(p["scope"], p["value"], p["years"]))
    return out


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


def query_hold_members(session, hold_rows: list[dict]) -> dict[int, set[int]]:
    """hold_id → msg_ids of every query hold in ``hold_rows``, run in the restricted ``querying()`` session."""
    from .user_sql import check_condition

    out = {}
    for h in hold_rows:
        if h["kind"] != "query":
            continue
        cond = check_condition(h["value"], f"the query of legal hold #{h['hold_id']}")
        try:
            out[h["hold_id"]] = {r[0] for r in session.execute(f"SELECT m.msg_id FROM messages m WHERE {cond}").fetchall()}
        except duckdb.Error as exc:
            raise UsageError(f"the query of legal hold #{h['hold_id']} fails, so what it holds is unknown: "
                             f"{str(exc).strip().splitlines()[0]}") from None
    return out


def selected_ids(session, where: str) -> list[int]:
    """msg_ids the checked condition ``where`` selects, in the restricted session."""
    try:
        return [r[0] for r in session.execute(f"SELECT m.msg_id FROM messages m WHERE {where} ORDER BY m.msg_id").fetchall()]
    except duckdb.Error as exc:
        raise UsageError(f"the condition fails: {str(exc).strip().splitlines()[0]}") from None


def _hold_coverage(con, query_held: dict[int, set[int]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for h in holds(con):
        if h["kind"] == "query":
            if h["hold_id"] not in query_held:
                raise ValueError(f"legal hold #{h['hold_id']} (a query) was not evaluated")
            ids = query_held[h["hold_id"]]
        else:
            try:
                ids = _covered(con, h["kind"], h["value"])
            except UsageError as exc:
                raise UsageError(f"legal hold #{h['hold_id']} cannot be resolved ({exc}); "
                                 "nothing can be decided while it stands") from None
        for i in ids:
            out.setdefault(i, []).append(h["hold_id"])
    return out


# -- decisions --------------------------------------------------------------------------------------
def facts(con, query_held: dict[int, set[int]], msg_ids=None) -> list[MailFacts]:
    """The retention facts of ``msg_ids`` (None: of every mail a policy or a hold covers), by msg_id."""
    pol, held = _policy_coverage(con), _hold_coverage(con, query_held)
    ids = sorted(set(pol) | set(held)) if msg_ids is None else sorted(set(msg_ids))
    rows = con.execute("SELECT msg_id, message_id, sent_date, internal_date, archived_at FROM messages "
                       "WHERE msg_id IN (SELECT unnest(?::BIGINT[])) ORDER BY msg_id", [ids]).fetchall()
    return [MailFacts(i, mid, sent, internal, tuple(pol.get(i, ())), tuple(held.get(i, ())), archived)
            for i, mid, sent, internal, archived in rows]


def report(con, query_held: dict[int, set[int]], now: dt.datetime) -> dict:
    """Every mail a policy or hold covers with its state and the date it becomes deletable, soonest first;
    counts per state, and how many mails no policy covers."""
    decisions = decide_all(facts(con, query_held), now)
    total = con.execute("SELECT count(*) FROM messages").fetchone()[0]
    decisions.sort(key=lambda d: (d.deletable_from is None, d.deletable_from or now, d.msg_id))
    counts: dict[str, int] = {}
    for d in decisions:
        counts[d.state] = counts.get(d.state, 0) + 1
    counts["no-policy"] = counts.get("no-policy", 0) + total - len(decisions)
    return {"at": now, "policies": policies(con), "holds": holds(con), "counts": counts,
            "mails": [d.as_dict() for d in decisions]}


# -- deletion requests ------------------------------------------------------------------------------
def _same_actor(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def request_deletion(con, where: str, reason: str, actor: str, selected: list[int],
                     query_held: dict[int, set[int]], now: dt.datetime) -> dict:
    """Record a deletion request for exactly the mails ``selected`` (frozen in ``deletion_items``) if every
    one is deletable at ``now``; a stamped ``deletion-requested`` event records it. Otherwise nothing but a
    ``deletion-request-refused`` event is written and the result holds ``refused`` (the reason)."""
    if not reason or not reason.strip():
        raise UsageError("a deletion request needs a reason")
    if not selected:
        raise NothingSelectedError(f"the condition selects no mail: {where}")
    why = refusal(decide_all(facts(con, query_held, selected), now))
    if why:
        log_event(con, "deletion-request-refused", {"actor": actor, "where": where, "reason": reason,
                                                    "mails": len(selected), "why": why})
        return {"refused": why, "mails": len(selected)}
    rid = con.execute("SELECT coalesce(max(request_id), 0) + 1 FROM deletion_requests").fetchone()[0]
    con.execute("INSERT INTO deletion_requests (request_id, where_sql, reason, requested_by, requested_at, status) "
                "VALUES (?, ?, ?, ?, ?, 'pending')", [rid, where, reason, actor, _now()])
    con.executemany("INSERT INTO deletion_items VALUES (?, ?)", [[rid, i] for i in selected])
    blobs = [r[0] for r in con.execute("SELECT blob_id FROM messages WHERE msg_id IN (SELECT unnest(?::BIGINT[])) "
                                       "ORDER BY msg_id", [sorted(selected)]).fetchall()]
    eid = log_stamped_event(con, "deletion-requested", {
        "request_id": rid, "actor": actor, "where": where, "reason": reason, "mails": len(selected),
        "msg_ids": sorted(selected), "blob_ids": blobs})
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
    return [r[0] for r in con.execute("SELECT msg_id FROM deletion_items WHERE request_id = ? ORDER BY msg_id",
                                      [request_id]).fetchall()]


def decide_request(con, request_id: int, actor: str, approve: bool, note: str | None,
                   query_held: dict[int, set[int]], now: dt.datetime) -> dict:
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
        blocked = refusal(decide_all(facts(con, query_held, request_items(con, request_id)), now))
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
