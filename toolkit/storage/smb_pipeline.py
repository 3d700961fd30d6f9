"""Pipelined SMB2 WRITE and READ on one open file (docs/media.md, "Copies onto and from SMB").

smbprotocol's file objects send one request and wait for its answer before the next, so a copy
pays one round trip (and the server's disk write) per chunk, with the wire idle meanwhile. Here up
to ``depth`` requests of up to the negotiated maximum size (capped at ``chunk``) are outstanding
at once; each request asks the server for the credits the next ones need (multi-credit requests,
MS-SMB2 3.2.4.1.5). Answers are collected in order: a write the server answers with fewer bytes
than sent, or an error, fails the whole transfer (the caller aborts the temporary file), so a
file is never published with a hole.

Memory: at most ``depth × chunk`` bytes of payload are held per open file (plus smbprotocol's
copy of the message while it is signed and sent).
"""
from __future__ import annotations

from collections import deque

from smbprotocol.connection import MAX_PAYLOAD_SIZE  # 64 KiB: one credit
from smbprotocol.exceptions import SMBResponseException

from ..errors import StorageError

#: Payload bytes per request (the negotiated maximum is used when smaller).
CHUNK = 1 << 20
#: Requests outstanding at once per open file.
DEPTH = 4


class ShortWrite(StorageError):
    """The server acknowledged fewer bytes than a write request carried."""


def _credits(n: int) -> int:
    return (max(0, n - 1) // MAX_PAYLOAD_SIZE) + 1


class PipelinedWriter:
    """Sequential writes to an open smbprotocol ``Open`` (``raw.fd``), ``depth`` requests in flight."""

    def __init__(self, open_, chunk: int = CHUNK, depth: int = DEPTH, label: str = ""):
        self._open = open_
        self._label = label or "an SMB file"
        self._conn = open_.connection
        self._chunk = max(MAX_PAYLOAD_SIZE, min(chunk, self._conn.max_write_size))
        self._depth = max(1, depth)
        self._pending: deque = deque()
        self._buf = bytearray()
        self.offset = 0          # bytes handed to the server (sent, answered or not)
        self.written = 0         # bytes the server acknowledged

    def write(self, data) -> int:
        self._buf += data
        while len(self._buf) >= self._chunk:
            piece = bytes(self._buf[: self._chunk])
            del self._buf[: self._chunk]
            self._send(piece)
        return len(data)

    def tell(self) -> int:
        return self.offset + len(self._buf)

    def drain(self) -> None:
        """Send what is buffered and wait for every answer."""
        if self._buf:
            piece = bytes(self._buf)
            self._buf.clear()
            self._send(piece)
        while self._pending:
            self._reap()

    def discard(self) -> None:
        """Forget what is buffered and the answers not yet collected (the transfer is being aborted)."""
        self._buf.clear()
        self._pending.clear()

    def _available(self) -> int:
        w = self._conn.sequence_window
        return w["high"] - w["low"]

    def _send(self, piece: bytes) -> None:
        need = _credits(len(piece))
        while self._pending and (len(self._pending) >= self._depth or self._available() < need):
            self._reap()
        # never ask for more credits than the server has granted: send what fits, the rest after
        fit = min(len(piece), max(1, self._available()) * MAX_PAYLOAD_SIZE)
        if fit < len(piece):
            self._send(piece[:fit])
            self._send(piece[fit:])
            return
        msg, recv = self._open.write(piece, offset=self.offset, send=False)
        req = self._conn.send(
            msg,
            sid=self._open.tree_connect.session.session_id,
            tid=self._open.tree_connect.tree_connect_id,
            credit_request=need * min(self._depth, 2),
        )
        self._pending.append((req, recv, len(piece), self.offset))
        self.offset += len(piece)

    def _reap(self) -> None:
        req, recv, n, at = self._pending.popleft()
        got = recv(req)
        if got != n:
            raise ShortWrite(f"{self._label}: the server wrote {got} of {n} bytes at offset {at}; the file is incomplete")
        self.written += n


def pipelined_read(open_, size: int, sink, chunk: int = CHUNK, depth: int = DEPTH) -> int:
    """Read ``size`` bytes from offset 0 of an open file, ``depth`` requests in flight, handing each piece
    to ``sink(bytes)`` in file order; returns the bytes read (less than ``size`` only at an early end)."""
    conn = open_.connection
    chunk = max(MAX_PAYLOAD_SIZE, min(chunk, conn.max_read_size))
    sid, tid = open_.tree_connect.session.session_id, open_.tree_connect.tree_connect_id
    pending: deque = deque()
    sent = got = 0

    def available() -> int:
        w = conn.sequence_window
        return w["high"] - w["low"]

    while sent < size or pending:
        while sent < size and len(pending) < depth:
            n = min(chunk, size - sent, max(1, available()) * MAX_PAYLOAD_SIZE)
            if pending and available() < _credits(n):
                break
            msg, recv = open_.read(sent, n, send=False)
            pending.append((conn.send(msg, sid=sid, tid=tid, credit_request=_credits(n) * min(depth, 2)), recv, n))
            sent += n
        req, recv, n = pending.popleft()
        data = recv(req)
        got += len(data)
        sink(data)
        if len(data) < n:  # the file ended early (it shrank): collect the answers already asked for
            for req, recv, _ in pending:
                try:
                    recv(req)
                except SMBResponseException:
                    pass  # STATUS_END_OF_FILE
            break
    return got
