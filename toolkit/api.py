"""The library API for scripts that migrate mail (docs/api.md).

A thin layer over the entry points the command line drives: every setting is an
argument (nothing is read from the environment), every result is a dataclass,
and every error is a :class:`toolkit.errors.MailArchiveError` whose ``exit_code``
is the one the command line would exit with. Nothing here prints.

    with init_archive(home, password=..., key_backup=...) ... / open_archive(home, writer=True) as archive:
        summary = import_mail(archive, MboxImporter("mail.mbox"))
        export_mbox(archive, dest)
        report = verify_archive(archive, full=True)
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from .archive import Archive
from .errors import UsageError
from .home import Home
from .reporter import Reporter

__all__ = [
    "ArchiveStats", "InitResult", "MediumStats", "MetadataExport", "StampedBatch",
    "archive_stats", "dry_run_import", "export_metadata", "import_mail", "init_archive", "open_archive",
    "stamp_pending", "verify_archive",
]


@dataclass(frozen=True)
class InitResult:
    """A new archive: where it is, its identity, its first medium and its key backup."""

    home: Path
    uuid: str
    fingerprint: str
    medium_location: str
    key_backup: Path


@dataclass(frozen=True)
class MediumStats:
    id: int
    state: str
    location: str
    packs: int
    pack_bytes: int
    messages: int


@dataclass(frozen=True)
class ArchiveStats:
    """What the catalog holds (the figures of ``mailarchive stats``)."""

    uuid: str
    messages: int
    message_bytes: int
    packs: int
    pack_bytes: int
    recipients: int
    sightings: int
    runs: int
    spam: int
    with_defects: int
    id_conflicts: int
    decisions: dict[str, int]
    media: tuple[MediumStats, ...]


@dataclass(frozen=True)
class MetadataExport:
    """A written metadata file (one row per selected message)."""

    dest: Path
    format: str
    rows: int


@dataclass(frozen=True)
class StampedBatch:
    """A stamp batch the TSA stamped: its leaves, Merkle root, token facts and sealed manifest."""

    batch_id: int
    leaf_count: int
    messages: int
    envelopes: int
    first_msg_id: int | None
    last_msg_id: int | None
    root: str
    gen_time: dt.datetime
    serial: int
    tsa_url: str
    manifest: str
    medium_id: int


def init_archive(home: Path, *, password: str, key_backup: Path, medium: str | None = None,
                 name: str | None = None, smb_password: str | None = None) -> InitResult:
    """Create an archive at ``home`` with its first medium (default ``home/medium-1``) and write the
    printable key backup, sealed with ``password``, to ``key_backup`` (as ``mailarchive init``; an
    init that fails leaves nothing behind). The archive is closed again: open it with :func:`open_archive`."""
    from .keybackup import check_password, write_key_backup

    check_password(password)
    home = Path(home)
    backup = Path(key_backup)
    archive = Archive.create(
        home, medium or str(Home(home).default_medium), name=name, smb_password=smb_password,
        last_step=lambda a: write_key_backup(backup, a.key, a.uuid, password.encode()),
    )
    try:
        return InitResult(home=home.absolute(), uuid=str(archive.uuid), fingerprint=archive.fingerprint,
                          medium_location=archive.config.medium(1).location, key_backup=backup.absolute())
    finally:
        archive.close()


def open_archive(home: Path, *, writer: bool = False, lock_wait: float = 0.0) -> Archive:
    """The archive at ``home``, to use in a ``with`` block. ``writer=True`` takes the writer lock
    (waiting up to ``lock_wait`` seconds for another writer), which imports need; readers
    (exports, verify, stats) run beside a writer."""
    return Archive.open(Path(home), writer=writer, lock_wait=lock_wait)


def import_mail(archive: Archive, importer, *, reporter: Reporter | None = None, workers: int | None = None,
                pack_target: int | None = None, parse_limit: float | None = None, min_free: int | None = None):
    """Run one importer (``importers.MboxImporter(path)``, ...) into an archive opened as writer;
    returns its :class:`toolkit.source.RunSummary`. A rerun of the same source resumes where an
    interrupted run stopped; what is already archived counts as duplicates.

    ``workers``: processes for hashing, parsing and sealing (0: everything in this process; default:
    the CPU count); ``pack_target``: pack size in bytes; ``parse_limit``: seconds one mail's header
    parse may take before it is archived flagged parse-timeout; ``min_free``: the free bytes the active
    medium must have before the run starts (default: the archive's ``import.min_free`` setting, else two
    packs + 64 MiB; 0: no check), else a ``StorageFullError`` before anything is written."""
    from .ingest import Ingest

    if archive.lock is None:
        raise UsageError("import_mail needs the archive opened as writer: open_archive(home, writer=True)")
    kw = {"workers": workers, "pack_target": pack_target, "parse_limit": parse_limit, "min_free": min_free}
    return Ingest(archive, reporter, **{k: v for k, v in kw.items() if v is not None}).run(importer)


def dry_run_import(archive: Archive, importer, *, reporter: Reporter | None = None):
    """What :func:`import_mail` would read, archive and skip, with nothing written; returns a
    :class:`toolkit.dryrun.DryRunSummary`. The archive may be open for reading only."""
    from .dryrun import dry_run

    return dry_run(archive, importer, reporter)


def export_metadata(archive: Archive, dest: Path, filters=None, *, fmt: str | None = None,
                    mode: int | None = None) -> MetadataExport:
    """Write one metadata row per selected message to the new file ``dest`` (``parquet``, ``csv`` or
    ``json``, from its suffix unless ``fmt`` names it); ``filters`` is an ``exporters.Filters``."""
    from exporters.metadata import export_metadata as write

    kw = {} if mode is None else {"mode": mode}
    r = write(archive, Path(dest), filters, fmt, **kw)
    return MetadataExport(dest=Path(r["dest"]), format=r["format"], rows=r["rows"])


def verify_archive(archive: Archive, *, full: bool = False, workers: int | None = None,
                   reporter: Reporter | None = None, at=None, crls: list[bytes] | None = None,
                   subset: str | None = None, seed: int = 0):
    """Check the archive (``mailarchive verify``; with ``full``, ``verify --full``: every pack read).
    Returns a :class:`verify.report.Report`: ``exit_code`` 0 clean, 1 with findings; write it with
    ``verify.write_json``, ``write_html`` or ``write_findings``. ``at`` (an aware datetime) verifies
    as of that time, ``crls`` (PEM or DER CRLs) are revocation data for the tokens' TSA chains
    (``verify --at/--crl``, docs/timestamps.md). ``subset`` (``"10%"``, ``"1/4"``, ``"5"``) reads only
    that share of the packs, least recently verified first, ``seed`` ordering ties
    (``verify --subset/--seed``, docs/verification.md)."""
    from verify.checks import verify_archive as run

    return run(archive, full=full, workers=workers, reporter=reporter, now=at, crls=crls, subset=subset, seed=seed)


def stamp_pending(archive: Archive, *, tsa_url: str, ca_pem: bytes, all_pending: bool = False,
                  min_pending: int = 10_000, timeout: float = 30.0, policy: str | None = None, access=None,
                  reporter: Reporter | None = None) -> tuple[StampedBatch, ...]:
    """``mailarchive timestamp run`` (docs/timestamps.md) on an archive opened as writer: retry the pending
    batches, then stamp new ones while ``min_pending`` leaves wait (all of them with ``all_pending``).
    ``ca_pem`` is the TSA's CA certificate the tokens must verify against; ``access`` a
    ``verify.tsa_client.TsaAccess`` (TLS trust, password, retries). A TSA failure raises
    ``verify.tsa_client.TsaError`` (exit 3), the failed batch stays pending for the next call."""
    from verify.stamping import stamp_pending as run

    if archive.lock is None:
        raise UsageError("stamp_pending needs the archive opened as writer: open_archive(home, writer=True)")
    done = run(archive, tsa_url=tsa_url, ca_pem=ca_pem, min_pending=min_pending, all_=all_pending,
               timeout=timeout, policy=policy, access=access, reporter=reporter)
    names = [f.name for f in dataclasses.fields(StampedBatch)]
    return tuple(StampedBatch(**{n: b[n] for n in names}) for b in done)


def archive_stats(archive: Archive) -> ArchiveStats:
    """Counts and sizes from the catalog, overall and per medium."""
    from .stats import archive_stats as read

    d = read(archive)
    plain = {f.name: d[f.name] for f in dataclasses.fields(ArchiveStats) if f.name != "media"}
    media = tuple(MediumStats(**{f.name: m[f.name] for f in dataclasses.fields(MediumStats)}) for m in d["media"])
    return ArchiveStats(**plain, media=media)
