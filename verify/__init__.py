"""Verification, timestamps and evidence (docs/verification.md, docs/timestamps.md); the report of
``verify_archive`` is written with ``write_json``, ``write_html`` or ``write_findings``. Loaded on first use."""
from toolkit.lazy import lazy_exports

__all__ = ["Check", "EvidenceCheck", "Report", "find_bundles", "verify_archive", "verify_evidence",
           "write_findings", "write_html", "write_json"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "Check": ".report", "Report": ".report", "write_findings": ".report", "write_html": ".report",
    "write_json": ".report", "verify_archive": ".checks",
    "EvidenceCheck": ".evidence", "find_bundles": ".evidence", "verify_evidence": ".evidence",
})
