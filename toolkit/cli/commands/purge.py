"""``mailarchive purge``: remove approved deletions from the media (docs/retention.md "Purge and tombstones")."""
from __future__ import annotations

import click

from media_tools.purge import plan_purge, purge_approved

from ...errors import ExitCode
from ..environment import actor_name
from ..main import cli, command
from .retention import ACTOR


@command(cli, "purge")
@click.option("--dry-run", is_flag=True, help="List the approved requests, their mails and the packs to rewrite; change nothing.")
@ACTOR
@click.pass_context
def purge_cmd(click_ctx, dry_run, actor):
    """Rewrite the packs holding the mails of approved deletion requests without them.

    Each new pack is written create-only and read back before the catalog switches to it (one
    transaction per pack); the old pack is removed after that. A purged mail leaves a tombstone
    (msg_id, blob id, stamp batch) so that every stamp still verifies. Mails under a legal hold or
    whose retention has not run out stay; their request stays approved (exit 1). Interrupted?
    Rerun `purge`: it completes the work.
    """
    ctx = click_ctx.obj
    who = actor_name(actor)
    if dry_run:
        with ctx.open() as archive:
            plan = plan_purge(archive)
        ctx.ui.emit({"dry_run": True, "actor": who, "requests": plan}, lambda r: _say_plan(ctx, r["requests"]))
        return
    with ctx.open(writer=True) as archive:
        outcomes = [o.as_dict() for o in purge_approved(archive, actor=who, reporter=ctx.ui.reporter())]
    kept = sum(len(o["kept"]) for o in outcomes)
    ctx.ui.emit({"actor": who, "requests": outcomes}, lambda r: _say_done(ctx, r["requests"]))
    click_ctx.exit(int(ExitCode.FINDINGS) if kept else 0)


def _say_plan(ctx, plan: list[dict]) -> None:
    if not plan:
        ctx.ui.say("No approved deletion request waits for its purge.")
    for r in plan:
        ctx.ui.say(f"Request {r['request_id']} ({r['reason']}, approved by {r['approved_by']}): "
                   f"{len(r['to_purge'])} mail(s) to purge from {len(r['packs'])} pack(s), "
                   f"{len(r['not_deletable'])} not deletable now")


def _say_done(ctx, outcomes: list[dict]) -> None:
    if not outcomes:
        ctx.ui.say("No approved deletion request waits for its purge.")
    for o in outcomes:
        ctx.ui.say(f"Request {o['request_id']}: {o['status']}; {len(o['purged'])} mail(s) purged, "
                   f"{len(o['packs_rewritten'])} pack(s) rewritten, {len(o['packs_removed'])} old pack(s) removed")
        if o["kept"]:
            ctx.ui.say(f"  {len(o['kept'])} mail(s) may not be deleted now (legal hold or retention): "
                       + ", ".join(map(str, o["kept"][:20])))
