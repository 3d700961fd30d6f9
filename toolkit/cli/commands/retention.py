"""``mailarchive retention set | report | hold add | hold list | hold release``: how long mail is kept and
what legal holds block its deletion (docs/retention.md).

Every change names its actor (``--actor NAME``, else ``$MAILARCHIVE_ACTOR``) and is an event.
"""
from __future__ import annotations

import datetime as dt
import itertools
import sys

import click

from ... import purge_rules
from ...catalog import retention
from ...directory_file import norm_address, norm_domain
from ...errors import UsageError
from ..environment import actor_name
from ..main import cli, command, pass_ctx, subgroup
from ..output import err_console

retention_group = subgroup(cli, "retention", "Retention policies, what becomes deletable when, legal holds.")
hold_group = subgroup(retention_group, "hold", "Legal holds: mail that must not be deleted whatever the policies say.")

ACTOR = click.option("--actor", metavar="NAME", default=None,
                     help="Who acts (default: $MAILARCHIVE_ACTOR); recorded in the event log.")


def query_held(archive, memory_limit: int = retention.MEMORY_LIMIT) -> dict:
    """hold_id → msg_ids of every query hold in force (evaluated in the restricted SQL session). The catalog's
    sessions are held to ``memory_limit`` bytes of DuckDB memory from here on."""
    archive.catalog.use_memory_limit(memory_limit)
    return purge_rules.query_held(archive.catalog)


def _one_scope(options: dict) -> tuple[str, str]:
    given = [(k, v) for k, v in options.items() if v is not None]
    if len(given) != 1:
        names = " | ".join(f"--{k}" for k in options)
        raise UsageError(f"give exactly one of {names}")
    return given[0]


def _warn_if_nothing_covered(ctx, con, r: dict, kind: str, value: str, what: str) -> dict:
    """A policy or hold on a domain, folder, address or user that no archived mail falls under yet is set all the
    same (mail archived later), with a warning: a typo would leave the mail it meant uncovered, unnoticed. With
    ``--json`` the warning is in the result's ``warnings``."""
    if retention.scope_count(con, kind, value):
        return r
    hint = (f"no archived mail falls under {kind} {value!r} yet: a typo? (`mailarchive sql \"{retention.LIST_SQL[kind]}\"` lists "
            f"what the archive holds); the {what} covers mail archived later too")
    if not ctx.ui.json:
        err_console.print(f"warning: {hint}", markup=False, highlight=False)
    return {**r, "warnings": [hint]}


@command(retention_group, "set")
@click.option("--years", type=click.IntRange(min=0), required=True, help="Keep mail N years from its sent date "
              "(else its internal date, else when it was archived, each only when plausible: "
              "docs/retention.md).")
@click.option("--domain", default=None, help="Mail from or to an address of DOMAIN (and its aliases, for a local domain).")
@click.option("--folder", default=None, help="Mail seen in source folder FOLDER or its subfolders.")
@click.option("--user", default=None, help="The mail of directory user USER (their addresses and their groups').")
@ACTOR
@pass_ctx
def set_cmd(ctx, years, domain, folder, user, actor):
    """Set (or replace) the retention policy of one domain, folder or user.

    Where several policies cover one mail, the longest keep wins. With no policy covering it,
    a mail is never deletable.
    """
    actor = actor_name(actor)
    kind, value = _one_scope({"domain": domain, "folder": folder, "user": user})
    if kind == "domain":
        value = norm_domain(value, "--domain")
    elif kind == "folder":
        value = value.strip().strip("/")
        if not value:
            raise UsageError("--folder needs a folder name (e.g. INBOX or Archive/2019)")
    with ctx.open(writer=True) as archive:
        with archive.catalog.writing() as con:
            r = retention.set_policy(con, kind, value, years, actor)
            r = _warn_if_nothing_covered(ctx, con, r, kind, value, "policy")
    ctx.ui.emit(r, lambda r: ctx.ui.say(f"Retention of {kind} {value}: {years} years"
                                        + (f" (was {r['years_before']})" if r["years_before"] is not None else "")))


@command(retention_group, "report")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object (like the global --json).")
@click.option("--at", "at", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Report as of this day (UTC) instead of now: what is deletable then.")
@pass_ctx
def report_cmd(ctx, as_json, at):
    """List the mails policies or holds cover: when each becomes deletable, and which are deletable now."""
    if as_json:
        ctx.ui.json = True
    now = at.replace(tzinfo=dt.timezone.utc) if at else dt.datetime.now(dt.timezone.utc)
    with ctx.open() as archive:
        held = query_held(archive, retention.REPORT_MEMORY_LIMIT)
        with archive.catalog.reading() as con, retention.reporting(con, held, now) as r:
            _emit_report(ctx, r)


#: rows of the report's table rendered at a time (a larger report is written as several tables of this many rows)
TABLE_ROWS = 10_000


def _emit_report(ctx, r: dict) -> None:
    """The report as ``ctx.ui.emit`` writes a result, its mails written as they are read: the JSON the same bytes as
    one ``json.dumps`` of the whole report, the table in blocks of :data:`TABLE_ROWS` rows."""
    from ...json_stream import Streamed
    from ..output import write_json

    head = {k: v for k, v in r.items() if k != "mails"}
    if not ctx.ui.json:
        ctx.ui.emit(head, lambda _: _show_report(ctx, r))
        return
    ctx.ui._stop_progress()  # what emit does before it writes a result
    if ctx.ui.log is not None:
        ctx.ui.log.result(head)
    write_json(sys.stdout, {**head, "mails": Streamed(r["mails"])})
    sys.stdout.flush()


def _show_report(ctx, r: dict) -> None:
    ctx.ui.say(f"Retention as of {r['at']:%Y-%m-%d %H:%M} UTC: "
               + ", ".join(f"{n} {k}" for k, n in sorted(r["counts"].items())))
    if not r["policies"]:
        ctx.ui.say("No retention policy: nothing is deletable.")
    mails = iter(r["mails"])
    first = True
    while True:
        block = list(itertools.islice(mails, TABLE_ROWS))
        if not block and not first:
            return
        rows = [[m["msg_id"], m["message_id"] or "", m["state"],
                 f"{m['date']:%Y-%m-%d} ({m['date_kind']})" if m["date"] else "",
                 f"{m['deletable_from']:%Y-%m-%d}" if m["deletable_from"] else "never",
                 (f"{m['policy']['scope']} {m['policy']['value']}: {m['policy']['years']} y" if m["policy"] else "")
                 + (f"; holds {', '.join('#' + str(h) for h in m['holds'])}" if m["holds"] else "")]
                for m in block]
        ctx.ui.table("Retention", ["msg", "Message-ID", "state", "date", "deletable from", "policy / holds"], rows)
        first = False
        if len(block) < TABLE_ROWS:
            return


@command(hold_group, "add")
@click.option("--user", default=None, help="Hold the mail of directory user USER.")
@click.option("--address", default=None, help="Hold every mail from or to ADDRESS.")
@click.option("--where", default=None, metavar="SQL", help="Hold the mails this restricted SQL condition over "
              "messages m selects (the same rules as sql and --where of exports).")
@click.option("--reason", required=True, help="Why (a case, a request of an authority); recorded.")
@ACTOR
@pass_ctx
def hold_add_cmd(ctx, user, address, where, reason, actor):
    """Place a legal hold on a user, an address or a query: that mail cannot be deleted while it stands."""
    from ...catalog.user_sql import check_condition

    actor = actor_name(actor)
    kind, value = _one_scope({"user": user, "address": address, "where": where})
    kind = "query" if kind == "where" else kind
    if kind == "address":
        value = norm_address(value, "--address")
    elif kind == "query":
        check_condition(value)
    if not reason.strip():
        raise UsageError("--reason needs a text (why the mail is held)")
    with ctx.open(writer=True) as archive:
        if kind == "query":  # it must run now, or it could not hold anything later
            with archive.catalog.querying() as session:
                held = retention.query_hold_members(session, [{"hold_id": 0, "kind": kind, "value": value}])[0]
        with archive.catalog.writing() as con:
            r = retention.add_hold(con, kind, value, reason.strip(), actor)
            if kind != "query":  # (a query's count is said in its line)
                r = _warn_if_nothing_covered(ctx, con, r, kind, value, "hold")
    if kind == "query":
        r["mails"] = len(held)
    ctx.ui.emit(r, lambda r: ctx.ui.say(f"Legal hold #{r['hold_id']} on {kind} {value}"
                                        + (f" ({r['mails']} mails now)" if "mails" in r else "")))


@command(hold_group, "list")
@click.option("--all", "include_released", is_flag=True, help="Released holds too.")
@click.option("--json", "as_json", is_flag=True, help="Print the holds as JSON (like the global --json).")
@pass_ctx
def hold_list_cmd(ctx, include_released, as_json):
    """List the legal holds in force (with --all, released ones too)."""
    if as_json:
        ctx.ui.json = True
    with ctx.open() as archive, archive.catalog.reading() as con:
        r = {"holds": retention.holds(con, include_released)}
    ctx.ui.emit(r, lambda r: ctx.ui.table("Legal holds", ["id", "on", "reason", "set", "released"], [
        [h["hold_id"], f"{h['kind']} {h['value']}", h["reason"], f"{h['set_at']:%Y-%m-%d} by {h['set_by']}",
         f"{h['released_at']:%Y-%m-%d} by {h['released_by']}" if h["released_at"] else ""] for h in r["holds"]]))


@command(hold_group, "release")
@click.argument("hold_id", type=int)
@ACTOR
@pass_ctx
def hold_release_cmd(ctx, hold_id, actor):
    """Release legal hold HOLD_ID (it stays listed with --all)."""
    actor = actor_name(actor)
    with ctx.open(writer=True) as archive, archive.catalog.writing() as con:
        r = retention.release_hold(con, hold_id, actor)
    ctx.ui.emit(r, lambda r: ctx.ui.say(f"Legal hold #{hold_id} released"))
