"""``mailarchive init``."""
from __future__ import annotations

import os
from pathlib import Path

import click

from ...archive import Archive
from ...errors import UsageError
from ...home import Home
from ...keybackup import DEFAULT_KDF_PROFILE, KDF_PROFILES, check_password, kdf_profile_params, write_key_backup
from ..main import cli, command, pass_ctx
from ..output import err_console
from ..passwords import read_secret


@command(cli, "init")
@click.option("--medium", "medium", default=None, help="Location of medium 1: a path or smb://user@host[:port]/share/path (default: HOME/medium-1).")
@click.option("--key-backup", type=click.Path(path_type=Path), default=None, help="Where to write the printable key backup, outside HOME (default: HOME/key-backup.txt, with a warning: copy it elsewhere).")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="File holding the key backup password, at least 12 characters and not a common one (else $MAILARCHIVE_PASSWORD, else a prompt).")
@click.option("--name", default=None, help="A name for the archive (default: the home's directory name).")
@click.option("--kdf-profile", type=click.Choice(sorted(KDF_PROFILES)), default=DEFAULT_KDF_PROFILE, show_default=True,
              help="Argon2id parameters of the key backup's password, kept for later `key backup` runs. "
                   "`test` is for throwaway archives of test suites only: its backups fall to a password guess.")
@pass_ctx
def init(ctx, medium, key_backup, password_file, name, kdf_profile):
    """Create a new archive: home, key, encrypted catalog, medium 1, and the printable key backup.

    The key backup is the only way back into the archive if the home is lost:
    print it, and keep it and its password in separate safe places. HOME must
    be new or empty (a home holds the raw key and is made private, mode 0700). A
    --key-backup path inside HOME is refused (exit 2); without --key-backup it
    goes to HOME/key-backup.txt and a warning names it and the fingerprint. SMB media
    take their password from $MAILARCHIVE_SMB_PASSWORD; it is stored sealed.
    """
    if key_backup is not None and _inside(Path(key_backup), ctx.home):
        raise UsageError(
            f"--key-backup {key_backup} lies inside the archive home {ctx.home}: the key backup must outlive the "
            f"home (a lost or damaged home takes it along); give a path on another disk or a USB stick"
        )
    if key_backup is not None and medium is not None and "://" not in medium and _inside(Path(key_backup), Path(medium)):
        raise UsageError(
            f"--key-backup {key_backup} lies inside medium 1 ({medium}): it would travel with the sealed packs it "
            f"opens, their safety then resting on its password alone; give a path on another disk or a USB stick"
        )
    password = read_secret(password_file, "MAILARCHIVE_PASSWORD", "Password for the key backup", confirm=True)
    check_password(password)
    medium = medium or str(Home(ctx.home).default_medium)
    backup = key_backup or Home(ctx.home).default_key_backup
    # The key backup is init's last step: if it cannot be written, nothing of the archive stays behind.
    archive = Archive.create(
        ctx.home, medium, name=name, smb_password=os.environ.get("MAILARCHIVE_SMB_PASSWORD"),
        last_step=lambda a: _write_first_backup(a, Path(backup), password, kdf_profile),
    )
    try:
        result = {
            "home": str(ctx.home.absolute()),
            "uuid": str(archive.uuid),
            "fingerprint": archive.fingerprint,
            "medium": {"id": 1, "location": archive.config.medium(1).location},
            "key_backup": str(Path(backup).absolute()),
            "warnings": [],
        }
        if key_backup is None:
            result["warnings"].append(
                f"the key backup was written inside the archive home, at {result['key_backup']}: if the home is "
                f"lost, so is the backup. Print it or copy it elsewhere now (`mailarchive key backup --out FILE` "
                f"writes another) and note the key fingerprint {archive.fingerprint}"
            )
    finally:
        archive.close()

    def human(r):
        ctx.ui.say(
            f"Created archive {r['uuid']} at {r['home']}\n"
            f"  key fingerprint  {r['fingerprint']}\n"
            f"  medium 1         {r['medium']['location']} (active)\n"
            f"  key backup       {r['key_backup']}  — print it and store it apart from the password"
        )
        for w in r["warnings"]:
            ctx.ui.say(f"[bold yellow]WARNING:[/] {w}")

    ctx.ui.emit(result, human)
    if result["warnings"] and (ctx.ui.json or ctx.ui.quiet):
        err_console.print(f"warning: {result['warnings'][0]}", markup=False, highlight=False)


def _write_first_backup(archive: Archive, backup: Path, password: str, kdf_profile: str) -> None:
    """Record the KDF profile (only a non-default one changes the configuration), then write the backup."""
    if kdf_profile != archive.config.kdf_profile:
        archive.config.kdf_profile = kdf_profile
        archive.save_config()
    write_key_backup(backup, archive.key, archive.uuid, password.encode(), kdf_params=kdf_profile_params(kdf_profile))


def _inside(path: Path, home: Path) -> bool:
    """Is ``path`` the home or below it (symbolic links resolved as far as they exist)?"""
    p, h = path.expanduser().resolve(), home.expanduser().resolve()
    return p == h or h in p.parents
