"""``import msg``: Outlook .msg/.oft files (one message each), converted to RFC 5322 by ``toolkit.mapi``.

The files are read with ``aspose-email-foss`` (MIT, pure Python). Its reader parses the property
stream of an embedded message (attach method 5) with the 32-byte header of a top-level message,
although [MS-OXMSG] gives an embedded message a 24-byte one; it then gives up on the embedded
message and keeps its raw storage. We re-read that storage ourselves with its header widened to the
top-level shape (8 zero bytes inserted after the first 24), so every embedded message becomes a
``message/rfc822`` part.

Every file below PATH (local or ``smb://``) is one item: a .msg of any class (note, contact,
appointment, task) converts to one mail; a file that is not an OLE2 compound file with MSG streams
is listed as skipped (but a file named ``.msg`` that holds an RFC 822 mail is an error that says to
read it as a .eml: mail is never left behind by a run that exits 0), one the reader fails on is an
error naming the file. The sighting's ``via``
is ``msg:<converter version>``, which marks the mail as converted and by which converter; the
folder is the file's directory, flags and internal date come from the MAPI properties.
"""
from __future__ import annotations

from typing import Iterator

from toolkit import mapi
from toolkit.errors import SourceError, StorageError
from toolkit.reporter import Reporter
from toolkit.source import SourceItem, SourceMail, SourceProblem, SourceSkip
from toolkit.storage import open_storage

from .content import DAMAGED_MSG, OLE2_MAGIC, is_msg  # noqa: F401 - importers.msg names is_msg too

from .walk import (
    FileEntry, TreeSource, entry_cursor, iter_after, open_local, read_local, ref_text, walk_local, walk_storage,
    without_own,
)

#: the first bytes looked at: the OLE2 magic, or the header lines of an RFC 822 mail named .msg
PEEK = 4096
PT_STRING8 = 0x001E
VIA = f"msg:{mapi.CONVERTER}"


def _props(collection) -> dict:
    props = {}
    for p in collection.iter_properties():
        if p.property_type == PT_STRING8 and p.raw_direct_stream is not None:
            props[p.property_id] = bytes(p.raw_direct_stream).split(b"\x00", 1)[0]
        elif p.property_id not in props or p.property_type == 0x001F:
            props[p.property_id] = p.value
    return props


def _recipient(r) -> mapi.MapiRecipient:
    props = _props(r.properties)

    def text(pid):
        v = props.get(pid)
        if isinstance(v, bytes):
            v = v.decode("cp1252", "replace")
        return v or None

    return mapi.MapiRecipient(kind=int(r.recipient_type or 1), name=text(0x3001), addrtype=text(0x3002),
                              address=text(0x3003), smtp=text(0x39FE))


def _embedded_from_storage(storage):
    """The embedded message in a raw storage the reader gave up on (see the module docstring)."""
    from aspose.email_foss.msg.mapi_message import MapiMessage as FossMessage, _clone_msg_storage
    from aspose.email_foss.msg.writer import MsgDocument

    root = _clone_msg_storage(storage)
    prop = root.find_stream("__properties_version1.0")
    if prop is None or (len(prop.data) - 24) % 16 != 0:
        return None
    prop.data = prop.data[:24] + b"\x00" * 8 + prop.data[24:]
    return FossMessage.from_msg_document(MsgDocument(root=root))


def _attachment(a, depth: int) -> mapi.MapiAttachment:
    props = _props(a.properties)
    hidden = bool(props.get(0x7FFE))
    name = a.filename or (props.get(0x3001) if isinstance(props.get(0x3001), str) else None)
    att = mapi.MapiAttachment(name=name, mime_type=a.mime_type, content_id=a.content_id, method=a.attach_method,
                              hidden=hidden)
    if a.attach_method == mapi.ATTACH_EMBEDDED or a.embedded_message is not None:
        inner = a.embedded_message
        if inner is None and a.custom_storage is not None:
            try:
                inner = _embedded_from_storage(a.custom_storage)
            except Exception as exc:  # noqa: BLE001 — the reader's errors are not typed
                att.missing = f"embedded message not readable ({exc})"
        if inner is not None:
            att.embedded = from_foss(inner, depth + 1)
        elif att.missing is None:
            att.missing = "embedded message not readable"
        return att
    if a.data:
        att.data = bytes(a.data)
    elif a.attach_method == mapi.ATTACH_OLE or a.custom_storage is not None:
        att.missing = "OLE object attachment (not converted)"
    else:
        att.data = b""
    return att


def from_foss(m, depth: int = 0) -> mapi.MapiMessage:
    """A ``toolkit.mapi.MapiMessage`` from an aspose-email-foss ``MapiMessage``."""
    props = _props(m.properties)
    cp = props.get(0x3FFD) if isinstance(props.get(0x3FFD), int) else None
    msg = mapi.MapiMessage(props=props, codepage=cp)
    msg.recipients = [_recipient(r) for r in m.recipients]
    msg.attachments = [_attachment(a, depth) for a in m.attachments] if depth < mapi.MAX_DEPTH else []
    return msg


def convert(data: bytes) -> mapi.Built:
    """RFC 5322 bytes of one .msg file's content (raises on a file the reader cannot parse)."""
    return _convert_with_meta(data)[0]


class MsgImporter(TreeSource):
    """Every regular file below PATH that is a .msg file is one mail (see the module docstring)."""

    via = "msg"

    def __init__(self, location: str, smb_password: str | None = None):
        super().__init__(location, smb_password)
        self.via = VIA
        self.convert_limit: float | None = mapi.CONVERT_LIMIT  # seconds per item (toolkit.mapi.build_guarded)
        self.fallback_limit: float | None = None

    def _item(self, entry: FileEntry, read, peek, reporter: Reporter) -> SourceItem:
        ref = ref_text(entry.rel)
        cur = entry_cursor(entry)
        if entry.skip_reason:
            return SourceSkip(ref, entry.skip_reason, cur)
        if entry.size == 0:
            return SourceSkip(ref, "empty file", cur)
        try:
            head = peek(entry)
            if head[:8] != OLE2_MAGIC:  # a large PST or video is never read whole to find out
                from .share import starts_with_headers  # share imports this module

                if entry.rel.lower().endswith(b".msg") and starts_with_headers(head):  # never left behind, exit 0
                    return SourceProblem(ref, "an RFC 822 mail, not an Outlook .msg file: not imported here; "
                                              "import it as a .eml file (one message per file)", cur)
                return SourceSkip(ref, "not an Outlook .msg file (no OLE2 compound file with MSG streams)", cur)
            data = read(entry)
        except (OSError, StorageError) as exc:
            return SourceProblem(ref, f"cannot read: {getattr(exc, 'strerror', None) or exc}", cur)
        if not is_msg(data[:65536]):
            if entry.rel.lower().endswith(b".msg"):  # named and made as one: a damaged message is an error, not a skip
                return SourceProblem(ref, DAMAGED_MSG, cur)
            return SourceSkip(ref, "not an Outlook .msg file (no OLE2 compound file with MSG streams)", cur)
        return item_from_msg(data, ref, cur, folder=_folder(entry.rel), warn=reporter.warn,
                             limits=(self.convert_limit, self.fallback_limit))

    def _scan_local(self, after, reporter: Reporter) -> Iterator[SourceItem]:
        import os

        root = os.fsencode(self.location.path)
        entries = without_own(walk_local(root), root, self.own_places)
        single = os.path.isfile(root) and not os.path.islink(root)
        reporter.start("scan", len(entries), "files")
        for entry in iter_after(entries, after):
            yield self._item(entry, lambda e: read_local(root, e, single), lambda e: _peek_local(root, e, single), reporter)

    def _scan_smb(self, after, reporter: Reporter) -> Iterator[SourceItem]:
        try:
            storage = open_storage(self.location, self._smb_password)
        except StorageError as exc:
            raise SourceError(f"{self.location}: {exc}") from None
        try:
            for entry in iter_after(walk_storage(storage), after):
                yield self._item(entry, lambda e: storage.read(e.rel.decode("utf-8")),
                                 lambda e: storage.read(e.rel.decode("utf-8"), 0, PEEK), reporter)
        finally:
            storage.close()


def _peek_local(root: bytes, entry: FileEntry, single: bool) -> bytes:
    with open_local(root, entry, single) as f:
        return f.read(PEEK)


def _folder(rel: bytes) -> str | None:
    head = rel.rpartition(b"/")[0]
    return ref_text(head) if head else None


def item_from_msg(data: bytes, ref: str, cursor, folder: str | None, warn=None,
                  limits: tuple[float | None, float | None] = (mapi.CONVERT_LIMIT, None)) -> SourceItem:
    """One converted mail from a .msg file's bytes, or a problem naming the file; ``warn`` hears
    what the conversion could not carry (an OLE object, an RTF body kept as body.rtf). ``limits``:
    the conversion's watchdog and that of its fallback (:func:`toolkit.mapi.build_guarded`)."""
    try:
        built, m = _convert_with_meta(data, limits)
    except mapi.ConversionTimeout as exc:
        return SourceProblem(ref, f"Outlook .msg file not converted: {exc}", cursor)
    except Exception as exc:  # noqa: BLE001 — a damaged .msg is listed, never a traceback
        return SourceProblem(ref, f"not a readable Outlook .msg file: {type(exc).__name__}: {exc}", cursor)
    for p in built.problems if warn is not None else ():
        warn(f"{ref}: {p}")
    return SourceMail(raw=built.raw, ref=ref, folder=folder, flags=mapi.mail_flags(m),
                      internal_date=mapi.internal_date(m), date_source="outlook-item-time", cursor=cursor, via=VIA)


def _convert_with_meta(data: bytes, limits: tuple[float | None, float | None] = (None, None)):
    from aspose.email_foss.cfb.reader import CFBReader
    from aspose.email_foss.msg.mapi_message import MapiMessage as FossMessage
    from aspose.email_foss.msg.reader import MsgReader
    from aspose.email_foss.msg.writer import MsgDocument

    with MsgReader(CFBReader(data)) as reader:
        fm = FossMessage.from_msg_document(MsgDocument.from_reader(reader))
    m = from_foss(fm)
    return mapi.build_guarded(m, *limits) if limits[0] else mapi.build(m), m


