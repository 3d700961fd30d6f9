"""Exporters: write archived mail out, byte for byte as it was imported (docs/api.md). Each returns an
:class:`ExportSummary`; the metadata export is ``toolkit.api.export_metadata``. Loaded on first use."""
from toolkit.lazy import lazy_exports

__all__ = ["ExportSummary", "Filters", "ImapTarget", "export_eml", "export_eml_zip", "export_imap", "export_maildir", "export_mbox"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "ExportSummary": ".eml", "Filters": ".filters", "ImapTarget": ".imap",
    "export_eml": ".eml", "export_eml_zip": ".zip_package", "export_imap": ".imap", "export_maildir": ".maildir", "export_mbox": ".mbox",
})
