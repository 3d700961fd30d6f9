"""The catalog store: the one owner of the catalog's schema and of the SQL that
reads and writes it (docs/formats.md §6).

- :mod:`.connection` opens the encrypted DuckDB file: short writer sessions,
  reader sessions, and the restricted session for SQL the operator typed.
- :mod:`.migrations` holds the schema as numbered migrations.
- The other modules hold the named reads and writes, one module per concern
  (ingest rows, stamps, media and backups, reads for reports and exports):
  :mod:`.stamps` (stamp batches, renewals), :mod:`.tsa_cas` (the TSA CA
  history), :mod:`.reads` (selections, sightings and counts for exports,
  evidence and ``stats``). Their functions take the connection of a session
  the caller opened (``reading()``, ``writing()``), or the restricted
  ``querying()`` session where the condition is the operator's SQL.

Code outside this package asks the store by name (``append_pack``,
``mark_batch_stamped``, ...) and never writes SQL text; verify's checks are
the one exception, and they run their SQL through a read session.

Which read session verify uses: :func:`check_session` (module
:mod:`.checking`), not :meth:`Catalog.querying`. ``querying()`` is the
sandbox for SQL the operator typed: one SELECT checked by the parser, no
file access, so it cannot read the Arrow tables (media listings) that the
quick checks lay beside the catalog. A :class:`CheckSession` attaches the
catalog read-only like ``reading()``, lets the checks register Arrow
tables, runs only queries (``SELECT``/``WITH``; anything else is refused)
and hands out no connection. The store's named reads accept it wherever
they accept a reading connection.
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
from .checking import CheckSession, check_session

__all__ = ["Catalog", "ReadSession", "CheckSession", "check_session", "CATALOG_NEXT_STEP", "catalog_damage", "httpfs_extension_path", "sql_string"]
