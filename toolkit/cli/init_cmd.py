"""``mailarchive init``."""
from __future__ import annotations

import os
from pathlib import Path

import click

from ..archive import Archive
from ..keybackup import check_password, write_key_backup
from .main import cli, command, pass_ctx
from .passwords import read_secret


@command(cli, "init")
@click.option("--medium", "medium", default=None, help="Location of medium 1: a path or smb://user@host[:port]/share/path (default: HOME/medium-1).")
@click.option("--key-backup", type=click.Path(path_type=Path), default=None, help="Where to write the printable key backup (default: HOME/key-backup.txt).")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="File holding the key backup password, at least 12 characters and not a common one (else $MAILARCHIVE_PASSWORD, else a prompt).")
@click.option("--name", default=None, help="A name for the archive (default: the home's directory name).")
@pass_ctx
def init(ctx, medium, key_backup, password_file, name):
    """Create a new archive: home, key, encrypted catalog, medium 1, and the printable key backup.

    The key backup is the only way back into the archive if the home is lost:
    print it, and keep it and its password in separate safe places. SMB media
    take their password from $MAILARCHIVE_SMB_PASSWORD; it is stored sealed.
    """
    password = read_secret(password_file, "MAILARCHIVE_PASSWORD", "Password for the key backup", confirm=True)
    check_password(password)
    medium = medium or str(ctx.home / "medium-1")
    backup = key_backup or ctx.home / "key-backup.txt"
    # The key backup is init's last step: if it cannot be written, nothing of the archive stays behind.
    archive = Archive.create(
        ctx.home, medium, name=name, smb_password=os.environ.get("MAILARCHIVE_SMB_PASSWORD"),
        last_step=lambda a: write_key_backup(Path(backup), a.key, a.uuid, password.encode()),
    )
    try:
        result = {
            "home": str(ctx.home.absolute()),
            "uuid": str(archive.uuid),
            "fingerprint": archive.fingerprint,
            "medium": {"id": 1, "location": archive.config.medium(1).location},
            "key_backup": str(Path(backup).absolute()),
        }
    finally:
        archive.close()
    ctx.ui.emit(
        result,
        lambda r: ctx.ui.say(
            f"Created archive {r['uuid']} at {r['home']}\n"
            f"  key fingerprint  {r['fingerprint']}\n"
            f"  medium 1         {r['medium']['location']} (active)\n"
            f"  key backup       {r['key_backup']}  — print it and store it apart from the password"
        ),
    )
