"""``migrate run`` and its servers: a throttled or busy source is tried again after the others, and
no more than ``per_server`` connections go to one server at once (docs/cli.md "migrate").

Against the scripted POP3 server (tests/services/evil_pop3.py), which answers ``-ERR [IN-USE]`` to
the first ``locked`` logins, behind a counting TCP relay that holds each connection open a moment
so that sessions overlap.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest

from services.evil_pop3 import start_evil_pop3
from toolkit.archive import Archive
from toolkit.migrate.plan import load_plan
from toolkit.migrate.run import run_plan
from toolkit.migrate.sources import ServerOptions
from toolkit.reporter import ListReporter


def _mails(tag: str, n: int = 3) -> list[bytes]:
    return [f"From: {tag}@example.org\r\nSubject: {tag} {i}\r\nMessage-ID: <{tag}-{i}@pop.test>\r\n\r\nbody {i}\r\n".encode()
            for i in range(n)]


class CountingRelay:
    """Forwards TCP to ``target`` and counts the POP3 sessions open at once (``peak``): from the
    connection until the client's QUIT passes (before the server can answer it, so before the
    client can go on), each held ``hold`` s before it reaches the server."""

    def __init__(self, target: tuple[str, int], hold: float):
        self.target, self.hold = target, hold
        self.open = self.peak = 0
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.open += 1
                self.peak = max(self.peak, self.open)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _ended(self, state: dict) -> None:
        with self._lock:
            if not state["ended"]:
                state["ended"] = True
                self.open -= 1

    def _serve(self, client: socket.socket) -> None:
        state = {"ended": False}
        try:
            time.sleep(self.hold)
            upstream = socket.create_connection(self.target)
            t = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
            t.start()
            self._pump(client, upstream, lambda data: b"QUIT" in data.upper() and self._ended(state))
            t.join(10)
        finally:
            self._ended(state)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, seen=None) -> None:
        try:
            while data := src.recv(65536):
                if seen is not None:
                    seen(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def archive(tmp_path):
    a = Archive.create(tmp_path / "home", str(tmp_path / "m1"))
    yield a
    a.close()


def _plan(tmp_path, lines: list[str]):
    (tmp_path / "pw").write_text("pw\n")
    path = tmp_path / "plan.csv"
    path.write_text("kind,location,user,password_file,owner,folders\n" + "\n".join(lines) + "\n")
    plan = load_plan(path)
    assert not plan.problems, plan.problems
    return plan


def _run(archive, plan, **kw):
    server = ServerOptions(allow_plaintext=True, retries=0, backoff=0.01, timeout=10)
    return run_plan(archive, plan, {ln.number: "pw" for ln in plan.lines}, server, reporter=ListReporter(),
                    ingest_options={"workers": 0}, **kw)


def test_a_busy_maildrop_is_tried_again_after_the_others(archive, tmp_path):
    busy = start_evil_pop3(_mails("busy"), locked=1)  # the first login: -ERR [IN-USE]
    free = start_evil_pop3(_mails("free"))
    try:
        plan = _plan(tmp_path, [f"pop3,pop3://127.0.0.1:{busy.port},u1,pw,,",
                                f"pop3,pop3://127.0.0.1:{free.port},u2,pw,,"])
        r = _run(archive, plan, parallel=2, retry_wait=0.05)
    finally:
        busy.stop()
        free.stop()
    first, second = r["sources"]
    assert (first["status"], first["attempts"], first["archived"]) == ("complete", 2, 3)
    assert (second["status"], second["attempts"], second["archived"]) == ("complete", 1, 3)
    assert first["run_ids"][-1] > second["run_ids"][0]  # its second try came after the other source
    assert r["status"] == "complete"


def test_a_maildrop_busy_for_good_fails_with_its_reason_after_the_retry_rounds(archive, tmp_path):
    busy = start_evil_pop3(_mails("busy"), locked=10**6)
    try:
        plan = _plan(tmp_path, [f"pop3,pop3://127.0.0.1:{busy.port},u1,pw,,"])
        r = _run(archive, plan, retry_wait=0.01)
    finally:
        busy.stop()
    (only,) = r["sources"]
    assert only["status"] == "failed" and "[IN-USE]" in only["reason"] and only["attempts"] == 4
    assert r["status"] == "failed"


def test_per_server_limit_bounds_the_connections_to_one_server(archive, tmp_path):
    server = start_evil_pop3(_mails("shared", 2))
    relay = CountingRelay(("127.0.0.1", server.port), hold=0.4)
    try:
        plan = _plan(tmp_path, [f"pop3,pop3://127.0.0.1:{relay.port},user{i},pw,," for i in range(6)])
        r = _run(archive, plan, parallel=6, per_server=2)
    finally:
        relay.close()
        server.stop()
    assert [s["status"] for s in r["sources"]] == ["complete"] * 6
    assert relay.peak == 2  # parallel enough to reach the limit, never above it
    assert r["archived"] == 2 and r["duplicates"] == 10  # dedup across the six maildrops
