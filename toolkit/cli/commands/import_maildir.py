"""``mailarchive import maildir ...``."""
from __future__ import annotations

from pathlib import Path

import click

from importers.maildir import MaildirImporter

from .import_eml import _smb_password, dry_run_option, import_group, run_imports
from ..executor_option import executor_option
from ..main import command

_PASSWORD_HELP = "SMB password file for smb:// sources (else $MAILARCHIVE_SMB_PASSWORD)."


@command(import_group, "maildir")
@dry_run_option
@executor_option
@click.argument("sources", nargs=-1, required=True)
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help=_PASSWORD_HELP)
@click.pass_context
def maildir_cmd(click_ctx, sources, password_file):
    """Import Maildir and Maildir++ trees: the files in cur/ and new/ of every folder.

    SOURCE is a Maildir directory or smb://user@host[:port]/share/path. The
    root is folder INBOX; Maildir++ subfolders (.Sub, .Sub.Deeper, names in
    IMAP modified UTF-7) and nested directories with their own cur/ and new/
    become folders (Sub, Sub/Deeper). Flags from the :2, / !2, info suffix
    are recorded with each sighting. tmp/ is never read; files that vanish
    during the scan are listed as skipped, unreadable ones as errors (exit
    status 1). Interrupted runs resume after the last committed file.
    """
    ctx = click_ctx.obj
    password = _smb_password(sources, password_file)
    rc = run_imports(ctx, [MaildirImporter(s, smb_password=password) for s in sources])
    click_ctx.exit(rc)
