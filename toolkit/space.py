"""Free space on the active medium, checked before an import writes anything (docs/reliability.md E6).

An import that starts on a nearly full medium would fill it mid-pack (E1: it stops cleanly, but
only after reading and sealing for nothing). So an import first asks the active medium for its
free space and refuses to start below a minimum: by default room for two packs (an open pack may
grow to twice the pack target before it is sealed) plus a margin, or the archive's
``import.min_free`` setting (bytes; 0 switches the check off). A storage that cannot tell its
free space is not refused. The minimum is only a floor: the volume may still fill later (E1).
"""
from __future__ import annotations

from .archive import Archive
from .errors import NextStep, StorageFullError, UsageError

#: Free space an import leaves beyond the two packs it may hold open (the same as a consolidation's floor).
MARGIN = 64 * 1024 * 1024
SETTING = ("import", "min_free")


def default_minimum(pack_target: int) -> int:
    return 2 * pack_target + MARGIN


def import_minimum(archive: Archive, pack_target: int) -> int:
    """The free space an import needs on the active medium before it starts (bytes)."""
    table, name = SETTING
    value = (archive.config.settings.get(table) or {}).get(name)
    if value is None:
        return default_minimum(pack_target)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UsageError(f"the setting {table}.{name} in {archive.home}/archive.toml must be a number of bytes, "
                         f"not {value!r}")
    return value


def check_import_space(archive: Archive, pack_target: int, min_free: int | None = None) -> dict:
    """Refuse (StorageFullError, exit 3) when the active medium has less free space than an import needs
    (``min_free`` bytes when given, else :func:`import_minimum`); returns what was compared
    ``{"medium", "free", "needed"}``."""
    needed = import_minimum(archive, pack_target) if min_free is None else min_free
    medium_id = archive.active_medium_id()
    if needed == 0:
        return {"medium": medium_id, "free": None, "needed": 0}
    storage = archive.storage(medium_id)
    free = storage.free_space()
    if free is not None and free < needed:
        raise StorageFullError(
            f"not enough free space on medium {medium_id} ({storage.location}): {free} bytes free "
            f"({_size(free)}), an import needs at least {needed} ({_size(needed)}) before it starts; "
            f"nothing was written",
            next_step=NextStep.ADD_MEDIUM_OR_FREE_SPACE, hint_args={"medium": medium_id},
        )
    return {"medium": medium_id, "free": free, "needed": needed}


def _size(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"
