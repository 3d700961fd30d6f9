"""``import imap`` whose pack tasks fetch the mail in their worker processes (importers/imap_jobs.py).

The driver lists (UIDs, sizes, flags, dates) and hands over ImapUid jobs; each worker logs in itself and
fetches its task's UIDs. What must not change: the blobs stored, the decision of every arrival, the
folder, flags and INTERNALDATE of every sighting, and that a mail which vanished between the listing
and the worker's fetch is listed with its UID, never silently dropped (docs/reliability.md D4).
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import sys
import threading
import time

import pytest
from imapclient import IMAPClient

from importers.imap import ImapImporter
from tests.cli import mailarchive
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.migrate.plan import load_plan
from toolkit.migrate.run import run_plan
from toolkit.migrate.sources import ServerOptions
from toolkit.reporter import ListReporter
from toolkit.retrieval import read_messages, select_messages


def _client(dovecot, user, password) -> IMAPClient:
    ctx = ssl.create_default_context(cafile=str(dovecot.ca_cert_path))
    c = IMAPClient("127.0.0.1", port=dovecot.imaps_port, ssl_context=ctx, timeout=30)
    c.login(user, password)
    return c


def _mail(n: int, size: int = 2_000) -> bytes:
    return (f"From: s{n}@example.org\r\nTo: r@example.org\r\nSubject: task fetch {n}\r\n"
            f"Message-ID: <task-{n}-{os.urandom(4).hex()}@example.org>\r\n\r\n").encode() + os.urandom(size).hex().encode() + b"\r\n"


def _fill(dovecot, user, pw) -> list[bytes]:
    """INBOX with 30 mails (3 of them appended twice: exact duplicates) and a folder of 6, flags on some."""
    mails = [_mail(i) for i in range(30)]
    c = _client(dovecot, user, pw)
    try:
        for i, m in enumerate(mails):
            c.append("INBOX", m, flags=[b"\\Flagged"] if i % 5 == 0 else [])
            if i % 10 == 3:
                c.append("INBOX", m)
        c.create_folder("Sent")
        for i in range(6):
            c.append("Sent", mails[i * 4])  # the same bytes in another folder: duplicates there
    finally:
        c.logout()
    return mails


def _importer(dovecot, user, pw, **kw) -> ImapImporter:
    return ImapImporter(f"imaps://{user}@127.0.0.1:{dovecot.imaps_port}", pw, ca_file=str(dovecot.ca_cert_path),
                        backoff=0.05, batch=4, **kw)


def _outcome(archive) -> tuple[set[str], list[tuple]]:
    blobs = set()
    for _m, data in read_messages(archive, select_messages(archive)):
        assert not isinstance(data, Exception), data
        blobs.add(hashlib.sha256(data).hexdigest())
    with archive.catalog.reading() as con:
        rows = con.execute("SELECT source_ref, folder, decision, flags, internal_date FROM sightings "
                           "ORDER BY source_ref").fetchall()
    return blobs, [tuple(str(v) for v in r) for r in rows]


def test_workers_fetching_store_the_same_blobs_and_decisions_as_the_reader_fetching(dovecot, mail_user, tmp_path):
    user, pw = mail_user
    mails = _fill(dovecot, user, pw)
    results, pools = {}, []
    for how, in_tasks, workers in (("reader", False, 0), ("workers", True, 2)):
        archive = Archive.create(tmp_path / f"home-{how}", str(tmp_path / f"medium-{how}"))
        try:
            ing = Ingest(archive, workers=workers, chunk=5)  # a first chunk inline, then tasks of 5 on the pool
            ing.on_executor = pools.append
            s = ing.run(_importer(dovecot, user, pw, fetch_in_tasks=in_tasks))
            assert (s.status, s.seen, s.errors) == ("complete", 39, 0), s
            assert (s.archived, s.duplicates) == (30, 9)
            results[how] = _outcome(archive)
        finally:
            archive.close()
    assert len(pools) == 1  # the second run did use worker processes
    assert results["workers"] == results["reader"]
    assert results["reader"][0] == {hashlib.sha256(m).hexdigest() for m in mails}


def test_a_mail_expunged_between_the_listing_and_the_workers_fetch_is_listed_not_dropped(dovecot, mail_user, tmp_path):
    user, pw = mail_user
    mails = _fill(dovecot, user, pw)
    c = _client(dovecot, user, pw)
    c.select_folder("INBOX", readonly=True)
    uids = sorted(c.search())
    c.logout()
    # INBOX positions 20 and 31 hold mails 18 and 28 (mails 3, 13, 23 come twice): listed once, no copy in Sent;
    # both fall in chunks the worker processes fetch (the first chunk of 5 is inline)
    gone = [uids[20], uids[31]]

    def expunge(_executor):  # the listing is done by then (39 small items read ahead); no task has run yet
        other = _client(dovecot, user, pw)
        other.select_folder("INBOX")
        assert [d[b"BODY[]"] for _u, d in sorted(other.fetch(gone, [b"BODY.PEEK[]"]).items())] == [mails[18], mails[28]]
        other.delete_messages(gone)
        other.expunge()
        other.logout()

    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        ing = Ingest(archive, workers=2, chunk=5)
        ing.on_executor = expunge
        s = ing.run(_importer(dovecot, user, pw))
        assert s.status == "complete"
        assert (s.seen, s.archived, s.duplicates, s.errors) == (37, 28, 9, 2), s
        refs = sorted(p["ref"] for p in s.problems)
        assert [int(r.rsplit("UID=", 1)[1]) for r in refs] == sorted(gone) and all(r.startswith("INBOX;") for r in refs)
        assert all("source changed during import" in p["message"] for p in s.problems), s.problems
        blobs, _rows = _outcome(archive)
        assert blobs == {hashlib.sha256(m).hexdigest() for i, m in enumerate(mails) if i not in (18, 28)}
        with archive.catalog.reading() as con:
            errors = sorted(r[0] for r in con.execute("SELECT source_ref FROM run_errors").fetchall())
        assert errors == refs
        # the cursor went past them: a rerun reads nothing again and lists nothing again
        again = Ingest(archive, workers=2, chunk=5).run(_importer(dovecot, user, pw))
        assert (again.status, again.seen, again.errors) == ("complete", 0, 0)
    finally:
        archive.close()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_folder_recreated_between_the_listing_and_the_fetch_is_listed_and_read_again_next_run(
        dovecot, mail_user, tmp_path, workers):
    """UIDVALIDITY changed under the fetch (the folder deleted and made again with other mail): each listed
    mail is listed as a problem, none is archived from the new folder under the old UIDs; the next run sees
    the new UIDVALIDITY and reads the folder again: nothing is lost."""
    user, pw = mail_user
    c = _client(dovecot, user, pw)
    c.create_folder("Box")
    first = [_mail(100 + i) for i in range(8)]
    second = [_mail(200 + i) for i in range(8)]
    for m in first:
        c.append("Box", m)
    c.logout()

    def recreate():
        other = _client(dovecot, user, pw)
        other.delete_folder("Box")
        other.create_folder("Box")
        for m in second:
            other.append("Box", m)
        other.logout()

    class RecreatedAfterListing:  # the folder's listing is complete when its first item is handed over
        def __init__(self, inner):
            self.inner, self.source_uri, self.via, self.incremental = inner, inner.source_uri, inner.via, True

        def scan(self, cursor, reporter):
            for i, item in enumerate(self.inner.scan(cursor, reporter)):
                if i == 0:
                    recreate()
                yield item

    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        imp = RecreatedAfterListing(_importer(dovecot, user, pw, folders=["Box"], prefetch=0))
        s = Ingest(archive, workers=workers, chunk=3).run(imp)
        assert s.status == "complete"
        assert (s.seen, s.archived, s.errors) == (0, 0, 8), s
        assert all("UIDVALIDITY changed" in p["message"] for p in s.problems)
        again = Ingest(archive, workers=workers, chunk=3).run(_importer(dovecot, user, pw, folders=["Box"]))
        assert (again.status, again.archived, again.errors) == ("complete", 8, 0)
        blobs, _rows = _outcome(archive)
        assert blobs == {hashlib.sha256(m).hexdigest() for m in second}
    finally:
        archive.close()


def test_killed_mid_run_while_workers_fetch_resumes_without_loss_or_a_second_sighting(dovecot, mail_user, tmp_path):
    """kill -9 in a worker's preparation (the driver dies with it): the rerun resumes from the committed
    cursor; every mail is archived once and seen once (small packs: several tasks, one at a time)."""
    user, pw = mail_user
    mails = [_mail(300 + i, 5_000) for i in range(30)]
    c = _client(dovecot, user, pw)
    for m in mails:
        c.append("INBOX", m)
    c.logout()
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    url = f"imaps://{user}@127.0.0.1:{dovecot.imaps_port}"
    env = {"MAILARCHIVE_IMAP_PASSWORD": pw, "MAILARCHIVE_WORKERS": "2", "MAILARCHIVE_PACK_TARGET": "60000"}
    killed = mailarchive(home, "import", "imap", url, "--ca-file", str(dovecot.ca_cert_path),
                         env={**env, "MAILARCHIVE_FAULT": "prepare_parse:17"}, check=None)
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])
    done = mailarchive(home, "import", "imap", url, "--ca-file", str(dovecot.ca_cert_path), env=env, json_out=True)
    assert done.result["seen"] < 30 and done.result["errors"] == 0  # it resumed: the committed part was not read again
    rows = json.loads(mailarchive(home, "sql", "SELECT s.source_ref, m.blob_id FROM sightings s JOIN messages m "
                                  "USING (msg_id)", "--format", "json").stdout)
    assert sorted(r["source_ref"] for r in rows) == sorted(set(r["source_ref"] for r in rows)) and len(rows) == 30
    assert {r["blob_id"] for r in rows} == {hashlib.sha256(m).hexdigest() for m in mails}


class SessionCounter:
    """A TCP relay that counts the IMAP sessions open at once (``peak``): from the connection until the
    client's LOGOUT passes (before the server can answer it, so before the client can go on) or its end of
    stream. Plain text (a STARTTLS-stripping proxy behind it), so that the commands can be read."""

    def __init__(self, target: tuple[str, int], delay: float = 0.01):
        self.target, self.delay = target, delay  # each answer of the server waits ``delay``: listings take a while
        self.open = self.peak = self.sessions = 0
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
                self.sessions += 1
                self.peak = max(self.peak, self.open)
            server = socket.create_connection(self.target)
            state = {"ended": False}
            threading.Thread(target=self._pump, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None, self.delay), daemon=True).start()

    def _end(self, state: dict) -> None:
        with self._lock:
            if not state["ended"]:
                state["ended"] = True
                self.open -= 1

    def _pump(self, src: socket.socket, dst: socket.socket, state: dict | None, delay: float = 0.0) -> None:
        try:
            while data := src.recv(65536):
                if delay:
                    time.sleep(delay)
                if state is not None and b" LOGOUT\r\n" in data.upper():
                    self._end(state)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if state is not None:
                self._end(state)
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._sock.close()


@pytest.mark.parametrize("per_server", [1, 3])
def test_migrate_counts_the_workers_connections_against_per_server(dovecot, fault_proxy, tmp_path, per_server):
    """Four IMAP accounts of three folders read 4 at once (the readers still list the later folders while
    the first is committed), each committed with 2 workers that fetch on connections of their own: never
    more than ``per_server`` sessions open on the server at once. With 1, each reader fetches."""
    users = _free_users(dovecot, 4)
    lines = ["kind,location,user,password_file,owner,folders"]
    want = set()
    for u, pw in users:
        c = _client(dovecot, u, pw)
        c.create_folder("A")
        c.create_folder("B")
        for i in range(12):
            m = _mail(400 + i, 1_000)
            c.append(("INBOX", "A", "B")[i % 3], m)
            want.add(hashlib.sha256(m).hexdigest())
        c.logout()
        (tmp_path / f"{u}.pw").write_text(pw + "\n")
    clear = fault_proxy("127.0.0.1", dovecot.imap_port)
    clear.mode("strip")
    relay = SessionCounter(("127.0.0.1", clear.port))
    try:
        lines += [f"imap,imap://127.0.0.1:{relay.port},{u},{u}.pw,," for u, _pw in users]
        (tmp_path / "plan.csv").write_text("\n".join(lines) + "\n")
        plan = load_plan(tmp_path / "plan.csv")
        archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
        try:
            r = run_plan(archive, plan, {ln.number: pw for ln, (_u, pw) in zip(plan.lines, users)},
                         ServerOptions(allow_plaintext=True, backoff=0.05), parallel=4, per_server=per_server,
                         ingest_options={"workers": 2, "chunk": 4})
            blobs, _rows = _outcome(archive)
        finally:
            archive.close()
    finally:
        relay.close()
    assert [s["status"] for s in r["sources"]] == ["complete"] * 4 and r["archived"] == 48
    assert blobs == want
    assert relay.peak <= per_server, relay.peak
    if per_server == 1:
        assert relay.sessions == 4  # each reader fetched its mail itself
    else:
        assert relay.sessions > 4  # the pack tasks logged in themselves


def _free_users(dovecot, n: int) -> list[tuple[str, str]]:
    taken = sys.modules["fixtures_dovecot"]._taken  # the pool of the mail_user fixture
    free = [u for u in sorted(dovecot.users) if u not in taken][:n]
    assert len(free) == n, "not enough test mailbox users: raise USERS in tests/fixtures_dovecot.py"
    taken.extend(free)
    return [(u, dovecot.users[u]) for u in free]


def test_dry_run_reads_the_mail_itself(dovecot, mail_user, tmp_path):
    """A dry run starts no pack task: the reader fetches (every mail read and counted, none archived)."""
    from toolkit.dryrun import dry_run

    user, pw = mail_user
    mails = _fill(dovecot, user, pw)
    archive = Archive.create(tmp_path / "home", str(tmp_path / "medium"))
    try:
        s = dry_run(archive, _importer(dovecot, user, pw))
        with archive.catalog.reading() as con:
            stored = con.execute("SELECT count(*) FROM messages").fetchone()[0]
    finally:
        archive.close()
    assert (s.read, s.errors, s.would_archive, s.duplicates) == (39, 0, len(mails), 9)
    assert stored == 0


def test_dask_workers_fetch_too_and_store_the_same_blobs_and_decisions(dovecot, mail_user, tmp_path):
    """``--executor local-cluster:2``: the same ImapUid jobs go to Dask's worker processes, which log in
    themselves; blobs and decisions are those of the reader fetching."""
    try:  # the "dask" extra: installed by scripts/setup from requirements.lock; in CI its absence fails the run
        import distributed  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"dask[distributed] is missing in CI: {exc}")
        pytest.skip(f"dask[distributed] is not installed: {exc}")
    user, pw = mail_user
    _fill(dovecot, user, pw)
    results = {}
    for how, in_tasks, options in (("reader", False, {"workers": 0}), ("dask", True, {"executor": "local-cluster:2"})):
        archive = Archive.create(tmp_path / f"home-{how}", str(tmp_path / f"medium-{how}"))
        try:
            s = Ingest(archive, chunk=5, **options).run(_importer(dovecot, user, pw, fetch_in_tasks=in_tasks))
            assert (s.status, s.seen, s.errors, s.archived) == ("complete", 39, 0, 30), s
            results[how] = _outcome(archive)
        finally:
            archive.close()
    assert results["dask"] == results["reader"]


def test_the_first_listing_part_is_handed_over_before_the_rest_is_listed(dovecot, mail_user, monkeypatch):
    """The sizes, flags and dates of a folder are listed in parts (the first small): the first mails go to the
    pack tasks before the rest is listed, and every mail comes once, in UID order, with its size and flags.
    Shown with a mail expunged by another session once the first mail is handed over: the listing of its
    part, which came later, has no size for it (its worker's fetch then lists it, D4)."""
    import importers.imap as imap_mod

    monkeypatch.setattr(imap_mod, "FIRST_SIZES", 4)
    monkeypatch.setattr(imap_mod, "SIZE_CHUNK", 10)
    user, pw = mail_user
    mails = _fill(dovecot, user, pw)
    c = _client(dovecot, user, pw)
    try:
        c.select_folder("INBOX")
        uids = sorted(c.search("ALL"))
        gone = uids[20]
        items = iter(_importer(dovecot, user, pw, prefetch=0, folders=["INBOX"]).scan(None, ListReporter()))
        first = next(items)
        c.delete_messages([gone])
        c.expunge()
        rest = list(items)
    finally:
        c.logout()
    got = [first, *rest]
    listed = [int(i.ref.rsplit("=", 1)[1]) for i in got]
    assert listed == uids  # each once, in UID order
    by_uid = dict(zip(listed, got))
    assert by_uid[gone].size is None  # its part was listed after the first mail was handed over
    assert by_uid[uids[0]].size == len(mails[0]) and by_uid[uids[0]].flags == ("\\Flagged",)
    assert all(by_uid[u].size is not None for u in uids if u != gone)


def test_a_link_dropped_between_two_listing_parts_reconnects_and_lists_every_mail_once(dovecot, mail_user, monkeypatch):
    """The listing's connection dies after the first part was handed over: the importer reconnects,
    EXAMINEs the folder again (same UIDVALIDITY) and lists the other parts; each mail comes once, in UID
    order, with its size (D1-D3)."""
    import socket as socket_mod

    import importers.imap as imap_mod

    monkeypatch.setattr(imap_mod, "FIRST_SIZES", 4)
    monkeypatch.setattr(imap_mod, "SIZE_CHUNK", 10)
    user, pw = mail_user
    mails = _fill(dovecot, user, pw)
    imp = _importer(dovecot, user, pw, prefetch=0, folders=["INBOX"])
    items = iter(imp.scan(None, ListReporter()))
    first = next(items)
    imp._client._imap.sock.shutdown(socket_mod.SHUT_RDWR)  # the link drops under the listing
    got = [first, *items]
    c = _client(dovecot, user, pw)
    try:
        c.select_folder("INBOX", readonly=True)
        uids = sorted(c.search("ALL"))
    finally:
        c.logout()
    assert [int(i.ref.rsplit("=", 1)[1]) for i in got] == uids
    assert all(i.size is not None for i in got) and len(got) == len(mails) + 3  # 3 appended twice
    assert imp.reconnects == 1 and imp.logins == 2
