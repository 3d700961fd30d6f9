"""A TCP proxy on 127.0.0.1 that delays every chunk by a fixed time each way: a long link on loopback.

``LatencyProxy(host, port, delay=0.010)`` listens on a free port; every chunk
read from one side is written to the other ``delay`` seconds after it was
read, in the order read (one reader and one writer thread per direction), so
a round trip through it takes at least ``2 * delay`` (the RTT) while the
bandwidth is not limited: the writer never waits for the reader, and the
bytes in flight are only bounded by what the two ends send. An end of stream
is passed on (half-close) after the same delay. Used by the tests and by
bench/bench_imap.py to measure an import over a WAN-like round-trip time.

    python tests/services/latency_proxy.py TARGET_HOST TARGET_PORT DELAY_SECONDS [LISTEN_PORT]

runs one in the foreground (for mbsync or a manual check) until interrupted.
"""
from __future__ import annotations

import collections
import socket
import sys
import threading
import time

CHUNK = 256 * 1024


class _Pipe:
    """One direction: chunks read from ``src`` are sent to ``dst`` ``delay`` seconds after they were read."""

    def __init__(self, src: socket.socket, dst: socket.socket, delay: float, proxy: "LatencyProxy", direction: str):
        self.src, self.dst, self.delay, self.proxy, self.direction = src, dst, delay, proxy, direction
        self._queue: collections.deque = collections.deque()
        self._ready = threading.Condition()
        threading.Thread(target=self._read, daemon=True, name="latency-read").start()
        threading.Thread(target=self._write, daemon=True, name="latency-write").start()

    def _read(self) -> None:
        while True:
            try:
                data = self.src.recv(CHUNK)
            except OSError:
                data = b""
            if data and self.proxy.record:
                self.proxy._log(self.direction, data)
            with self._ready:
                self._queue.append((time.monotonic() + self.delay, data or None))
                self._ready.notify()
            if not data:
                if self.direction == "c2s":
                    self.proxy._opened(-1)
                return

    def _write(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                due, data = self._queue.popleft()
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            try:
                if data is None:
                    self.dst.shutdown(socket.SHUT_WR)
                    return
                self.dst.sendall(data)
                self.proxy._count(len(data))
            except OSError:
                for s in (self.src, self.dst):
                    _close(s)
                return


def _close(s: socket.socket) -> None:
    try:
        s.close()
    except OSError:
        pass


class LatencyProxy:
    def __init__(self, target_host: str, target_port: int, delay: float = 0.010, listen_port: int = 0,
                 record: bool = False):
        self.target = (target_host, target_port)
        self.delay = delay
        self.record = record  # keep every chunk in ``events`` as ("c2s" | "s2c", bytes), in the order read
        self.events: list[tuple[str, bytes]] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", listen_port))
        self._listener.listen(64)
        self.host, self.port = self._listener.getsockname()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self.connections = 0
        self.open_now = self.max_open = 0  # connections open at once (until the client's end of stream)
        self.bytes_forwarded = 0
        threading.Thread(target=self._accept_loop, daemon=True, name="latency-accept").start()

    @property
    def rtt(self) -> float:
        return 2 * self.delay

    def _log(self, direction: str, data: bytes) -> None:
        with self._lock:
            self.events.append((direction, data))

    def _opened(self, n: int) -> None:
        with self._lock:
            self.open_now += n
            self.max_open = max(self.max_open, self.open_now)

    def _count(self, n: int) -> None:
        with self._lock:
            self.bytes_forwarded += n

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                _close(client)
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self._socks += [client, server]
            self._opened(1)
            _Pipe(client, server, self.delay, self, "c2s")
            _Pipe(server, client, self.delay, self, "s2c")

    def close(self) -> None:
        _close(self._listener)
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            _close(s)

    def __enter__(self) -> "LatencyProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    host, port, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    proxy = LatencyProxy(host, port, delay, int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    print(proxy.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        proxy.close()
