"""``mailarchive export mbox|maildir|imap|metadata``: the other export targets."""
from __future__ import annotations

from pathlib import Path

import click

from .export_eml import export_group, finish_export
from ..export_filters import emit_dry_run, filter_options
from ..export_mode import mode_option
from ..main import command
from ..passwords import read_secret


def _directory(dest: Path, writes: str) -> None:
    """DEST must not be a file (click's own words, "Directory 'x' is a file", say not what the export writes)."""
    if dest.is_file() and not dest.is_symlink():
        raise click.BadParameter(f"{dest} is a file; {writes}", param_hint="DEST")


@command(export_group, "mbox")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--per-folder", is_flag=True, help="One mbox file per source folder (DEST/Folder/Sub.mbox) instead of DEST/messages.mbox.")
@click.option("--flags", "flag_fields", is_flag=True,
              help="Write each message's flags (read, answered, flagged, draft, deleted) into Status:, X-Status: "
                   "and X-Mozilla-Status: header fields, for mutt and Thunderbird. The messages then differ from the "
                   "archived bytes: for mail programs, not for import back into an archive.")
@filter_options
@mode_option
@click.pass_context
def mbox_cmd(click_ctx, dest, per_folder, flag_fields, filters, dry_run, mode):
    """Write the selected messages as mboxrd files into the directory DEST.

    Body lines matching ^>*From get one more '>', so `import mbox --variant
    mboxrd` gives back exactly the archived bytes. The From_ line carries the
    sender and the internal (else sent) date. A message without a final line
    ending goes into a file of its own (NAME-2.mbox, ...). manifest.csv/.json
    (SHA-256 per message) are written last: without manifest.json the export
    is incomplete, and a rerun completes it without duplicating files.
    Without --flags, no flags travel: mbox keeps them only in the messages.
    """
    from exporters.mbox import export_mbox

    ctx = click_ctx.obj
    if dry_run:
        return emit_dry_run(ctx, filters)
    _directory(dest, "export mbox writes into a directory: DEST/messages.mbox (one file per folder with --per-folder) "
                     "and its manifests")
    with ctx.open() as archive:
        summary = export_mbox(archive, dest, filters, per_folder=per_folder, flags=flag_fields,
                              reporter=ctx.ui.reporter(), mode=mode)
    finish_export(click_ctx, summary, "into")


@command(export_group, "maildir")
@click.argument("dest", type=click.Path(path_type=Path))
@filter_options
@mode_option
@click.pass_context
def maildir_cmd(click_ctx, dest, filters, dry_run, mode):
    """Write the selected messages into one Maildir++ at DEST.

    INBOX is DEST itself; every other source folder is a subfolder
    .Folder.Sub (modified UTF-7 names). Flags of the latest sighting are
    restored into the file names (:2,RS ...). A rerun adds what is missing
    and never writes a message twice; manifest.csv/.json are written last.
    """
    from exporters.maildir import export_maildir

    ctx = click_ctx.obj
    if dry_run:
        return emit_dry_run(ctx, filters)
    _directory(dest, "export maildir writes a Maildir++ directory (cur/, new/, tmp/ and .Folder subdirectories)")
    with ctx.open() as archive:
        summary = export_maildir(archive, dest, filters, reporter=ctx.ui.reporter(), mode=mode)
    finish_export(click_ctx, summary, "into")


@command(export_group, "imap")
@click.argument("url")
@click.option("--max-per-second", type=float, default=None, help="At most this many APPENDs per second (throttling).")
@click.option("--manifest-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where to write manifest.csv/.json (default: HOME/export-state/imap-<hash>/).")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds without an answer before the connection counts as dropped.")
@click.option("--retries", type=click.IntRange(0, 50), default=5, show_default=True, help="Reconnect attempts in a row after a dropped connection.")
@click.option("--allow-plaintext", is_flag=True, help="Log in over an unencrypted link when the server offers no STARTTLS (trusted links only).")
@click.option("--insecure", is_flag=True, help="Do not verify the server certificate (explicit; never the default).")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), default=None, help="Verify the server certificate against these CA certificates (PEM).")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Read the password from this file (else $MAILARCHIVE_IMAP_PASSWORD, else a prompt).")
@click.option("--no-read-back", is_flag=True,
              help="Do not read each appended copy back to compare its bytes with those sent (saves downloading "
                   "everything appended; a server that alters mail then goes unnoticed).")
@filter_options
@click.pass_context
def imap_cmd(click_ctx, url, max_per_second, manifest_dir, timeout, retries, allow_plaintext, insecure, ca_file,
             password_file, no_read_back, filters, dry_run):
    """Upload the selected messages to an IMAP account with APPEND.

    URL is imaps://USER@HOST[:PORT][/PREFIX] or imap://USER@HOST[:PORT][/PREFIX]
    (STARTTLS required unless --allow-plaintext). Folders mirror the source
    folders (under PREFIX when given; mail without a folder goes to INBOX);
    the original INTERNALDATE and flags are set. Line ends are sent as CRLF,
    as IMAP requires. Appended copies are logged in
    HOME/export-state/imap-<hash>.jsonl, so a rerun skips them; with UIDPLUS
    the new UIDs go into the manifest.

    At the end every copy appended with a UID (UIDPLUS) is read back and
    compared with the bytes sent: a copy the server altered (Courier adds a
    final line end, Cyrus's munge8bit rewrites 8-bit header bytes) or lost
    is an error (exit 1), and reruns list it again. --no-read-back skips this.
    """
    from exporters.imap import ImapTarget, export_imap
    from importers.netutil import parse_mail_url, tls_context

    ctx = click_ctx.obj
    if dry_run:
        return emit_dry_run(ctx, filters)
    u = parse_mail_url(url, {"imap": (143, False), "imaps": (993, True)})
    target = ImapTarget(u.host, u.port, u.user, u.implicit_tls, u.path)
    password = read_secret(password_file, "MAILARCHIVE_IMAP_PASSWORD", "IMAP password")
    with ctx.open() as archive:
        summary = export_imap(
            archive, target, password, filters, ssl_context=tls_context(ca_file, insecure),
            allow_plaintext=allow_plaintext, timeout=timeout, retries=retries, max_per_second=max_per_second,
            manifest_dir=manifest_dir, reporter=ctx.ui.reporter(), read_back=not no_read_back,
        )
    finish_export(click_ctx, summary, "to")


@command(export_group, "metadata")
@click.argument("dest", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "json"]), default=None,
              help="Output format (default: from DEST's suffix).")
@filter_options
@mode_option
@click.pass_context
def metadata_cmd(click_ctx, dest, fmt, filters, dry_run, mode):
    """Write one row per selected message (catalog fields, recipients, sightings) to DEST.

    DEST ends in .parquet, .csv or .json. Parquet and JSON keep recipients
    and sightings as lists; in CSV they are JSON text. The file is written
    under a temporary name and renamed: complete or absent; never replaced.
    """
    from exporters.metadata import export_metadata

    ctx = click_ctx.obj
    if dry_run:
        return emit_dry_run(ctx, filters)
    with ctx.open() as archive:
        r = export_metadata(archive, dest, filters, fmt, mode=mode)
    ctx.ui.emit(r, lambda r: ctx.ui.say(f"Wrote {r['rows']} rows ({r['format']}) to {r['dest']}"))
