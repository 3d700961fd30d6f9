"""``mailarchive mirror DEST``, ``restore --from DEST``, ``schedule --print``."""
from __future__ import annotations

import shlex
import os
import shutil
import sys
from pathlib import Path

import click

from media_tools.backup import create_backup
from media_tools.mirror import backup_needed, mirror
from media_tools.restore import restore

from ...errors import ExitCode, LockedError, MailArchiveError, UsageError
from ...home import Home
from ...storage import open_storage, parse_location
from ..hints import phrase_listed, with_hint
from ..main import cli, command, pass_ctx
from ..output import human_bytes
from ..passwords import read_secret


def _dest_storage(dest: str, password_file: Path | None):
    loc = parse_location(dest)
    password = None
    if loc.is_smb:
        password = read_secret(password_file, "MAILARCHIVE_SMB_PASSWORD", f"SMB password for {dest}")
    return open_storage(loc, password), password


def _configured_mirror(ctx, dest: str | None, password_file: Path | None) -> tuple[str, Path | None, str | None]:
    """DEST (default: the mirror.dest setting) and, for the configured DEST, its sealed mirror.password."""
    from .config import secret_setting

    with ctx.open() as archive:
        configured = (archive.config.settings.get("mirror") or {}).get("dest")
        dest = dest or configured
        if dest is None:
            raise UsageError("no DEST given and no mirror.dest setting: `mailarchive mirror DEST`, "
                             "or `mailarchive config set mirror.dest DEST` once")
        sealed = None
        if dest == configured and password_file is None:
            sealed = secret_setting(archive, "mirror.password")
    return dest, password_file, sealed


@command(cli, "mirror")
@click.argument("dest", required=False)
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="SMB password file for DEST (else the mirror.password setting for the configured DEST, else $MAILARCHIVE_SMB_PASSWORD, else a prompt).")
@click.option("--verify", is_flag=True, help="Also read and hash packs already at DEST (new copies are always verified).")
@click.option("--delete", is_flag=True, help="Delete files at DEST the archive no longer has (never for media that cannot be read).")
@click.option("--repair", is_flag=True, help="Replace a differing pack at DEST by a verified copy of the local one.")
@click.option("--dry-run", is_flag=True, help="List what would be copied (and deleted with --delete); write nothing at DEST.")
@click.pass_context
def mirror_cmd(click_ctx, dest, password_file, verify, delete, repair, dry_run):
    """Copy every medium, the verified catalog backups and the newest config snapshot to DEST.

    DEST (default: the mirror.dest setting, see `mailarchive config`) is a path or smb://user@host[:port]/share/path; files go to
    DEST/medium-<id>/. When the catalog changed after its newest backup (or
    has none), a catalog backup is made first, as `db backup` would, and
    named in the output: a mirror without one cannot be restored. Packs first, backups last, so DEST never holds a backup
    whose packs are missing. Incremental and resumable; each new copy is read
    back and its BLAKE3 checksum checked. A local pack that is missing or corrupt is
    reported and never propagated as a deletion. Exit 1 when anything was
    missing, corrupt or differing.
    """
    ctx = click_ctx.obj
    if not dry_run and Home(ctx.home).has_config():
        from ...home_place import refuse_copy_unlocked

        refuse_copy_unlocked(Home(ctx.home))  # a copy sharing the original's media or mirror mirrors nothing (O11)
    dest, password_file, sealed = _configured_mirror(ctx, dest, password_file)
    if sealed is not None and parse_location(dest).is_smb:
        storage = open_storage(parse_location(dest), sealed)
    else:
        storage, _ = _dest_storage(dest, password_file)
    try:
        from ...places import refuse_overlap_of

        # before the catalog backup this run would make first; the configuration is enough (no catalog open)
        h = Home(ctx.home)
        if h.has_config():  # else the archive's open below says there is none
            refuse_overlap_of(ctx.home, h.load_config(), storage.location, "mirror", around=True,
                              skip=("the configured mirror",))
        made = None if dry_run else _backup_first(ctx)
        with ctx.open() as archive:
            s = mirror(archive, storage, verify=verify, delete=delete, repair=repair, reporter=ctx.ui.reporter(),
                       dry_run=dry_run)
        s.backup_made = made
    finally:
        storage.close()
    r = s.as_dict()
    if dry_run:
        r["dry_run"] = True
        ctx.ui.emit(r, lambda r: ctx.ui.say(
            f"Dry run, nothing written: would copy {r['copied']} files ({r['bytes_copied']} bytes) to {r['dest']}, "
            f"{r['already_present']} already there, {len(r['differing'])} differing"
            + (f", would delete {len(r['deleted'])}" if r["deleted"] else "")
            + "".join(f"\n  {f}" for f in r["copied_files"][:20])
            + (f"\n  … and {r['copied'] - 20} more (--json lists them all)" if r["copied"] > 20 else "")))
        click_ctx.exit(int(ExitCode.FINDINGS) if s.problems else 0)

    def human(r):
        b = r["backup_made"]
        if b and b.get("name"):
            ctx.ui.say(f"Catalog backup made first ({b['reason']}): {b['kind']} {b['name']}")
        elif b:
            ctx.ui.say(f"[yellow]warning:[/] no catalog backup made ({b['reason']}): {b['problem']}")
        ctx.ui.say(
            f"Mirror to {r['dest']}: {r['copied']} copied ({human_bytes(r['bytes_copied'])}), {r['already_present']} already present, "
            f"{len(r['differing'])} differing, {len(r['missing_locally'])} missing locally, "
            f"{len(r['corrupt_locally'])} corrupt locally, {len(r['deleted'])} deleted; newest backup {r['newest_backup']}"
            + "".join(f"\n  differing at DEST: {d['file']}" for d in r["differing"])
            + "".join(f"\n  missing locally: {d['location']}" for d in r["missing_locally"])
            + "".join(f"\n  corrupt locally: {d['location']}" for d in r["corrupt_locally"])
            + "".join(f"\n  medium {d['medium']} unreadable: {d['problem']}" for d in r["unreadable_media"])
            + "".join(f"\n  removed locally, kept on the mirror: {n} (mirror --delete removes it)"
                      for n in r["kept_at_dest"])
        )

    ctx.ui.emit(r, human)
    unrestorable = r["newest_backup"] is None  # a mirror without a catalog backup cannot be restored
    click_ctx.exit(int(ExitCode.FINDINGS) if s.problems or unrestorable else 0)


def _backup_first(ctx) -> dict | None:
    """A catalog backup (and config snapshot) before mirroring when none is recent: a mirror without
    one cannot be restored. Returns what was made, or None."""
    with ctx.open() as archive:
        reason = backup_needed(archive)
    if reason is None:
        return None
    try:
        with ctx.open(writer=True) as archive:
            b = create_backup(archive)
    except LockedError as exc:  # a writer is busy: mirror what there is, and say so
        return {"reason": reason, "name": None, "problem": f"{with_hint(exc)}; run `mailarchive db backup`, then mirror again"}
    return {"reason": reason, "name": b.name, "kind": b.kind, "config_snapshot": b.config_snapshot}


@command(cli, "restore")
@click.option("--from", "source", required=True, help="The mirror: a path or smb://user@host[:port]/share/path.")
@click.option("--key-backup", type=click.Path(path_type=Path, dir_okay=False, exists=True), required=True, help="The printable key backup.")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Key backup password file (else $MAILARCHIVE_PASSWORD, else a prompt).")
@click.option("--smb-password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="SMB password file for the mirror (else $MAILARCHIVE_SMB_PASSWORD).")
@click.option("--archive", "new_home", type=click.Path(path_type=Path, file_okay=False), default=None, help="The new home (default: the global --archive).")
@click.option("--keep-locations", is_flag=True, help="Keep the media locations of the snapshot instead of pointing them at the mirror.")
@click.option("--media-to", "media_to", default=None, help="Then move each medium from the mirror to MEDIA_TO/medium-<id> (a path or smb://), each copy verified (see `media move`).")
@click.pass_context
def restore_cmd(click_ctx, source, key_backup, password_file, smb_password_file, new_home, keep_locations, media_to):
    """Build a new archive home from a mirror: key, config snapshot, catalog backups, media at the mirror.

    Ends with a check that every pack the catalog lists is at its medium with
    its size and BLAKE3 checksum. Exit 1 "restored with losses" lists the missing or
    corrupt packs and the messages in them. A truncated or damaged backup is
    refused in favour of the previous verified one.
    """
    ctx = click_ctx.obj
    home = new_home or ctx.home
    if media_to is not None:  # refused before anything is restored, not at the first medium's move
        from ...places import inside

        if inside(parse_location(media_to), parse_location(source)):  # MEDIA_TO/medium-<id> inside the mirror
            raise UsageError(f"restore: --media-to {media_to} lies inside the mirror {source}: the media moved "
                             "there would be no copy apart from it; choose a place outside the mirror (docs/media.md)")
    storage, smb_password = _dest_storage(source, smb_password_file)
    password = read_secret(password_file, "MAILARCHIVE_PASSWORD", "Password of the key backup")
    try:
        result = restore(storage, key_backup.read_text(encoding="utf-8", errors="replace"), password.encode(), home,
                         keep_locations=keep_locations, smb_password=smb_password, reporter=ctx.ui.reporter())
    finally:
        storage.close()
    r = result.as_dict()
    r["warnings"] = phrase_listed(r["warnings"], r.get("warning_steps", {}))
    if media_to is not None:
        r["moved"] = _move_restored_media(ctx, home, media_to, smb_password, skip=result.losses)

    def human(r):
        for mv in r.get("moved", []):
            ctx.ui.say(f"Medium {mv['medium']} moved to {mv['to']}: {mv['files']} files verified, {mv['copied']} copied")
        ctx.ui.say(
            f"{r['status'].capitalize()}: archive {r['uuid']} at {r['home']} (fingerprint {r['fingerprint']})\n"
            f"  catalog from {' + '.join(r['chain'])}; {r['messages']} messages, {r['packs_ok']}/{r['packs']} packs verified"
            + "".join(f"\n  refused backup {b['backup']}: {b['problem']}" for b in r["refused_backups"])
            + "".join(f"\n  warning: {w}" for w in r["warnings"])
            + "".join(
                f"\n  LOST: medium {x['medium']} {x['pack']} ({x['problem']}): {x['messages']} messages {x['msg_ids'][:20]}"
                for x in r["losses"]
            )
        )

    ctx.ui.emit(r, human)
    click_ctx.exit(int(ExitCode.FINDINGS) if result.losses else 0)


def _move_restored_media(ctx, home: Path, media_to: str, smb_password: str | None, skip) -> list[dict]:
    """``restore --media-to``: each medium now at the mirror is moved to MEDIA_TO/medium-<id> (media move)."""
    from toolkit.archive import Archive

    from media_tools.move import media_dir, move_medium

    if skip:
        ctx.ui.say("restored with losses: the media stay at the mirror (`media move` them once the losses are dealt with)")
        return []
    moved = []
    with Archive.open(home, writer=True, lock_wait=ctx.lock_wait,
                      smb_password=os.environ.get("MAILARCHIVE_SMB_PASSWORD")) as archive:
        for m in sorted(archive.config.media, key=lambda m: m.id):
            if m.state in ("removed", "retired"):
                continue
            target = media_dir(media_to, m.id)
            password = smb_password if target.startswith("smb://") else None
            moved.append(move_medium(archive, m.id, target, smb_password=password, reporter=ctx.ui.reporter()))
    return moved


# ------------------------------------------------------------------------------ schedule

SCHEDULE_HEADER = (
    "# mailarchive schedule for the archive at {home} (install with `crontab -e`; times are the host's local time)",
    "# flock -n: a job still running is not started twice; --lock-wait: jobs queue on the archive's writer lock",
)
EXAMPLE_SOURCE = "imap imaps://user@mail.example.com/INBOX"


def _source_args(src) -> str | None:
    if isinstance(src, str):
        return src
    if isinstance(src, dict) and src.get("name"):
        return f"source {shlex.quote(src['name'])}"
    if isinstance(src, dict):
        kind = src.get("kind") or src.get("type")
        uri = src.get("uri") or src.get("url") or src.get("location") or src.get("source")
        if kind and uri:
            return f"{kind} {uri}"
    return None


def crontab_lines(home: str, exe: str = "mailarchive", mirror_dest: str | None = None, sources=(), keep: int | None = None,
                  log_file: str | None = None, mirror_configured: bool = False, tsa_configured: bool = True) -> list[str]:
    """The crontab of a production archive: stamping, backups + mirror, imports.

    With ``log_file`` every job appends to that run log. ``mirror_configured``: the mirror is
    the mirror.dest setting, so the job runs ``mirror`` without DEST and opens its sealed
    password. A source with a ``name`` (a ``source.NAME`` setting) runs as ``import source NAME``
    with its sealed password.
    """
    q = shlex.quote
    run = f"{q(exe)} --archive {q(home)} --quiet --lock-wait 600"
    if log_file:
        run += f" --log-file {q(log_file)}"

    def locked(name: str, cmd: str) -> str:
        return f"flock -n {q(home + '/.cron-' + name + '.lock')} {cmd}"

    def chain(name: str, *cmds: str) -> str:
        return f"flock -n {q(home + '/.cron-' + name + '.lock')} -c {q(' && '.join(cmds))}"

    lines = [h.format(home=home) for h in SCHEDULE_HEADER]
    lines.append("# stamping: every 15 minutes when at least 10,000 mails are pending, and daily at 23:57")
    # without a TSA every run would fail (exit 2) and cron would mail its error four times an hour: commented out
    off = "" if tsa_configured else "# "
    if not tsa_configured:
        lines.append("# (no TSA configured: `mailarchive timestamp configure --tsa-url URL --ca-cert FILE`, then print "
                     "the schedule again)")
    lines.append(f"{off}*/15 * * * * {locked('stamp', f'{run} timestamp run --min-pending 10000')}")
    lines.append(f"{off}57 23 * * * {locked('stamp-daily', f'{run} timestamp run --all')}")
    keep_opt = f" --keep {keep}" if keep else ""
    lines.append("# catalog backup + mirror: hourly at :12 except 01:12 (incremental; full while there is none), full daily at 01:12")
    if mirror_dest:
        m = f"{run} mirror" if mirror_configured else f"{run} mirror {q(mirror_dest)}"
        lines.append(f"12 0,2-23 * * * {chain('backup', f'{run} db backup', m)}")
        lines.append(f"12 1 * * * {chain('backup', f'{run} db backup --full{keep_opt}', m)}")
    else:
        lines.append("# (no mirror configured: `mailarchive config set mirror.dest DEST` adds the mirror run after each backup)")
        lines.append(f"12 0,2-23 * * * {locked('backup', f'{run} db backup')}")
        lines.append(f"12 1 * * * {locked('backup', f'{run} db backup --full{keep_opt}')}")
    lines.append("# purge of approved deletion requests: daily at 03:40")
    lines.append(f"40 3 * * * {locked('purge', f'{run} purge --actor scheduled-purge')}")
    lines.append("# imports at :02, :17, :32 and :47")
    args = [a for a in (_source_args(s) for s in sources) if a]
    if args:
        for i, a in enumerate(args, 1):
            lines.append(f"2,17,32,47 * * * * {locked(f'import-{i}', f'{run} import {a}')}")
    else:
        lines.append("# no sources configured; for example:")
        lines.append(f"# 2,17,32,47 * * * * {locked('import-1', f'{run} import {EXAMPLE_SOURCE}')}")
    # cron treats % as a newline: escape it
    return [line.replace("%", "\\%") for line in lines]


def _exe() -> str:
    found = shutil.which("mailarchive")
    if found:
        return found
    cand = Path(sys.executable).with_name("mailarchive")
    return str(cand) if cand.exists() else "mailarchive"


@command(cli, "schedule")
@click.option("--print", "do_print", is_flag=True, help="Print the crontab lines (nothing is installed).")
@click.option("--mirror", "mirror_dest", default=None, help="Mirror DEST run after each backup (default: the mirror.dest setting, see `mailarchive config`).")
@click.option("--keep", type=int, default=None, help="--keep N for the daily full backup.")
@pass_ctx
def schedule_cmd(ctx, do_print, mirror_dest, keep):
    """Print crontab lines for a production archive: stamping, hourly backups + mirror, imports of configured sources."""
    if not do_print:
        raise UsageError("schedule only prints (--print)")
    home = str(Path(ctx.home).absolute())
    sources, settings_dest, log_file, tsa = [], None, None, True
    try:
        with ctx.open() as archive:
            sources = archive.config.settings.get("sources", []) or []
            settings_dest = (archive.config.settings.get("mirror") or {}).get("dest")
            log_file = archive.config.settings.get("log_file")
            tsa = bool((archive.config.settings.get("timestamp") or {}).get("tsa_url"))
    except MailArchiveError:
        pass  # no archive yet: print the schedule with examples
    configured = mirror_dest is None or mirror_dest == settings_dest
    lines = crontab_lines(home, _exe(), mirror_dest or settings_dest, sources, keep,
                          log_file=log_file or str(Home(home).default_log_file), mirror_configured=configured and bool(settings_dest),
                          tsa_configured=tsa)
    ctx.ui.emit({"lines": lines}, lambda r: click.echo("\n".join(r["lines"])))
