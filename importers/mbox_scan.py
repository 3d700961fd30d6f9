"""The scan behind ``MboxSplitter._fast`` (importers/mbox.py, issue 15): where the plain messages of an mbox read
block begin and end, and their per-message facts, in one call per block. ``toolkit._native.mbox_scan`` runs it
when the compiled module is built; :func:`mbox_scan_py` is its pure-Python reference (tests/unit/test_native.py
compares them on random bytes). Without the compiled module the splitter reads every message with its
line-by-line loop (``MboxSplitter._message``), the rules' reference: :func:`mbox_scan_py` is not run there.

``mbox_scan(buf, pos, eof, cap)`` starts at ``buf[pos]``, the line after a From_ line, and returns one tuple per
*plain* message, one after the other, stopping (without error) at the first message that is not plain or not whole
in ``buf``. A message is plain when

* its header block, from ``pos``, is lines that are each whole in ``buf`` and match ``_HEADER`` of
  importers/mbox.py (or start with a space or tab, after the first), ended by an empty line (``\\n`` or ``\\r\\n``);
  no header line starts with ``From`` not followed by ``:``; when a header line matches ``_CL`` (the first such
  line counts: ``Content-Length: N``), the body (from the line after the empty line up to the separator) is
  exactly N bytes (then the message ends where that Content-Length says, the same end);
* the first line after that empty line that starts with ``From`` (the *next From line*, whole in ``buf``) comes
  right after an empty line (the header's or a later one: the separator) and before a line that matches
  ``_HEADER`` or is empty, or EOF (``eof``: ``buf`` holds the rest of the stream);
* with ``cap`` >= 0, the message's lines after its From_ line, separator included, are at most ``cap + 2`` bytes.

Each tuple: ``(sep, nxt, after, blank_at, quoted, empty, flagged)``: the separator at ``buf[sep:nxt]``, the next
From line at ``buf[nxt:after]`` (the next message's lines start at ``after``), the header's empty line at
``blank_at``; the number of lines of ``buf[pos:sep]`` matching ``^>+From ``; 1 when ``buf[pos:sep]`` is ASCII
whitespace only (``bytes.isspace`` or empty); ``flagged``: bit 1 when a header line matches ``_FLAG_FIELD`` (the
fields of importers/mbox_flags.py), bit 2 when one matches ``_CL`` (a Content-Length, consistent as above). Whether the next From line is a From_ line (``is_from_line``) is the caller's check.
"""
from __future__ import annotations

try:
    from toolkit import _native
except ImportError:  # pragma: no cover - an installation without a C compiler
    _native = None

_SPACE = frozenset(b" \t\n\r\x0b\x0c")
_FLAG_NAMES = (b"status", b"x-status", b"x-mozilla-status", b"x-mozilla-keys", b"x-gmail-labels")


def _header_line(line: bytes) -> bool:
    """``_HEADER.match(line)``: ``[\\x21-\\x39\\x3b-\\x7e]+[ \\t]*:``."""
    j = 0
    while j < len(line) and 0x21 <= line[j] <= 0x7e and line[j] != 0x3a:
        j += 1
    if j == 0:
        return False
    while j < len(line) and line[j] in b" \t":
        j += 1
    return j < len(line) and line[j] == 0x3a


def _flag_field(line: bytes) -> bool:
    low = line.lower()
    for name in _FLAG_NAMES:
        if low.startswith(name) and low[len(name):].lstrip(b" \t").startswith(b":"):
            return True
    return False


def _cl(line: bytes) -> int | None:
    """The value of a ``Content-Length`` line as ``_CL`` of importers/mbox.py reads it, else None."""
    low = line.lower()
    if not low.startswith(b"content-length"):
        return None
    rest = low[14:].lstrip(b" \t")
    if not rest.startswith(b":"):
        return None
    rest = rest[1:].lstrip(b" \t")
    digits = len(rest) - len(rest.lstrip(b"0123456789"))
    if not 1 <= digits <= 15 or rest[digits:].lstrip(b" \t") not in (b"", b"\n", b"\r\n", b"\r"):
        return None
    return int(rest[:digits])


def _quoted(text: bytes) -> int:
    count = 0
    for line in text.split(b"\n"):
        if line.startswith(b">") and line.lstrip(b">").startswith(b"From "):
            count += 1
    return count


def mbox_scan_py(buf: bytes, pos: int, eof: bool, cap: int) -> list[tuple[int, int, int, int, int, int, int]]:
    """The pure-Python reference of ``toolkit._native.mbox_scan`` (see the module docstring)."""
    n = len(buf)
    p = max(0, min(pos, n))
    out = []
    while True:
        q, flagged, claimed = p, 0, None
        while True:
            lf = buf.find(b"\n", q)
            if lf < 0:
                return out
            line = buf[q:lf + 1]
            if line in (b"\n", b"\r\n"):
                break
            if line[:1] in (b" ", b"\t"):
                if q == p:
                    return out
            else:
                if not _header_line(line):
                    return out
                if line.startswith(b"From") and line[4:5] != b":":
                    return out
                if not flagged & 2:
                    claimed = _cl(line)
                    if claimed is not None:
                        flagged |= 2
                if _flag_field(line):
                    flagged |= 1
            q = lf + 1
        blank_at = q
        at = buf.find(b"\nFrom", lf)
        if at < 0:
            return out
        c = at + 1
        if at == lf:
            seplen = lf + 1 - blank_at
        elif buf[at - 1] == 0x0a:
            seplen = 1
        elif at - 2 >= lf and buf[at - 2:at] == b"\n\r":
            seplen = 2
        else:
            return out
        e1 = buf.find(b"\n", c)
        if e1 < 0:
            return out
        nx = e1 + 1
        if nx == n:
            if not eof:
                return out
        else:
            e2 = buf.find(b"\n", nx)
            if e2 < 0 and not eof:
                return out
            nxt = buf[nx:e2 + 1 if e2 >= 0 else n]
            if nxt not in (b"\n", b"\r\n") and not _header_line(nxt):
                return out
        if flagged & 2 and c - seplen - (lf + 1) != claimed:
            return out
        if cap >= 0 and c - p > cap + 2:
            return out
        sep = c - seplen
        stored = buf[p:sep]
        out.append((sep, c, nx, blank_at, _quoted(stored), int(all(b in _SPACE for b in stored)), flagged))
        p = nx


def find_from_line_py(buf: bytes, start: int) -> int:
    """Where the next line starting with ``From`` begins in ``buf`` from ``start`` (>= 0) on: its LF's index, or -1."""
    return buf.find(b"\nFrom", start)


#: the compiled scan when toolkit._native has it (an older build may not), else None
mbox_scan = getattr(_native, "mbox_scan", None)
NATIVE_SCAN = mbox_scan is not None
#: ``find_from_line_py``, compiled when it can be (the search of ``_Lines.chunk`` in importers/mbox.py)
find_from_line = getattr(_native, "find_from_line", None) or find_from_line_py
