"""``mailarchive import mbox SOURCE...``: mbox files with the project's own splitter (importers/mbox.py)."""
from __future__ import annotations

from pathlib import Path

import click

from importers.mbox import VARIANTS, MboxImporter

from .import_cmd import _smb_password, import_group, run_imports
from .main import command


@command(import_group, "mbox")
@click.argument("sources", nargs=-1, required=True)
@click.option("--variant", type=click.Choice(VARIANTS), default="auto", show_default=True,
              help="How the mbox quotes body lines that start with 'From ': only mboxrd is unquoted.")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="SMB password file for smb:// sources (else $MAILARCHIVE_SMB_PASSWORD).")
@click.pass_context
def mbox_cmd(click_ctx, sources, variant, password_file):
    """Import mbox files: each SOURCE is one mbox file, local or smb://user@host[:port]/share/path/file.

    Files compressed with gzip, bzip2 or xz are read transparently (detected
    from their first bytes). A message starts at a From_ line ("From sender
    date") at the start of the file or after an empty line; "From here on..."
    text lines never split. An unquoted From_ line in a body after an empty
    line still splits; both halves are flagged "possible-false-split" and
    listed, unless a consistent Content-Length header covers it. A
    Content-Length that does not end at a From_ line or EOF is ignored. Bytes
    before the first From_ line are reported, never archived as a message.

    \b
    Variants (--variant):
      auto     (default) store every line as it is; '>From ' stays quoted
      mboxo    the same: mboxo quoting cannot be undone
      mboxcl   the same; Content-Length marks the message ends
      mboxcl2  the same, unquoted bodies, Content-Length marks the ends
      mboxrd   remove exactly one '>' from every line matching ^>+From
    Nothing is unquoted unless --variant mboxrd is given. Pick mboxrd only
    when the writer is known to use it (git format-patch --pretty=mboxrd,
    public-inbox, Dovecot mbox export of mboxrd).

    The archived bytes are the message between its From_ line and the empty
    line written before the next From_ line; the From_ date becomes the
    internal date. Killed or interrupted runs resume at the byte after the
    last committed message, after checking that message's SHA-256; an mbox
    rewritten in the meantime is read again from the start (with a warning),
    and dedup decides. A run after a completed one reads everything again and
    records each mail as a duplicate.
    """
    ctx = click_ctx.obj
    password = _smb_password(sources, password_file)
    rc = run_imports(ctx, [MboxImporter(s, smb_password=password, variant=variant) for s in sources])
    click_ctx.exit(rc)
