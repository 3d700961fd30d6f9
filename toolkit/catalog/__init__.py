"""The catalog store: the one owner of the catalog's schema and of the SQL that
reads and writes it (docs/formats.md §6).

- :mod:`.connection` opens the encrypted DuckDB file: short writer sessions,
  reader sessions, and the restricted session for SQL the operator typed.
- :mod:`.migrations` holds the schema as numbered migrations.
- The other modules hold the named reads and writes, one module per concern
  (ingest rows, stamps, media and backups, reads for reports and exports).

Code outside this package asks the store by name (``append_pack``,
``mark_batch_stamped``, ...) and never writes SQL text; verify's checks are
the one exception, and they run their SQL through a read session.
"""
from .connection import (
    ATTACH_RETRY_SECONDS,
    CATALOG_NEXT_STEP,
    Catalog,
    ReadSession,
    _connection,
    catalog_damage,
    httpfs_extension_path,
    sql_string,
)

__all__ = ["Catalog", "ReadSession", "CATALOG_NEXT_STEP", "catalog_damage", "httpfs_extension_path", "sql_string"]
