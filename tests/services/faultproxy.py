"""A small threaded TCP proxy on 127.0.0.1 that injects network faults (docs/reliability.md D1-D3, D9).

Modes, set for the *next* connections with ``proxy.mode(...)``:

* ``pass``                       forward both ways;
* ``reset`` (``after=N``)        forward, then reset both sockets (RST) once N bytes came from the server;
* ``blackhole`` (``after=N``)    after N bytes from the server stop forwarding anything, keep the sockets open;
* ``slow`` (``delay=s``)         forward the server's bytes in small pieces with a delay each;
* ``strip``                      delete the STARTTLS / STLS capability from what the server says;
* ``ntstatus`` (``status=``, ``command=``, ``after=N``)  SMB2 only: the (N+1)th response to ``command``
  (e.g. 0x09 WRITE) on a connection is replaced by an unsigned error response with NTSTATUS ``status``
  (as a server answers for an expired session); everything else passes. Needs an unencrypted session
  (``--smb-no-encrypt``): encrypted SMB3 messages cannot be read on the way.

``times=k`` applies a fault to the next k connections, then falls back to
``pass``. Everything the client sent is kept in ``client_bytes`` (tests
assert a password never crossed in clear), and ``connections`` counts.
``client_smb[i]`` counts, for the i-th connection, the SMB messages the
client sent by protocol id: ``b"\xfeSMB"`` a plain (signed) SMB2/3
message, ``b"\xfdSMB"`` an SMB3 transform header (an encrypted message).
An encrypting session sends its NEGOTIATE and SESSION_SETUP plain and
everything after them encrypted; a session that was not asked for
encryption sends no transform header at all.
"""
from __future__ import annotations

import re
import socket
import struct
import threading
import time
from dataclasses import dataclass

_STRIP = re.compile(rb" STARTTLS\b|^STLS\r\n", re.M)


@dataclass
class _Mode:
    name: str = "pass"
    after: int = 0
    delay: float = 0.0
    times: int | None = None
    status: int = 0
    command: int = 0


class FaultProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.host, self.port = self._listener.getsockname()
        self._lock = threading.Lock()
        self._mode = _Mode()
        self._socks: list[socket.socket] = []
        self._closed = threading.Event()
        self.client_bytes = bytearray()
        self.connections = 0
        self.client_smb: list[dict[bytes, int]] = []
        self.faults_fired = 0
        threading.Thread(target=self._accept_loop, daemon=True, name="faultproxy-accept").start()

    # -- control -----------------------------------------------------------------------------------
    def mode(self, name: str = "pass", *, after: int = 0, delay: float = 0.0, times: int | None = None,
             status: int = 0, command: int = 0) -> None:
        assert name in ("pass", "reset", "blackhole", "slow", "strip", "ntstatus"), name
        with self._lock:
            self._mode = _Mode(name, after, delay, times, status, command)

    def _take_mode(self) -> _Mode:
        with self._lock:
            m = self._mode
            if m.times is not None:
                if m.times <= 0:
                    self._mode = m = _Mode()
                else:
                    self._mode = _Mode(m.name, m.after, m.delay, m.times - 1, m.status, m.command)
            return m

    def close(self) -> None:
        self._closed.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            for s in self._socks:
                _close(s)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- plumbing -----------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            mode = self._take_mode()
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self.connections += 1
                self._socks += [client, server]
                frames: dict[bytes, int] = {}
                self.client_smb.append(frames)
            conn = _Conn(self, client, server, mode, frames)
            threading.Thread(target=conn.upstream, daemon=True).start()
            threading.Thread(target=conn.downstream, daemon=True).start()


class _Conn:
    def __init__(self, proxy: FaultProxy, client: socket.socket, server: socket.socket, mode: _Mode,
                 frames: dict[bytes, int]):
        self.proxy, self.client, self.server, self.mode = proxy, client, server, mode
        self.frames = frames       # the client's SMB messages by protocol id (FaultProxy.client_smb)
        self._head = b""           # the start of the client's current frame (NetBIOS length + protocol id)
        self._left = 0             # bytes of the client's current frame still to come
        self.from_server = 0
        self.dead = threading.Event()
        self.holding = threading.Event()

    def upstream(self) -> None:
        """client → server (recorded)."""
        try:
            while not self.dead.is_set():
                data = self.client.recv(65536)
                if not data:
                    break
                with self.proxy._lock:
                    self.proxy.client_bytes += data
                    self._count_frames(data)
                if self.holding.is_set():
                    continue  # blackhole: swallow
                self.server.sendall(data)
        except OSError:
            pass
        finally:
            if not self.holding.is_set():
                self._shutdown()

    def _count_frames(self, data: bytes) -> None:
        """Count the client's SMB messages by protocol id (4-byte NetBIOS length, then the message)."""
        i = 0
        while i < len(data):
            if self._left:
                step = min(self._left, len(data) - i)
                self._left -= step
                i += step
                continue
            need = 4 if len(self._head) < 4 else 8
            take = min(need - len(self._head), len(data) - i)
            self._head += data[i:i + take]
            i += take
            if len(self._head) == 4 and int.from_bytes(self._head[1:4], "big") < 4:
                self._left, self._head = int.from_bytes(self._head[1:4], "big"), b""  # a keep-alive
            elif len(self._head) == 8:
                proto = self._head[4:8]
                self.frames[proto] = self.frames.get(proto, 0) + 1
                self._left = int.from_bytes(self._head[1:4], "big") - 4
                self._head = b""

    def downstream(self) -> None:
        """server → client, with the fault."""
        m = self.mode
        if m.name == "ntstatus":
            return self._downstream_smb(m)
        try:
            while not self.dead.is_set():
                data = self.server.recv(65536)
                if not data:
                    break
                if m.name == "strip":
                    data = _STRIP.sub(b"", data)
                if m.name in ("reset", "blackhole") and self.from_server + len(data) >= m.after:
                    keep = max(0, m.after - self.from_server)
                    if keep:
                        self.client.sendall(data[:keep])
                    self.proxy.faults_fired += 1
                    if m.name == "reset":
                        _reset(self.client)
                        _reset(self.server)
                        self.dead.set()
                        return
                    self.holding.set()  # blackhole: the client sees silence, the sockets stay open
                    while not self.dead.is_set() and not self.proxy._closed.is_set():
                        if not self.server.recv(65536):
                            break
                    return
                self.from_server += len(data)
                if m.name == "slow":
                    for i in range(0, len(data), 1024):
                        self.client.sendall(data[i:i + 1024])
                        time.sleep(m.delay)
                else:
                    self.client.sendall(data)
        except OSError:
            pass
        finally:
            if not self.holding.is_set():
                self._shutdown()

    def _downstream_smb(self, m: _Mode) -> None:
        """server → client frame by frame (4-byte NetBIOS length + SMB2 message), one response rewritten."""
        buf = b""
        seen = 0
        try:
            while not self.dead.is_set():
                data = self.server.recv(65536)
                if not data:
                    break
                buf += data
                while len(buf) >= 4:
                    n = int.from_bytes(buf[1:4], "big")
                    if len(buf) < 4 + n:
                        break
                    frame, buf = buf[4:4 + n], buf[4 + n:]
                    if frame[:4] == b"\xfeSMB" and int.from_bytes(frame[12:14], "little") == m.command \
                            and int.from_bytes(frame[8:12], "little") != 0x103:  # not STATUS_PENDING
                        if seen == m.after:
                            header = bytearray(frame[:64])
                            header[8:12] = m.status.to_bytes(4, "little")
                            flags = int.from_bytes(header[16:20], "little") & ~0x8  # unsigned
                            header[16:20] = flags.to_bytes(4, "little")
                            header[20:24] = b"\0\0\0\0"  # no compound
                            header[48:64] = b"\0" * 16   # no signature
                            frame = bytes(header) + b"\x09\x00\x00\x00" + b"\0\0\0\0" + b"\0"
                            self.proxy.faults_fired += 1
                        seen += 1
                    self.client.sendall(len(frame).to_bytes(4, "big") + frame)
        except OSError:
            pass
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self.dead.set()
        _close(self.client)
        _close(self.server)


def _reset(s: socket.socket) -> None:
    """Drop the connection now: linger 0 (RST on close); shutdown wakes the other thread blocked in recv."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    _close(s)


def _close(s: socket.socket) -> None:
    try:
        s.close()
    except OSError:
        pass
