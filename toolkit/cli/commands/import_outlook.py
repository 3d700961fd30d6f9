"""``mailarchive import msg ...`` and ``mailarchive import pst ...`` (Outlook sources, converted by ``toolkit.mapi``)."""
from __future__ import annotations

from pathlib import Path

import click

from importers.msg import MsgImporter

from .import_eml import _smb_password, import_group, run_imports
from ..main import command

_PASSWORD_HELP = "SMB password file for smb:// sources (else $MAILARCHIVE_SMB_PASSWORD)."


@command(import_group, "msg")
@click.argument("sources", nargs=-1, required=True)
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help=_PASSWORD_HELP)
@click.pass_context
def msg_cmd(click_ctx, sources, password_file):
    """Import Outlook .msg/.oft files: each one converted to one RFC 5322 mail.

    SOURCE is a file, a directory tree, or smb://user@host[:port]/share/path.
    The conversion is deterministic (the same file always gives the same
    bytes, so a rerun records duplicates); Bcc recipients come from the
    recipient table, embedded messages become message/rfc822 parts. Files
    that are not .msg files are listed as skipped, damaged ones as errors
    (exit status 1). The sighting's via names the converter and its version.
    """
    ctx = click_ctx.obj
    password = _smb_password(sources, password_file)
    rc = run_imports(ctx, [MsgImporter(s, smb_password=password) for s in sources])
    click_ctx.exit(rc)


@command(import_group, "pst")
@click.argument("sources", nargs=-1, required=True)
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help=_PASSWORD_HELP)
@click.pass_context
def pst_cmd(click_ctx, sources, password_file):
    """Import Outlook PST and OST stores: every folder, every mail item.

    SOURCE is a store file, a directory (every file in it that starts with
    the PST signature) or smb://user@host[:port]/share/path (each store is
    copied to a private temporary file while it is read). Folders are
    recorded as Outlook shows them (Inbox, Inbox/Sub, Deleted Items); mail
    items (IPM.Note*, REPORT.*, IPM.Schedule.*, IPM.Post) are converted
    deterministically, so a rerun records duplicates; contacts,
    appointments, tasks, distribution lists and FreeBusy items are listed as
    skipped with their class. A password-flagged store is read and the flag
    reported. A killed run resumes after the last committed item.
    """
    from importers.pst import PstImporter

    ctx = click_ctx.obj
    password = _smb_password(sources, password_file)
    rc = run_imports(ctx, [PstImporter(s, smb_password=password) for s in sources])
    click_ctx.exit(rc)
