"""``mailarchive import imap`` and ``import pop3``: mail servers as sources (docs/dedup.md)."""
from __future__ import annotations

from pathlib import Path

import click

from ...catalog import reads
from .import_eml import dry_run_option, import_group, run_imports
from ..main import command
from ..output import human_bytes
from ..passwords import read_secret



def server_options(f):
    """The connection options of every server source (also `migrate`'s, for all its server lines)."""
    f = click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds without an answer before the connection counts as dropped.")(f)
    f = click.option("--retries", type=click.IntRange(0, 50), default=5, show_default=True, help="Reconnect attempts in a row after a dropped or silent connection (exponential backoff).")(f)
    f = click.option("--allow-plaintext", is_flag=True, help="Log in over an unencrypted link when the server offers no STARTTLS (trusted links only).")(f)
    f = click.option("--insecure", is_flag=True, help="Do not verify the server certificate (explicit; never the default).")(f)
    f = click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), default=None, help="Verify the server certificate against these CA certificates (PEM) instead of the system store.")(f)
    return f


def _tls_options(f):
    f = server_options(f)
    f = click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Read the password from this file (else the environment variable, else a prompt).")(f)
    return f


def _folder_counts(ctx, run_ids: list[int]) -> list[dict]:
    """Per-folder decisions of these runs, from the catalog's sightings and run errors."""
    if not run_ids:
        return []
    with ctx.open(writer=False) as archive, archive.catalog.reading() as con:
        rows, errs = reads.run_folder_counts(con, run_ids)
    folders: dict[str, dict] = {}
    for folder, decision, n, size in rows:
        f = folders.setdefault(folder, {"folder": folder, "seen": 0, "archived": 0, "duplicates": 0, "merged": 0, "errors": 0, "bytes": 0})
        f["seen"] += n
        f["bytes"] += int(size)
        if decision in ("exact-duplicate", "duplicate"):
            f["duplicates"] += n
        elif decision == "journal-merge":
            f["merged"] += n
        else:
            f["archived"] += n
    for ref, n in errs:
        folder = ref.split(";UIDVALIDITY=", 1)[0]
        f = folders.setdefault(folder, {"folder": folder, "seen": 0, "archived": 0, "duplicates": 0, "merged": 0, "errors": 0, "bytes": 0})
        f["errors"] += n
    return sorted(folders.values(), key=lambda f: f["folder"])


def _run(click_ctx, importer) -> None:
    ctx = click_ctx.obj
    ui = ctx.ui
    captured: dict = {}
    emit = ui.emit

    def capture(result, renderer):  # run_imports emits once: add per-folder counts to that one object
        captured["result"] = result
        result["folders"] = _folder_counts(ctx, result.get("run_ids", []))

        def render(r):
            renderer(r)
            for f in r["folders"]:
                ui.say(
                    f"  {f['folder'] or '(no folder)'}: {f['seen']} seen = {f['archived']} archived + "
                    f"{f['duplicates']} duplicates + {f['merged']} journal-merge; {f['errors']} errors, {human_bytes(f['bytes'])}"
                )

        emit(result, render)

    ui.emit = capture
    try:
        rc = run_imports(ctx, [importer])
    finally:
        ui.emit = emit
    click_ctx.exit(rc)


@command(import_group, "imap")
@dry_run_option
@click.argument("url")
@click.option("--folder", "folders", multiple=True, help="Import only this folder (decoded name, e.g. 'Entwürfe' or 'Archive/2020', or the server's own, e.g. 'INBOX.Archive.2020'); repeatable.")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="Skip folders whose name matches this shell pattern (e.g. 'Junk*'); repeatable.")
@click.option("--batch", type=click.IntRange(1, 5000), default=200, show_default=True, help="Messages per FETCH.")
@click.option("--connections", type=click.IntRange(1, 8), default=2, show_default=True,
              help="Folders read at once, each on its own connection (servers limit connections per user).")
@_tls_options
@click.pass_context
def imap_cmd(click_ctx, url, folders, exclude, batch, connections, password_file, ca_file, insecure, allow_plaintext,
             retries, timeout):
    """Import every folder of an IMAP account, read-only.

    URL is imaps://USER@HOST[:PORT] (implicit TLS) or imap://USER@HOST[:PORT]
    (STARTTLS required unless --allow-plaintext; a server that does not offer
    it gets no password). A path after the host names one folder. The password
    comes from --password-file, $MAILARCHIVE_IMAP_PASSWORD or a prompt.

    Folders are opened with EXAMINE and bodies fetched with BODY.PEEK[]: no
    flag changes on the server, nothing is moved or deleted. Folder, flags and
    INTERNALDATE go into the catalog; a folder is named with "/" between its
    levels whatever the server's separator, without the personal namespace's
    prefix (Courier's and Cyrus's "INBOX.Archive.2023" is "Archive/2023", as
    `import maildir` names it); --folder takes either name. A rerun fetches only mail that arrived
    since (per folder UIDVALIDITY and last UID); a recreated folder is read
    again, and dedup stores nothing twice. Dropped connections are resumed
    with backoff, "[THROTTLED]" answers wait on the same connection; a
    rejected login ends with exit status 4 at once. A mail above 1 GiB is
    listed, not fetched; a server that breaks the protocol (e.g. announces a
    larger literal) loses that folder, listed, and the others go on.

    Mail fetched by IMAP or POP3 lacks its Bcc recipients (they are not in
    the delivered copy): a journal (import of journal reports, or a journal
    mailbox) is the complete source.
    """
    from importers.imap import ImapImporter

    password = read_secret(password_file, "MAILARCHIVE_IMAP_PASSWORD", "IMAP password")
    importer = ImapImporter(
        url, password, folders=list(folders) or None, exclude=exclude, ca_file=ca_file, insecure=insecure,
        allow_plaintext=allow_plaintext, timeout=timeout, batch=batch, retries=retries, connections=connections,
    )
    _run(click_ctx, importer)


@command(import_group, "pop3")
@dry_run_option
@click.argument("url")
@_tls_options
@click.pass_context
def pop3_cmd(click_ctx, url, password_file, ca_file, insecure, allow_plaintext, retries, timeout):
    """Import the mail of a POP3 maildrop (never deletes).

    URL is pop3s://USER@HOST[:PORT] (implicit TLS) or pop3://USER@HOST[:PORT]
    (STLS required unless --allow-plaintext). The password comes from
    --password-file, $MAILARCHIVE_POP3_PASSWORD or a prompt.

    DELE is never sent. Caution: on some servers (Dovecot among them) POP3
    retrieval marks mail as seen; this import sends RSET before QUIT, which
    undoes that on Dovecot, but other servers may differ (Courier keeps mail
    retrieved with RETR marked as read after RSET). A rerun fetches only
    mail whose UIDL is after the last one imported; without UIDL support every
    run reads everything and dedup stores nothing twice.

    Mail fetched by IMAP or POP3 lacks its Bcc recipients (they are not in
    the delivered copy): a journal (import of journal reports, or a journal
    mailbox) is the complete source.
    """
    from importers.pop3 import Pop3Importer

    password = read_secret(password_file, "MAILARCHIVE_POP3_PASSWORD", "POP3 password")
    importer = Pop3Importer(
        url, password, ca_file=ca_file, insecure=insecure, allow_plaintext=allow_plaintext,
        timeout=timeout, retries=retries,
    )
    _run(click_ctx, importer)
