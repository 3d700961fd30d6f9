"""``import pop3``: the mail of a POP3 maildrop, never deleted (docs/dedup.md, docs/reliability.md D11).

The stdlib ``poplib`` is used for the session, with two changes made per
connection (no module global is touched, STYLE.md): status lines may be up
to 1 MiB (poplib's ``_MAXLINE`` is 2048 and a longer line desynchronises the
session), and RETR is read by :meth:`_Session.retr_raw`, which keeps every
line ending exactly as sent and removes only the dot-stuffing, so the stored
bytes are the bytes the server holds (poplib strips line endings, and its
re-joined text is not the original for bare-LF or long lines).

DELE is never sent. Before QUIT the session sends RSET, which on Dovecot
also drops the \\Seen changes RETR made; other servers may still mark mail
as read (the command help says so): Courier does, and its TOP would not, but
RETR is what every server sends exactly.

A server listing ``UTF8`` in CAPA is sent it before the login
(toolkit/net/pop3.py): Courier otherwise sends a notice of its own in place of
a mail with 8-bit header bytes.

Cursor (kept across completed runs: ``incremental``)::

    {"last_uidl": "...", "count": n}

the UIDL of the last message imported and how many came before it. A rerun
continues after that UIDL's position in the current listing (POP3 keeps
arrival order; messages deleted by another client before it do not
matter); when that message is gone, everything is read again and dedup
stores nothing twice. A server without UIDL gets no cursor: every run
reads everything and dedup (exact bytes) decides.

UIDL and LIST answers are read with caps of their own: a line of at most
``MAX_LIST_LINE`` bytes, at most ``max_listing`` lines, and every line must
be ``number uid`` (UIDL: 1-255 printable characters) or ``number size``
with numbers in range. Anything else stops the run with an error naming the
server and the line (a broken or hostile server), never a traceback.
"""
from __future__ import annotations

import poplib
import re
from typing import Any, Callable, Iterator

from toolkit.errors import SourceError
from toolkit.reporter import Reporter
from toolkit.source import SourceItem, SourceMail, SourceProblem

from toolkit.net import pop3 as net_pop3
from toolkit.net.pop3 import close as _close
from toolkit.net.pop3 import error_text as _text
from toolkit.net.retry import with_reconnect

from .netutil import ServerSource

SCHEMES = {"pop3": (110, False), "pop3s": (995, True)}
MAX_LINE = 1 << 20           # status and listing lines
READ_PIECE = 1 << 16         # RETR is read in pieces of at most this (long lines are fine)
MAX_MESSAGE = 1 << 30        # larger mails are listed, not fetched (memory stays bounded)
CHANGED = "source changed during import"
MAX_LIST_LINE = 512          # one UIDL or LIST answer line
MAX_LISTING = 10_000_000     # lines of one UIDL or LIST answer
_UIDL_LINE = re.compile(rb"(\d{1,10}) +([\x21-\x7e]{1,255})[ \t]*")
_LIST_LINE = re.compile(rb"(\d{1,10}) +(\d{1,15})(?:[ \t][^\r\n]*)?")


class ListingError(SourceError):
    """A UIDL or LIST answer the importer cannot trust (garbage, too long, too many lines)."""


class _LinkLost(EOFError):
    """EOF or a protocol desync on the POP3 link: reconnect."""


class _Session:
    """poplib behaviour changed for this connection only (mixed into POP3 / POP3_SSL)."""

    def _getline(self):
        line = self.file.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise _LinkLost(f"line longer than {MAX_LINE} bytes")
        if not line:
            raise _LinkLost("connection closed by the server")
        octets = len(line)
        if line[-2:] == b"\r\n":
            return line[:-2], octets
        return line[:-1], octets

    def retr_raw(self, which: int, limit: int = MAX_MESSAGE) -> bytes:
        """RETR ``which``: the message bytes exactly as sent, dot-stuffing removed."""
        self._putcmd(f"RETR {which}")
        self._getresp()  # error_proto on -ERR
        out = bytearray()
        at_line_start = True
        while True:
            piece = self.file.readline(READ_PIECE)
            if not piece:
                raise _LinkLost(f"connection closed during RETR {which}")
            if at_line_start:
                if piece == b".\r\n" or piece == b".\n":
                    return bytes(out)
                if piece[:1] == b".":
                    piece = piece[1:]
            out += piece
            if len(out) > limit:
                raise _LinkLost(f"message {which} exceeds {limit} bytes")
            at_line_start = piece[-1:] == b"\n"


class _POP3(_Session, poplib.POP3):
    pass


class _POP3S(_Session, poplib.POP3_SSL):
    pass


class Pop3Importer(ServerSource):
    """One POP3 maildrop."""

    via = "pop3"

    def __init__(
        self,
        url: str,
        password: str,
        *,
        ca_file: str | None = None,
        insecure: bool = False,
        allow_plaintext: bool = False,
        timeout: float = 60,
        retries: int = 5,
        backoff: float = 1.0,
        retry_deadline: float = 300.0,
        max_size: int = MAX_MESSAGE,
        max_listing: int = MAX_LISTING,
    ):
        super().__init__(url, password, SCHEMES, ca_file=ca_file, insecure=insecure, allow_plaintext=allow_plaintext,
                         timeout=timeout, retries=retries, backoff=backoff, retry_deadline=retry_deadline)
        self.max_size = max_size
        self.max_listing = max_listing
        self._conn: poplib.POP3 | None = None
        self._numbers: dict[str, int] = {}  # UIDL -> message number in the current session

    # -- connection ------------------------------------------------------------------------------------
    def _connect(self) -> poplib.POP3:
        u = self.url
        return net_pop3.connect(u.host, u.port, u.implicit_tls, self._ctx, plain=_POP3, secure=_POP3S,
                                **self._login_options())

    def _ensure(self) -> poplib.POP3:
        if self._conn is None:
            self._conn = self._connect()
            self._numbers = {}
            listing = self._uidl(self._conn)
            if listing is not None:
                self._numbers = {uidl: n for n, uidl in listing}
        return self._conn

    def _drop(self) -> None:
        _close(self._conn)
        self._conn = None

    def _call(self, what: str, op: Callable[[poplib.POP3], Any]) -> Any:
        return with_reconnect(what, lambda: op(self._ensure()), self._drop, self._retry, self._reconnecting)

    def _listing(self, conn, cmd: str) -> list[bytes]:
        """The lines of a UIDL or LIST answer, read with a line and a count cap (see the module docstring)."""
        conn._putcmd(cmd)
        conn._getresp()  # error_proto on -ERR
        lines: list[bytes] = []
        while True:
            line = conn.file.readline(MAX_LIST_LINE + 1)
            if not line:
                raise _LinkLost(f"connection closed during {cmd}")
            if len(line) > MAX_LIST_LINE:
                raise ListingError(f"{self.source_uri}: a line of the {cmd} answer is longer than {MAX_LIST_LINE} "
                                   f"bytes (starts {line[:60]!r}); nothing imported (a broken or hostile server?)")
            if line in (b".\r\n", b".\n"):
                return lines
            if len(lines) >= self.max_listing:
                raise ListingError(f"{self.source_uri}: the {cmd} answer lists more than {self.max_listing:,} "
                                   "messages; nothing imported (a broken or hostile server?)")
            lines.append(line.removeprefix(b".").rstrip(b"\r\n") if line.startswith(b"..") else line.rstrip(b"\r\n"))

    def _listed_number(self, cmd: str, line: bytes, m: re.Match | None) -> int:
        n = int(m.group(1)) if m else 0
        if not m or not 1 <= n <= self.max_listing:
            what = "number unique-id" if cmd == "UIDL" else "number size"
            raise ListingError(f"{self.source_uri}: the {cmd} answer has a line that is not '{what}' with a "
                               f"message number from 1 to {self.max_listing:,}: {line[:100]!r}; nothing imported "
                               "(a broken or hostile server?)")
        return n

    def _uidl(self, conn) -> list[tuple[int, str]] | None:
        try:
            lines = self._listing(conn, "UIDL")
        except poplib.error_proto:
            return None  # no UIDL on this server
        out = []
        for line in lines:
            m = _UIDL_LINE.fullmatch(line)
            out.append((self._listed_number("UIDL", line, m), m.group(2).decode("ascii")))
        return out

    def _sizes(self, conn) -> dict[int, int]:
        out = {}
        for line in self._listing(conn, "LIST"):
            m = _LIST_LINE.fullmatch(line)
            n = self._listed_number("LIST", line, m)
            out[n] = int(m.group(2))
        return out

    # -- scan ------------------------------------------------------------------------------------------
    def scan(self, cursor: Any, reporter: Reporter) -> Iterator[SourceItem]:
        try:
            listing = self._call("UIDL", self._uidl)
            sizes = self._call("LIST", self._sizes)
            if listing is None:
                reporter.info(f"{self.source_uri}: no UIDL support: reading everything, dedup decides")
                todo = [(n, None) for n in sorted(sizes)]
            else:
                todo = list(listing)
                last = cursor.get("last_uidl") if isinstance(cursor, dict) else None
                if last is not None:
                    pos = next((i for i, (_, u) in enumerate(todo) if u == last), None)
                    if pos is None:
                        reporter.info(f"{self.source_uri}: the last imported message is gone: reading everything, dedup decides")
                    else:
                        todo = todo[pos + 1:]
            reporter.start("pop3", len(todo), "mails")
            count = int(cursor.get("count", 0)) if isinstance(cursor, dict) else 0
            for n, uidl in todo:
                count += 1
                ref = f"pop3;UIDL={uidl}" if uidl is not None else f"pop3;MSG={n}"
                cur = {"last_uidl": uidl, "count": count} if uidl is not None else None
                size = sizes.get(n)
                if size is not None and size > self.max_size:
                    yield SourceProblem(ref, f"{size} bytes, above the limit of {self.max_size}: not fetched", cur)
                    continue
                try:
                    raw = self._call(f"RETR {ref}", lambda c: c.retr_raw(self._number(n, uidl), self.max_size))
                except (poplib.error_proto, KeyError) as exc:
                    yield SourceProblem(ref, f"{CHANGED}: {_text(exc) if isinstance(exc, poplib.error_proto) else 'the message is gone'}", cur)
                    continue
                self._retry.reset()
                reporter.advance("pop3", 1, bytes=len(raw))
                yield SourceMail(raw=raw, ref=ref, folder=None, cursor=cur)
            reporter.finish("pop3")
        finally:
            self._quit()

    def _number(self, n: int, uidl: str | None) -> int:
        """The message number of ``uidl`` in the current session (numbers may shift after a reconnect)."""
        return n if uidl is None else self._numbers[uidl]

    def _quit(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.rset()  # undo what this session marked (Dovecot: the \Seen flags set by RETR); no DELE was sent
            conn.quit()
        except Exception:
            _close(conn)

