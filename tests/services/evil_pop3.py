"""A scripted POP3 server for the cases Dovecot cannot play (docs/reliability.md D11).

Plain TCP on 127.0.0.1 (the importer runs with ``allow_plaintext``): no CAPA,
optionally no UIDL, and a maildrop that answers ``-ERR [IN-USE]`` to the first
``locked`` PASS commands. Every command is recorded (so a test can see that DELE
never came); messages are sent dot-stuffed, with their line endings as given.
``rows`` replaces the answer lines of ``LIST`` or ``UIDL`` with what a callable
yields (garbage numbers, overlong lines, an endless listing).

``capa`` (lines) makes CAPA answer as a real server does; with ``b"UTF8 USER"``
among them the server plays Courier's POP3 (courier-pop 1.0.16, RFC 6856): a
message whose header has 8-bit bytes is sent as a freshly made "Cannot display
Unicode content" notice with a random boundary unless the session sent ``UTF8``
(see tests/integration/test_pop3_scripted.py for the real transcript).
"""
from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .process import LineHandler, ScriptedServer


@dataclass
class EvilPop3(ScriptedServer):
    messages: list[bytes] = field(default_factory=list)
    uidl: bool = True
    locked: int = 0
    rows: dict[bytes, Callable[[], Iterable[bytes]]] = field(default_factory=dict)
    capa: list[bytes] | None = None
    user_refused: bytes | None = None


def _stuffed(raw: bytes) -> bytes:
    lines = raw.splitlines(keepends=True)
    return b"".join(b"." + ln if ln.startswith(b".") else ln for ln in lines)


def _unicode_notice(raw: bytes) -> bytes:
    """Courier's stand-in for a message with 8-bit header bytes sent to a client that did not send UTF8."""
    boundary = b"=_%d-%d" % (os.getpid(), secrets.randbelow(10**10))
    return (b"From: Mail Delivery Subsystem <postmaster>\r\nSubject: Cannot display Unicode content\r\n"
            b"Mime-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\n\r\n\r\n--"
            + boundary + b"\r\nContent-Type: text/plain\r\n\r\nThis E-mail message was determined to be Unicode-formatted\r\n"
            b"but your E-mail reader does not support Unicode E-mail.\r\n\r\n--" + boundary
            + b"\r\nContent-Type: message/global\r\n\r\n" + raw + b"\r\n--" + boundary + b"--\r\n")


def _eight_bit_header(raw: bytes) -> bool:
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    return any(b > 0x7F for b in head)


def start_evil_pop3(messages: list[bytes], *, uidl: bool = True, locked: int = 0,
                    rows: dict[bytes, Callable[[], Iterable[bytes]]] | None = None,
                    capa: list[bytes] | None = None, user_refused: bytes | None = None) -> EvilPop3:
    """``user_refused``: the -ERR line every USER gets (Cyrus without TLS)."""
    state = EvilPop3(scheme="pop3", messages=list(messages), uidl=uidl, locked=locked, rows=dict(rows or {}), capa=capa,
                     user_refused=user_refused)
    lock = threading.Lock()

    class Handler(LineHandler):
        def handle(self) -> None:
            self.send(b"+OK evil POP3 ready\r\n")
            utf8 = False
            while True:
                line = self.rfile.readline(65536)
                if not line:
                    return
                cmd, _, arg = line.rstrip(b"\r\n").partition(b" ")
                cmd = cmd.upper()
                state.commands.append(cmd + (b" " + arg if cmd != b"PASS" else b" ***"))
                if cmd == b"CAPA" and state.capa is not None:
                    self.send(b"+OK Here's what I can do:\r\n" + b"".join(c + b"\r\n" for c in state.capa) + b".\r\n")
                elif cmd == b"CAPA":
                    self.send(b"-ERR no CAPA here\r\n")
                elif cmd == b"UTF8" and b"UTF8 USER" in (state.capa or ()):
                    utf8 = True
                    self.send(b"+OK UTF8 enabled\r\n")
                elif cmd == b"USER":
                    self.send(state.user_refused + b"\r\n" if state.user_refused else b"+OK\r\n")
                elif cmd == b"PASS":
                    with lock:
                        busy = state.locked > 0
                        state.locked -= busy
                    self.send(b"-ERR [IN-USE] maildrop locked by another session\r\n" if busy else b"+OK logged in\r\n")
                elif cmd == b"STAT":
                    self.send(b"+OK %d %d\r\n" % (len(state.messages), sum(map(len, state.messages))))
                elif cmd in state.rows:
                    try:
                        self.send(b"+OK\r\n")
                        for chunk in state.rows[cmd]():
                            self.wfile.write(chunk)
                        self.send(b".\r\n")
                    except OSError:
                        return  # the client hung up
                elif cmd == b"LIST":
                    rows = b"".join(b"%d %d\r\n" % (i + 1, len(m)) for i, m in enumerate(state.messages))
                    self.send(b"+OK\r\n" + rows + b".\r\n")
                elif cmd == b"UIDL":
                    if not state.uidl:
                        self.send(b"-ERR UIDL not supported\r\n")
                    else:
                        rows = b"".join(b"%d uid-%d\r\n" % (i + 1, i + 1) for i in range(len(state.messages)))
                        self.send(b"+OK\r\n" + rows + b".\r\n")
                elif cmd == b"RETR":
                    raw = state.messages[int(arg) - 1]
                    if b"UTF8 USER" in (state.capa or ()) and not utf8 and _eight_bit_header(raw):
                        raw = _unicode_notice(raw)
                    tail = b"" if raw.endswith(b"\n") else b"\r\n"
                    self.send(b"+OK\r\n" + _stuffed(raw) + tail + b".\r\n")
                elif cmd == b"QUIT":
                    self.send(b"+OK bye\r\n")
                    return
                else:  # RSET, NOOP; DELE is recorded, and must never come
                    self.send(b"+OK\r\n")

    state.serve(Handler)
    return state
