"""The command hints after an error: the core says what to do next as a :class:`NextStep` kind,
and this table phrases it with the commands of ``mailarchive`` (each text starts with its joint)."""
from __future__ import annotations

from ..errors import NextStep

HINTS: dict[NextStep, str] = {
    NextStep.RESTORE_HOME_OR_REBUILD_CATALOG:
        "; restore the home from a mirror (`mailarchive restore`) or rebuild the catalog from the media "
        "(`mailarchive db rebuild --force`, which moves this file aside and never deletes it)",
    NextStep.RESTORE_CATALOG_BACKUP_OR_REBUILD: "; restore it from a DB backup or run `mailarchive db rebuild`",
    NextStep.RESTORE_HOME_OR_REBUILD:
        "; restore the home from a mirror (`mailarchive restore`) "
        "or rebuild the catalog from the media (`mailarchive db rebuild`)",
    NextStep.CHOOSE_OR_INIT_ARCHIVE: "; pass --archive HOME, set MAILARCHIVE_HOME, or run `mailarchive init`",
    NextStep.RESTORE_KEY: "; recover it with `mailarchive key restore --from BACKUP`",
    NextStep.LIST_MEDIA: "; `mailarchive media list` shows the media",
    NextStep.ACTIVATE_MEDIUM: "; `mailarchive media activate ID`",
    NextStep.FULL_DB_BACKUP: "; run `mailarchive db backup --full`",
    NextStep.LIST_TSA_CAS: " (`mailarchive timestamp ca list`)",
    NextStep.SEE_MEDIA: "; `mailarchive media list`",
    NextStep.RESTORE_HOME_OR_OTHER: "; restore the home from a mirror (`mailarchive restore`) or choose another --archive",
    NextStep.SEE_LOCK: "; wait and rerun, or see `mailarchive lock status`",
    NextStep.BREAK_LOCK: " with `mailarchive lock break --yes`",
    NextStep.FULL_VERIFY: "; run `mailarchive verify --full`",
    NextStep.RERUN_STAMPING: "; move it aside and rerun `mailarchive timestamp run`",
    NextStep.BACKUP_AND_MIRROR_OR_REBUILD:
        ": on the archive run `mailarchive db backup` and then `mailarchive mirror` again; without one, "
        "`mailarchive db rebuild` can rebuild the catalog from the media alone",
    NextStep.REBUILD_FROM_MEDIA: "; `mailarchive db rebuild` can rebuild the catalog from the media alone",
}


def with_hint(exc: BaseException) -> str:
    """The error's message followed by the command hint of its next step, if it has one."""
    step = getattr(exc, "next_step", None)
    return str(exc) + (HINTS[step] if step is not None else "")
