"""Media maintenance: catalog backups, catalog rebuild, consolidation plans, mirrors and restore
(docs/media.md). Loaded on first use."""
from toolkit.lazy import lazy_exports

__all__ = ["BackupResult", "MirrorSummary", "Plan", "RebuildResult", "RestoreResult", "create_backup",
           "plan_consolidation", "rebuild_catalog"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "BackupResult": ".backup", "create_backup": ".backup", "MirrorSummary": ".mirror",
    "Plan": ".consolidate", "plan_consolidation": ".consolidate",
    "RebuildResult": ".rebuild", "rebuild_catalog": ".rebuild", "RestoreResult": ".restore",
})
