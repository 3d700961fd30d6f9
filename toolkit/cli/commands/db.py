"""``mailarchive db backup | rebuild | adopt``: sealed catalog backups, a catalog rebuilt from the media, and
valid packs the catalog does not know taken into it."""
from __future__ import annotations

import click

from media_tools.backup import create_backup
from media_tools.rebuild import rebuild_catalog

from ...errors import ExitCode
from ..main import cli, command, pass_ctx, subgroup

db_group = subgroup(cli, "db", "The catalog: sealed backups on the media, a rebuild from the media alone, "
                    "adopting unknown packs.")


@command(db_group, "backup")
@click.option("--full", "kind", flag_value="full", help="A self-contained backup of every catalog table.")
@click.option("--incremental", "kind", flag_value="incremental", help="Only what changed since the last verified backup.")
@click.option("--keep", type=int, default=None, help="Keep the newest N backups; older ones go only once a newer full backup verified.")
@pass_ctx
def backup_cmd(ctx, kind, keep):
    """Write a sealed catalog backup to the active medium (db-backups/) and a sealed config snapshot (config/).

    The backup is read back, opened, and its row counts and content checksums
    compared with the live catalog before it counts; a backup that fails is
    removed and reported. Without --full/--incremental: incremental when a
    verified backup exists, else full.
    """
    with ctx.open(writer=True) as archive:
        r = create_backup(archive, kind=kind, keep=keep).as_dict()

    def human(r):
        ctx.ui.say(
            f"Backup {r['name']} ({r['kind']}, {r['bytes']} bytes) on medium {r['medium']}: verified"
            f"\n  config snapshot {r['config_snapshot']}"
            + (f"\n  deleted older backups: {', '.join(r['deleted'])}" if r["deleted"] else "")
        )
        ctx.ui.table("Tables", ["table", "mode", "rows stored", "rows"],
                     [[t, v["mode"], v["rows"], v["total"]] for t, v in sorted(r["tables"].items())])

    ctx.ui.emit(r, human)


@command(db_group, "rebuild")
@click.option("--force", is_flag=True, help="Replace an existing catalog (it is moved aside, never deleted).")
@click.pass_context
def rebuild_cmd(click_ctx, force):
    """Rebuild the catalog from the media alone: pack footers give the messages, sealed manifests the stamps.

    Message numbers are handed out anew (packs in file order). Sightings, runs,
    cursors and events existed only in the catalog: they are reported as lost.
    Purges come back from their deletion records: tombstones and requests.
    Refused while a catalog exists, unless --force.
    """
    ctx = click_ctx.obj
    result = rebuild_catalog(ctx.home, force=force, lock_wait=ctx.lock_wait, reporter=ctx.ui.reporter())
    r = result.as_dict()

    def human(r):
        ctx.ui.say(
            f"Rebuilt the catalog: {r['messages']} messages in {r['packs']} packs from media {r['media']}, "
            f"{r['stamp_batches']} stamp batches ({r['stamped_messages']} messages)"
            + (f"\n  old catalog moved to {r['moved_aside']}" if r["moved_aside"] else "")
            + "\n  lost (held only by the catalog): " + _lost_line(r["lost"])
            + "".join(f"\n  unreadable: {u}" for u in r["unreadable"])
            + "".join(f"\n  manifest unreadable: {u}" for u in r["manifests_unreadable"])
            + "".join(f"\n  stamp batch {u['batch_id']}: {u['problem']}" for u in r["stamp_problems"])
            + (f"\n  orphan packs (no new records): {len(r['orphan_packs'])}" if r["orphan_packs"] else "")
            + (f"\n  from deletion records: {r['restored'].get('deletion_requests', 0)} deletion request(s), "
               f"{r['restored'].get('tombstones', 0)} tombstone(s) of purged mails" if r["restored"].get("tombstones") else "")
            + "".join(f"\n  replaced by a purge, left out (remove it): {n}" for n in r["purged_packs_left"])
            + "".join(f"\n  deletion record unreadable: {u}" for u in r["deletion_records_unreadable"])
        )

    ctx.ui.emit(r, human)
    click_ctx.exit(int(ExitCode.FINDINGS) if result.problems else 0)


@command(db_group, "adopt")
@click.option("--medium", "medium_id", type=int, default=None,
              help="Only this medium (default: every active, standby and deactivated medium).")
@click.option("--dry-run", is_flag=True, help="Read and list what would be adopted; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object (like the global --json).")
@click.pass_context
def adopt_cmd(click_ctx, medium_id, dry_run, as_json):
    """Adopt valid packs on the media that the catalog does not know (verify's Q03).

    Every such pack is read with the archive key and every record
    authenticated; its new mails get catalog rows as `db rebuild` derives
    them, one transaction per pack. Mails already archived (same bytes or
    same dedup key) are not added twice; a pack holding nothing new is
    listed and left on the medium. A pack that does not read or
    authenticate is refused and left as it is (exit 1). Nothing is ever
    deleted. Takes the writer lock.
    """
    from media_tools.adopt import adopt_packs

    ctx = click_ctx.obj
    if as_json:
        ctx.ui.json = True
    with ctx.open(writer=True) as archive:
        result = adopt_packs(archive, medium_id=medium_id, dry_run=dry_run)
    r = result.as_dict()

    def human(r):
        verb = "would adopt" if r["dry_run"] else "adopted"
        for p in r["adopted"]:
            known = p["exact_duplicates"] + p["duplicates"] + p["purged"]
            ctx.ui.say(f"  medium {p['medium']}: {verb} {p['name']}: {p['messages']} of {p['records']} records as new mails"
                       + (f" (msg ids {p['msg_ids'][0]}-{p['msg_ids'][1]})" if p["msg_ids"] else "")
                       + (f"; {known} archived already (or purged), not added again" if known else ""))
        for p in r["nothing_new"]:
            ctx.ui.say(f"  medium {p['medium']}: {p['name']}: nothing new ({p['reason']}); left on the medium")
        for p in r["refused"]:
            ctx.ui.say(f"  medium {p['medium']}: {p['name']}: refused, left as it is: {'; '.join(p['problems'][:3])}"
                       + (f" (and {len(p['problems']) - 3} more)" if len(p["problems"]) > 3 else ""))
        for u in r["unreachable"]:
            ctx.ui.say(f"  medium {u['medium']} not looked at: {u['problem']}")
        ctx.ui.say(f"{verb.capitalize()} {len(r['adopted'])} pack(s) with {r['messages']} mail(s) from medium "
                   f"{', '.join(map(str, r['media'])) or 'none'}; {len(r['nothing_new'])} with nothing new, "
                   f"{len(r['refused'])} refused")

    ctx.ui.emit(r, human)
    click_ctx.exit(int(ExitCode.FINDINGS) if result.problems else 0)


def _lost_line(lost: dict) -> str:
    """The tables held only by the catalog: each with its count from the old catalog (``?`` when it could not
    be read); tables that were empty are left out (all of them: "nothing")."""
    unknown = [k for k, v in lost.items() if v is None]
    if len(unknown) == len(lost):
        return ", ".join(unknown) + " (the old catalog could not be read: counts unknown)"
    shown = [f"{k} {'?' if v is None else v}" for k, v in lost.items() if v is None or v]
    return ", ".join(shown) or "nothing"
