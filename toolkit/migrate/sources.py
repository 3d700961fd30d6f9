"""A plan line turned into the importer the ``import …`` command of its kind uses (no shelling out)."""
from __future__ import annotations

from dataclasses import dataclass

from .plan import PlanLine


@dataclass(frozen=True)
class ServerOptions:
    """The TLS and retry settings every server source of a plan gets (the import commands' options)."""

    ca_file: str | None = None
    insecure: bool = False
    allow_plaintext: bool = False
    timeout: float = 60.0
    retries: int = 5
    backoff: float = 1.0


def make_importer(line: PlanLine, password: str | None, server: ServerOptions, smb_password: str | None = None):
    """The importer of one plan line, carrying the line's owner (recorded on every sighting)."""
    import importers

    tls = dict(ca_file=server.ca_file, insecure=server.insecure, allow_plaintext=server.allow_plaintext,
               timeout=server.timeout, retries=server.retries, backoff=server.backoff)
    if line.kind == "imap":
        # no read-ahead thread of its own: the migration's reader thread and feed are one (toolkit/migrate/feed.py)
        importer = importers.ImapImporter(line.url, password or "", folders=list(line.folders) or None, prefetch=0,
                                          **tls)
    elif line.kind == "pop3":
        importer = importers.Pop3Importer(line.url, password or "", **tls)
    else:
        cls = {"mbox": importers.MboxImporter, "maildir": importers.MaildirImporter, "eml": importers.EmlImporter,
               "share": importers.ShareImporter, "pst": importers.PstImporter, "msg": importers.MsgImporter}[line.kind]
        importer = cls(line.location, smb_password)
    importer.owner = line.owner
    return importer
