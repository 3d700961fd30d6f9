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
    NextStep.CHOOSE_OTHER_HOME: "; choose another --archive",
    NextStep.RESTORE_INTO_NEW_HOME: "; restore into a new --archive directory",
    NextStep.RETARGET_MEDIUM: " (or use `media retarget`)",
    NextStep.RETARGET_OR_RESTORE_MEDIUM:
        "; point it at its files with `media retarget` or restore from the mirror",
    NextStep.ACTIVATE_ANOTHER_MEDIUM: " (`mailarchive media activate ID`)",
    NextStep.ACTIVATE_ONE_MEDIUM: ": `mailarchive media activate ID`",
    NextStep.ADOPT_ORPHAN_PACK: "; `mailarchive db adopt` takes its mails into the catalog (or leave it)",
    NextStep.STAMP_ALL: "; run `mailarchive timestamp run --all`",
    NextStep.PUT_BACK_NEWER_CATALOG: ". Put back a newer catalog (`mailarchive restore --from MIRROR`, or a newer "
                                     "copy of the file) or rebuild it from the media (`mailarchive db rebuild "
                                     "--force`); importing on top of it would archive those mails again",
    NextStep.RETRY_STAMPING: "; `mailarchive timestamp run` retries it",
    NextStep.DB_BACKUP: "; run `mailarchive db backup`",
    NextStep.SEE_CA_HISTORY: "; `mailarchive timestamp ca list` shows the history, "
                             "`mailarchive timestamp ca add FILE` trusts a CA again",
    NextStep.SEE_TSA_CAS: "; `mailarchive timestamp ca list`",
    NextStep.FULL_VERIFY_FIRST: " — run `mailarchive verify --full`",
    NextStep.RENEW_STAMPS: "; `mailarchive timestamp renew` extends it",
    NextStep.MBOX_TAKES_FILES: "; `import mbox` takes mbox files",
    NextStep.WAIT_LONGER_FOR_LOCK: ", or pass --lock-wait SECONDS",
    NextStep.RERUN_WRITER: "; run the interrupted command again (it resumes), or `mailarchive db adopt`: the next "
                           "command that writes to this archive first puts back the blocks saved before that checkpoint",
    NextStep.GIVE_CA: "; give its CA with --ca-file, or --insecure to skip verification",
    NextStep.USE_TLS: " Use {tls_scheme}://, or --allow-plaintext only on a link you trust.",
    NextStep.PASSWORD_NOT_IN_URL: "; use --password-file or the environment variable",
    NextStep.SMB_PASSWORD_NOT_IN_URL: "; use MAILARCHIVE_SMB_PASSWORD or --password-file instead",
    NextStep.GIVE_SMB_PASSWORD: "; set MAILARCHIVE_SMB_PASSWORD or pass --password-file",
    NextStep.GIVE_TSA_PASSWORD: "; no password given (MAILARCHIVE_TSA_PASSWORD or --password-file)",
    NextStep.GIVE_TSA_CA: "; give its CA with --tls-ca-file",
    NextStep.FEWER_SMB_CONNECTIONS: " (fewer worker processes: MAILARCHIVE_WORKERS=1 for an import, "
                                    "`verify --full --workers 1`)",
    NextStep.TSA_MOVED: "; if that is the TSA's address, give it with --tsa-url {location} "
                        "(or `mailarchive timestamp configure --tsa-url {location}`)",
    NextStep.NAME_SOURCE_MEDIA: " (--from 1,2)",
    NextStep.ACCEPT_LOSS: ", or rerun with --accept-loss to move them as they are.",
    NextStep.MIRROR_FIRST: " (run `mailarchive mirror {where}` on the archive first)",
    NextStep.REBUILD_ADOPTS_PACKS: "; `mailarchive db rebuild --force` adopts them",
    NextStep.CHECK_STRANGER_PACK:
        ". Leave that file where it is: `mailarchive verify` lists it as an unknown pack; find out what wrote "
        "it (another home writing to this medium, a copy put back by hand) before the next import, "
        "which rerun picks a new pack id",
    NextStep.ADD_MEDIUM_OR_FREE_SPACE:
        "; free space on medium {medium}, or add a medium and make it the active one (`mailarchive media add "
        "LOCATION --activate`), then rerun; `mailarchive config set import.min_free BYTES` changes the minimum",
    NextStep.FREE_EXPORT_TARGET:
        "; free space there, or choose a DEST with more room, then run the same `mailarchive export` again "
        "(finished files are kept; the manifest comes last)",
    NextStep.REPOINT_COPY:
        ". To make the copy an archive of its own, point those places at copies of them first (allowed on the "
        "copy): `mailarchive --archive {copy} media move ID NEW-LOCATION` for a medium (`media retarget ID "
        "LOCATION` for one copied already), `mailarchive --archive {copy} config set mirror.dest NEW-MIRROR` for "
        "the mirror. For a test archive, delete the copy and `mailarchive restore --from MIRROR` into a new home "
        "instead. If the copy is to take the place of {original}, remove {original} first: the copy then counts "
        "as the moved home",
}

#: Next steps whose phrasing is the whole message (the command stands inside it), from the error's hint_args.
REPHRASED: dict[NextStep, str] = {
    NextStep.FINISH_INIT: "`mailarchive init` of {path} did not finish ({marker} is there); run the same init again",
    NextStep.REBUILD_NEEDS_FORCE:
        "{path} exists; `db rebuild` replaces the catalog only with --force (the old one is moved aside)",
    NextStep.ACTIVATE_TARGET_FIRST: "source medium {sid} is the active medium; activate another medium first "
                                    "(`mailarchive media activate {target}`) so that new packs go elsewhere",
    NextStep.RESTORE_OR_RETARGET_SOURCE:
        "{head}; restore it from the mirror (or rerun `media retarget`) before consolidating",
    NextStep.BACKUP_BEFORE_MIRROR: "{head}: the mirror was made before any `mailarchive db backup`; "
                                   "run `mailarchive db backup` and `mailarchive mirror` on the archive",
    NextStep.REBUILD_ADOPTS_NEWER_MEDIA:
        "{head} (`mailarchive db rebuild --force` adopts it from the media); {tail}",
}


def hint(step: NextStep | str | None, **args) -> str:
    """The command hint of a next step (a :class:`NextStep` or its value, as a verify finding keeps it),
    with its joint; "" for None."""
    if step is None:
        return ""
    return HINTS[NextStep(step)].format(**args)


def phrase(message: str, step: NextStep | str | None, **args) -> str:
    """A core message with the hint of its next step: appended, or the whole message rephrased."""
    if step is not None and NextStep(step) in REPHRASED:
        return REPHRASED[NextStep(step)].format(**args)
    return message + hint(step, **args)


def with_hint(exc: BaseException) -> str:
    """The error's message followed by the command hints of its cause and of its own next step."""
    cause, message, epilogue = getattr(exc, "cause", None), str(exc), getattr(exc, "epilogue", "")
    if epilogue and message.endswith(epilogue):
        message = message[: -len(epilogue)]
    else:
        epilogue = ""
    message += hint(getattr(cause, "next_step", None), **getattr(cause, "hint_args", {})) if cause is not None else ""
    return phrase(message, getattr(exc, "next_step", None), **getattr(exc, "hint_args", {})) + epilogue


def phrase_listed(texts: list[str], steps: dict[str, dict]) -> list[str]:
    """Listed core texts (refusals, warnings) phrased with the next step ``steps`` holds for each, if any."""
    return [phrase(t, steps[t]["next_step"], **{k: v for k, v in steps[t].items() if k != "next_step"})
            if t in steps else t for t in texts]


def hint_findings(items) -> None:
    """Append the hint of each finding's ``next_step`` to its ``detail`` (a verify report's items, an evidence
    export's errors), so the report reads as a command-line message; the kind stays in the item."""
    for item in items:
        if item.get("next_step") is not None and "detail" in item:
            item["detail"] = item["detail"] + hint(item["next_step"])
        elif item.get("next_step") is not None and "error" in item:
            item["error"] = item["error"] + hint(item["next_step"])
