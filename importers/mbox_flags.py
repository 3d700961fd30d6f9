"""The mail flags an mbox writer keeps in a message's own header (docs/sources.md, "Flags of mbox files").

mbox has no place for flags outside the messages, so mail programs write them into the header:

* mutt, Pine, Alpine, elm, mailx: ``Status:`` (``R`` read; ``O`` old, no flag) and ``X-Status:``
  (``A`` answered, ``F`` flagged, ``T`` draft, ``D`` deleted);
* Thunderbird and SeaMonkey: ``X-Mozilla-Status:`` (four hex digits: 0x0001 read, 0x0002 replied,
  0x0004 flagged; 0x0008 expunged, which is an import note, not a flag: ``mozilla-expunged``) and
  ``X-Mozilla-Keys:`` (the tags, as IMAP keywords: ``$label1``, ``Junk`` …);
* Google Takeout: ``X-Gmail-Labels:`` (:mod:`importers.gmail_labels`; folders besides flags).

The flags are the IMAP names (``\\Seen`` …); keywords must be IMAP atoms. The header itself stays in
the archived bytes: nothing here changes a message.
"""
from __future__ import annotations

import re
from typing import Iterable

from . import gmail_labels
from .keywords import KEYWORD

_STATUS = {"R": "\\Seen"}
_X_STATUS = {"A": "\\Answered", "F": "\\Flagged", "T": "\\Draft", "D": "\\Deleted"}
_MOZILLA = ((0x0001, "\\Seen"), (0x0002, "\\Answered"), (0x0004, "\\Flagged"))
_HEX4 = re.compile(r"[0-9A-Fa-f]{1,8}")
FIELDS = (b"status", b"x-status", b"x-mozilla-status", b"x-mozilla-keys", gmail_labels.FIELD)
MAX_FIELD = 8192   # a longer value is read up to here


class Found:
    """What the header of one message says: flags, Gmail folders (in order), whether Thunderbird expunged it."""

    __slots__ = ("flags", "folders", "expunged")

    def __init__(self) -> None:
        self.flags: set[str] = set()
        self.folders: tuple[str, ...] = ()
        self.expunged = False


def read(fields: Iterable[tuple[bytes, bytes]]) -> Found:
    """``fields``: (lower-case name, raw value) of the header block, unfolded; those of :data:`FIELDS` count."""
    found = Found()
    for name, raw in fields:
        value = raw[:MAX_FIELD].decode("latin-1").strip()
        if name == b"status":
            found.flags.update(_STATUS[c] for c in value if c in _STATUS)
        elif name == b"x-status":
            found.flags.update(_X_STATUS[c] for c in value if c in _X_STATUS)
        elif name == b"x-mozilla-status" and _HEX4.fullmatch(value):
            bits = int(value, 16)
            found.flags.update(flag for bit, flag in _MOZILLA if bits & bit)
            found.expunged = found.expunged or bool(bits & 0x0008)
        elif name == b"x-mozilla-keys":
            found.flags.update(k for k in value.split() if KEYWORD.fullmatch(k))
        elif name == gmail_labels.FIELD:
            labels = gmail_labels.read(raw[:MAX_FIELD].decode("utf-8", "replace"))
            found.flags.update(f for f in labels.flags if f.startswith("\\") or KEYWORD.fullmatch(f))
            found.folders = tuple(dict.fromkeys(found.folders + labels.folders))
    return found


def header_fields(lines: Iterable[bytes]) -> list[tuple[bytes, bytes]]:
    """(lower-case name, value) of the wanted fields among a header block's ``lines`` (up to the blank line),
    continuation lines joined; the other fields are passed over without being split."""
    out: list[tuple[bytes, bytes]] = []
    taking = False
    for line in lines:
        if line in (b"\n", b"\r\n") or not line.strip(b" \t\r\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if taking and len(out[-1][1]) <= MAX_FIELD:  # read up to MAX_FIELD: no quadratic join of a huge fold
                out[-1] = (out[-1][0], out[-1][1] + b" " + line.strip())
            continue
        colon = line.find(b":", 0, 40)
        name = line[:colon].rstrip(b" \t").lower() if colon > 0 else b""
        taking = name in FIELDS
        if taking:
            out.append((name, line[colon + 1:].strip()))
    return out
