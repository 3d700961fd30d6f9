"""The flag fields ``export mbox --flags`` writes into each message's header (docs/cli.md, "export mbox").

mbox has no place for flags outside the messages, so mail programs read them from the header
(importers/mbox_flags.py reads the same fields back):

* ``Status:`` ``RO`` for a read message, ``O`` for an unread one (mutt, Alpine, mailx; Thunderbird
  reads its ``R`` when it finds no ``X-Mozilla-Status``);
* ``X-Status:`` ``A`` answered, ``D`` deleted, ``F`` flagged, ``T`` draft, only when one of them is set;
* ``X-Mozilla-Status:`` four hex digits (0x0001 read, 0x0002 answered, 0x0004 flagged), Thunderbird's own.

Fields of these three names already in the header are taken out first, so a reader never meets
two that disagree. The new ones go at the end of the header block, in its line ending (CRLF when
the header's first line ends so); a message without a blank line after its header (the header is
all of it) gets them at its start instead, so its last byte stays its last byte. The archived
bytes are not changed: this is a copy for mail programs, not for ``import mbox`` back into an
archive (it would be a new message there, with another blob id).
"""
from __future__ import annotations

from typing import Iterable, Iterator

_X_STATUS = (("\\Answered", "A"), ("\\Deleted", "D"), ("\\Flagged", "F"), ("\\Draft", "T"))
_MOZILLA = (("\\Seen", 0x0001), ("\\Answered", 0x0002), ("\\Flagged", 0x0004))
REPLACED = (b"status", b"x-status", b"x-mozilla-status")
#: a streamed message's header is looked for in its first bytes up to here; a longer header gets the
#: fields at its start and keeps any old ones (no reader keeps such a header whole anyway)
HEADER_LIMIT = 1 << 20


def status_fields(flags: Iterable[str], eol: bytes = b"\n") -> bytes:
    """The three fields (two when nothing but read/unread is set) for IMAP ``flags``, each ending in ``eol``."""
    flags = set(flags)
    out = [b"Status: " + (b"RO" if "\\Seen" in flags else b"O")]
    letters = "".join(letter for flag, letter in _X_STATUS if flag in flags)
    if letters:
        out.append(b"X-Status: " + letters.encode("ascii"))
    bits = sum(bit for flag, bit in _MOZILLA if flag in flags)
    out.append(b"X-Mozilla-Status: %04x" % bits)
    return eol.join(out) + eol


def _header_end(data: bytes, limit: int | None = None) -> int:
    """Offset of the blank line that ends the header block, or -1 (none within ``limit`` bytes)."""
    pos, n = 0, len(data) if limit is None else min(len(data), limit)
    while pos < n:
        nl = data.find(b"\n", pos, n)
        if nl < 0:
            return -1
        if not data[pos:nl].strip(b" \t\r"):  # empty or blanks only, as importers/mbox_flags.py reads it
            return pos
        pos = nl + 1
    return -1


def _without_replaced(header: bytes) -> bytes:
    """``header`` (whole lines) without the fields named in :data:`REPLACED` and their continuation lines."""
    kept: list[bytes] = []
    dropping = False
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        colon = line.find(b":")
        dropping = colon > 0 and line[:colon].rstrip(b" \t").lower() in REPLACED
        if not dropping:
            kept.append(line)
    return b"".join(kept)


def _eol(data: bytes) -> bytes:
    nl = data.find(b"\n")
    return b"\r\n" if nl > 0 and data[nl - 1] == 0x0D else b"\n"


def with_status(data: bytes, flags: Iterable[str], limit: int | None = None) -> bytes:
    """The message ``data`` with its flag fields for ``flags`` (see the module docstring)."""
    end = _header_end(data, limit)
    fields = status_fields(flags, _eol(data[:HEADER_LIMIT]))
    if end < 0:
        return fields + data
    return _without_replaced(data[:end]) + fields + data[end:]


def status_stream(chunks: Iterable[bytes], flags: Iterable[str]) -> Iterator[bytes]:
    """:func:`with_status` over a streamed message: its first bytes are held until the header's end is
    found (at most :data:`HEADER_LIMIT` of them), the rest passes through as it comes."""
    flags = tuple(flags)
    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if _header_end(head, HEADER_LIMIT) >= 0 or len(head) >= HEADER_LIMIT:
            break
    yield with_status(head, flags, HEADER_LIMIT)
    yield from it
