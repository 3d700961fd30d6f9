"""``mailarchive import share ...``: a tree of mixed mail, each file recognised by its content (importers/share.py).

A module of its own so that ``import maildir`` does not load the share importer and the mbox reader."""
from __future__ import annotations

from pathlib import Path

import click

from importers.share import ShareImporter

from .import_eml import _smb_password, dry_run_option, import_group, run_imports
from .import_maildir import _PASSWORD_HELP
from .import_mbox import mbox_limits
from ..executor_option import executor_option
from ..main import command


@command(import_group, "share")
@dry_run_option
@executor_option
@click.argument("sources", nargs=-1, required=True)
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help=_PASSWORD_HELP)
@mbox_limits
@click.pass_context
def share_cmd(click_ctx, sources, password_file, max_message_size, max_expansion_ratio, max_expansion_after):
    """Import a whole tree of mixed mail, recognising each file by its content.

    SOURCE is a directory or smb://user@host[:port]/share/path. Maildirs
    (directories with cur/ or new/) are imported as Maildirs, files that
    start with a From_ line as mboxes (also gzip/bzip2/xz compressed), files
    that start with a mail header block as single messages. Everything else
    is skipped and listed with the reason (empty file, binary, no header
    block, symbolic link, FIFO). Symbolic links are never followed and FIFOs
    or devices never opened. Interrupted runs resume where they stopped,
    also inside an mbox.
    """
    ctx = click_ctx.obj
    password = _smb_password(sources, password_file)
    limits = {"max_message": max_message_size, "max_ratio": max_expansion_ratio, "max_ratio_after": max_expansion_after}
    rc = run_imports(ctx, [ShareImporter(s, smb_password=password, mbox_limits=limits) for s in sources])
    click_ctx.exit(rc)
