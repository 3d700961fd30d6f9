"""``mailarchive db backup | rebuild``: sealed catalog backups and a catalog rebuilt from the media."""
from __future__ import annotations

import click

from media_tools.backup import create_backup
from media_tools.rebuild import rebuild_catalog

from ...errors import ExitCode
from ..main import cli, command, pass_ctx, subgroup

db_group = subgroup(cli, "db", "The catalog: sealed backups on the media, and a rebuild from the media alone.")


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
        )

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
