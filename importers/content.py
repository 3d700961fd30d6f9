"""What a file holds, from its first bytes: mail (an RFC 5322 header block, an mbox), an Outlook store or item, a
TNEF file, a zip, compressed data, or something else (the content check of ``import share`` and ``import eml``,
docs/sources.md). Apart from importers/share.py so that a worker process running the check of ``import eml``
(``importers.eml_check``) imports only this and :mod:`importers.from_line`, not the importers themselves."""
from __future__ import annotations

import bz2
import lzma
import re
import zlib

from toolkit.source import Unsupported

from .from_line import MMDF_UNSUPPORTED, compression_of, from_line_date, is_envelope_line, is_from_line, is_mmdf_separator

#: the first bytes of an Outlook PST/OST store (importers/pst.py)
PST_MAGIC = b"!BDN"
#: an OLE2 compound file (an Outlook .msg item is one: importers/msg.py)
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: a TNEF file (``winmail.dat``: importers/tnef.py)
TNEF_MAGIC = b"\x78\x9f\x3e\x22"
#: a zip file (importers/zipped.py)
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
DBOX_UNSUPPORTED = ("Dovecot dbox mail file (mdbox/sdbox storage): not supported; convert the mailboxes to "
                    "Maildir with Dovecot first (`doveadm backup -u USER maildir:PATH`), then import that Maildir")


def is_msg(head: bytes) -> bool:
    """An OLE2 compound file holding MSG property streams (``__substg1.0_`` names, UTF-16 in the
    directory) or a ``__properties_version1.0`` stream."""
    return head.startswith(OLE2_MAGIC) and ("__substg1.0_".encode("utf-16-le") in head
                                            or "__properties_version1.0".encode("utf-16-le") in head)


#: a file named .msg, made as an OLE2 compound file, with no MSG streams found: a damaged message is an error, not a skip
DAMAGED_MSG = ("a .msg file whose OLE2 compound file holds no readable MSG streams: damaged, or not an Outlook message "
               "(a copy from elsewhere may be whole); not imported")


def is_zip(head: bytes) -> bool:
    return head.startswith(ZIP_MAGIC)


HEAD = 64 << 10

EML, MBOX, SKIP, PROBLEM = "eml", "mbox", "skip", "problem"
#: sightings.via of a mail read from an EML file or an mbox on the share: what such a sighting's flags field
#: holds are import notes (``variant=…``, ``from-line-removed``), never mail flags to export
#: (exporters/layout.py); a Maildir's mail keeps the share's own via, with its flags
FILE_VIAS = {EML: "eml", MBOX: "mbox"}
PST, MSG, TNEF = "pst", "msg", "tnef"
ZIP = "zip"

_HEADER_LINE = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
#: At least one of these must be in a header block for a file to count as a mail.
MAIL_HEADERS = {
    b"from", b"to", b"cc", b"date", b"subject", b"message-id", b"received", b"return-path",
    b"mime-version", b"delivered-to", b"sender", b"reply-to", b"in-reply-to", b"references",
    b"content-type", b"x-mailer", b"x-ms-journal-report",
}
#: Names of desktop clutter found on shares; named in the skip reason when the content is not mail.
JUNK_NAMES = {b"thumbs.db", b"ehthumbs.db", b"ehthumbs_vista.db", b"desktop.ini", b".ds_store", b"icon\r"}
_JUNK_PREFIXES = (b"~$", b"._")


# -- content detection ----------------------------------------------------------------------------

def _decompress_head(head: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, HEAD)
    if kind == "bzip2":
        return bz2.BZ2Decompressor().decompress(head, HEAD)
    return lzma.LZMADecompressor().decompress(head, HEAD)


def _first_line_is_from(data: bytes, whole: bool = False) -> bool:
    body = data.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")
    if not body.startswith(b"From"):  # what is_from_line and is_envelope_line both need: no copy of the rest
        return False
    line, nl, rest = body.partition(b"\n")
    if not is_from_line(line + nl):
        # Older MTAs wrote From_ lines of any shape (``From someone@[10.1.2.3] [host]  Sun Aug  5 …``):
        # any ``From `` line followed by a mail header block makes an mbox, as the splitter agrees.
        return is_envelope_line(line) and looks_like_headers(rest, whole)
    if from_line_date(line) is not None:
        return True
    # A weak From_ line (``From -``, ``From addr@host``): only with a header line after it.
    return bool(_HEADER_LINE.match(rest))


def looks_like_headers(data: bytes, whole: bool) -> bool:
    """Is ``data`` (a file's first bytes; ``whole`` when that is all of it) an RFC 5322 header block?"""
    data = data.removeprefix(b"\xef\xbb\xbf")
    lines = data.split(b"\n")
    if not whole:
        lines = lines[:-1]  # the last line may be cut
    names: set[bytes] = set()
    for i, line in enumerate(lines):
        line = line.rstrip(b"\r")
        if not line:
            return bool(names & MAIL_HEADERS)
        if line[:1] in (b" ", b"\t") and i > 0:
            continue
        m = _HEADER_LINE.match(line)
        if not m:
            return False
        names.add(m.group(1).lower())
    return whole and bool(names & MAIL_HEADERS)  # a mail without a body, or no end within the head


def _junk(name: bytes) -> bool:
    low = name.lower()
    return low in JUNK_NAMES or low.startswith(_JUNK_PREFIXES)


#: the files a Cyrus IMAP spool keeps beside its messages (``1.``, ``2.``, ...): index, cache, header, search index
_CYRUS_FILE = re.compile(rb"cyrus\.(?:header|index|cache|squat|annotations|expunge|seen)\Z")
DBX_MAGIC = b"\xcf\xad\x12\xfe"
_DBX_FOLDERS = b"\xc6\xfd\x74\x6f"  # the class id of Folders.dbx (the folder list); C5FD746F: a mailbox
#: the first line of a Dovecot dbox file (``2 M<hex> C<hex>``: version 2, header size, create time), then a
#: message's "\x01\x02N" magic
_DBOX_FILE = re.compile(rb"2 M[0-9a-fA-F]+ C[0-9a-fA-F]+(?:[^0-9a-fA-F\n][^\n]*)?\n\x01\x02N")  # no overlap: linear
_UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}


def _utf16(head: bytes) -> tuple[str | None, int]:
    """(the UTF-16 byte order the head looks written in, where its text starts), or (None, 0): by the byte-order
    mark, else (Windows tools write none) by ASCII text in every other byte of the first 64, NULs between."""
    encoding = _UTF16_BOMS.get(head[:2])
    if encoding is not None:
        return encoding, 2
    sample = head[:64]
    if len(sample) < 32:
        return None, 0
    even, odd = sample[0::2], sample[1::2]
    if not odd.strip(b"\x00") and even.isascii() and b"\x00" not in even:
        return "utf-16-le", 0
    if not even.strip(b"\x00") and odd.isascii() and b"\x00" not in odd:
        return "utf-16-be", 0
    return None, 0


def unsupported_mail(head: bytes) -> Unsupported | None:
    """The reason a file is mail the toolkit cannot archive as it is, from its first bytes, else None."""
    if head.startswith(DBX_MAGIC) and head[4:8] != _DBX_FOLDERS:
        return Unsupported("Outlook Express mailbox (.dbx): not supported; convert it to .eml or mbox files "
                           "first (Windows Live Mail or Thunderbird import it), then import those")
    first, _, rest = head.partition(b"\n")
    if rest.startswith(b"From "):  # MMDF writers may put a From_ line after the separator
        rest = rest.partition(b"\n")[2]
    if is_mmdf_separator(first) and starts_with_headers(rest):
        return Unsupported(MMDF_UNSUPPORTED)
    if _DBOX_FILE.match(head):
        return Unsupported(DBOX_UNSUPPORTED)
    encoding, start = _utf16(head)
    if encoding is not None:
        text = head[start:4096 - 4096 % 2].decode(encoding, "replace").encode("utf-8", "replace")
        if starts_with_headers(text) or text.startswith(b"From "):
            label = "UTF-16" if start else encoding.upper()   # without a mark iconv must be told the byte order
            return Unsupported("a mail saved as UTF-16 text, which no mail reader reads: convert it first "
                               f"(`iconv -f {label} -t UTF-8 FILE`), then import the result")
    return None


def detect(head: bytes, name: bytes, size: int) -> tuple[str, str | None]:
    """(EML|MBOX|SKIP|PROBLEM, reason) for a file from its first bytes (at most HEAD) and its name."""
    if size == 0 or not head:
        return SKIP, "empty file"
    whole = len(head) >= size
    if head.startswith(PST_MAGIC):
        return PST, None
    if is_msg(head):
        return MSG, None
    if head.startswith(OLE2_MAGIC) and name.lower().endswith(b".msg"):
        return PROBLEM, DAMAGED_MSG
    if head.startswith(TNEF_MAGIC):
        return TNEF, None
    if is_zip(head):
        return ZIP, None
    kind = compression_of(head)
    if kind == "lzip":
        return PROBLEM, "lzip-compressed file (possibly an mbox): not supported; decompress it with `lzip -d`, then rerun"
    if head.startswith(ZSTD_MAGIC):
        return PROBLEM, ("zstd-compressed file (possibly an mbox or a tar of mail): not supported; decompress it with "
                         "`zstd -d`, then rerun")
    data = head
    if kind in ("gzip", "bzip2", "xz"):
        try:
            data = _decompress_head(head, kind)
        except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error):
            return SKIP, f"not mail: {kind}-compressed data that cannot be decompressed"
        if _first_line_is_from(data):
            return MBOX, None
        if looks_like_headers(data, False):  # mail not archived: an error, so that the run does not look complete
            return PROBLEM, Unsupported(f"{kind}-compressed single message: not imported; decompress it "
                                        f"(`{_UNPACK[kind]} FILE`), then import the result")
        tar = _tar(data, f"{kind}-compressed ")
        if tar is not None:
            return tar
        return SKIP, f"not mail: {kind}-compressed file holding neither an mbox nor a message"
    if _first_line_is_from(data, whole):
        return MBOX, None
    if looks_like_headers(data, whole):
        return EML, None
    tar = _tar(data, "")
    if tar is not None:
        return tar
    unsupported = unsupported_mail(head)
    if unsupported is not None:
        return PROBLEM, unsupported
    if head.startswith(DBX_MAGIC):
        return SKIP, "not mail: the folder list of Outlook Express (Folders.dbx)"
    if _junk(name):
        return SKIP, f"not mail: Windows/macOS folder metadata ({name.decode('utf-8', 'backslashreplace')})"
    if _CYRUS_FILE.match(name.rpartition(b"/")[2]):
        return SKIP, "not mail: Cyrus IMAP mailbox metadata (its messages are the files named N. beside it)"
    if b"\x00" in data[:8192]:
        return SKIP, "not mail: binary"
    return SKIP, "not mail: no header block"


#: the first bytes of a zstd frame
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_UNPACK = {"gzip": "gzip -dk", "bzip2": "bzip2 -dk", "xz": "xz -dk"}
#: a member name of a tar archive that is, or lies in, mail: a message or mailbox file, a Maildir message (a time
#: stamp-named file in cur/ or new/), anything in a directory named Maildir
_TAR_MAIL = re.compile(r"(?i)(?:\.(?:eml|emlx|msg|mbox|mbx|pst|ost)$"
                       r"|(?:^|/)(?:cur|new)/\d{9,}[._][^/]*$|(?:^|/)maildir(?:/|$)|(?:^|/)mbox$)")
#: tar member headers read from a file's first bytes
_TAR_LOOK = 64


def tar_member_names(data: bytes) -> list[str] | None:
    """The names of the members whose headers lie in ``data`` (the first bytes of a tar archive, in order), or None
    when ``data`` does not begin with a tar header (POSIX ``ustar`` or GNU; its checksum verified)."""
    if data[257:262] != b"ustar":  # the usual file: no tar header (its magic, POSIX or GNU)
        return None
    import tarfile

    names: list[str] = []
    pos = 0
    while pos + 512 <= len(data) and len(names) < _TAR_LOOK:
        block = data[pos:pos + 512]
        if block == bytes(512):
            break
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.TarError:
            break
        names.append(info.name)
        pos += 512 + (info.size + 511) // 512 * 512  # its data (a file's, a long name's, a pax header's) follow
    return names or None


def _tar(data: bytes, packed: str) -> tuple[str, str | Unsupported] | None:
    """What a tar archive is to an import (None when ``data`` is not one): an error when a member name among its first
    ones is mail (mail not archived must not look like a complete run), else a skip."""
    names = tar_member_names(data)
    if names is None:
        return None
    mail = next((n for n in names if _TAR_MAIL.search(n.rstrip("/"))), None)
    if mail is None:
        return SKIP, f"not mail: a {packed}tar archive (no mail among its first {len(names)} members)"
    return PROBLEM, Unsupported(f"a {packed}tar archive holding mail ({mail!r}, ...): not read; extract it "
                                "(`tar -xf FILE -C DIR`) and import DIR")


def starts_with_headers(data: bytes) -> bool:
    """The lenient test for a file the user named as a message: its first line (after a UTF-8 BOM
    and lines of blanks) is a ``Name: value`` header line, and the header lines up to the first line
    that is not one name at least one usual mail header. A malformed line further down ends the
    block instead of disqualifying the file (broken mail is still mail, archived with its defects);
    a file that starts with an empty line (no headers at all), a binary or a plain text is not mail.
    Reads line by line only as far as the header block goes (it runs once per imported file)."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    pos, end, first = 0, len(data), True
    while pos < end:
        nl = data.find(b"\n", pos)
        stop = end if nl < 0 else nl
        line = data[pos:stop].rstrip(b"\r")
        pos = stop + 1
        if first and line and not line.strip(b" \t"):
            continue  # a line of blanks before the headers
        if not line:
            break
        if line[:1] in (b" ", b"\t") and not first:
            continue
        m = _HEADER_LINE.match(line)
        if not m:
            break
        first = False
        if m.group(1).lower() in MAIL_HEADERS:  # the names before it were none of them (else it returned)
            return True
    return False


def mail_content(head: bytes, name: bytes, size: int, *, strict: bool = True) -> str | None:
    """None when a file whose first bytes are ``head`` holds mail (a header block, or an mbox), else
    the reason it is not mail. The one content check of ``import share`` (``strict``: a whole header
    block, as files of any kind lie there) and ``import eml`` (not ``strict``: the user named these
    files as messages, so a broken header block still counts, see :func:`starts_with_headers`)."""
    if not strict and starts_with_headers(head):
        return None
    kind, reason = detect(head, name, size)
    if isinstance(reason, Unsupported):
        return reason
    if kind == ZIP:
        return "zip file: the mail inside is read when its name ends in .zip (or by import share)"
    return None if kind in (EML, MBOX) else reason


_OUTLOOK_KINDS = {PST: "an Outlook PST/OST store", MSG: "an Outlook .msg item",
                  TNEF: "a TNEF file (winmail.dat)"}


def mail_elsewhere(head: bytes, size: int) -> str | None:
    """Why a file holds mail that another import reads and that must not be archived as one message's bytes
    (an Outlook store or item, a compressed mbox), else None. ``import eml`` lists such a file as an error."""
    kind, _ = detect(head, b"", size)
    if kind in _OUTLOOK_KINDS:
        return (f"{_OUTLOOK_KINDS[kind]}, not an RFC 5322 message: not imported; the Outlook imports (pst, msg) "
                "convert it, and so does the share import")
    if kind == MBOX and (packed := compression_of(head)) is not None:
        return f"a {packed}-compressed mbox, not one message: not imported; the mbox import reads it as it is"
    return None
