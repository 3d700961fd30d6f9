"""Where a compressed mbox ends early or is damaged (docs/reliability.md L10).

A ``.gz``, ``.bz2`` or ``.xz`` file cut short (an interrupted copy or download) holds every byte of its mail up to
the cut: ``zcat`` prints them and then complains. Python's decompressing readers raise ``EOFError`` instead, and a
``read(n)`` that meets the end drops what it had decompressed in that call. :class:`EndOfData` reads such a stream
the way ``zcat`` does: every byte the file gives, then the end, remembering why the data ended (``stop``) and how
many bytes came before (``given``), so the mbox import archives the messages before the end, flags the last one when
it may be cut short, and reports the file as an error, instead of archiving none of the chunk it was reading.

Why the data end:

* ``"truncated"``: the file ends before its end-of-stream marker;
* ``"damaged"``: the compressed data cannot be decoded from some point on (a bzip2 block or an xz block whose
  check fails, a deflate stream that breaks): the bytes before came from blocks that decoded whole;
* ``"checksum"``: all of a gzip file was given, but its data do not match the CRC-32 (or length) stored at its end,
  which gzip checks only there: the bytes given may be damaged anywhere.

An I/O error of the file itself (``OSError`` with an errno) is not an end: it is raised, as before, and the run
resumes later from its last commit.
"""
from __future__ import annotations

import gzip
import lzma
import zlib
from typing import BinaryIO

TRUNCATED, DAMAGED, CHECKSUM = "truncated", "damaged", "checksum"


def _why(exc: BaseException) -> str | None:
    """Which end an exception of a decompressing reader is, or None when it is none (then it is raised)."""
    if isinstance(exc, EOFError):
        return TRUNCATED
    text = str(exc)
    if isinstance(exc, gzip.BadGzipFile):
        return CHECKSUM if ("CRC check failed" in text or "Incorrect length" in text) else DAMAGED
    if isinstance(exc, (zlib.error, lzma.LZMAError)):
        return DAMAGED
    if type(exc) is OSError and exc.errno is None and text == "Invalid data stream":  # bz2's word for it
        return DAMAGED
    return None


class EndOfData:
    """``read(n)`` over a decompressing reader (``gzip.GzipFile``, ``bz2.BZ2File``, ``lzma.LZMAFile``) that ends where
    its data end (see the module docstring): ``stop`` is then why, ``detail`` the reader's words, and every later
    read gives ``b""``. ``given``: decompressed bytes handed out so far."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.given = 0
        self.stop: str | None = None
        self.detail = ""

    @property
    def cut(self) -> bool:
        """Did the data end before the file's last message may have ended (truncated or damaged)?"""
        return self.stop in (TRUNCATED, DAMAGED)

    def read(self, n: int = -1) -> bytes:
        if self.stop is not None:
            return b""
        if n is None or n < 0:
            n = 1 << 62
        parts: list[bytes] = []
        got = 0
        while got < n:
            try:  # read1: one step of the decompressor, so that nothing decompressed is lost when the next one fails
                chunk = self.stream.read1(n - got)
            except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
                why = _why(exc)
                if why is None:
                    raise
                self.stop, self.detail = why, str(exc)
                break
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.given += len(data)
        return data

    def close(self) -> None:
        self.stream.close()
