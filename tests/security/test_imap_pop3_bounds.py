"""IMAP and POP3 imports are bounded in bytes against hostile servers.

* IMAP: a server whose RFC822.SIZE says 1,000 bytes and whose literals carry 50 MB cannot make the
  import hold them (the peak RSS of the import process is measured, not the test's own); the
  read-ahead thread holds a bounded number of bytes, not just of mails.
* POP3: UIDL and LIST answers have line and count caps; garbage numbers stop the run with an error
  naming the server and the line, never a traceback.
"""
from __future__ import annotations

import itertools
import time

import pytest

from importers.imap import _read_ahead
from importers.pop3 import ListingError, Pop3Importer
from services.evil_imap import LYING_SENT, start_evil_imap
from services.evil_pop3 import start_evil_pop3
from tests.cli import mailarchive
from tests.security.child_rusage import mailarchive_measured
from toolkit.reporter import ListReporter
from toolkit.source import SourceMail

pytestmark = pytest.mark.security

MAILS = [b"From: a@example.com\r\nSubject: one\r\nMessage-ID: <one@pop.test>\r\n\r\nfirst\r\n",
         b"From: b@example.com\r\nSubject: two\r\nMessage-ID: <two@pop.test>\r\n\r\nsecond\r\n"]


def test_imap_lying_sizes_cannot_grow_the_import_process(tmp_path):
    server = start_evil_imap({"A-Good": "good", "L-Lying": "lying-size", "Z-Good": "good"})
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    try:
        m = mailarchive_measured(home, "import", "imap", server.url(), "--allow-plaintext", "--retries", "1",
                                 "--timeout", "20", env={"MAILARCHIVE_IMAP_PASSWORD": "pw"})
    finally:
        server.stop()
    assert m.returncode == 1, (m.stdout, m.stderr)
    r = m.result
    # the pack task that fetches the folder breaks off at the first oversized literal; each of the folder's
    # 20 mails is listed by its own ref with that reason (none dropped, none archived from a cut literal)
    assert (r["archived"], r["duplicates"], r["errors"]) == (1, 1, 20), r
    problems = r["sources"][0]["problems"]
    assert sorted(p["ref"] for p in problems) == sorted(f"L-Lying;UIDVALIDITY=7;UID={u}" for u in range(1, 21))
    assert all("sent more than it announced" in p["message"] and "could not be read" in p["message"]
               for p in problems), problems[0]
    # 20 literals of 50 MB were offered in one FETCH (1 GB): the process stays near its own size
    assert m.maxrss_mib < 400, m.maxrss_mib
    assert 20 * LYING_SENT >= 1000 << 20


def test_imap_read_ahead_is_bounded_in_bytes():
    made = []

    def produce():
        for i in itertools.count():
            made.append(i)
            yield SourceMail(raw=b"x" * (1 << 20), ref=str(i))

    gen = _read_ahead(produce, 400, 8 << 20)
    first = next(gen)
    assert first.ref == "0"
    time.sleep(0.5)         # the producer runs ahead as far as it may
    ahead = len(made)
    gen.close()
    assert ahead <= 8 + 2, ahead     # 8 MiB of 1 MiB mails (plus the one in hand and the one waiting)
    assert ahead >= 4, ahead         # and it does read ahead


def test_imap_read_ahead_passes_a_mail_larger_than_the_bound():
    items = [SourceMail(raw=b"y" * (3 << 20), ref=str(i)) for i in range(3)]
    got = list(_read_ahead(lambda: (i for i in items), 400, 1 << 20))
    assert [g.ref for g in got] == ["0", "1", "2"]


def _pop3_error(rows: dict, **kw) -> str:
    server = start_evil_pop3(MAILS, rows=rows)
    try:
        imp = Pop3Importer(server.url(), "pw", allow_plaintext=True, timeout=10, backoff=0.05, **kw)
        with pytest.raises(ListingError) as info:
            list(imp.scan(None, ListReporter()))
    finally:
        server.stop()
    text = str(info.value)
    assert f"127.0.0.1:{server.port}" in text, text
    return text


@pytest.mark.parametrize("cmd,line", [
    (b"LIST", b"1 abc"),
    (b"LIST", b"-5 100"),
    (b"LIST", b"99999999999999999999 1"),
    (b"LIST", b"0 100"),
    (b"LIST", b"1 99999999999999999999"),
    (b"UIDL", b"x uid-1"),
    (b"UIDL", b"1"),
    (b"UIDL", b"1 \x01\x02"),
])
def test_pop3_garbage_listing_lines_are_named(cmd, line):
    text = _pop3_error({cmd: lambda: [line + b"\r\n"]})
    assert cmd.decode() in text and repr(line)[2:-1] in text, text


def test_pop3_overlong_listing_line_is_refused():
    text = _pop3_error({b"UIDL": lambda: [b"1 " + b"u" * 100_000 + b"\r\n"]})
    assert "longer than 512 bytes" in text


def test_pop3_endless_listing_is_cut_at_the_count_cap():
    def endless():
        for start in itertools.count(1, 1000):
            yield b"".join(b"%d uid-%d\r\n" % (n, n) for n in range(start, start + 1000))

    text = _pop3_error({b"UIDL": endless}, max_listing=5000)
    assert "more than 5,000 messages" in text


def test_pop3_garbage_is_an_error_not_a_traceback_on_the_command_line(tmp_path):
    server = start_evil_pop3(MAILS, rows={b"LIST": lambda: [b"1 lots\r\n"]})
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    try:
        p = mailarchive(home, "import", "pop3", server.url(), "--allow-plaintext", "--retries", "1",
                        env={"MAILARCHIVE_POP3_PASSWORD": "pw"}, check=None)
    finally:
        server.stop()
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and "1 lots" in p.stderr and f"127.0.0.1:{server.port}" in p.stderr, p.stderr
