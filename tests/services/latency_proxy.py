"""A TCP proxy on 127.0.0.1 that delays every chunk by a fixed time each way: a long link on loopback.

``LatencyProxy(host, port, delay=0.010)`` listens on a free port; every chunk
read from one side is written to the other ``delay`` seconds after it was
read, in the order read, so a round trip through it takes at least
``2 * delay`` (the RTT) while the bandwidth is not limited: reading never
waits for writing, and the bytes in flight are only bounded by what the two
ends send. An end of stream is passed on (half-close) after the same delay.
Used by the tests and by bench/bench_imap.py to measure an import over a
WAN-like round-trip time.

One thread serves every connection: non-blocking sockets on one selector,
woken by whatever comes first, a readable socket or the next chunk due. The
proxy runs beside the import it delays and competes with it for the cores,
so it should cost little: no thread per direction handing chunks over under
a lock (the first version, 1.3 CPU-s per 570 MB relayed), reads of up to 1
MiB at once, a chunk sent as soon as its time has come (the selector's
timeout is rounded up to the millisecond: a chunk leaves at most ~1 ms late,
never early).

    python tests/services/latency_proxy.py TARGET_HOST TARGET_PORT DELAY_SECONDS [LISTEN_PORT]

runs one in the foreground (for mbsync or a manual check) until interrupted.
"""
from __future__ import annotations

import collections
import selectors
import socket
import sys
import threading
import time

CHUNK = 1 << 20


class _Pipe:
    """One direction: chunks read from ``src`` are sent to ``dst`` ``delay`` seconds after they were read."""

    __slots__ = ("src", "dst", "direction", "queue", "reading", "blocked", "done")

    def __init__(self, src: socket.socket, dst: socket.socket, direction: str):
        self.src, self.dst, self.direction = src, dst, direction
        self.queue: collections.deque = collections.deque()  # (due, bytes | memoryview | None: end of stream)
        self.reading = True   # src not at its end yet
        self.blocked = False  # dst's buffer full: wait until it is writable
        self.done = False     # the end of stream passed on (or the pair closed)


class _Pair:
    __slots__ = ("c2s", "s2c", "closed")

    def __init__(self, client: socket.socket, server: socket.socket):
        self.c2s, self.s2c = _Pipe(client, server, "c2s"), _Pipe(server, client, "s2c")
        self.closed = False


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
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()
        self._lock = threading.Lock()  # the counters, read by the tests while the loop runs
        self.connections = 0
        self.open_now = self.max_open = 0  # connections open at once (until the client's end of stream)
        self.bytes_forwarded = 0
        self._pairs: list[_Pair] = []
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._masks: dict[socket.socket, int] = {}
        self._roles: dict[socket.socket, list] = {}  # socket -> [pipe reading from it, pipe writing to it]
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name="latency-proxy")
        self._thread.start()

    @property
    def rtt(self) -> float:
        return 2 * self.delay

    # -- the loop -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        sel, pairs = self._sel, self._pairs
        try:
            while not self._stopping:
                now = time.monotonic()
                due = min((p.queue[0][0] for pair in pairs for p in (pair.c2s, pair.s2c)
                           if p.queue and not p.blocked), default=None)
                timeout = None if due is None else max(0.0, due - now)
                for key, events in sel.select(timeout):
                    what = key.data
                    if what == "accept":
                        self._accept()
                    elif what == "wake":
                        try:
                            self._wake_r.recv(4096)
                        except OSError:
                            pass
                    else:
                        reader, writer = self._roles.get(key.fileobj, (None, None))
                        if events & selectors.EVENT_WRITE and writer is not None:
                            writer.blocked = False
                            self._interest(writer.dst, selectors.EVENT_WRITE, False)
                        if events & selectors.EVENT_READ and reader is not None:
                            self._read(reader)
                now = time.monotonic()
                for pair in pairs:
                    if not pair.closed:
                        for p in (pair.c2s, pair.s2c):
                            if p.queue and not p.blocked and p.queue[0][0] <= now:
                                self._write(pair, p, now)
                if any(pair.closed for pair in pairs):
                    pairs[:] = [pair for pair in pairs if not pair.closed]
        finally:
            for pair in pairs:
                self._close_pair(pair)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                _close(client)
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.setblocking(False)
            pair = _Pair(client, server)
            self._pairs.append(pair)
            self._roles[client] = [pair.c2s, pair.s2c]
            self._roles[server] = [pair.s2c, pair.c2s]
            for s in (client, server):
                self._masks[s] = selectors.EVENT_READ
                self._sel.register(s, selectors.EVENT_READ, "data")
            with self._lock:
                self.connections += 1
                self.open_now += 1
                self.max_open = max(self.max_open, self.open_now)

    def _interest(self, s: socket.socket, event: int, on: bool) -> None:
        """Watch ``s`` for ``event`` (or stop); a socket watched for nothing leaves the selector."""
        mask = self._masks.get(s)
        if mask is None:
            return
        new = (mask | event) if on else (mask & ~event)
        if new == mask:
            return
        self._masks[s] = new
        if not new:
            self._sel.unregister(s)
        elif not mask:
            self._sel.register(s, new, "data")
        else:
            self._sel.modify(s, new, "data")

    def _read(self, p: _Pipe) -> None:
        if not p.reading:
            return
        try:
            data = p.src.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data and self.record:
            with self._lock:
                self.events.append((p.direction, data))
        p.queue.append((time.monotonic() + self.delay, data or None))
        if not data:
            p.reading = False
            self._interest(p.src, selectors.EVENT_READ, False)
            if p.direction == "c2s":
                with self._lock:
                    self.open_now -= 1

    def _write(self, pair: _Pair, p: _Pipe, now: float) -> None:
        q = p.queue
        while q and q[0][0] <= now:
            due, data = q[0]
            if data is None:
                q.popleft()
                try:
                    p.dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                p.done = True
                if pair.c2s.done and pair.s2c.done:
                    self._close_pair(pair)
                return
            try:
                sent = p.dst.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close_pair(pair)
                return
            with self._lock:
                self.bytes_forwarded += sent
            if sent < len(data):
                q[0] = (due, memoryview(data)[sent:])
                p.blocked = True
                self._interest(p.dst, selectors.EVENT_WRITE, True)
                return
            q.popleft()

    def _close_pair(self, pair: _Pair) -> None:
        if pair.closed:
            return
        pair.closed = True
        for s in (pair.c2s.src, pair.s2c.src):
            if self._masks.pop(s, 0):
                try:
                    self._sel.unregister(s)
                except (KeyError, ValueError, OSError):
                    pass
            self._roles.pop(s, None)
            _close(s)
        if pair.c2s.reading:  # the client's end never came: the connection is over all the same
            pair.c2s.reading = False
            with self._lock:
                self.open_now -= 1

    # -- outside the loop ---------------------------------------------------------------------------
    def close(self) -> None:
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for s in (self._listener, self._wake_r, self._wake_w):
            _close(s)
        try:
            self._sel.close()
        except OSError:
            pass

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
