"""``mailarchive import mbox SOURCE...``: mbox files with the project's own splitter (importers/mbox.py)."""
from __future__ import annotations

import re
from pathlib import Path

import click

from importers.mbox import MAX_MESSAGE, MAX_RATIO, MAX_RATIO_AFTER, VARIANTS, MboxImporter

from .import_eml import _smb_password, dry_run_option, import_group, run_imports
from ..executor_option import executor_option
from ..main import command


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"(\d{1,15}(?:\.\d{1,6})?) ?([KMGT]?)(?:I?B)?", re.I)


class ByteSize(click.ParamType):
    """A byte count: 2147483648, 500M, 2G, 1.5GiB, 64k (binary units: K = 1024)."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        m = _SIZE.fullmatch(str(value).strip())
        if not m or float(m.group(1)) * _UNITS[m.group(2).upper()] < 1:
            self.fail(f"{value!r} is not a size (examples: 500M, 2G, 1048576)", param, ctx)
        return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def mbox_limits(f):
    """The resource limits of reading mbox files (``import mbox`` and the mboxes of ``import share``)."""
    f = click.option("--max-expansion-after", type=ByteSize(), default=str(MAX_RATIO_AFTER), show_default="1G",
                     help="The decompression guard looks at the ratio only past this many decompressed bytes.")(f)
    f = click.option("--max-expansion-ratio", type=click.FloatRange(1, None), default=MAX_RATIO, show_default=True,
                     help="A .gz/.bz2/.xz input that expands to more than this many times its compressed bytes "
                          "(past --max-expansion-after) is stopped and listed as an error (a decompression bomb); "
                          "the messages before that point are imported.")(f)
    f = click.option("--max-message-size", type=ByteSize(), default=str(MAX_MESSAGE), show_default="2G",
                     help="Largest message read from an mbox (units K, M, G: 500M, 2G). A larger message is never "
                          "read whole: it is listed as an error with its file, byte offset and size, the run exits "
                          "1 and the messages after it are imported; rerun with a larger value to import it "
                          "(a rerun reads the mbox again, dedup skips what is archived).")(f)
    return f


@command(import_group, "mbox")
@dry_run_option
@executor_option
@click.argument("sources", nargs=-1, required=True)
@click.option("--variant", type=click.Choice(VARIANTS), default="auto", show_default=True,
              help="How the mbox quotes body lines that start with 'From ': only mboxrd is unquoted.")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="SMB password file for smb:// sources (else $MAILARCHIVE_SMB_PASSWORD).")
@mbox_limits
@click.pass_context
def mbox_cmd(click_ctx, sources, variant, password_file, max_message_size, max_expansion_ratio, max_expansion_after):
    """Import mbox files: each SOURCE is one mbox file, local or smb://user@host[:port]/share/path/file.

    A local directory that holds a file named "mbox" (the Name.mbox/ bundle
    Apple Mail's Export Mailbox writes) is read as that file, folder Name;
    its table_of_contents and Info.plist are listed as skipped.

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
    last committed message, after checking that message's CRC-32; an mbox
    rewritten in the meantime is read again from the start (with a warning),
    and dedup decides. A run after a completed one reads everything again and
    records each mail as a duplicate. The workers read the messages of a
    plain local mbox themselves, by offset: a message whose bytes changed
    after the scan found it is listed as an error (mbox, message number, byte
    offset) and not imported; rerun once nothing writes to the mbox.

    Limits: a message over --max-message-size is listed as an error (file,
    byte offset, size) and not imported, rather than archived by streaming:
    the splitter reads past it without holding it, the run exits 1, the
    messages after it are imported, and a rerun with a larger value imports
    it. A compressed mbox that expands more than --max-expansion-ratio times
    (past --max-expansion-after bytes) is stopped and listed as an error.
    """
    ctx = click_ctx.obj
    password = _smb_password(sources, password_file)
    rc = run_imports(ctx, [MboxImporter(s, smb_password=password, variant=variant, max_message=max_message_size,
                                        max_ratio=max_expansion_ratio, max_ratio_after=max_expansion_after)
                           for s in sources])
    click_ctx.exit(rc)
