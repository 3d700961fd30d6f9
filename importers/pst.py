"""``import pst``: Outlook PST and OST stores, every folder, converted to RFC 5322 by ``toolkit.mapi``.

Stores are read with ``libpff-python`` (module ``pypff``, LGPL, a wheel from PyPI). A store's folders
are walked depth first in the order the store lists them. The folder recorded with each mail is the
path the user sees: below the IPM subtree (the message store's 0x35E0 entry, "Top of Personal
Folders"; in an OST, whose store lacks that entry, "Root - Mailbox/IPM_SUBTREE") its names joined with ``/``; a folder outside that subtree
(OST sync folders, Freebusy Data) keeps its path below the store root.

Mail items are the classes IPM.Note*, REPORT.*, IPM.Schedule.* and IPM.Post (Deleted Items
included); every other item (contacts, appointments, tasks, distribution lists, FreeBusy data) is
listed as a skip naming its class, not imported. A PST password (0x67FF) is only a flag in the
store: the store is read and the flag reported as a warning. An embedded message (attach method 5)
is not reachable with pypff: the mail keeps a note part naming it and the run warns about it.
An import reads each store in a child process (``importers.pst_guard``): libpff hanging or crashing
on one item or folder is a problem naming it, and the rest of the store is read.

Cursor: ``{"path_b64", "identity", "folder", "pos", "nid"}`` — the store file, its size and mtime
(on a share: as the share lists them; the store is read from a private temporary copy),
the NID of the folder and the index and NID of the last item handed on. A rerun of the same store
skips the folders before that folder and the items up to that index; a changed store (another size
or mtime, or no longer that item's NID at that index in that folder) is read again from the start
(what was archived is recognised as exact duplicates).
"""
from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import datetime as dt
import os
import shutil
import struct
import tempfile
from typing import Any, Iterator

from toolkit import faults, mapi
from toolkit.errors import SourceError, StorageError
from toolkit.reporter import Reporter
from toolkit.source import SourceItem, SourceMail, SourceProblem, SourceSkip
from toolkit.storage import open_storage, parse_location

from . import pst_embedded
from .content import PST_MAGIC
from .pst_guard import guarded_scan_store
from .walk import ref_text, walk_local, walk_storage, without_own

MAIL_CLASSES = ("ipm.note", "report.", "ipm.schedule.", "ipm.post")
PR_IPM_SUBTREE_ENTRYID = 0x35E0
PR_PST_PASSWORD = 0x67FF
VIA = f"pst:{mapi.CONVERTER}"
VIA_EMBEDDED = "pst:readpst"  # an embedded message as readpst wrote it (see importers.pst_embedded)
_FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)
#: what pypff raises for a damaged store: IOError for most reads, MemoryError when libpff cannot build an
#: item or folder object from what it read, AttributeError when a property it returns is None (no message
#: store), and value errors of damaged numbers. A store, folder or item that raises one of these is listed
#: as a problem naming it, never a traceback; the rest of the store is read on.
_DAMAGED = (OSError, MemoryError, AttributeError, ValueError, TypeError, IndexError, OverflowError)


def is_mail_class(cls: str) -> bool:
    low = cls.lower()
    return low == "ipm.note" or low.startswith(("ipm.note.", "report.", "ipm.schedule.")) or low == "ipm.post" \
        or low.startswith("ipm.post.")


def _value(vtype: int, data: bytes | None) -> Any:
    if data is None:
        return None
    if vtype == 0x001F:
        return data.decode("utf-16-le", "replace").split("\x00", 1)[0]
    if vtype == 0x001E:
        return data.split(b"\x00", 1)[0]
    if vtype == 0x0102:
        return bytes(data)
    if vtype in (0x0003, 0x0002) and len(data) >= 2:
        return int.from_bytes(data[:4], "little", signed=vtype == 0x0002)
    if vtype == 0x0014 and len(data) >= 8:
        return int.from_bytes(data[:8], "little")
    if vtype == 0x000B and data:
        return data[0] != 0
    if vtype == 0x0040 and len(data) >= 8:
        ticks = struct.unpack("<Q", data[:8])[0]
        if ticks == 0 or ticks >= 0x7FFFFFFFFFFFFFFF:
            return None
        try:
            return _FILETIME_EPOCH + dt.timedelta(microseconds=ticks // 10)
        except OverflowError:
            return None
    return None


def _props(record_set, wanted: frozenset[int] | None = None) -> dict[int, Any]:
    """The entries of a record set by property id (only those in ``wanted`` when given: the data of
    the others is never read)."""
    out: dict[int, Any] = {}
    for e in record_set.entries:
        if wanted is not None and e.entry_type not in wanted:
            continue
        try:
            v = _value(e.value_type, e.data)
        except (OSError, IOError):
            continue
        if v is not None and (e.entry_type not in out or e.value_type == 0x001F):
            out[e.entry_type] = v
    return out


def _item_props(item, wanted: frozenset[int] | None = None) -> dict[int, Any]:
    try:
        return _props(item.get_record_set(0), wanted) if item is not None and item.number_of_record_sets else {}
    except (OSError, MemoryError):
        return {}


def _why(exc: BaseException) -> str:
    """The first line of a pypff error (libpff chains a dozen lines of its call stack)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = text.split(". libpff_", 1)[0].rstrip(".")  # the binding's own message, not libpff's stack
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _text(v) -> str | None:
    if isinstance(v, bytes):
        v = v.decode("cp1252", "replace")
    return v or None


def to_mapi(m, codepage: int | None, attachments: bool = True, props: dict[int, Any] | None = None) -> mapi.MapiMessage:
    """A ``toolkit.mapi.MapiMessage`` from a pypff message (``props``: its properties when the
    caller has read them already; each is read once)."""
    props = _item_props(m) if props is None else props
    subject = props.get(mapi.PR_SUBJECT)
    if isinstance(subject, (str, bytes)) and subject[:1] in ("\x01", b"\x01"):
        props[mapi.PR_SUBJECT] = subject[2:]  # the subject-prefix length marker, not text
    cp = props.get(mapi.PR_MESSAGE_CODEPAGE) if isinstance(props.get(mapi.PR_MESSAGE_CODEPAGE), int) else codepage
    msg = mapi.MapiMessage(props=props, codepage=cp)
    if attachments:
        _rtf_from_reader(m, msg)
    try:
        rsets = list(m.recipients.record_sets) if m.recipients is not None else []
    except OSError:
        rsets = []
    for rs in rsets:
        rp = _props(rs)
        msg.recipients.append(mapi.MapiRecipient(
            kind=rp.get(0x0C15) if isinstance(rp.get(0x0C15), int) else 1, name=_text(rp.get(0x3001)),
            addrtype=_text(rp.get(0x3002)), address=_text(rp.get(0x3003)), smtp=_text(rp.get(0x39FE))))
    for i in range(m.number_of_attachments if attachments else 0):
        a = m.get_attachment(i)
        ap = _item_props(a)
        name = _text(ap.get(0x3707)) or _text(ap.get(0x3704)) or _text(ap.get(0x3001))
        method = ap.get(0x3705) if isinstance(ap.get(0x3705), int) else mapi.ATTACH_BY_VALUE
        att = mapi.MapiAttachment(name=name, mime_type=_text(ap.get(0x370E)), content_id=_text(ap.get(0x3712)),
                                  method=method, hidden=bool(ap.get(0x7FFE)))
        if method == mapi.ATTACH_EMBEDDED:
            att.missing = "embedded message (attach method 5): not readable with pypff"
        else:
            try:
                att.data = a.read_buffer(a.size) if a.size else b""
            except OSError as exc:
                att.missing = f"attachment data not readable: {exc}"
        msg.attachments.append(att)
    return msg


def _rtf_from_reader(m, msg: mapi.MapiMessage) -> None:
    """The RTF body decompressed by libpff (C; the same bytes as ``compressed_rtf``, which is pure Python
    and the slowest step of a conversion). An RTF body libpff rejects (uncompressed ``MELA`` bodies)
    or that decompresses to nothing stays compressed for the builder to handle."""
    raw = msg.props.get(mapi.PR_RTF_COMPRESSED)
    if not isinstance(raw, bytes) or len(raw) < 16:
        return
    try:
        rtf = m.rtf_body
    except (OSError, IOError):
        return
    if isinstance(rtf, bytes) and rtf.strip(b"\x00"):
        del msg.props[mapi.PR_RTF_COMPRESSED]
        msg.rtf = rtf


def _entry_nid(entry_id) -> int | None:
    return int.from_bytes(entry_id[-4:], "little") if isinstance(entry_id, bytes) and len(entry_id) >= 24 else None


def store_identity(path: bytes) -> str:
    st = os.stat(path)
    return f"{st.st_size}:{int(st.st_mtime_ns)}"


class PstImporter:
    """PST/OST files (a file or every file below a directory whose content starts with ``!BDN``),
    local or on an SMB share (a store there is copied to a private temporary file for its reader)."""

    #: the archive's own places below the source (importers/walk.py ``TreeSource.own_places``)
    own_places: tuple = ()

    def __init__(self, location: str, smb_password: str | None = None):
        self.location = parse_location(location)
        self._smb_password = smb_password
        self.via = VIA
        self.source_uri = f"pst:{self.location}"
        self.convert_limit: float | None = mapi.CONVERT_LIMIT  # seconds per item (toolkit.mapi.build_guarded)

    def scan(self, cursor: Any, reporter: Reporter) -> Iterator[SourceItem]:
        after = base64.b64decode(cursor["path_b64"]) if isinstance(cursor, dict) and cursor.get("path_b64") else None
        if self.location.is_smb:
            try:
                storage = open_storage(self.location, self._smb_password)
                entries = walk_storage(storage)
            except StorageError as exc:
                raise SourceError(f"{self.location}: {exc}") from None
            magic = lambda e: storage.read(e.rel.decode("utf-8"), 0, 4)  # noqa: E731
            local = lambda e: _smb_copy(storage, e)  # noqa: E731
        else:
            storage = None
            root = os.fsencode(self.location.path)
            entries = without_own(walk_local(root), root, self.own_places)
            single = os.path.isfile(root) and not os.path.islink(root)

            def magic(e):
                with open(root if single else os.path.join(root, e.rel), "rb") as f:
                    return f.read(4)

            local = lambda e: contextlib.nullcontext(root if single else os.path.join(root, e.rel))  # noqa: E731
        try:
            reporter.start("scan", len(entries), "files")
            for e in entries:
                if after is not None and e.rel < after:
                    continue
                inner = cursor if after is not None and e.rel == after else None
                if inner is not None and inner.get("done"):
                    continue
                ref = ref_text(e.rel)
                done = {"path_b64": base64.b64encode(e.rel).decode("ascii"), "done": True}
                if e.skip_reason:
                    yield SourceSkip(ref, e.skip_reason, done)
                    continue
                try:
                    head = magic(e)
                except (OSError, StorageError) as exc:
                    yield SourceProblem(ref, f"cannot read: {getattr(exc, 'strerror', None) or exc}", done)
                    continue
                if head != PST_MAGIC:
                    if e.rel.lower().endswith((b".pst", b".ost")) and e.size > 0:  # named as one: damaged, not junk
                        yield SourceProblem(ref, "a .pst/.ost file without the !BDN signature of an Outlook store: its "
                                                 "header damaged, or not a store (a copy from elsewhere may be whole); "
                                                 "not imported", done)
                    else:
                        yield SourceSkip(ref, "not a PST/OST store (no !BDN signature)", done)
                    continue
                with local(e) as path:
                    yield from guarded_scan_store(path, ref, e.rel, inner, reporter,
                                          identity=f"{e.size}:{int(e.mtime * 1e9)}" if storage else None,
                                          convert_limit=self.convert_limit)
        finally:
            if storage is not None:
                storage.close()


@contextlib.contextmanager
def _smb_copy(storage, e):
    with tempfile.NamedTemporaryFile(prefix="mailarchive-store-") as tmp:
        with storage.open_read(e.rel.decode("utf-8")) as src:
            shutil.copyfileobj(src, tmp, 1 << 20)
        tmp.flush()
        yield os.fsencode(tmp.name)


def _nowhere(place: tuple) -> None:
    return None


def scan_store(path: bytes, ref: str, rel: bytes, inner: dict | None, reporter: Reporter,
               cursor_wrap=lambda c: c, identity: str | None = None,
               convert_limit: float | None = mapi.CONVERT_LIMIT, at=_nowhere,
               avoid: frozenset = frozenset()) -> Iterator[SourceItem]:
    """Every item of one store, after ``inner`` (a cursor of this store, or None). ``cursor_wrap``
    puts a store cursor into the caller's; ``identity`` names the store when ``path`` is a copy;
    ``convert_limit`` is each item's conversion watchdog (:func:`toolkit.mapi.build_guarded`).

    ``at(place)`` is told before each step that calls into libpff, and the places in ``avoid`` are left
    alone (importers/pst_guard.py reads a store this way in a child process: a place where libpff hung
    or crashed is reported there and avoided when the store is read on)."""
    import pypff

    at(("tree",))
    key = base64.b64encode(rel).decode("ascii")
    identity = identity or store_identity(path)
    done = cursor_wrap({"path_b64": key, "done": True})
    if inner is not None and inner.get("identity") != identity:
        inner = None  # the store changed: read it again
    f = pypff.file()
    try:
        f.open(os.fsdecode(path))
    except (OSError, IOError) as exc:
        yield SourceProblem(ref, f"not a readable PST/OST store: {exc}".splitlines()[0], done)
        return
    try:
        try:
            message_store = f.message_store
            if message_store is None:
                reporter.warn(f"{ref}: the store's message store object is not readable (a damaged store): folder "
                              "paths are given from the store's root, not from 'Top of Personal Folders'")
            store = _item_props(message_store)
            password = store.get(PR_PST_PASSWORD)
            if isinstance(password, int) and password not in (0, 0xFFFFFFFF):
                reporter.warn(f"{ref}: the store is password-flagged (0x{password:08X}); Outlook's PST password "
                              "is not encryption and was not needed to read it")
            ipm = _entry_nid(store.get(PR_IPM_SUBTREE_ENTRYID))
            codepage = f.ascii_codepage if isinstance(getattr(f, "ascii_codepage", None), int) else None
            root = f.root_folder
            if root is None:
                raise OSError("the store has no root folder")
            directory = _LazyDirectory(root, ipm, codepage, at, ("directory",) in avoid)
            folders, damaged = _folders(root, ipm)
        except _DAMAGED as exc:  # the store's own structure: nothing below it can be found
            yield SourceProblem(ref, f"damaged PST/OST store, its folders cannot be read: {_why(exc)}. "
                                "Repair a copy with Outlook's scanpst.exe and import that copy", done)
            return
        for where, why in damaged:
            yield SourceProblem(f"{ref}#{where}", why, None)
        inner = _resumable(folders, inner)
        skipping = inner is not None
        recovered = None  # the store's embedded messages, from readpst once one is needed
        for folder, folder_path, fnid in folders:
            if skipping and fnid != inner.get("folder"):
                continue
            start = 0
            if skipping:
                start = int(inner.get("pos", -1)) + 1
                skipping = False
            if ("folder", fnid, folder_path) in avoid:
                continue
            at(("folder", fnid, folder_path))
            faults.hit(f"pst_folder_{fnid}")
            try:
                n = folder.number_of_sub_messages
            except _DAMAGED as exc:
                yield SourceProblem(f"{ref}#{folder_path or ''}", f"folder not readable, its items cannot be "
                                    f"listed: {_why(exc)}", None)
                continue
            for i in range(start, n):
                if ("item", fnid, i, folder_path) in avoid:
                    continue
                at(("item", fnid, i, folder_path))
                faults.hit(f"pst_item_{fnid}_{i}")
                item = _one(folder, i, ref, folder_path, codepage, directory,
                            cursor_wrap({"path_b64": key, "identity": identity, "folder": fnid, "pos": i}),
                            convert_limit)
                if isinstance(item, tuple):
                    item, problems = item
                    for p in problems:
                        reporter.warn(f"{item.ref}: {p}")
                if isinstance(item, SourceSkip) and item.reason.startswith("not mail: IPM."):
                    yield from _embedded_of_non_mail(folder, i, item)
                if isinstance(item, SourceMail) and item.embedded:
                    if recovered is None:
                        at(("readpst",))
                        recovered = (pst_embedded.Recovered(error="readpst was given up on an earlier try")
                                     if ("readpst",) in avoid else pst_embedded.recover(path))
                    yield from _with_embedded(item, folder.name or "", recovered, reporter)
                else:
                    yield item
    finally:
        f.close()


def _resumable(folders, inner: dict | None) -> dict | None:
    """``inner`` when the store still holds the item it names (the folder's NID, and the item's NID at
    its position), else None: the store is read again from the start (what was archived comes back
    as exact duplicates)."""
    if inner is None or inner.get("nid") is None:
        return inner
    for folder, _, fnid in folders:
        if fnid == inner.get("folder"):
            try:
                return inner if folder.get_sub_message(int(inner.get("pos", -1))).identifier == inner["nid"] else None
            except _DAMAGED:
                return None
    return None


def _folders(root, ipm: int | None) -> tuple[list[tuple[Any, str | None, int | None]], list[tuple[str, str]]]:
    """(folder, user-visible path, NID) depth first, the root and the IPM subtree root without a path; and
    (where, why) for each damaged part of the tree: a folder whose subfolders or whose own NID cannot be
    read (its subtree is not reached), or whose name cannot be read (its mails are read, under the NID)."""
    stack: list = [(root, None)]
    out: list = []
    damaged: list[tuple[str, str]] = []
    seen: set[int] = set()
    while stack:
        folder, path = stack.pop()
        try:
            nid = folder.identifier
        except _DAMAGED as exc:
            damaged.append((path or "", f"folder not readable, its mails and subfolders cannot be listed: {_why(exc)}"))
            continue
        if nid in seen:  # a damaged tree that leads back to a folder already listed: read once, never loop
            damaged.append((path or "", f"folder nid={nid} appears twice in the folder tree (a damaged store): "
                            "read once, where it appeared first"))
            continue
        seen.add(nid)
        out.append((folder, path, nid))
        subs = []
        try:
            count = folder.number_of_sub_folders
        except _DAMAGED as exc:
            damaged.append((path or "", f"subfolders not readable, they cannot be listed: {_why(exc)}"))
            count = 0
        for k in range(count):
            try:
                subs.append(folder.get_sub_folder(k))
            except _DAMAGED as exc:
                damaged.append((path or "", f"subfolder {k} not readable, its mails cannot be listed: {_why(exc)}"))
        for sub in reversed(subs):
            try:
                ident = sub.identifier
            except _DAMAGED:
                ident = None  # reported when it is taken from the stack
            try:
                name = (sub.name or "").replace("/", "\u2215")
            except _DAMAGED as exc:
                name = f"(folder nid={ident})"
                damaged.append((f"{path}/{name}" if path else name, f"folder name not readable ({_why(exc)}): its "
                                "mails are archived under this placeholder name"))
            if ident == ipm or (ipm is None and name == "IPM_SUBTREE" and path == "Root - Mailbox"):
                sub_path = None
            else:
                sub_path = f"{path}/{name}" if path else name
            stack.append((sub, sub_path))
    return out, damaged


#: what ``toolkit.mapi.learn_addresses`` reads of an item besides its recipients (the first pass reads
#: only these, never the bodies or attachments)
_DIRECTORY_PROPS = frozenset({mapi.PR_SUBJECT, mapi.PR_MESSAGE_CODEPAGE, mapi.PR_SENDER_EMAIL, mapi.PR_SENDER_SMTP,
                              mapi.PR_SENT_REPRESENTING_EMAIL, mapi.PR_SENT_REPRESENTING_SMTP,
                              mapi.PR_TRANSPORT_MESSAGE_HEADERS})


def _directory(root, ipm, codepage) -> dict[str, str]:
    """X.500 DN → SMTP address over every mail item of the store (a first pass; see toolkit.mapi)."""
    import pypff

    directory: dict[str, str] = {}
    for folder, _, _ in _folders(root, ipm)[0]:
        try:
            n = folder.number_of_sub_messages
        except _DAMAGED:
            continue
        for i in range(n):
            try:
                m = folder.get_sub_message(i)
                if isinstance(m, pypff.message):
                    props = _item_props(m, _DIRECTORY_PROPS)
                    mapi.learn_addresses(to_mapi(m, codepage, attachments=False, props=props), directory)
            except _DAMAGED:
                continue
    return directory


class _LazyDirectory:
    """The store's X.500 → SMTP map, made by a first pass over the store (:func:`_directory`) only when
    an item has an X.500 address to resolve: a store without one is read once, not twice."""

    def __init__(self, root, ipm, codepage, at=_nowhere, given_up: bool = False):
        self._args = (root, ipm, codepage)
        self._at = at
        self._map: dict[str, str] | None = None
        self._given_up = given_up  # the first pass hung or crashed on an earlier try: X.500 addresses stay

    def for_message(self, msg: mapi.MapiMessage) -> dict[str, str] | None:
        if self._map is None and not self._given_up and mapi.has_x500_address(msg):
            self._at(("directory",))
            self._map = _directory(*self._args)
        return self._map


def _one(folder, i: int, ref: str, folder_path: str | None, codepage, directory, cur: dict,
         convert_limit: float | None = mapi.CONVERT_LIMIT) -> SourceItem:
    import pypff

    try:
        m = folder.get_sub_message(i)
        nid = m.identifier
    except _DAMAGED as exc:
        return SourceProblem(f"{ref}#{folder_path or ''}/{i}", f"item {i} of the folder not readable: {_why(exc)}", cur)
    cur["nid"] = nid
    item_ref = f"{ref}#{folder_path or ''}/nid={nid}"
    if not isinstance(m, pypff.message):
        return SourceSkip(item_ref, "not mail: FreeBusy/data item", cur)
    props = _item_props(m)
    cls = _text(props.get(mapi.PR_MESSAGE_CLASS)) or "IPM.Note"
    if not is_mail_class(cls):
        return SourceSkip(item_ref, f"not mail: {cls}", cur)
    try:
        msg = to_mapi(m, codepage, props=props)
        msg.directory = directory.for_message(msg)
        built = mapi.build_guarded(msg, convert_limit) if convert_limit else mapi.build(msg)
    except mapi.ConversionTimeout as exc:
        return SourceProblem(item_ref, f"item not converted: {exc}", cur)
    except Exception as exc:  # a damaged item (or one the converter fails on): listed with its NID, read on
        return SourceProblem(item_ref, f"item not readable: {_why(exc)}", cur)
    mail = SourceMail(raw=built.raw, ref=item_ref, folder=folder_path, flags=mapi.mail_flags(msg),
                      internal_date=mapi.internal_date(msg), date_source="outlook-item-time", cursor=cur, via=VIA,
                      embedded=sum(1 for a in msg.attachments if a.method == mapi.ATTACH_EMBEDDED))
    return (mail, built.problems) if built.problems else mail


def _with_embedded(parent: SourceMail, folder_leaf: str, recovered, reporter: Reporter) -> Iterator[SourceItem]:
    """A mail with embedded messages, then each of them as its own mail linked to it (``parent_ref``).
    The source cursor moves past the parent only with its last embedded message."""
    head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(parent.raw)
    subject = " ".join(str(head.get("Subject") or "").split())
    children = None if recovered.error else recovered.take(folder_leaf, (head.get("Message-ID") or "").strip(),
                                                           subject)
    if recovered.error or children is None:
        why = recovered.error or "readpst wrote no such item"
        reporter.warn(f"{parent.ref}: {parent.embedded} embedded message(s) not recovered: {why}")
        yield parent
        return
    if len(children) != parent.embedded:
        reporter.warn(f"{parent.ref}: {parent.embedded} embedded message(s), readpst recovered {len(children)}")
    cursor, parent.cursor = parent.cursor, None
    yield parent
    for k, raw in enumerate(children, 1):
        yield SourceMail(raw=raw, ref=f"{parent.ref}/embedded={k}", folder=parent.folder,
                         cursor=cursor if k == len(children) else None, via=VIA_EMBEDDED, parent_ref=parent.ref)


def _embedded_of_non_mail(folder, i: int, skip: SourceSkip) -> Iterator[SourceSkip]:
    """The embedded items (attach method 5) of a non-mail item (an appointment's exceptions), each
    listed as a skip of its own before the item itself, so that none of them goes uncounted."""
    try:
        m = folder.get_sub_message(i)
        n = sum(1 for k in range(m.number_of_attachments) if _item_props(m.get_attachment(k)).get(0x3705) == 5)
    except _DAMAGED:
        return
    cls = skip.reason.removeprefix("not mail: ")
    for k in range(1, n + 1):
        yield SourceSkip(f"{skip.ref}/embedded={k}", f"not mail: embedded item of {cls}", None)
