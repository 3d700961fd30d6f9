"""mailarchive-toolkit's core. The library API for scripts is :mod:`toolkit.api` (docs/api.md);
its names are importable from here too, each loaded on first use."""
from .lazy import lazy_exports

__all__ = [
    "Archive", "ArchiveStats", "ExitCode", "InitResult", "MailArchiveError", "MediumStats", "MetadataExport",
    "StampedBatch", "stamp_pending",
    "NullReporter", "Reporter", "RunSummary", "DryRunSummary",
    "archive_stats", "dry_run_import", "export_metadata", "import_mail", "init_archive", "open_archive",
    "verify_archive",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    **{name: ".api" for name in __all__},
    "Archive": ".archive",
    "ExitCode": ".errors",
    "MailArchiveError": ".errors",
    "NullReporter": ".reporter",
    "Reporter": ".reporter",
    "RunSummary": ".source",
    "DryRunSummary": ".dryrun",
})
