"""``import maildir``: a Maildir or Maildir++ tree, local or on an SMB share (docs/reliability.md M1-M3, N1, N2).

Layout
------
Messages are the files directly inside a ``cur/`` or ``new/`` directory of
a *folder directory*: the root (folder ``INBOX``), a Maildir++ subfolder
``.Sub`` or ``.Sub.Deeper`` (folder ``Sub``, ``Sub/Deeper``; each part is
modified UTF-7, ``.Entw&APw-rfe`` is ``Entwürfe``), or a nested directory
holding its own ``cur/``/``new/`` (the notmuch/mutt "fs" layout:
``foo/bar/cur`` is folder ``foo/bar``). A missing ``cur/`` or ``new/`` is
fine. Files in ``tmp/`` (deliveries in progress) are never read; they are
listed as skipped, like every other file that is not a message (Maildir
metadata such as ``maildirfolder`` or ``dovecot-uidlist``, stray files):
nothing is left out silently. Names starting with ``.`` inside ``cur/`` or
``new/`` are skipped as the Maildir specification asks readers to do.

Flags (M2)
----------
The info suffix ``:2,FRS`` — also ``!2,`` (Windows tools), ``;2,``
(seen in the stalwart test data) and ``\\uf03a2,`` (the private-use
character Cygwin and Samba's catia module put for ``:``) — is mapped to
IMAP flag names: ``S`` \\Seen, ``R`` \\Answered, ``F`` \\Flagged,
``T`` \\Deleted, ``D`` \\Draft, ``P`` $Passed; a lowercase letter (a Dovecot
keyword slot) becomes the keyword the folder directory's ``dovecot-keywords``
names for it (``0 Work`` makes ``a`` the keyword ``Work``), else
``$maildir-keyword-<letter>``, and an unknown
uppercase letter ``$maildir-flag-<letter>``. Commas are ignored; other
characters are not flags. A name without a parseable suffix (no suffix, an
8.3-mangled name on a share, experimental ``:1,`` info) has no flags; the
bytes are imported either way. The flags go to ``sightings.flags`` as one
space-separated IMAP flag list (``\\Answered \\Seen``).

Internal date
-------------
The delivery time at the front of the unique name (``1549353600.M4017P4204.host``; offlineimap
puts ``_`` after it: ``1549353600_0.4204.host,U=7,FMD5=…``):
the MDA writes it at delivery and it survives every copy, whereas the
file's mtime (where Dovecot and Courier keep INTERNALDATE) is reset by
copies that do not preserve times — the usual way a Maildir reaches a
Windows share or a git checkout. Names without such a prefix (or with
an implausible one, before 1990 or in the future) fall back to the mtime.

Errors (M1, M3)
---------------
A file that vanishes between the listing and the read (moved from ``new/``
to ``cur/`` by a running MUA, expunged) is a skip "vanished during the
scan" — not an error; the rerun finds it under its new name. A file that
cannot be read (EACCES, an I/O error, a directory where a file was) is an
error: listed, the run goes on and ends "completed with errors".

Cursor
------
The walk is sorted by the relative path as bytes, i.e. by (folder
directory, cur/new, name). The cursor after a file is
``{"path_b64", "size", "mtime"}`` like ``import eml``; a resume continues
with the first path after it. Files renamed behind the cursor (new→cur)
are seen again by a full rerun and deduplicated.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
import re
import time
from itertools import islice
from typing import TYPE_CHECKING, Callable, Iterator

from toolkit.errors import ObjectMissingError, SourceError, SourceMissingError, StorageError
from toolkit.prepare import NotMail
from toolkit.reporter import Reporter
from toolkit.source import SourceItem, SourceMail, SourceProblem, SourceSkip, read_regular_file

from . import utf7
from .content import DBOX_UNSUPPORTED
from . import walk as _walk
from .maildir_file import Cut, compression, name_size, size_note
from .walk import (
    FileEntry, TreeSource, entry_cursor, iter_after, local_path, open_local, open_source_storage, ref_text, walk_local,
    walk_storage, without_own,
)

if TYPE_CHECKING:  # a share's classes are loaded where a share is read (a local run never needs them)
    from toolkit.share_file import ShareAccess

#: Maildir info letters → IMAP flag names.
STANDARD_FLAGS = {"P": "$Passed", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted", "D": "\\Draft", "F": "\\Flagged"}
#: Characters that introduce the info part: ':' (standard), '!' (Windows), ';', U+F03A (':' mapped by Cygwin/catia).
INFO_SEPARATORS = (":", "!", ";", "\uf03a")
_INFO = re.compile("[" + re.escape("".join(INFO_SEPARATORS)) + "]2,([^:!;\uf03a/]*)$")

MESSAGE_DIRS = (b"cur", b"new")
#: Files a Maildir server keeps next to cur/new/tmp: never messages.
METADATA_NAMES = {
    b"maildirfolder", b"maildirsize", b"subscriptions", b"courierimapuiddb", b"courierimapacl",
    b"courierimapsubscribed", b"courierpop3dsizelist", b".uidvalidity", b".mbsyncstate",
    b".isyncuidmap.db", b".notmuch", b"dovecot-uidlist", b"dovecot-keywords", b"dovecot-acl",
    b"dovecot-acl-list", b"dovecot-shared", b"dovecot.mailbox.log", b".keep",
}
_METADATA_PREFIXES = (b"dovecot.index", b"dovecot.list.index", b"dovecot-uidvalidity", b".mbsyncstate", b"courierimap")

#: Directories a Maildir server keeps beside cur/new/tmp, whose files are never messages.
_METADATA_DIR_PREFIX = b"courierimap"

#: the mail files of Dovecot's mdbox (``storage/m.1``) and sdbox (``…/dbox-Mails/u.1``) layouts
_DBOX_NAME = re.compile(rb"(?:^|/)(?:storage/m|dbox-Mails/u)\.\d+\Z")
MESSAGE, TMP, METADATA, STRAY = "message", "tmp", "metadata", "stray"


def parse_flags(name: str, keywords: dict[str, str] | None = None) -> tuple[str, ...]:
    """IMAP flag names from a Maildir file name's info suffix (``()`` when there is none); ``keywords``:
    the keyword a lowercase letter stands for (:func:`dovecot_keywords`)."""
    m = _INFO.search(name)
    if not m:
        return ()
    flags: set[str] = set()
    for ch in m.group(1):
        if ch in STANDARD_FLAGS:
            flags.add(STANDARD_FLAGS[ch])
        elif "a" <= ch <= "z":
            flags.add((keywords or {}).get(ch) or f"$maildir-keyword-{ch}")
        elif "A" <= ch <= "Z":
            flags.add(f"$maildir-flag-{ch}")
    return tuple(sorted(flags))




def dovecot_keywords(text: bytes) -> dict[str, str]:
    """Letter → keyword from a folder's ``dovecot-keywords`` (lines ``<index> <keyword>``, index 0 is
    ``a``); a line that is not of that shape, or a keyword that is not an IMAP atom, is left out."""
    from .keywords import KEYWORD  # here: most folders have no such file (its pattern takes a while to compile)

    out = {}
    for line in text.splitlines():
        index, _, keyword = line.decode("utf-8", "replace").strip().partition(" ")
        if index.isdigit() and int(index) < 26 and KEYWORD.fullmatch(keyword):
            out[chr(ord("a") + int(index))] = keyword
    return out


def has_info_suffix(name: bytes) -> bool:
    """Does a file name end in a Maildir info suffix (``:2,…`` and its variants)?"""
    return _INFO.search(name.decode("utf-8", "replace")) is not None


def flag_field(flags: tuple[str, ...]) -> tuple[str, ...]:
    """``SourceMail.flags`` for a flag list: one space-separated element (the catalog joins without a separator)."""
    return (" ".join(flags),) if flags else ()


def _text(part: bytes) -> str:
    return part.decode("utf-8", "backslashreplace")


def folder_name(folder_dir: bytes) -> str:
    """The folder of a folder directory (relative to the Maildir root): ``b""`` → INBOX, ``b".A.B"`` → ``A/B``."""
    if not folder_dir:
        return "INBOX"
    names: list[str] = []
    for i, comp in enumerate(folder_dir.split(b"/")):
        if i == 0 and comp.startswith(b".") and len(comp) > 1:
            names.extend(utf7.decode_lenient(_text(p)) for p in comp[1:].split(b"."))
        else:
            names.append(utf7.decode_lenient(_text(comp)))
    return "/".join(names)


#: :func:`folder_name`, remembered (every message of a folder asks for it)
_folder_name = functools.lru_cache(maxsize=1024)(folder_name)


def is_metadata_name(base: bytes) -> bool:
    """Is a file of this name one a Maildir server keeps beside cur/new/tmp (never a message)?"""
    return base in METADATA_NAMES or base.startswith(_METADATA_PREFIXES)


def classify(rel: bytes) -> tuple[str, bytes | None]:
    """What a path below a Maildir root is: (MESSAGE|TMP|METADATA|STRAY, folder directory or None)."""
    head, slash, base = rel.rpartition(b"/")
    if slash:
        kind = _classify_dir(head)  # the same for every file of a directory: worked out once
        if kind is not None:
            return kind
    if is_metadata_name(base):
        return METADATA, None
    return STRAY, None


@functools.lru_cache(maxsize=1024)
def _classify_dir(head: bytes) -> tuple[str, bytes | None] | None:
    """What every file directly inside the directory ``head`` is, or None when it depends on the file's name."""
    parts = head.split(b"/")
    if any(p.startswith(_METADATA_DIR_PREFIX) for p in parts):
        return METADATA, None  # Courier's courierimapkeywords/ (keyword lists), courierimaphieracl/
    if parts[-1] in MESSAGE_DIRS:
        return MESSAGE, b"/".join(parts[:-1])
    if parts[-1] == b"tmp":
        return TMP, b"/".join(parts[:-1])
    return None


def is_maildir_member(rel: bytes) -> bool:
    """Does this path belong to the Maildir itself (a message, tmp/, server metadata) rather than lie in it?"""
    return classify(rel)[0] != STRAY


def _name_time(name: bytes) -> float | None:
    m = _NAME_TIME.match(name)  # offlineimap writes ``1551783600_0.1234.host,U=1,FMD5=…``
    if not m:
        return None
    ts = float(m.group(1))
    return ts if _EARLIEST <= ts <= time.time() + 86400 else None


_NAME_TIME = re.compile(rb"(\d{9,11})[._]")
_EARLIEST = 631152000.0  # 1990-01-01


def internal_date(entry: FileEntry) -> tuple[dt.datetime | None, str | None]:
    """(delivery time, where it came from): the name's time stamp prefix ("maildir-name-time"), else the
    file's mtime ("file-time"), else (None, None) (see the module docstring)."""
    ts, source = _name_time(entry.rel.rpartition(b"/")[2]), "maildir-name-time"
    if not ts:
        ts, source = (entry.mtime, "file-time") if entry.mtime > 0 else (None, None)
    if not ts:
        return None, None
    try:
        return dt.datetime.fromtimestamp(ts, dt.timezone.utc), source
    except (OverflowError, OSError, ValueError):
        return None, None


def _vanished(exc: BaseException) -> bool:
    return isinstance(exc, (FileNotFoundError, ObjectMissingError)) or (
        isinstance(exc, OSError) and exc.errno == 2
    )


def _unreadable(ref: str, exc: Exception, cur) -> SourceItem:
    if _vanished(exc):
        return SourceSkip(ref, "vanished during the scan (changed during scan; a rerun picks up its new name)", cur)
    msg = getattr(exc, "strerror", None) or str(exc)
    return SourceProblem(ref, f"cannot read: {msg}", cur)


#: how many (folder, info suffix) flag fields a scan remembers before it starts afresh
_FLAG_FIELDS_KEPT = 4096


class MaildirImporter(TreeSource):
    """A Maildir/Maildir++ tree below PATH (local or ``smb://``); see the module docstring.

    ``strays=False`` leaves out every path that is not part of the Maildir
    (``is_maildir_member`` is false): ``import share`` looks at those itself.
    """

    via = "maildir"

    def __init__(self, location: str, smb_password: str | None = None, *, strays: bool = True):
        super().__init__(location, smb_password)
        self._strays = strays
        self._keywords: dict[bytes, dict[str, str]] = {}   # folder directory → its dovecot-keywords
        self._flags: dict[tuple[bytes, str], tuple[str, ...]] = {}  # (folder directory, info suffix) → flag field
        self._read_small: Callable[[bytes], bytes] | None = None
        self._read_head: Callable[[bytes], bytes] | None = None  # a file's first 4 KiB (``_eml_hint``)

    def _flag_field(self, name: str, folder_dir: bytes) -> tuple[str, ...]:
        """``flag_field(parse_flags(name, <the folder's keywords>))``, worked out once per folder and info suffix
        (most messages of a folder share a handful of them)."""
        m = _INFO.search(name)
        if not m:
            return ()
        key = (folder_dir, m.group(1))
        got = self._flags.get(key)
        if got is None:
            if len(self._flags) >= _FLAG_FIELDS_KEPT:  # a tree of countless distinct suffixes: bounded memory
                self._flags.clear()
            got = self._flags[key] = flag_field(parse_flags(name, self._folder_keywords(folder_dir)))
        return got

    def _folder_keywords(self, folder_dir: bytes) -> dict[str, str]:
        """The keyword letters of a folder directory (its ``dovecot-keywords``; none when it has none)."""
        if folder_dir not in self._keywords:
            rel = (folder_dir + b"/" if folder_dir else b"") + b"dovecot-keywords"
            try:
                text = self._read_small(rel) if self._read_small is not None else b""
            except (OSError, StorageError):
                text = b""
            self._keywords[folder_dir] = dovecot_keywords(text[:1 << 16])
        return self._keywords[folder_dir]

    # -- per entry -------------------------------------------------------------------------------
    def _item(self, entry: FileEntry, read: Callable[[FileEntry], bytes] | None,
              local_root: bytes | None = None, share: ShareAccess | None = None) -> SourceItem | None:
        """With ``local_root`` the message is handed over as a local path, with ``share`` as a file on the share
        (:class:`toolkit.share_file.ShareFile`): either way read by the pipeline (in a worker)."""
        ref = ref_text(entry.rel)
        cur = entry_cursor(entry)
        kind, folder_dir = classify(entry.rel)
        if kind == STRAY and not self._strays:
            return None
        reason = entry.skip_reason
        if reason:
            if reason.startswith("directory not readable"):
                return SourceProblem(ref, reason, cur)
            if reason.startswith("vanished"):
                return SourceSkip(ref, "vanished during the scan (changed during scan; a rerun picks up its new name)", cur)
            return SourceSkip(ref, reason, cur)
        if kind == TMP:
            return SourceSkip(ref, "in tmp/ (a delivery in progress): never read", cur)
        if kind == METADATA:
            return SourceSkip(ref, "Maildir metadata, not a message", cur)
        if kind == STRAY and _DBOX_NAME.search(entry.rel):  # Dovecot's other format: an error, not a stray
            return SourceProblem(ref, DBOX_UNSUPPORTED, cur)
        if kind == STRAY:
            return SourceSkip(ref, "not in a cur/ or new/ directory: not a Maildir message", cur)
        name = entry.rel.rpartition(b"/")[2]
        if name.startswith(b"."):
            return SourceSkip(ref, "hidden name in cur/ or new/ (Maildir readers ignore names starting with '.')", cur)
        if entry.size == 0:
            return SourceSkip(ref, "empty file (0 bytes): not a message", cur)
        when, when_from = internal_date(entry)
        folder = _folder_name(folder_dir or b"")
        flags = self._flag_field(_text(name), folder_dir or b"")
        # a file stored compressed (Dovecot's zlib plugin) is decompressed where it is read (importers/maildir_file.py)
        cut = Cut(flags, name_size(name))
        if entry.size > _walk.LARGE_MAIL and (local_root is not None or share is not None):
            big = self._large(entry, ref, cur, cut, local_root, share)
            if isinstance(big, SourceMail):
                big.folder, big.internal_date, big.date_source = folder, when, when_from
            if big is not None:
                return big
        if local_root is not None:  # the usual case: made whole at once (every message of a tree passes here)
            return SourceMail(raw=None, ref=ref, folder=folder, flags=flags, internal_date=when, date_source=when_from,
                              cursor=cur, size=entry.size, path=local_path(local_root, entry, False),
                              on_read_error=lambda exc: _unreadable(ref, exc, cur), envelope_cut=cut)
        mail = SourceMail(raw=None, ref=ref, folder=folder, flags=flags, internal_date=when, date_source=when_from,
                          cursor=cur)
        if share is not None:
            from toolkit.share_file import ShareFile

            mail.job = ShareFile(share, entry.rel.decode("utf-8"), entry.size, entry.mtime, cut)
            mail.size = entry.size
            mail.on_read_error = lambda exc: _unreadable(ref, exc, cur)
            return mail
        try:
            raw = read(entry)
        except (OSError, StorageError) as exc:
            return _unreadable(ref, exc, cur)
        got = cut(raw)
        if isinstance(got, NotMail):
            return SourceProblem(ref, got.reason, cur)
        mail.raw = raw
        # a compressed file's message, or a plain one of another size than its name gives: the note's flags and warning
        return mail if got is None else dataclasses.replace(mail, raw=got.raw, **got.note)

    def _large(self, entry: FileEntry, ref: str, cur, cut: Cut, local_root: bytes | None,
               share: ShareAccess | None) -> SourceItem | None:
        """A message file above LARGE_MAIL, streamed from the source (docs/reliability.md K1), never held in memory
        whole: its name's size checked here (a note and a warning, as :func:`importers.maildir_file.decompressed`
        gives them). None for a compressed one (decompressed where it is read, within MAX_PLAIN)."""
        if local_root is not None:
            def opener():
                return open_local(local_root, entry, False)
        else:
            from toolkit.share_file import open_shared

            def opener():  # its own connection: the scan's is closed when the scan ends, maybe before it is read
                return open_shared(share, entry.rel.decode("utf-8"))
        try:
            with opener() as f:
                head = f.read(16)
        except (OSError, StorageError) as exc:
            return _unreadable(ref, exc, cur)
        if compression(head) is not None:
            return None
        mail = SourceMail(raw=None, ref=ref, flags=cut.flags, cursor=cur, size=entry.size, opener=opener)
        if cut.size is not None and cut.size != entry.size:
            return dataclasses.replace(mail, **size_note(cut.flags, cut.size, entry.size))
        return mail

    def _items(self, entries: list[FileEntry], after: bytes | None, read, reporter: Reporter,
               local_root: bytes | None = None, share: ShareAccess | None = None) -> Iterator[SourceItem]:
        if not any(classify(e.rel)[0] == MESSAGE for e in entries):
            reporter.warn(f"{self.location}: no file in any cur/ or new/ directory: an empty Maildir, or not a Maildir"
                          + self._eml_hint(entries))
        reporter.start("scan", len(entries), "files")
        for entry in iter_after(entries, after, reporter):
            item = self._item(entry, read, local_root, share)
            if item is not None:
                yield item

    def _eml_hint(self, entries: list[FileEntry], looked_at: int = 20) -> str:
        """For a tree without cur/ or new/ whose files are single messages (a tree of numbered files, like the Enron
        corpus, or of .eml files): the import that reads it. Looks at the first bytes of at most ``looked_at`` files."""
        read = self._read_head
        if read is None:
            return ""
        from .content import starts_with_headers

        for e in islice((e for e in entries if not e.skip_reason and e.size), looked_at):
            try:
                head = read(e.rel)
            except (OSError, StorageError):
                continue
            if starts_with_headers(head):
                return (f"; its files look like single messages ({ref_text(e.rel)}): `import eml {self.location}` "
                        "reads such a tree")
        return ""

    def _scan_local(self, after: bytes | None, reporter: Reporter) -> Iterator[SourceItem]:
        root = os.fsencode(self.location.path)
        if not os.path.lexists(root):
            raise SourceMissingError(f"{self.location} does not exist: check the path")
        if not os.path.isdir(root) or os.path.islink(root):
            raise SourceMissingError(f"{self.location}: not a directory (a Maildir is a directory with cur/ and new/)")
        entries = without_own(walk_local(root), root, self.own_places)
        self._read_small = lambda rel: read_regular_file(os.path.join(root, rel))
        self._read_head = lambda rel: _first_bytes(open_local(root, FileEntry(rel, 0, 0.0), False))
        yield from self._items(entries, after, None, reporter, local_root=root)

    def _scan_smb(self, after: bytes | None, reporter: Reporter) -> Iterator[SourceItem]:
        storage = open_source_storage(self.location, self._smb_password)
        try:
            try:
                entries = walk_storage(storage)
            except StorageError as exc:
                raise SourceError(f"{self.location}: cannot list the Maildir: {exc}") from None
            self._read_small = lambda rel: storage.read(rel.decode("utf-8"))
            self._read_head = lambda rel: storage.read(rel.decode("utf-8"), 0, 4096)
            from toolkit.share_file import ShareAccess

            yield from self._items(entries, after, None, reporter,
                                   share=ShareAccess.of(self.location, self._smb_password))
        finally:
            storage.close()


def _first_bytes(f, n: int = 4096) -> bytes:
    """The first ``n`` bytes of an opened file (``importers.walk.open_local``: no symlink followed), closing it."""
    with f:
        return f.read(n)
