"""``mailarchive delete request | approve | reject | list``: approved deletion (docs/retention.md).

A request freezes the mails its ``--where`` selects; it is refused (with the reason) when any of
them is under a legal hold or not yet deletable under the retention policies. Another actor than
the requester (the data officer) approves or rejects it. Each step is an event; the request and the
decision are stamped in the next stamp batch. The purge of approved requests is a later step.
"""
from __future__ import annotations

import datetime as dt

import click

from ...catalog import retention
from ...errors import UsageError
from ..environment import actor_name
from ..main import cli, command, pass_ctx, subgroup
from .retention import ACTOR, query_held

delete_group = subgroup(cli, "delete", "Approved deletion: request, approve or reject, list.")


@command(delete_group, "request")
@click.option("--where", required=True, metavar="SQL", help="The mails to delete: a restricted SQL condition over "
              "messages m (the same rules as sql and --where of exports).")
@click.option("--reason", required=True, help="Why they are to be deleted; recorded and stamped.")
@ACTOR
@pass_ctx
def request_cmd(ctx, where, reason, actor):
    """Request the deletion of the mails --where selects (frozen now); another actor must approve it."""
    from ...catalog.user_sql import check_condition

    actor = actor_name(actor)
    cond = check_condition(where)
    if not reason.strip():
        raise UsageError("--reason needs a text (why the mail is to be deleted)")
    now = dt.datetime.now(dt.timezone.utc)
    with ctx.open(writer=True) as archive:
        held = query_held(archive)
        with archive.catalog.querying() as session:
            selected = retention.selected_ids(session, cond)
        with archive.catalog.writing() as con:
            r = retention.request_deletion(con, where, reason.strip(), actor, selected, held, now)
    if "refused" in r:
        raise UsageError(f"deletion request refused ({r['mails']} mails selected): {r['refused']}")
    ctx.ui.emit(r, lambda r: ctx.ui.say(f"Deletion request #{r['request_id']}: {r['mails']} mails, "
                                        "waiting for another actor's approval"))


def _decide(ctx, request_id: int, actor: str | None, approve: bool, note: str | None) -> None:
    actor = actor_name(actor)
    now = dt.datetime.now(dt.timezone.utc)
    with ctx.open(writer=True) as archive:
        held = query_held(archive) if approve else {}
        with archive.catalog.writing() as con:
            r = retention.decide_request(con, request_id, actor, approve, note, held, now)
    if "refused" in r:
        raise UsageError(r["refused"])
    ctx.ui.emit(r, lambda r: ctx.ui.say(f"Deletion request #{request_id} {r['status']} ({r['mails']} mails)"))


@command(delete_group, "approve")
@click.argument("request_id", type=int)
@click.option("--note", default=None, help="A note recorded with the decision.")
@ACTOR
@pass_ctx
def approve_cmd(ctx, request_id, note, actor):
    """Approve deletion request REQUEST_ID (not by its requester); its mails are checked again first."""
    _decide(ctx, request_id, actor, True, note)


@command(delete_group, "reject")
@click.argument("request_id", type=int)
@click.option("--note", default=None, help="A note recorded with the decision.")
@ACTOR
@pass_ctx
def reject_cmd(ctx, request_id, note, actor):
    """Reject deletion request REQUEST_ID (not by its requester)."""
    _decide(ctx, request_id, actor, False, note)


@command(delete_group, "list")
@click.option("--status", type=click.Choice(["pending", "approved", "rejected", "purged"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the requests as JSON (like the global --json).")
@pass_ctx
def list_cmd(ctx, status, as_json):
    """List deletion requests: who asked, why, how many mails, who decided."""
    if as_json:
        ctx.ui.json = True
    with ctx.open() as archive, archive.catalog.reading() as con:
        r = {"requests": retention.requests(con, status)}
    ctx.ui.emit(r, lambda r: ctx.ui.table("Deletion requests", ["id", "status", "mails", "requested", "decided", "reason"], [
        [q["request_id"], q["status"], q["mails"], f"{q['requested_at']:%Y-%m-%d} by {q['requested_by']}",
         f"{q['decided_at']:%Y-%m-%d} by {q['decided_by']}" if q["decided_at"] else "", q["reason"]]
        for q in r["requests"]]))
