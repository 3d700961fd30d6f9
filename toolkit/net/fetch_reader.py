"""A lean reader of the answers to one UID FETCH command (docs/architecture.md, "IMAP import over a long link").

imaplib collects each answer as a list of lines and literals and imapclient's
general parser then walks the text around the literals character by
character; for a body FETCH that is most of the Python work per mail. This
reader takes the answers straight off the connection, framed as imaplib frames
them (a line; when it ends in ``{n}``, a literal of ``n`` bytes and the next
line), and parses the few shapes a FETCH item has here: a number, ``NIL``, a
quoted string, a literal, a parenthesised list (FLAGS). imapclient stays in
charge of everything else (login, SELECT, LIST, SEARCH).

Literals are read through the connection's own ``read`` (``importers/imap.py``
bounds it: no literal above the limit of one mail or beyond the byte budget of
the commands in flight is ever read). Its answer is imapclient's:
``{uid: {b"SEQ": n, b"RFC822.SIZE": int, b"BODY[]": bytes, b"FLAGS": (..),
b"INTERNALDATE": datetime}}``. An answer whose items cannot be parsed is
skipped to its end by the framing (the connection stays in step) and its mail
carries :data:`UNPARSED` with the reason, so the caller lists that mail instead
of taking a body from a garbled answer. ``* BYE`` raises imaplib's ``abort``
(a link failure: the caller reconnects), a tagged NO or BAD imapclient's error.
A FETCH answer without UID is not one of the command's (RFC 3501 6.4.8: the
answers to UID FETCH carry UID) but news of another session's flag change
(Cyrus sends them before the answers): skipped, never keyed by its sequence
number as if that were a UID.
"""
from __future__ import annotations

import imaplib
import re

from imapclient.datetime_util import parse_to_datetime

#: The key of a mail whose FETCH answer could not be parsed: the reason (text).
UNPARSED = b"UNPARSED"

_FETCH = re.compile(rb"\* (\d+) FETCH \(", re.I)
_UNTAGGED = re.compile(rb"\* (?:\d+ )?([A-Za-z]+)")
_NAME = re.compile(rb"([A-Za-z0-9.]+(?:\[[^\]]*\])?(?:<\d+>)?) ")
_NUMBER = re.compile(rb"\d+")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n]|\\["\\])*)"')
_ATOM = re.compile(rb'[^ ()"{}\r\n]+')
_LITERAL = re.compile(rb"\{(\d+)\}\Z")
_UNESCAPE = re.compile(rb'\\(["\\])')


class _Unparsable(Exception):
    pass


class _Reader:
    """The lines and literals of one connection's answers, read as they are needed."""

    __slots__ = ("imap", "line", "pos")

    def __init__(self, imap: imaplib.IMAP4):
        self.imap = imap
        self.line = b""
        self.pos = 0

    def next_line(self) -> bytes:
        self.line, self.pos = self.imap._get_line(), 0  # EOF and a line without CRLF: imaplib's abort
        return self.line

    def value(self):
        line, pos = self.line, self.pos
        if pos >= len(line):
            raise _Unparsable("the answer ends where a value was expected")
        c = line[pos]
        if 0x30 <= c <= 0x39:
            m = _NUMBER.match(line, pos)
            self.pos = m.end()
            return int(m.group())
        if c == 0x22:  # "
            m = _QUOTED.match(line, pos)
            if m is None:
                raise _Unparsable("an unterminated quoted string")
            self.pos = m.end()
            return _UNESCAPE.sub(rb"\1", m.group(1))
        if c == 0x7B:  # {
            m = _LITERAL.match(line, pos)
            if m is None:
                raise _Unparsable("a literal that does not end the line")
            data = self.imap.read(int(m.group(1)))  # bounded by importers/imap.py (_bound_literals)
            self.next_line()
            return data
        if c == 0x28:  # (
            self.pos = pos + 1
            out = []
            while True:
                if self.pos >= len(self.line):
                    raise _Unparsable("an unterminated list")
                if self.line[self.pos] == 0x29:  # )
                    self.pos += 1
                    return tuple(out)
                out.append(self.value())
                if self.pos < len(self.line) and self.line[self.pos] == 0x20:
                    self.pos += 1
        m = _ATOM.match(line, pos)
        if m is None:
            raise _Unparsable(f"an unexpected {chr(c)!r}")
        self.pos = m.end()
        atom = m.group()
        return None if atom.upper() == b"NIL" else atom

    def items(self) -> dict:
        """The items of a FETCH answer from ``self.pos`` (after its "("), up to its closing ")"."""
        out: dict = {}
        while True:
            line, pos = self.line, self.pos
            if pos < len(line) and line[pos] == 0x29:  # )
                self.pos = pos + 1
                return out
            m = _NAME.match(line, pos)
            if m is None:
                raise _Unparsable("no item name")
            self.pos = m.end()
            out[m.group(1).upper()] = self.value()
            if self.pos < len(self.line) and self.line[self.pos] == 0x20:
                self.pos += 1

    def skip_answer(self) -> None:
        """Read past the rest of the answer under way: its literals (bounded reads) and their lines."""
        while (m := _LITERAL.search(self.line)) is not None:
            self.imap.read(int(m.group(1)))
            self.next_line()


def _convert(items: dict, normalise_times: bool) -> dict:
    size = items.get(b"RFC822.SIZE")
    if size is not None and not isinstance(size, int):
        raise _Unparsable(f"RFC822.SIZE {size!r} is not a number")
    date = items.get(b"INTERNALDATE")
    if date is not None:
        try:
            items[b"INTERNALDATE"] = parse_to_datetime(date, normalise=normalise_times)
        except (ValueError, TypeError):
            raise _Unparsable(f"INTERNALDATE {date!r} is not a date") from None
    return items


def read_fetch(imap: imaplib.IMAP4, tag: str, normalise_times: bool = False) -> tuple[str, list, dict[int, dict]]:
    """Read up to the completion of ``tag``: (its status, its data, {uid: items} of every FETCH answer read).

    The completions of other tags read meanwhile (pipelined commands) are kept where imaplib looks for them.
    """
    btag = tag.encode("ascii") if isinstance(tag, str) else tag
    answers: dict[int, dict] = {}
    r = _Reader(imap)
    while imap.tagged_commands.get(btag) is None:
        line = r.next_line()
        if line.startswith(b"* "):
            m = _FETCH.match(line)
            if m is None:
                word = _UNTAGGED.match(line)
                if word is not None and word.group(1).upper() == b"BYE":
                    raise imaplib.IMAP4.abort(f"the server said: {line[2:].decode('utf-8', 'replace')}")
                r.skip_answer()  # EXISTS, EXPUNGE, OK [...]: nothing the import uses here
                continue
            seq = int(m.group(1))
            r.pos = m.end()
            try:
                items = _convert(r.items(), normalise_times)
                r.skip_answer()  # anything after its ")" that announces a literal: read past it
            except _Unparsable as exc:
                uid = re.search(rb"\bUID (\d+)", line, re.I)
                why = f"unparsable FETCH answer from the server ({exc}): {line[:120]!r}"
                r.skip_answer()
                items = {UNPARSED: why, **({b"UID": int(uid.group(1))} if uid else {})}
            key = items.pop(b"UID", None)
            if not isinstance(key, int):
                if UNPARSED not in items:
                    continue  # unsolicited (flags another session changed: Cyrus): a UID FETCH answer carries UID
                key = seq
            answer = answers.setdefault(key, {b"SEQ": seq})
            answer.update(items)
            continue
        tagged = imap.tagre.match(line)
        if tagged is None or tagged.group("tag") not in imap.tagged_commands:
            raise imaplib.IMAP4.abort(f"unexpected response from the server: {line[:120]!r}")
        imap.tagged_commands[tagged.group("tag")] = (tagged.group("type").decode("ascii"), [tagged.group("data")])
    typ, data = imap.tagged_commands.pop(btag)
    return typ, data, answers


__all__ = ["read_fetch", "UNPARSED"]
