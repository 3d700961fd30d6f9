"""Importers: each reads one kind of source and yields its mail for ``toolkit.api.import_mail``
(docs/api.md). Each is loaded on first use."""
from toolkit.lazy import lazy_exports

__all__ = ["EmlImporter", "ImapImporter", "MaildirImporter", "MboxImporter", "MsgImporter", "Pop3Importer",
           "PstImporter", "ShareImporter"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "EmlImporter": ".eml", "ImapImporter": ".imap", "MaildirImporter": ".maildir", "MboxImporter": ".mbox",
    "MsgImporter": ".msg", "Pop3Importer": ".pop3", "PstImporter": ".pst", "ShareImporter": ".share",
})
