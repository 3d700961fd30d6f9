"""``mailarchive key backup | restore | fingerprint``."""
from __future__ import annotations

from pathlib import Path

import click

from ...errors import NoArchiveError, UsageError, WrongKeyError
from ...home import Home, key_matches
from ...keybackup import check_password, import_key_backup, kdf_profile_params, write_key_backup
from ..main import cli, command, pass_ctx, subgroup
from ..passwords import read_secret

key_group = subgroup(cli, "key", "The archive key: printable backups and the fingerprint.")


@command(key_group, "backup")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="File to write the printable backup to.")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="File holding the password, at least 12 characters and not a common one (else $MAILARCHIVE_PASSWORD, else a prompt).")
@pass_ctx
def backup(ctx, out, password_file):
    """Write another printable key backup (Argon2id + AES-256-GCM, a check character per line).

    The file is checked by reading it back before success is reported. A file
    inside the archive home, a medium or the mirror is refused: the backup
    must outlive the home and travel apart from the sealed packs.
    """
    if out.exists():
        raise UsageError(f"{out} exists; choose another file (a key backup is never overwritten)")
    password = read_secret(password_file, "MAILARCHIVE_PASSWORD", "Password for the key backup", confirm=True)
    check_password(password)
    with ctx.open() as archive:
        _refuse_inside_the_archive(archive, out)
        write_key_backup(out, archive.key, archive.uuid, password.encode(),
                         kdf_params=kdf_profile_params(archive.config.kdf_profile))
        result = {"out": str(out.absolute()), "uuid": str(archive.uuid), "fingerprint": archive.fingerprint}
    ctx.ui.emit(result, lambda r: ctx.ui.say(f"Wrote key backup {r['out']} (fingerprint {r['fingerprint']})"))


def _refuse_inside_the_archive(archive, out: Path) -> None:
    """A key backup must outlive what it opens: not in the home (``init --key-backup`` refuses that too), nor on a
    medium or the mirror, where it would travel with the sealed packs, their safety then resting on its password
    alone."""
    from toolkit.places import place_holding
    from toolkit.storage.location import parse_location

    held = place_holding(archive.home, archive.config, parse_location(str(out.absolute())))
    if held is not None:
        raise UsageError(f"--out {out} lies inside {held[0]} ({held[1]}): a key backup must outlive the home and travel "
                         "apart from the media and the mirror; write it to another disk or a USB stick, and print it")


@command(key_group, "fingerprint")
@pass_ctx
def fingerprint_cmd(ctx):
    """Print the key's fingerprint (not secret; compare it with the one on a printed backup)."""
    with ctx.open() as archive:
        result = {"uuid": str(archive.uuid), "fingerprint": archive.fingerprint}
    ctx.ui.emit(result, lambda r: click.echo(r["fingerprint"]))


@command(key_group, "restore")
@click.option("--from", "source", type=click.Path(path_type=Path, dir_okay=False, exists=True), required=True, help="The printable key backup (typed back or printed).")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="File holding the password (else $MAILARCHIVE_PASSWORD, else a prompt).")
@pass_ctx
def restore(ctx, source, password_file):
    """Recover the archive key of HOME from a printable backup.

    A typo is reported with its line number; a wrong password exits 12 and
    writes nothing; a backup of another archive is refused by its uuid.
    """
    home = Home(ctx.home)
    if not home.has_config():
        raise NoArchiveError(f"no archive at {ctx.home}; `mailarchive restore` rebuilds a whole home from a mirror")
    config = home.load_config()
    text = source.read_text(encoding="utf-8", errors="replace")
    password = read_secret(password_file, "MAILARCHIVE_PASSWORD", "Password of the key backup")
    import uuid as uuidlib

    recovered = import_key_backup(text, password.encode(), expected_uuid=uuidlib.UUID(config.uuid))
    if not key_matches(recovered.key, uuidlib.UUID(config.uuid), config.key_check):
        raise WrongKeyError(f"{source} holds a key that does not match archive {config.uuid}")
    status = home.install_key(recovered.key)
    result = {"status": status, "uuid": str(recovered.archive_uuid), "fingerprint": recovered.fingerprint}
    ctx.ui.emit(result, lambda r: ctx.ui.say(f"Key {r['status']} (fingerprint {r['fingerprint']})"))
