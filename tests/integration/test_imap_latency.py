"""``import imap`` over a long link: the latency proxy, pipelined FETCH (docs/architecture.md, IMAP import).

tests/services/latency_proxy.py delays every chunk by a fixed time each way;
these tests check that it really adds the round-trip time and keeps the bytes
in order, that an import through it stores the same blobs as a direct one,
and that the importer keeps several body FETCH commands in flight (counted
from the bytes that crossed the proxy, not from the clock).
"""
from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import time

import pytest

from importers.imap import ImapImporter
from services.latency_proxy import LatencyProxy
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.reporter import ListReporter
from toolkit.retrieval import read_messages, select_messages
from toolkit.source import SourceMail


def _echo_server() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return

            def echo(conn=conn) -> None:
                with conn:
                    while data := conn.recv(65536):
                        conn.sendall(data)
            threading.Thread(target=echo, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed early"
        buf += chunk
    return bytes(buf)


def test_latency_proxy_adds_the_round_trip_time_to_every_exchange_and_keeps_the_bytes_in_order():
    srv, port = _echo_server()
    delay = 0.05
    with LatencyProxy("127.0.0.1", port, delay=delay) as proxy:
        with socket.create_connection((proxy.host, proxy.port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rounds = 5
            t0 = time.monotonic()
            for i in range(rounds):  # each exchange waits for the echo before the next: one RTT each
                s.sendall(b"ping %d\n" % i)
                assert _recv_exactly(s, len(b"ping %d\n" % i)) == b"ping %d\n" % i
            elapsed = time.monotonic() - t0
            assert elapsed >= rounds * proxy.rtt, elapsed  # a lower bound: load only makes it longer

            payload = os.urandom(8 << 20)  # larger than any socket buffer: many chunks, all in order
            sender = threading.Thread(target=s.sendall, args=(payload,))
            sender.start()
            back = _recv_exactly(s, len(payload))
            sender.join()
            assert hashlib.sha256(back).digest() == hashlib.sha256(payload).digest()
    srv.close()


def _fill(dovecot, user: str, folders: dict[str, int]) -> int:
    """Mails of 1-200 KB written straight into the Maildir of each folder; returns the count."""
    n = 0
    for folder, count in folders.items():
        if folder != "INBOX":
            dovecot.doveadm("mailbox", "create", "-u", user, folder)
        cur = dovecot.maildir(user) / ("cur" if folder == "INBOX" else f".{folder}/cur")
        for d in (cur.parent.parent, cur.parent, cur):
            if not d.exists():
                d.mkdir()
                os.chown(d, 10143, 10143)
        for i in range(count):
            body = os.urandom(500 + (i * 7919) % 100_000).hex().encode()
            raw = (f"From: a{i}@example.org\r\nTo: b@example.org\r\nSubject: {folder} {i}\r\n"
                   f"Message-ID: <lat-{folder}-{i}@example.org>\r\n\r\n").encode() + body + b"\r\n"
            p = cur / f"{1_600_000_000 + n}.M{n}P1.test,S={len(raw)}:2,S"
            p.write_bytes(raw)
            os.chown(p, 10143, 10143)
            n += 1
    return n


def _blobs(archive) -> set[str]:
    out = set()
    for _m, data in read_messages(archive, select_messages(archive)):
        assert not isinstance(data, Exception), data
        out.add(hashlib.sha256(data).hexdigest())
    return out


def test_import_through_the_latency_proxy_stores_the_same_blobs_as_a_direct_import(dovecot, mail_user, tmp_path):
    user, pw = mail_user
    n = _fill(dovecot, user, {"INBOX": 60, "Projekte": 40, "Archiv": 25})
    results = {}
    with LatencyProxy("127.0.0.1", dovecot.imaps_port, delay=0.01) as proxy:
        for how, port in (("direct", dovecot.imaps_port), ("proxy", proxy.port)):
            archive = Archive.create(tmp_path / f"home-{how}", str(tmp_path / f"medium-{how}"))
            try:
                imp = ImapImporter(f"imaps://{user}@127.0.0.1:{port}", pw, ca_file=str(dovecot.ca_cert_path),
                                   batch=7, backoff=0.05)
                s = Ingest(archive).run(imp)
                assert (s.seen, s.errors) == (n, 0), s
                results[how] = _blobs(archive)
            finally:
                archive.close()
        assert proxy.connections >= 1 and proxy.bytes_forwarded > 0
    assert len(results["direct"]) == n
    assert results["proxy"] == results["direct"]


@pytest.mark.parametrize("pipeline, expect_overlap, in_tasks", [(1, False, False), (4, True, False), (4, True, True)])
def test_body_fetches_are_pipelined(dovecot, mail_user, fault_proxy, tmp_path, pipeline, expect_overlap, in_tasks):
    """With ``pipeline`` 4 the client sends the next UID FETCH before the answer to the previous one came
    (seen on the wire, through a proxy whose delay makes the order certain); with 1 it never does; the
    same when a pack task fetches (``in_tasks``, run inline here: one connection for the listing, one for it).
    The fault proxy strips STARTTLS so that the commands can be read on the way (plaintext allowed)."""
    user, pw = mail_user
    n = _fill(dovecot, user, {"INBOX": 40})
    clear = fault_proxy("127.0.0.1", dovecot.imap_port)
    clear.mode("strip")
    with LatencyProxy("127.0.0.1", clear.port, delay=0.03, record=True) as proxy:
        imp = ImapImporter(f"imap://{user}@127.0.0.1:{proxy.port}", pw, allow_plaintext=True, batch=5,
                           pipeline=pipeline, prefetch=0, fetch_in_tasks=in_tasks)
        if in_tasks:
            archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
            try:
                s = Ingest(archive, workers=0).run(imp)
            finally:
                archive.close()
            assert (s.status, s.archived, s.errors) == ("complete", n, 0)
        else:
            got = [it for it in imp.scan(None, ListReporter()) if isinstance(it, SourceMail)]
            assert len(got) == n
        events = list(proxy.events)
    # Replay the two streams in the order the proxy read them: a FETCH is in flight from its command line
    # (client → server) to its tagged completion (server → client).
    sent, answered = bytearray(), bytearray()
    counted, in_flight, most = set(), set(), 0
    for direction, data in events:
        if direction == "c2s":
            sent += data
            for m in re.finditer(rb"(?m)^(\w+) UID FETCH [\d,]+ \(BODY\.PEEK\[\]", bytes(sent)):
                if m.group(1) not in counted:
                    counted.add(m.group(1))
                    in_flight.add(m.group(1))
        else:
            start = len(answered)
            answered += data
            for m in re.finditer(rb"(?:^|\r\n)(\w+) (?:OK|NO|BAD) ", bytes(answered[max(0, start - 200):])):
                in_flight.discard(m.group(1))
        most = max(most, len(in_flight))
    fetches = len(counted)
    assert fetches == 8  # 40 mails in batches of 5
    assert (most > 1) is expect_overlap, most
    if expect_overlap:
        assert most == 4


def _refs_and_bytes(items) -> list[tuple[str, str]]:
    return [(it.ref, hashlib.sha256(it.raw).hexdigest() if isinstance(it, SourceMail) else "problem") for it in items]


def test_folders_on_several_connections_come_in_the_same_order_with_resumable_cursors(dovecot, mail_user):
    """Four folders read by three connections at once (seen at the proxy) give the same items in the same
    order as one connection; the folders queued ahead never hold more than ``prefetch_bytes`` plus one mail;
    a run stopped part-way resumes from the last cursor without a duplicate or a gap."""
    user, pw = mail_user
    n = _fill(dovecot, user, {"INBOX": 12, "A": 15, "B": 15, "C": 15})
    url = f"imaps://{user}@127.0.0.1:{dovecot.imaps_port}"
    one = list(ImapImporter(url, pw, ca_file=str(dovecot.ca_cert_path), batch=4, fetch_in_tasks=False)
               .scan(None, ListReporter()))
    assert len(one) == n
    with LatencyProxy("127.0.0.1", dovecot.imaps_port, delay=0.01) as proxy:
        purl = f"imaps://{user}@127.0.0.1:{proxy.port}"
        limit = 300_000
        imp = ImapImporter(purl, pw, ca_file=str(dovecot.ca_cert_path), batch=4, connections=3, prefetch_bytes=limit,
                           fetch_in_tasks=False)
        three = list(imp.scan(None, ListReporter()))
        assert proxy.max_open == 3 and imp.logins == 3
    assert _refs_and_bytes(three) == _refs_and_bytes(one)
    biggest = max(len(it.raw) for it in three)
    assert 0 < imp.parallel_peak_bytes <= limit + biggest
    # the cursor of every mail names the folders finished before it
    assert three[-1].cursor["folders"].keys() == {"INBOX", "A", "B"}
    assert three[-1].cursor["current"][0] == "C"

    # stop part-way (the consumer closes the scan), resume from the last cursor handed over
    imp2 = ImapImporter(url, pw, ca_file=str(dovecot.ca_cert_path), batch=4, connections=3, prefetch_bytes=limit,
                        fetch_in_tasks=False)
    scan = imp2.scan(None, ListReporter())
    first = [next(scan) for _ in range(20)]
    scan.close()
    rest = list(ImapImporter(url, pw, ca_file=str(dovecot.ca_cert_path), batch=4, connections=3, fetch_in_tasks=False)
                .scan(first[-1].cursor, ListReporter()))
    assert _refs_and_bytes(first + rest) == _refs_and_bytes(one)


def test_a_refused_extra_connection_leaves_the_folders_to_the_first_one(dovecot, mail_user):
    """A server that takes only one connection per user (the proxy resets every later one at once): the
    extra connections give up quietly, without a login, and the first reads every folder."""
    from services.faultproxy import FaultProxy, _Mode

    class OnlyFirst(FaultProxy):
        def _take_mode(self):
            return _Mode() if self.connections == 0 else _Mode("reset", after=0)

    user, pw = mail_user
    n = _fill(dovecot, user, {"INBOX": 5, "A": 5, "B": 5})
    proxy = OnlyFirst("127.0.0.1", dovecot.imaps_port)
    try:
        reporter = ListReporter()
        imp = ImapImporter(f"imaps://{user}@127.0.0.1:{proxy.port}", pw, ca_file=str(dovecot.ca_cert_path),
                           connections=3, backoff=0.05)
        got = [it for it in imp.scan(None, reporter) if isinstance(it, SourceMail)]
    finally:
        proxy.close()
    assert len(got) == n
    assert imp.logins == 1 and proxy.connections == 3
    assert sum("one more connection was refused" in m for m in reporter.infos) == 2, reporter.infos


def test_a_greeting_with_capabilities_saves_the_capability_round_trip_before_starttls(dovecot, mail_user):
    """Dovecot greets with ``* OK [CAPABILITY ...]``: the importer goes straight to STARTTLS (one round trip
    less per connection, paid by every worker that logs in over a long link), asks again after it (RFC
    3501), logs in and lists. A greeting without them (tests/services/evil_imap.py) is asked, as before
    (tests/integration/test_imap_hostile.py)."""
    user, pw = mail_user
    _fill(dovecot, user, {"INBOX": 2})
    with LatencyProxy("127.0.0.1", dovecot.imap_port, delay=0.0, record=True) as proxy:
        imp = ImapImporter(f"imap://{user}@127.0.0.1:{proxy.port}", pw, ca_file=str(dovecot.ca_cert_path),
                           prefetch=0, fetch_in_tasks=False)
        got = [it for it in imp.scan(None, ListReporter()) if isinstance(it, SourceMail)]
        events = list(proxy.events)
    assert len(got) == 2
    greeting = next(data for direction, data in events if direction == "s2c")
    assert b"[CAPABILITY " in greeting and b"STARTTLS" in greeting
    before_tls = bytearray()
    for direction, data in events:
        if direction == "c2s":
            before_tls += data
            if b"STARTTLS" in data:
                break
    assert b"CAPABILITY" not in bytes(before_tls).upper() and bytes(before_tls).endswith(b"STARTTLS\r\n")
