"""Where an exported message goes: its source folders and flags (from sightings), and safe folder paths.

A message was seen in one or more source folders (``sightings.folder``,
``/``-separated: ``INBOX``, ``Archive/2019``). Exporters that mirror folders
(maildir, imap, mbox ``--per-folder``, eml ``--layout folder``) place one
copy per distinct folder. For each (message, folder) the *latest* sighting
in that folder gives the flags and the internal date.

Flags: sightings read from a mail store (IMAP, Maildir, share) carry mail
flags (beside them a Maildir file's import notes, ``file-compressed-gzip``,
``size-differs-from-name``, never exported); eml sightings use the field for
import notes (``from-line-removed``), which are not flags and are never exported. An mbox sighting holds both: its
notes as one token that always names the variant (``mozilla-expunged,
variant=mboxo``), and the flags the message's own header gave
(importers/mbox_flags.py: ``Status``, ``X-Mozilla-Status``, Gmail labels) as
tokens of their own.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from toolkit.archive import Archive
from toolkit.catalog import reads
from toolkit.errors import IntegrityError, UsageError
from toolkit.storage.writeback import start_writeback

from .naming import DEFAULT_FILE_MODE, UniqueNamer, _fold, dir_mode, open_exclusive, safe_component, safe_join

#: sightings.via values whose flags are mail flags.
FLAG_VIAS = frozenset({"imap", "maildir", "share"})
#: sightings.via values whose flags field holds mail flags beside one notes token (it holds a "=")
MIXED_VIAS = frozenset({"mbox"})
SYSTEM_FLAGS = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")}
#: the notes an import puts beside a Maildir file's flags (importers/maildir_file.py: ``file-compressed-gzip``,
#: ``size-differs-from-name``): what the import saw, never flags to export
MAILDIR_NOTES = re.compile(r"file-compressed-[a-z0-9-]+|size-differs-from-name")
#: RFC 3501 atom characters minus the ones no keyword may hold.
_KEYWORD = re.compile(r"[^\x00-\x20\x7f(){%*\"\\\]]+")
DEFAULT_FOLDER = "INBOX"
#: The folded names :func:`naming.message_filename` gives: a day (or ``nodate``), the msg_id, a slug without ``_``
#: or ``~``, ``.eml``.
_MESSAGE_NAME = re.compile(r"[^_~/]+_[0-9]+(?:_[^_~/]*)?\.eml")


@dataclass(frozen=True)
class Placement:
    folder: str | None               # None: the message has no source folder
    flags: tuple[str, ...]           # IMAP flag names, sorted
    internal_date: dt.datetime | None


def mail_flags(text: str | None, via: str | None) -> tuple[str, ...]:
    """The IMAP flags in one sighting's flags field (empty for sources without flags)."""
    if not text or (via not in FLAG_VIAS and via not in MIXED_VIAS):
        return ()
    out = set()
    for token in text.split():
        if (via in MIXED_VIAS and "=" in token) or MAILDIR_NOTES.fullmatch(token):
            continue  # the import notes
        if token.startswith("\\"):
            if token.lower() in SYSTEM_FLAGS:
                out.add(SYSTEM_FLAGS[token.lower()])
        elif _KEYWORD.fullmatch(token):
            out.add(token)
    return tuple(sorted(out))


def placements(archive: Archive, msg_ids: list[int], filters=None) -> dict[int, list[Placement]]:
    """msg_id → one Placement per distinct source folder (a message without any folder gets one with None).

    With ``filters`` (a Filters with ``folders``), only the placements in the wanted folders.
    """
    out: dict[int, dict[str | None, Placement]] = {}
    if not msg_ids:
        return {}
    with archive.catalog.reading() as con:
        rows = reads.sightings_of(con, msg_ids)
    for msg_id, folder, via, flags, internal in rows:
        folder = folder.strip("/") if folder else None
        per = out.setdefault(msg_id, {})
        prev = per.get(folder)
        mail = mail_flags(flags, via)
        if prev is not None and via not in FLAG_VIAS and not mail:
            mail = prev.flags  # a later mbox/eml sighting says nothing about flags
        per[folder] = Placement(folder or None, mail, internal or (prev.internal_date if prev else None))
    result: dict[int, list[Placement]] = {}
    for msg_id in msg_ids:
        per = out.get(msg_id)
        if not per:
            result[msg_id] = [Placement(None, (), None)]
            continue
        named = [p for k, p in per.items() if k is not None]
        chosen = sorted(named, key=lambda p: p.folder) if named else [per[None]]
        if filters is not None:
            chosen = [p for p in chosen if filters.folder_wanted(p.folder)] or chosen
        result[msg_id] = chosen
    return result


class FolderDirs:
    """Folder names → safe directories below an export root (docs/reliability.md N3-N8).

    Every ``/``-separated part becomes one component through the shared
    :class:`UniqueNamer` of its parent directory, so ``..``, ``/abs``,
    ``C:\\x``, ``CON``, trailing dots and bidi controls stay inside the root
    and names that differ only in case or normalisation get a ``~2`` suffix
    instead of merging. Files placed in a directory claim their names from
    the same namer (so a folder ``a`` and a file ``a.mbox`` never clash).
    """

    def __init__(self, root: Path, folders: Iterable[str | None] | None = None):
        """With ``folders`` (every folder that may be placed, or more), the message files (names of
        :func:`naming.message_filename`) are not remembered one by one (docs/reliability.md K8): their names are
        unique by msg_id and hold no ``~``, so one can only meet a directory whose part has the same name; only
        those names are remembered, the same names come out."""
        self.root = Path(root)
        self._namers: dict[tuple[str, ...], UniqueNamer] = {}
        self._dirs: dict[tuple[str, ...], tuple[str, ...]] = {(): ()}
        self._files: dict[tuple[tuple[str, ...], str], str] = {}
        self._watch: set[str] | None = None
        if folders is not None:
            self._watch = {_fold(safe_component(p)) for f in folders for p in (f or "").split("/") if p != ""}

    def _namer(self, rel: tuple[str, ...]) -> UniqueNamer:
        if rel not in self._namers:
            self._namers[rel] = UniqueNamer()
        return self._namers[rel]

    def _unremembered(self, name: str) -> str | None:
        """The safe name of a message file that no directory can take (it is not remembered), else None."""
        if self._watch is None:
            return None
        safe = safe_component(name)
        folded = _fold(safe)
        return safe if _MESSAGE_NAME.fullmatch(folded) and folded not in self._watch else None

    def directory(self, folder: str | None) -> tuple[str, ...]:
        """The safe relative directory parts for a folder (``()`` for None or an empty name)."""
        parts = tuple(p for p in (folder or "").split("/") if p != "")
        for i in range(1, len(parts) + 1):
            key = parts[:i]
            if key not in self._dirs:
                parent = self._dirs[parts[: i - 1]]
                got = self._namer(parent).claim(parts[i - 1])
                if self._watch is not None and _MESSAGE_NAME.fullmatch(_fold(got)) and _fold(got) not in self._watch:
                    raise IntegrityError(f"folder {folder!r} was not among the export's folders")  # a bug
                self._dirs[key] = parent + (got,)
        return self._dirs[parts]

    def member(self, folder: str | None, name: str) -> str:
        """The '/'-joined relative name of ``name`` in the folder's directory (a zip member), named
        like :meth:`file` names it but without touching the file system."""
        rel = self.directory(folder)
        free = self._unremembered(name)
        if free is not None:
            return "/".join(rel + (free,))
        key = (rel, name)
        if key not in self._files:
            self._files[key] = self._namer(rel).claim(name)
        return "/".join(rel + (self._files[key],))

    def file(self, folder: str | None, name: str, *, as_leaf: bool = False) -> Path:
        """A safe file path for ``name`` in the folder's directory; with ``as_leaf`` the
        folder's last part itself names the file (``A/B`` + ``.mbox`` → ``A/B.mbox``)."""
        parts = tuple(p for p in (folder or "").split("/") if p != "")
        if as_leaf and parts:
            rel = self.directory("/".join(parts[:-1]))
            wanted = parts[-1] + name
        else:
            rel = self.directory(folder)
            wanted = name
            free = self._unremembered(name)
            if free is not None:
                return safe_join(self.root, *rel, free)
        key = (rel, wanted)
        if key not in self._files:
            self._files[key] = self._namer(rel).claim(wanted)
        return safe_join(self.root, *rel, self._files[key])


def all_folders(archive: Archive) -> list[str]:
    """Every source folder the catalog knows (a few hundred; the folders an export may place mail in are among
    them): what :class:`FolderDirs` needs to name message files without remembering each."""
    with archive.catalog.reading() as con:
        return [f.strip("/") for f in reads.sighting_folders(con)]


def message_facts(archive: Archive, msg_ids: list[int]) -> dict[int, "Facts"]:
    """msg_id → {from_addr, sent_date, internal_date, archived_at} for the selection."""
    if not msg_ids:
        return {}
    facts: dict[int, Facts] = {}
    with archive.catalog.reading() as con:
        for rows in reads.message_dates(con, msg_ids):
            for r in rows:
                facts[r[0]] = Facts(r[1], r[2], r[3], r[4])
    return facts


class Facts:
    """One message's facts for an export, read like a dict (``get``); slotted: an export holds one per mail
    (a dict each was ~180 bytes more, docs/reliability.md K8)."""

    __slots__ = ("from_addr", "sent_date", "internal_date", "archived_at")

    def __init__(self, from_addr, sent_date, internal_date, archived_at):
        self.from_addr, self.sent_date, self.internal_date, self.archived_at = from_addr, sent_date, internal_date, archived_at

    def get(self, name: str, default=None):
        return getattr(self, name, default) if name in self.__slots__ else default


# -- files: temporary name, then linked into place (create-only) --------------------------------------

_PART = re.compile(r"^\..+\.[0-9a-f]{8}\.part$")


def make_dest(dest: Path, kind: str, mode: int = DEFAULT_FILE_MODE) -> Path:
    """DEST as a real directory (not a symlink); created with the directory mode matching ``mode`` if new."""
    dest = Path(dest)
    if os.path.lexists(dest) and (dest.is_symlink() or not dest.is_dir()):
        raise UsageError(f"{dest} exists and is not a directory (or is a symlink); export {kind} writes into a directory")
    if not os.path.lexists(dest):
        dest.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(dest, dir_mode(mode))
    return dest


def open_export_dir(dest: Path, kind: str, mode: int = DEFAULT_FILE_MODE):
    """Make DEST ready for an export of ``kind``: a real directory, the old manifest gone
    (the export counts as incomplete until its new manifest is written), leftovers removed."""
    from .manifest import Manifest

    dest = make_dest(dest, kind, mode)
    manifest = Manifest(dest, kind, mode=mode)
    manifest.begin()
    remove_stale_parts(dest)
    return dest, manifest


def remove_stale_parts(root: Path) -> int:
    """Delete temporary ``.NAME.xxxxxxxx.part`` files an interrupted export left (symlinks are not followed)."""
    removed = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            if _PART.match(name):
                p = Path(dirpath) / name
                if p.is_file() and not p.is_symlink():
                    p.unlink()
                    removed += 1
    return removed


class PartFile:
    """A new file written under ``.NAME.xxxxxxxx.part`` next to its final path, hashed while written.

    Created with :func:`naming.open_exclusive` (no symlink followed, nothing
    overwritten). :meth:`finish` fsyncs it and links it to the final name
    (create-only): ``"written"``; if the final name exists already with the
    same SHA-256 (an interrupted export rerun), the part is dropped:
    ``"present"``; any other existing file raises UsageError (never replaced).
    """

    def __init__(self, root: Path, final: Path, mode: int = DEFAULT_FILE_MODE, *, hashed: bool = True):
        self.root, self.final = Path(root), Path(final)
        self.tmp = self.final.with_name(f".{self.final.name}.{secrets.token_hex(4)}.part")
        self._f = open_exclusive(self.root, self.tmp, mode=mode)
        self._h = hashlib.sha256() if hashed else None
        self.size = 0

    def write(self, data: bytes) -> None:
        if data:
            self._f.write(data)
            if self._h is not None:
                self._h.update(data)
            self.size += len(data)

    def written(self) -> None:
        """The whole file was written: its bytes go to the kernel, which starts writing them to the disk (a hint,
        not durability: :meth:`finish` still fsyncs)."""
        self._f.flush()
        start_writeback(self._f.fileno(), 0, 0)

    @property
    def sha256(self) -> str:
        return self._h.hexdigest()

    def abort(self) -> None:
        try:
            self._f.close()
        finally:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass

    def finish(self) -> str:
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            if os.path.lexists(self.final):
                if self._h is None:  # a caller that looked before writing: something appeared there since
                    raise UsageError(f"refusing to write {str(self.final)!r}: something (a file or a symlink) "
                                     "appeared there")
                if os.path.islink(self.final) or not os.path.isfile(self.final):
                    raise UsageError(f"refusing to write {str(self.final)!r}: a symlink or not a file is in the way")
                if os.path.getsize(self.final) == self.size and sha256_file(self.final) == self.sha256:
                    return "present"
                raise UsageError(
                    f"{str(self.final)!r} exists with other content: not replaced; export into an empty directory "
                    "or remove it"
                )
            os.link(self.tmp, self.final, follow_symlinks=False)
            return "written"
        finally:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass


#: how many written files of an export wait together for their fsync and link (:class:`Publishing`)
PUBLISH_BATCH = 64


class Publishing:
    """Files of an export that were written whole and wait for their fsync and link, :data:`PUBLISH_BATCH` at a
    time (docs/architecture.md "Exported files published in batches").

    Each file's writeback starts when it is written (:meth:`PartFile.written`), so the disk writes a batch while
    the export reads the next mails; the batch's fsyncs then find their bytes on the way, where one fsync after
    each file had waited for its own journal commit. Every file is still linked to its final name only after its
    own fsync. ``after`` runs after each file is linked. Leaving the ``with`` block publishes what waits, also
    when an exception leaves it (:meth:`close_after_error`): those files were written whole before the error, and
    a full volume or a stopped run keeps them for the rerun as it did when each file was published at once."""

    def __init__(self, after=None, batch: int | None = None):
        self._parts: list[PartFile] = []
        self._after = after
        self._batch = batch or PUBLISH_BATCH

    def write(self, part: PartFile, chunks: Iterable[bytes]) -> None:
        """Write ``chunks`` into ``part``, then :meth:`add` it; a failure while writing (a mail that cannot be read)
        removes the part and is raised."""
        try:
            for chunk in chunks:
                part.write(chunk)
        except BaseException:
            part.abort()
            raise
        self.add(part)

    def add(self, part: PartFile) -> None:
        try:
            part.written()  # the last buffered bytes go out here: a full volume may refuse them
        except BaseException:
            part.abort()
            raise
        self._parts.append(part)
        if len(self._parts) >= self._batch:
            self.flush()

    def flush(self) -> None:
        parts, self._parts = self._parts, []
        for i, part in enumerate(parts):
            try:
                part.finish()
            except BaseException:
                self._parts = parts[i + 1:]
                self.abort()
                raise
            if self._after is not None:
                self._after()

    def close_after_error(self) -> None:
        """Publish the waiting files on the way out of a failed export; any that cannot be published (their fsync
        fails too) are removed with the rest of the batch. The export's own error is the one that counts."""
        try:
            self.flush()
        except Exception:
            pass

    def abort(self) -> None:
        parts, self._parts = self._parts, []
        for part in parts:
            try:
                part.abort()
            except OSError:
                pass  # a leftover .part file is removed by the next run (remove_stale_parts)

    def __enter__(self) -> "Publishing":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.flush()
        else:
            self.close_after_error()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
