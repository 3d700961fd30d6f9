"""Named catalog migrations, each applied once, in name order, inside a transaction.

Each migration is a module ``mNNNN_<name>.py`` in this package holding ``SQL``
(statements over the attached catalog ``cat``). Add one by adding a module
with the next number; never edit one that shipped.
"""
from __future__ import annotations

import importlib
import pkgutil


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("m") and m.name[1:5].isdigit())


def migration_names() -> list[str]:
    """The names of the migrations, in order, without loading their modules (every open checks them)."""
    return [name[1:] for name in _modules()]


def migration_sql(name: str) -> str:
    """The SQL of the migration ``name`` (as :func:`migration_names` gives it)."""
    return importlib.import_module(f"{__name__}.m{name}").SQL


def migrations() -> list[tuple[str, str]]:
    return [(name, migration_sql(name)) for name in migration_names()]
