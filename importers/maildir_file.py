"""A Maildir message file stored compressed (docs/sources.md, Dovecot's compressed Maildir; docs/reliability.md M8).

Dovecot's ``zlib`` plugin (``mail_plugins = zlib``, ``zlib_save = gz|bz2|xz|zstd|lz4``; ``mail_compress`` in
Dovecot 2.4) writes each new message file of a Maildir compressed, and reads both kinds back: a client, ``doveadm
fetch`` or an IMAP import gets the message itself. Read as a plain file, such a message is binary data, with no
header the catalog can read. :func:`decompressed` is the ``cut`` of a Maildir message's read
(:class:`toolkit.prepare.LocalFile`, :class:`toolkit.share_file.ShareFile`): it runs where the file is read (in a
worker), recognises the compression by its magic bytes (no mail begins with them: a header field name is printable
ASCII), and gives the message as Dovecot hands it out, noted ``file-compressed-<kind>`` beside the file's flags.

Dovecot's LZ4 is its own framing around LZ4 blocks (:func:`_lz4`), read with the ``lz4`` package; the others are
the standard formats their tools write. Nothing is archived from a file whose data are cut short or damaged, or one
that expands beyond :data:`MAX_PLAIN` bytes (or past :data:`MAX_RATIO` times its size after
:data:`MAX_RATIO_AFTER`: a bomb): each is an error naming the file and the next step (the run ends with exit 1).
A plain file is left as it is (None); one that is not the size its name gives (``,S=``) is archived as it is, noted
``size-differs-from-name`` with a warning.
"""
from __future__ import annotations

import bz2
import lzma
import re
import zlib
from typing import NamedTuple

import zstandard

from toolkit.prepare import NotMail, Trimmed

#: a decompressed message is held in memory: at most this many bytes
MAX_PLAIN = 256 << 20
#: past MAX_RATIO_AFTER decompressed bytes, more than this many times the file's size is a decompression bomb
MAX_RATIO = 100
MAX_RATIO_AFTER = 16 << 20
#: zstd input is fed in pieces this small, so that one piece cannot expand far past the cap (a zstd block of
#: at most 128 KiB takes 4 bytes of input: 512 bytes give at most 16 MiB)
_ZSTD_PIECE = 512

GZIP, BZIP2, XZ, ZSTD, LZ4 = "gzip", "bzip2", "xz", "zstd", "dovecot-lz4"
_MAGIC = ((b"\x1f\x8b", GZIP), (b"\xfd7zXZ\x00", XZ), (b"\x28\xb5\x2f\xfd", ZSTD),
          (b"Dovecot-LZ4\r\x2a\x9b\xc5", LZ4))
#: bzip2: ``BZh``, the block size digit, then a block's or the end's magic (``BZh`` alone could begin a header line)
_BZIP2 = re.compile(rb"BZh[1-9](?:\x31\x41\x59\x26\x53\x59|\x17\x72\x45\x38\x50\x90)")
#: how to get the message of each kind some other way (named in the error of a file too large to decompress here)
_ELSEWHERE = {kind: f"decompress it (`{tool} FILE > FILE.eml`) and import that file as a single message"
              for kind, tool in ((GZIP, "gzip -dc"), (BZIP2, "bzip2 -dc"), (XZ, "xz -dc"), (ZSTD, "zstd -dc"))}
_ELSEWHERE[LZ4] = ("import the mailbox over IMAP from the Dovecot that wrote it, which hands its messages out "
                   "decompressed")

#: Dovecot's LZ4 framing (src/lib-compression/istream-lz4.c): the magic, the largest plain chunk (4 bytes, big-endian),
#: then chunks, each its compressed length (4 bytes, big-endian) and one LZ4 block of at most that many plain bytes
_LZ4_HEAD = 19
#: a larger chunk size than Dovecot ever writes (64 KiB) is taken for damage
_LZ4_CHUNK_MAX = 16 << 20


def note(kind: str) -> str:
    """The sighting note of a message that was stored ``kind``-compressed."""
    return f"file-compressed-{kind}"


_NAME_SIZE = re.compile(rb",S=(\d{1,15})(?=[,:!;]|\Z)")


def name_size(name: bytes) -> int | None:
    """The message size a Maildir file name gives (``…,S=1234,W=1260:2,S``), or None."""
    m = _NAME_SIZE.search(name.split(b":2,")[0])
    return int(m.group(1)) if m else None


def compression(head: bytes) -> str | None:
    """The compression a file's first bytes name (gzip, bzip2, xz, zstd, dovecot-lz4), or None."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return BZIP2 if _BZIP2.match(head) else None


class Cut(NamedTuple):
    """A Maildir message's ``cut``: :func:`decompressed` with the file's flag field and the size its name gives. Equal
    for equal values (a job made at start-up is the run's own job, toolkit/early_tasks.py), picklable to a worker."""

    flags: tuple[str, ...]
    size: int | None

    def __call__(self, raw: bytes) -> Trimmed | NotMail | None:
        return decompressed(self.flags, self.size, raw)


class _End(Exception):
    """Why a compressed file gave no whole message: the error's text."""


def decompressed(flags: tuple[str, ...], size: int | None, raw: bytes) -> Trimmed | NotMail | None:
    """The message of a Maildir file ``raw`` stored compressed, with ``flags`` (the file's flag field: one
    space-separated element, or none) and the note; a NotMail error when it gives no whole message; None for a
    file that is not compressed. ``size``: the message's size its name gives (Dovecot's ``,S=``: the size before
    compression), or None; a message of another size is an error (Dovecot's LZ4 framing has no end marker: a file
    cut after a whole chunk is told only by it)."""
    kind = compression(raw[:16])
    if kind is None:
        return None if size is None or len(raw) == size else _other_size(flags, size, raw)
    cap = min(MAX_PLAIN, max(MAX_RATIO_AFTER, MAX_RATIO * len(raw)))
    try:
        plain = _zstd(raw, cap) if kind == ZSTD else _lz4(raw, cap) if kind == LZ4 else _stream(kind, raw, cap)
    except _End as end:
        return NotMail(f"{kind}-compressed message file {end}: not archived", error=True)
    if len(plain) > cap:
        return NotMail(f"{kind}-compressed message file expands past {cap} bytes from {len(raw)}: not archived (a "
                       f"decompression bomb, or a message too large to decompress in memory); {_ELSEWHERE[kind]}",
                       error=True)
    if not plain:
        return NotMail(f"{kind}-compressed message file holds no data: not archived", error=True)
    if size is not None and len(plain) != size:
        return NotMail(f"{kind}-compressed message file decompresses to {len(plain)} bytes, its name says S={size}: "
                       "cut short or damaged, not archived", error=True)
    joined = " ".join(f for f in (*flags, note(kind)) if f)
    return Trimmed(plain, len(raw) - len(plain), {"flags": (joined,)})


#: the note of a plain message file whose size is not the one its name gives
SIZE_DIFFERS = "size-differs-from-name"


def size_note(flags: tuple[str, ...], size: int, length: int) -> dict:
    """The flag field and warning of a plain message file of ``length`` bytes whose name gives another ``size``
    (Dovecot and Courier write the file's size as ``,S=`` when they deliver it): a copy cut short, or a file changed
    since its delivery. It is archived as it is."""
    joined = " ".join(f for f in (*flags, SIZE_DIFFERS) if f)
    why = "cut short by a copy?" if length < size else "changed since its delivery?"
    return {"flags": (joined,), "warning": f"the file holds {length} bytes, its name says S={size} ({why}); archived "
                                           f"as it is, noted {SIZE_DIFFERS}"}


def _other_size(flags: tuple[str, ...], size: int, raw: bytes) -> Trimmed:
    return Trimmed(raw, 0, size_note(flags, size, len(raw)))


def _new(kind: str):
    if kind == GZIP:
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    return bz2.BZ2Decompressor() if kind == BZIP2 else lzma.LZMADecompressor(lzma.FORMAT_XZ)


def _stream(kind: str, data: bytes, cap: int) -> bytes:
    """gzip, bzip2 or xz ``data`` decompressed, up to ``cap`` + 1 bytes; concatenated streams (members) are read
    on as their tools read them. Raises _End when the data end early or cannot be decoded."""
    out: list[bytes] = []
    n = 0
    d = _new(kind)
    buf = data
    try:
        while n <= cap:
            if kind == GZIP:
                chunk = d.decompress(buf, cap + 1 - n)
                buf = d.unconsumed_tail
            else:
                chunk = d.decompress(buf, cap + 1 - n)
                buf = b""
            out.append(chunk)
            n += len(chunk)
            if d.eof:
                rest = d.unused_data
                if not rest.strip(b"\0"):  # the end (gzip and xz allow zero padding after a stream)
                    break
                d, buf = _new(kind), rest
                continue
            if not chunk and not buf and (kind == GZIP or d.needs_input):
                raise _End("cut short (its data end before the end-of-stream marker)")
    except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as exc:
        raise _End(f"damaged ({exc})") from None
    return b"".join(out)


def _zstd(data: bytes, cap: int) -> bytes:
    """zstd ``data`` (one or more frames) decompressed, stopping past ``cap`` bytes; raises _End as :func:`_stream`."""
    out: list[bytes] = []
    n = 0
    d = zstandard.ZstdDecompressor().decompressobj()
    pos = 0
    try:
        while pos < len(data) and n <= cap:
            chunk = d.decompress(data[pos:pos + _ZSTD_PIECE])
            pos += _ZSTD_PIECE
            out.append(chunk)
            n += len(chunk)
            if d.eof:
                rest = d.unused_data + data[pos:]
                if not rest:
                    return b"".join(out)
                d, data, pos = zstandard.ZstdDecompressor().decompressobj(), rest, 0
    except zstandard.ZstdError as exc:
        raise _End(f"damaged ({exc})") from None
    if n > cap:
        return b"".join(out)
    raise _End("cut short (its data end before the end of the zstd frame)")


def _lz4(data: bytes, cap: int) -> bytes:
    """Dovecot's LZ4 framing (:data:`_LZ4_HEAD`) decompressed, stopping past ``cap`` bytes; raises _End as
    :func:`_stream`."""
    import lz4.block  # here: only a Maildir that holds such files needs it

    if len(data) < _LZ4_HEAD:
        raise _End("cut short (in its header)")
    chunk_max = int.from_bytes(data[15:_LZ4_HEAD], "big")
    if not 0 < chunk_max <= _LZ4_CHUNK_MAX:
        raise _End(f"damaged (a chunk size of {chunk_max} bytes in its header)")
    out: list[bytes] = []
    n, pos = 0, _LZ4_HEAD
    while pos < len(data) and n <= cap:
        size = int.from_bytes(data[pos:pos + 4], "big")
        if pos + 4 + size > len(data):
            raise _End("cut short (in its last chunk)")
        try:
            chunk = lz4.block.decompress(data[pos + 4:pos + 4 + size], uncompressed_size=chunk_max)
        except lz4.block.LZ4BlockError as exc:
            raise _End(f"damaged ({exc})") from None
        out.append(chunk)
        n += len(chunk)
        pos += 4 + size
    return b"".join(out)
