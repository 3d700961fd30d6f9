"""One error hierarchy; each class carries its exit status.

The CLI has exactly one place (``toolkit.cli.main``) that turns these into
messages and exit codes. Per-message problems are not raised: they are
collected as warnings in the run summary.
"""
from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """The exit statuses of every command (docs/cli.md): the one table.

    Each row is ``code, the line in every --help, the longer text in docs/cli.md``; the help
    epilog (:data:`EXIT_STATUS_HELP`) and the docs table (:func:`exit_status_markdown`) are
    generated from it, and tests/unit/test_exit_status_table.py checks docs/cli.md against it.
    """

    def __new__(cls, code: int, help: str, doc: str):
        member = int.__new__(cls, code)
        member._value_ = code
        member.help = help
        member.doc = doc
        return member

    OK = 0, "done", "done: everything asked was done"
    FINDINGS = (1, "done with findings or rejected items (listed)",
                "done with findings or rejected items (listed) — also a run that did less than asked "
                "(a source with no mail, an item that was skipped or failed)")
    USAGE = (2, "usage error",
             "usage error — a bad option, a source or share that does not exist, an unsafe query")
    OPERATIONAL = (3, "operational failure (network, I/O); a rerun resumes",
                   "operational failure (network, I/O, a full disk); the state stays consistent and a rerun resumes")
    # a mail server or share rejected the login (not retried: account lockout)
    AUTH_FAILED = (4, "login rejected (SMB share, IMAP, POP3, TSA); check user and password",
                   "a login was rejected by a mail server, share or TSA; check user and password "
                   "(never retried, to avoid account lockout)")
    NO_ARCHIVE = 10, "no archive at HOME", "no archive at HOME"
    LOCKED = 11, "locked by another writer", "locked by another writer (the message names its PID and start time)"
    WRONG_KEY = 12, "wrong key or password", "wrong key or password"
    INTERRUPTED = (130, "interrupted; the current pack was finished, a rerun resumes",
                   "interrupted; the current pack was finished and committed, a rerun resumes")


#: The end of every command's --help (``\b`` keeps click from re-wrapping the lines).
EXIT_STATUS_HELP = "\b\nExit status:\n" + "\n".join(f"  {int(c):<4} {c.help}" for c in ExitCode)


def exit_status_markdown() -> str:
    """The exit-status table of docs/cli.md."""
    rows = "".join(f"| {int(c)} | {c.doc} |\n" for c in ExitCode)
    return "| code | meaning |\n|---|---|\n" + rows


class NextStep(enum.Enum):
    """What the operator can do next, as a kind: the core names no command; the command line
    turns the kind into its hint (``toolkit/cli/hints.py``) after the error's message."""

    RESTORE_HOME_OR_REBUILD_CATALOG = "restore-home-or-rebuild-catalog"  # the catalog is damaged or foreign
    RESTORE_CATALOG_BACKUP_OR_REBUILD = "restore-catalog-backup-or-rebuild"  # the catalog file is missing
    RESTORE_HOME_OR_REBUILD = "restore-home-or-rebuild"  # the catalog is missing when the archive opens
    CHOOSE_OR_INIT_ARCHIVE = "choose-or-init-archive"  # no archive at the home
    RESTORE_KEY = "restore-key"  # the key file is missing or foreign
    LIST_MEDIA = "list-media"  # a medium ID that does not exist
    ACTIVATE_MEDIUM = "activate-medium"  # no active medium
    FULL_DB_BACKUP = "full-db-backup"  # no full backup to build an incremental on
    LIST_TSA_CAS = "list-tsa-cas"  # an unknown TSA CA fingerprint
    SEE_MEDIA = "see-media"  # a location already registered as a medium
    RESTORE_HOME_OR_OTHER = "restore-home-or-other"  # a damaged home where init was asked
    SEE_LOCK = "see-lock"  # a shared lock that cannot be read now
    BREAK_LOCK = "break-lock"  # a shared lock held by another host
    FULL_VERIFY = "full-verify"  # a stamp batch whose messages no longer give its root
    RERUN_STAMPING = "rerun-stamping"  # a foreign file where a stamp manifest goes
    BACKUP_AND_MIRROR_OR_REBUILD = "backup-and-mirror-or-rebuild"  # a mirror without catalog backups
    REBUILD_FROM_MEDIA = "rebuild-from-media"  # a mirror whose catalog backups are all refused
    FINISH_INIT = "finish-init"  # an init that did not finish (args: path, marker)
    CHOOSE_OTHER_HOME = "choose-other-home"  # init into a home that holds an archive
    RESTORE_INTO_NEW_HOME = "restore-into-new-home"  # restore into a home that holds an archive
    RETARGET_MEDIUM = "retarget-medium"  # a label of another medium of this archive
    RETARGET_OR_RESTORE_MEDIUM = "retarget-or-restore-medium"  # a medium location without its label
    ACTIVATE_ANOTHER_MEDIUM = "activate-another-medium"  # deactivating the active medium
    ACTIVATE_ONE_MEDIUM = "activate-one-medium"  # not exactly one active medium (a verify finding)
    ADOPT_ORPHAN_PACK = "adopt-orphan-pack"  # a pack on a medium the catalog does not place there
    STAMP_ALL = "stamp-all"  # mail not in a stamp batch yet
    RETRY_STAMPING = "retry-stamping"  # a stamp batch pending its token
    DB_BACKUP = "db-backup"  # no catalog backup yet
    SEE_CA_HISTORY = "see-ca-history"  # a batch stamped under a CA no longer in the history
    SEE_TSA_CAS = "see-tsa-cas"  # the same, when exporting evidence
    FULL_VERIFY_FIRST = "full-verify-first"  # evidence refused: the catalog no longer gives a stamped root
    RENEW_STAMPS = "renew-stamps"  # a stamp's protection ends soon
    REBUILD_NEEDS_FORCE = "rebuild-needs-force"  # a rebuild over an existing catalog (args: path)
    MBOX_TAKES_FILES = "mbox-takes-files"  # a directory given where mbox files are read
    WAIT_LONGER_FOR_LOCK = "wait-longer-for-lock"  # the local writer lock is held
    GIVE_CA = "give-ca"  # a server certificate that does not verify against the CA in use
    USE_TLS = "use-tls"  # a server without STARTTLS/STLS (args: tls_scheme)
    PASSWORD_NOT_IN_URL = "password-not-in-url"  # a password inside a server URL
    SMB_PASSWORD_NOT_IN_URL = "smb-password-not-in-url"  # a password inside an smb:// location
    GIVE_SMB_PASSWORD = "give-smb-password"  # an smb:// location and no password
    GIVE_TSA_PASSWORD = "give-tsa-password"  # a TSA login rejected with no password given
    GIVE_TSA_CA = "give-tsa-ca"  # a TSA whose TLS certificate is not trusted
    TSA_MOVED = "tsa-moved"  # a TSA URL that redirects elsewhere (args: location)
    NAME_SOURCE_MEDIA = "name-source-media"  # a consolidation without source media
    ACTIVATE_TARGET_FIRST = "activate-target-first"  # consolidating the active medium (args: sid, target)
    RESTORE_OR_RETARGET_SOURCE = "restore-or-retarget-source"  # a pack missing on a source medium (args: head)
    ACCEPT_LOSS = "accept-loss"  # damaged source packs stopped a consolidation
    MIRROR_FIRST = "mirror-first"  # an empty location given as a mirror (args: where)
    BACKUP_BEFORE_MIRROR = "backup-before-mirror"  # a mirror made before any catalog backup (args: head)
    REBUILD_ADOPTS_NEWER_MEDIA = "rebuild-adopts-newer-media"  # a mirror with media newer than its backup (args: head, tail)
    REBUILD_ADOPTS_PACKS = "rebuild-adopts-packs"  # a mirror with packs newer than its backup
    PUT_BACK_NEWER_CATALOG = "put-back-newer-catalog"  # the catalog is older than the media's high-water marks
    CHECK_STRANGER_PACK = "check-stranger-pack"  # an import met a pack name it did not write (B5, C9)
    ADD_MEDIUM_OR_FREE_SPACE = "add-medium-or-free-space"  # too little free space on the active medium (args: medium)
    FREE_EXPORT_TARGET = "free-export-target"  # an export target that filled up (args: dest)
    RERUN_WRITER = "rerun-writer"  # a catalog left mid-checkpoint by a killed writer: a writer repairs it
    REPOINT_COPY = "repoint-copy"  # a writer on a copy of a home that shares its places (args: copy, original)
    FEWER_SMB_CONNECTIONS = "fewer-smb-connections"  # an SMB server refusing more of a command's connections


class MailArchiveError(Exception):
    """An error the operator can act on. The message names the object; ``next_step`` (a
    :class:`NextStep`, or None) says what to do next, phrased by the command line. ``hint_args``
    are the values that phrasing may name (a path, a URL scheme); ``cause``, an error whose own next
    step is phrased first (an error this one wraps)."""

    exit_code: ExitCode = ExitCode.OPERATIONAL
    next_step: NextStep | None = None
    hint_args: dict = {}
    cause: "MailArchiveError | None" = None
    epilogue: str = ""  # the end of the message, added after it was raised: the hint goes before it

    def __init__(self, *args, next_step: NextStep | None = None, hint_args: dict | None = None,
                 cause: "MailArchiveError | None" = None):
        super().__init__(*args)
        if next_step is not None:
            self.next_step = next_step
        if hint_args:
            self.hint_args = dict(hint_args)
        if cause is not None:
            self.cause = cause


class UsageError(MailArchiveError):
    exit_code = ExitCode.USAGE


class NoArchiveError(MailArchiveError):
    exit_code = ExitCode.NO_ARCHIVE


class ArchiveExistsError(MailArchiveError):
    exit_code = ExitCode.USAGE


class HomeCopyError(MailArchiveError):
    """A writing command on a copy of an archive home (``cp -a``, rsync) whose media or mirror are still the
    original's: refused before anything is written (toolkit/home_place.py; docs/reliability.md O11)."""

    exit_code = ExitCode.USAGE


class LockedError(MailArchiveError):
    exit_code = ExitCode.LOCKED


class WrongKeyError(MailArchiveError):
    """Wrong archive key, wrong password, or damaged key material."""

    exit_code = ExitCode.WRONG_KEY


class KeyBackupFormatError(MailArchiveError):
    """A printed key backup that does not read back (a typo, a missing line)."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


class ForeignArchiveError(MailArchiveError):
    """Something (a key backup, a medium label, a pack) belongs to another archive."""

    exit_code = ExitCode.USAGE


class MediumError(MailArchiveError):
    """A medium rule was broken, or a medium cannot be opened."""

    exit_code = ExitCode.USAGE


class MediumLabelError(MediumError):
    """MEDIUM.json missing, tampered, or belonging to another archive or medium ID."""

    exit_code = ExitCode.OPERATIONAL


class StorageError(MailArchiveError):
    """An I/O failure on a medium (local or SMB)."""

    exit_code = ExitCode.OPERATIONAL


class ShareMissingError(StorageError):
    """An smb:// location names a share the server does not have (STATUS_BAD_NETWORK_NAME): a usage
    error naming the share, reported at once (never retried until a timeout)."""

    exit_code = ExitCode.USAGE


class StorageLoginError(StorageError):
    """A share rejected the user name or password (STATUS_LOGON_FAILURE): exit status 4 like any rejected login."""

    exit_code = ExitCode.AUTH_FAILED


class ObjectExistsError(StorageError):
    """A create-only write found the final name taken (possible ID reuse)."""


class PackNameTakenError(ObjectExistsError):
    """An import met a pack name on a medium that it did not write (docs/reliability.md B5, C9).

    The run stops: the object there is left as it is (never replaced, never deleted), the pack
    this run was sealing is dropped with its rows, and the error names the medium and the pack.
    Exit 3 like any storage failure: the state is consistent and a rerun picks a new pack id.
    """


class ObjectMissingError(StorageError):
    pass


class StorageFullError(StorageError):
    """ENOSPC / quota / STATUS_DISK_FULL: permanent, never retried in a loop."""


class IntegrityError(MailArchiveError):
    """Stored bytes fail authentication or do not match their recorded hash."""

    exit_code = ExitCode.FINDINGS


class NothingSelectedError(MailArchiveError):
    """A command's selection (export filters) matches nothing: nothing done is never a success."""

    exit_code = ExitCode.FINDINGS


class CatalogError(MailArchiveError):
    exit_code = ExitCode.OPERATIONAL
    beyond_memory_limit = False


class CatalogMemoryLimitError(CatalogError):
    """A catalog session needed more memory than the DuckDB limit its command set (an import's,
    docs/reliability.md K8); nothing of it was committed. The import's writer commits it again without the limit."""

    beyond_memory_limit = True


class SourceError(MailArchiveError):
    """A mail source cannot be read (share unreachable, I/O failure)."""

    exit_code = ExitCode.OPERATIONAL

    @classmethod
    def wrapping(cls, message: str, cause: MailArchiveError) -> "SourceError":
        """A SourceError with ``message`` that keeps the exit status of ``cause`` (a missing share stays a
        usage error, a rejected login stays 4)."""
        err = cls(message, cause=cause)  # the cause's next step is phrased after the message
        err.exit_code = cause.exit_code
        return err


class SourceMissingError(SourceError):
    """The source named on the command line does not exist (a path, a folder on a share), or is not
    the kind of thing the command reads (a file where a Maildir directory is expected): a usage
    error naming it, never an empty run that looks like success."""

    exit_code = ExitCode.USAGE


class AuthenticationError(MailArchiveError):
    """A server rejected the credentials (docs/reliability.md D12): its own exit status, at most one retry."""

    exit_code = ExitCode.AUTH_FAILED


class Interrupted(MailArchiveError):
    exit_code = ExitCode.INTERRUPTED
