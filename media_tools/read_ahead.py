"""Reading ahead the first packs a consolidation will copy, while the command starts (docs/media.md).

A hint to the kernel only (``posix_fadvise(WILLNEED)`` on a daemon thread): nothing is read into
the process, written or trusted. It needs nothing but archive.toml, so the command line starts it
before the catalog's imports and open; the disk then reads the source packs while the process
starts, as the copying threads' own read-ahead does later (media_tools/consolidate.py). The
consolidation checks each medium's label and reads back each copy as before.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from toolkit.errors import MailArchiveError
from toolkit.home import Home
from toolkit.storage.location import parse_location

#: Packs hinted at the start: as many as the copying threads read ahead before the copy
#: (media_tools/consolidate.py: ``LOCAL_THREADS`` × ``WARM_PACKS_PER_THREAD``).
EARLY_PACKS = 8


def first_packs(home: Path, medium_ids: list[int], count: int = EARLY_PACKS) -> list[Path]:
    """The first ``count`` pack files of the local media among ``medium_ids``, in the order a
    consolidation copies them (by medium ID, then name); [] when archive.toml cannot be read
    (the command reports that itself)."""
    try:
        config = Home(home).load_config()
    except (MailArchiveError, OSError, ValueError):
        return []
    files: list[Path] = []
    for mid in sorted(set(medium_ids)):
        m = config.medium(mid)
        if m is None or m.state in ("retired", "removed"):
            continue
        try:
            loc = parse_location(m.location)
        except MailArchiveError:
            continue
        if loc.is_smb:
            continue
        root = Path(loc.path) / "packs"
        names = sorted(
            os.path.relpath(os.path.join(d, f), root) for d, _dirs, fs in os.walk(root) for f in fs if f.endswith(".pack")
        )
        files += [root / n for n in names[: count - len(files)]]
        if len(files) >= count:
            break
    return files


def read_ahead(paths: list[Path]) -> threading.Thread | None:
    """Ask the kernel to read ``paths`` into the page cache, one after the other, on a daemon thread."""
    if not paths or not hasattr(os, "posix_fadvise"):
        return None

    def hint() -> None:
        for p in paths:
            try:
                fd = os.open(p, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass
            finally:
                os.close(fd)

    t = threading.Thread(target=hint, name="read-ahead", daemon=True)
    t.start()
    return t
