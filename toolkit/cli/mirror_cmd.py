"""``mailarchive mirror DEST``, ``restore --from DEST``, ``schedule --print``."""
from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import click

from media_tools.mirror import mirror
from media_tools.restore import restore

from ..errors import ExitCode, MailArchiveError, UsageError
from ..storage import open_storage, parse_location
from .main import cli, command, pass_ctx
from .passwords import read_secret


def _dest_storage(dest: str, password_file: Path | None):
    loc = parse_location(dest)
    password = None
    if loc.is_smb:
        password = read_secret(password_file, "MAILARCHIVE_SMB_PASSWORD", f"SMB password for {dest}")
    return open_storage(loc, password), password


@command(cli, "mirror")
@click.argument("dest")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="SMB password file for DEST (else $MAILARCHIVE_SMB_PASSWORD, else a prompt).")
@click.option("--verify", is_flag=True, help="Also read and hash packs already at DEST (new copies are always verified).")
@click.option("--delete", is_flag=True, help="Delete files at DEST the archive no longer has (never for media that cannot be read).")
@click.option("--repair", is_flag=True, help="Replace a differing pack at DEST by a verified copy of the local one.")
@click.pass_context
def mirror_cmd(click_ctx, dest, password_file, verify, delete, repair):
    """Copy every medium, the verified catalog backups and the newest config snapshot to DEST.

    DEST is a path or smb://user@host[:port]/share/path; files go to
    DEST/medium-<id>/. Packs first, backups last, so DEST never holds a backup
    whose packs are missing. Incremental and resumable; each new copy is read
    back and its SHA-256 checked. A local pack that is missing or corrupt is
    reported and never propagated as a deletion. Exit 1 when anything was
    missing, corrupt or differing.
    """
    ctx = click_ctx.obj
    storage, _ = _dest_storage(dest, password_file)
    try:
        with ctx.open() as archive:
            s = mirror(archive, storage, verify=verify, delete=delete, repair=repair, reporter=ctx.ui.reporter())
    finally:
        storage.close()
    r = s.as_dict()

    def human(r):
        ctx.ui.say(
            f"Mirror to {r['dest']}: {r['copied']} copied ({r['bytes_copied']} bytes), {r['already_present']} already present, "
            f"{len(r['differing'])} differing, {len(r['missing_locally'])} missing locally, "
            f"{len(r['corrupt_locally'])} corrupt locally, {len(r['deleted'])} deleted; newest backup {r['newest_backup']}"
            + "".join(f"\n  differing at DEST: {d['file']}" for d in r["differing"])
            + "".join(f"\n  missing locally: {d['location']}" for d in r["missing_locally"])
            + "".join(f"\n  corrupt locally: {d['location']}" for d in r["corrupt_locally"])
            + "".join(f"\n  medium {d['medium']} unreadable: {d['problem']}" for d in r["unreadable_media"])
        )

    ctx.ui.emit(r, human)
    click_ctx.exit(int(ExitCode.FINDINGS) if s.problems else 0)


@command(cli, "restore")
@click.option("--from", "source", required=True, help="The mirror: a path or smb://user@host[:port]/share/path.")
@click.option("--key-backup", type=click.Path(path_type=Path, dir_okay=False, exists=True), required=True, help="The printable key backup.")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Key backup password file (else $MAILARCHIVE_PASSWORD, else a prompt).")
@click.option("--smb-password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="SMB password file for the mirror (else $MAILARCHIVE_SMB_PASSWORD).")
@click.option("--archive", "new_home", type=click.Path(path_type=Path, file_okay=False), default=None, help="The new home (default: the global --archive).")
@click.option("--keep-locations", is_flag=True, help="Keep the media locations of the snapshot instead of pointing them at the mirror.")
@click.pass_context
def restore_cmd(click_ctx, source, key_backup, password_file, smb_password_file, new_home, keep_locations):
    """Build a new archive home from a mirror: key, config snapshot, catalog backups, media at the mirror.

    Ends with a check that every pack the catalog lists is at its medium with
    its size and SHA-256. Exit 1 "restored with losses" lists the missing or
    corrupt packs and the messages in them. A truncated or damaged backup is
    refused in favour of the previous verified one.
    """
    ctx = click_ctx.obj
    home = new_home or ctx.home
    storage, smb_password = _dest_storage(source, smb_password_file)
    password = read_secret(password_file, "MAILARCHIVE_PASSWORD", "Password of the key backup")
    try:
        result = restore(storage, key_backup.read_text(encoding="utf-8", errors="replace"), password.encode(), home,
                         keep_locations=keep_locations, smb_password=smb_password, reporter=ctx.ui.reporter())
    finally:
        storage.close()
    r = result.as_dict()

    def human(r):
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


# ------------------------------------------------------------------------------ schedule

SCHEDULE_HEADER = (
    "# mailarchive schedule for the archive at {home} (install with `crontab -e`; times are the host's local time)",
    "# flock -n: a job still running is not started twice; --lock-wait: jobs queue on the archive's writer lock",
)
EXAMPLE_SOURCE = "imap imaps://user@mail.example.com/INBOX"


def _source_args(src) -> str | None:
    if isinstance(src, str):
        return src
    if isinstance(src, dict):
        kind = src.get("kind") or src.get("type")
        uri = src.get("uri") or src.get("url") or src.get("location") or src.get("source")
        if kind and uri:
            return f"{kind} {uri}"
    return None


def crontab_lines(home: str, exe: str = "mailarchive", mirror_dest: str | None = None, sources=(), keep: int | None = None) -> list[str]:
    """The crontab of a production archive (issue 6): stamping, backups + mirror, imports."""
    q = shlex.quote
    run = f"{q(exe)} --archive {q(home)} --quiet --lock-wait 600"

    def locked(name: str, cmd: str) -> str:
        return f"flock -n {q(home + '/.cron-' + name + '.lock')} {cmd}"

    def chain(name: str, *cmds: str) -> str:
        return f"flock -n {q(home + '/.cron-' + name + '.lock')} -c {q(' && '.join(cmds))}"

    lines = [h.format(home=home) for h in SCHEDULE_HEADER]
    lines.append("# stamping: every 15 minutes when at least 10,000 mails are pending, and daily at 23:57")
    lines.append(f"*/15 * * * * {locked('stamp', f'{run} timestamp run --min-pending 10000')}")
    lines.append(f"57 23 * * * {locked('stamp-daily', f'{run} timestamp run --all')}")
    keep_opt = f" --keep {keep}" if keep else ""
    lines.append("# catalog backup + mirror: incremental hourly at :12 except 01:12, full daily at 01:12")
    if mirror_dest:
        m = f"{run} mirror {q(mirror_dest)}"
        lines.append(f"12 0,2-23 * * * {chain('backup', f'{run} db backup --incremental', m)}")
        lines.append(f"12 1 * * * {chain('backup', f'{run} db backup --full{keep_opt}', m)}")
    else:
        lines.append("# (no mirror configured: pass --mirror DEST to add the mirror run after each backup)")
        lines.append(f"12 0,2-23 * * * {locked('backup', f'{run} db backup --incremental')}")
        lines.append(f"12 1 * * * {locked('backup', f'{run} db backup --full{keep_opt}')}")
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
@click.option("--mirror", "mirror_dest", default=None, help="Mirror DEST run after each backup (default: settings mirror.dest).")
@click.option("--keep", type=int, default=None, help="--keep N for the daily full backup.")
@pass_ctx
def schedule_cmd(ctx, do_print, mirror_dest, keep):
    """Print crontab lines for a production archive: stamping, hourly backups + mirror, imports of configured sources."""
    if not do_print:
        raise UsageError("schedule only prints (--print)")
    home = str(Path(ctx.home).absolute())
    sources, settings_dest = [], None
    try:
        with ctx.open() as archive:
            sources = archive.config.settings.get("sources", []) or []
            settings_dest = (archive.config.settings.get("mirror") or {}).get("dest")
    except MailArchiveError:
        pass  # no archive yet: print the schedule with examples
    lines = crontab_lines(home, _exe(), mirror_dest or settings_dest, sources, keep)
    ctx.ui.emit({"lines": lines}, lambda r: click.echo("\n".join(r["lines"])))
