"""IMAP modified UTF-7 (RFC 3501 §5.1.3), the encoding of IMAP and Maildir++ folder names.

Printable ASCII stands for itself except ``&``, which is written ``&-``;
everything else is UTF-16BE, base64 with ``,`` instead of ``/`` and no
padding, between ``&`` and ``-``. Characters outside the BMP are surrogate
pairs inside one such run (``&2D3eAA-`` is U+1F600).
"""
from __future__ import annotations

import base64
import binascii


class Utf7Error(ValueError):
    """A name that is not valid modified UTF-7."""


def decode(name: str | bytes) -> str:
    """Decode a modified UTF-7 name; raises Utf7Error when it is malformed."""
    if isinstance(name, bytes):
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            raise Utf7Error("modified UTF-7 is 7-bit: the name holds 8-bit bytes") from None
    out: list[str] = []
    i, n = 0, len(name)
    while i < n:
        ch = name[i]
        if ch != "&":
            if not 0x20 <= ord(ch) <= 0x7E:
                raise Utf7Error(f"character {ch!r} must be encoded")
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise Utf7Error("'&' run without the closing '-'")
        run = name[i + 1 : end]
        i = end + 1
        if not run:
            out.append("&")
            continue
        b64 = run.replace(",", "/")
        if "/" in run or len(b64) % 4 == 1 or any(c == "=" for c in b64):  # '/' is the delimiter, ',' its stand-in
            raise Utf7Error(f"bad base64 run {run!r}")
        try:
            raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise Utf7Error(f"bad base64 run {run!r}") from None
        if len(raw) % 2:
            raise Utf7Error(f"run {run!r} is not whole UTF-16 units")
        try:
            text = raw.decode("utf-16-be")
        except UnicodeDecodeError:
            raise Utf7Error(f"run {run!r} holds an unpaired surrogate") from None
        out.append(text)
    return "".join(out)


def decode_lenient(name: str | bytes) -> str:
    """``decode(name)``, or the name as received when it is not valid modified UTF-7
    (bytes as UTF-8, as servers with UTF8=ACCEPT send them, else Latin-1)."""
    try:
        return decode(name)
    except Utf7Error:
        if isinstance(name, bytes):
            try:
                return name.decode("utf-8")
            except UnicodeDecodeError:
                return name.decode("latin-1")
        return name


def encode(text: str) -> str:
    """Encode a folder name in modified UTF-7."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            b64 = base64.b64encode("".join(pending).encode("utf-16-be")).decode("ascii")
            out.append("&" + b64.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in text:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)
