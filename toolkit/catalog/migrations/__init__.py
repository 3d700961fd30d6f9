"""Named catalog migrations, each applied once, in name order, inside a transaction.

Each migration is a module ``mNNNN_<name>.py`` in this package holding ``SQL``
(statements over the attached catalog ``cat``). Add one by adding a module
with the next number; never edit one that shipped.
"""
from __future__ import annotations

import importlib
import pkgutil


def migrations() -> list[tuple[str, str]]:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("m") and m.name[1:5].isdigit())
    return [(name[1:], importlib.import_module(f"{__name__}.{name}").SQL) for name in names]
