"""``import imap``: every folder of an IMAP account, read-only, resumable (docs/dedup.md, docs/reliability.md D1-D10).

Read-only: folders are opened with EXAMINE and bodies fetched with
``BODY.PEEK[]``, so no flag (not even \\Seen) changes on the server (D8).

Cursor (JSON, kept across completed runs: the importer is ``incremental``)::

    {"folders": {"INBOX": [uidvalidity, last_uid], ...},
     "current": ["Sent", uidvalidity, last_uid]}

Folder names (the cursor's keys, the sightings' folder) are the archive's:
decoded from modified UTF-7, ``/`` between levels whatever the server's
separator, without the personal namespace's prefix (``folder_name``:
Cyrus's and Courier's ``INBOX.Archive.2023`` is ``Archive/2023``, the name
``import maildir`` gives that folder); a cursor under the server's own names
(earlier versions) is carried over.

A rerun fetches only UIDs above ``last_uid``; a folder whose UIDVALIDITY
changed is read again from the start and dedup keeps it free of duplicates
(D5). ``current`` is the folder being read when the cursor was taken.

UIDs come from ``UID SEARCH`` in chunks of message sequence numbers
(``SEARCH lo:hi UID n:*``), so one reply never exceeds imaplib's line
limit however large the folder (D7), and bodies are fetched by explicit UID
lists in batches bounded by count and bytes. Memory is bounded in bytes, not
mail counts: a body FETCH may bring no more literal bytes than the
RFC822.SIZE values of its batch announced (plus a little slack), so a server
that lies about sizes is refused before the bytes are read and the folder
is listed; a mail without RFC822.SIZE is fetched alone; the read-ahead
thread holds at most ``prefetch_bytes`` of mail. A mail is yielded only when
the bytes received equal its RFC822.SIZE (D1). A dropped or silent link
(socket timeout on every read, D2) leads to a reconnect with bounded
exponential backoff, re-login, re-EXAMINE and a refetch of the batch that
was in flight; a message expunged meanwhile is listed as "source changed
during import" (D4). A rejected login is never retried (D12). A folder that
fails is listed and the others continue.

Over a long link (docs/architecture.md, "IMAP import over a long link") up
to ``pipeline`` body FETCH commands are in flight on a connection (their
window bounded in bytes), and with ``connections`` > 1 several folders are
read at once, each on its own connection, and handed over in order.

By default (``fetch_in_tasks``) the scan only lists: each mail is handed over
as an :class:`~importers.imap_jobs.ImapUid` job with its size, flags and
INTERNALDATE, and the pack task's worker process fetches the bodies itself
with the same pipelined FETCH (importers/imap_jobs.py); with
``fetch_in_tasks=False`` (the dry run, ``migrate run --per-server 1``) the
scan fetches them and hands over their bytes.
"""
from __future__ import annotations

import collections
import copy
import fnmatch
import functools
import imaplib
import queue
import threading
from typing import Any, Callable, Iterator

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from toolkit.errors import SourceError, SourceMissingError
from toolkit.reporter import Reporter
from toolkit.source import SourceItem, SourceMail, SourceProblem

from toolkit.net import imap as net_imap
from toolkit.net.imap import close as _close
from toolkit.net.imap import server_text as _server_text
from toolkit.net.fetch_reader import UNPARSED
from toolkit.net.imap_pipeline import complete_fetch, send_fetch
from toolkit.net.retry import LINK_ERRORS, with_reconnect

from . import utf7
from .netutil import ServerSource

SCHEMES = {"imap": (143, False), "imaps": (993, True)}
FETCH_ITEMS = [b"BODY.PEEK[]", b"INTERNALDATE", b"FLAGS", b"RFC822.SIZE"]
#: Sequence numbers per UID SEARCH: at most ~11 bytes a UID, far below imaplib's 1,000,000-byte line limit.
SEARCH_CHUNK = 50_000
SIZE_CHUNK = 5_000
#: UIDs of a folder's first listing part (fetch_in_tasks): small, so that the first mails are handed over soon.
FIRST_SIZES = 1_000
CHANGED = "source changed during import"
#: What Courier-IMAP sends (as BODY[], with RFC822.SIZE its length, in the listing too) for a mail another
#: session expunged before this one was told: never a mail (no Date, no Message-ID), never archived.
COURIER_GONE = (b"From: System Administrator <root@localhost>\r\nSubject: message unavailable\r\n\r\n"
                b"This message is no longer available on the server.\r\n")
#: The largest mail fetched over IMAP (it is held in memory whole). A mail whose RFC822.SIZE is larger
#: is listed, not fetched; a literal the server announces above it breaks off the folder (D6).
MAX_FETCH = 1 << 30
#: Literal bytes any command but a body FETCH may bring (folder names, sizes, search results).
OTHER_LITERALS = 16 << 20
#: Literal bytes a body FETCH may bring beyond the RFC822.SIZE values of its batch.
FETCH_SLACK = 64 << 10
#: Bytes of mail the read-ahead thread may hold beyond the one being handed over.
PREFETCH_BYTES = 64 << 20
#: Body FETCH commands sent before the answer of the first is read (1: one at a time).
PIPELINE = 4


class _FolderError(Exception):
    """The server refused a folder (NO/BAD on EXAMINE, SEARCH or FETCH): listed, the others continue."""


class _ProtocolError(_FolderError):
    """The server broke the protocol (D6): the connection is dropped, the folder listed, the others continue."""


def _throttled(exc: BaseException) -> bool:
    """A NO that asks the client to slow down (Exchange: "[THROTTLED]", "Request is throttled") (D3)."""
    return isinstance(exc, IMAPClientError) and not isinstance(exc, imaplib.IMAP4.abort) \
        and "throttl" in _server_text(exc).lower()


def _bound_literals(imap: imaplib.IMAP4, limit: int) -> None:
    """Refuse a literal above ``limit`` before imaplib reads it (cpython #119511: no bound of its own),
    and literals beyond the byte budget of the command under way (``_literal_budget``): a server
    that sends more than the RFC822.SIZE values it announced is refused before the bytes are read."""
    read = imap.read
    imap._literal_budget = [OTHER_LITERALS, OTHER_LITERALS]  # [budget of the command, left of it]

    def bounded(size: int) -> bytes:
        if size > limit:
            raise _ProtocolError(
                f"the server announced a literal of {size:,} bytes, above the {limit:,}-byte limit of one mail; "
                "the connection was dropped (a broken or hostile server?)"
            )
        budget = imap._literal_budget
        if size > budget[1]:
            raise _ProtocolError(
                f"the server sent more than it announced: a literal of {size:,} bytes where the commands in "
                f"flight allow {budget[0]:,} bytes in all (the RFC822.SIZE values of their batches); the connection "
                "was dropped (a broken or hostile server?)"
            )
        budget[1] -= size
        return read(size)

    imap.read = bounded


def _budget(c: IMAPClient, nbytes: int) -> None:
    """The literal bytes the next command may bring (see ``_bound_literals``)."""
    b = getattr(c._imap, "_literal_budget", None)
    if b is not None:
        b[0] = b[1] = nbytes


def _credit(c: IMAPClient, nbytes: int) -> None:
    """Add the literal bytes of one more command in flight to the connection's budget (pipelined FETCH)."""
    b = getattr(c._imap, "_literal_budget", None)
    if b is not None:
        b[0] += nbytes
        b[1] += nbytes


def load_cursor(cursor: Any) -> dict[str, tuple[int, int]]:
    """Folder name → (uidvalidity, last uid) from a stored cursor (anything else: start from scratch)."""
    state: dict[str, tuple[int, int]] = {}
    if not isinstance(cursor, dict):
        return state
    for name, v in (cursor.get("folders") or {}).items():
        if isinstance(v, (list, tuple)) and len(v) == 2:
            state[name] = (int(v[0]), int(v[1]))
    cur = cursor.get("current")
    if isinstance(cur, (list, tuple)) and len(cur) == 3:
        state[cur[0]] = (int(cur[1]), int(cur[2]))
    return state


def search_chunks(exists: int, chunk: int = SEARCH_CHUNK) -> list[tuple[int, int]]:
    """Sequence-number ranges covering 1..exists."""
    return [(lo, min(exists, lo + chunk - 1)) for lo in range(1, exists + 1, chunk)]


class ImapImporter(ServerSource):
    """All (or the chosen) folders of one IMAP account."""

    via = "imap"

    def __init__(
        self,
        url: str,
        password: str,
        *,
        folders: list[str] | tuple[str, ...] | None = None,
        exclude: tuple[str, ...] | list[str] = (),
        ca_file: str | None = None,
        insecure: bool = False,
        allow_plaintext: bool = False,
        timeout: float = 60,
        batch: int = 200,
        batch_bytes: int = 32 << 20,
        search_chunk: int = SEARCH_CHUNK,
        retries: int = 5,
        backoff: float = 1.0,
        retry_deadline: float = 300.0,
        after_search: Callable[[str, list[int]], None] | None = None,
        prefetch: int = 400,
        prefetch_bytes: int = PREFETCH_BYTES,
        max_fetch: int = MAX_FETCH,
        pipeline: int = PIPELINE,
        connections: int = 1,
        fetch_in_tasks: bool = True,
    ):
        super().__init__(url, password, SCHEMES, ca_file=ca_file, insecure=insecure, allow_plaintext=allow_plaintext,
                         timeout=timeout, retries=retries, backoff=backoff, retry_deadline=retry_deadline)
        wanted = list(folders or ())
        if self.url.path:
            wanted.insert(0, self.url.path)
        self.folders = wanted or None
        self.exclude = tuple(exclude)
        self.batch = max(1, batch)
        self.batch_bytes = batch_bytes
        self.search_chunk = search_chunk
        self._after_search = after_search  # test hook: runs right after a folder's UID SEARCH
        self.prefetch = prefetch  # items read ahead by a background thread (0: none)
        self.prefetch_bytes = prefetch_bytes  # and at most this many bytes of mail
        self.max_fetch = max_fetch
        self.pipeline = max(1, pipeline)  # body FETCH commands in flight on the connection
        self.connections = max(1, connections)  # folders read at once, each on its own connection
        #: True: list here, hand over one ImapUid job per mail, and let the pack tasks fetch the bodies in their
        #: worker processes (importers/imap_jobs.py); False: fetch the bodies here and hand over their bytes
        self.fetch_in_tasks = fetch_in_tasks
        self.keep_sessions = True  # a worker keeps its connection for its next task (False: closed after each)
        self.fetch_items = FETCH_ITEMS  # what a body FETCH asks for
        self._ca_file, self._insecure = ca_file, insecure
        self._account = None  # the ImapAccount of the jobs, made on first use
        self.parallel_peak_bytes = 0  # the most bytes of mail the connections held ahead at once
        self.throttled = 0
        self._client: IMAPClient | None = None
        self._selected: tuple[bytes, int] | None = None  # (wire name, uidvalidity) to re-EXAMINE after a reconnect

    # -- connection --------------------------------------------------------------------------------
    def _connect(self) -> IMAPClient:
        u = self.url
        return net_imap.connect(u.host, u.port, u.implicit_tls, self._ctx, prepare=self._prepare, **self._login_options())

    def _prepare(self, client: IMAPClient) -> None:
        _bound_literals(client._imap, self.max_fetch + 64 * 1024)
        client.normalise_times = False  # keep INTERNALDATE's zone
        client.folder_encode = False  # names stay wire bytes; decoded here (utf7)

    def _ensure(self) -> IMAPClient:
        if self._client is None:
            self._client = self._connect()
            if self._selected is not None:  # after a reconnect: the same folder, the same UIDVALIDITY
                wire, uidvalidity = self._selected
                info = self._client.select_folder(wire, readonly=True)
                if int(info.get(b"UIDVALIDITY", 0)) != uidvalidity:
                    raise _FolderError("UIDVALIDITY changed during the import; the next run reads the folder again")
        return self._client

    def _drop(self) -> None:
        _close(self._client)
        self._client = None

    def _switch(self, wire: bytes, uidvalidity: int, name: str) -> None:
        """Read ``wire`` next, as listed with ``uidvalidity`` (a fetcher in a pack task, importers/imap_jobs.py):
        EXAMINE it now if connected to another folder, or on connecting; _FolderError when its UIDVALIDITY
        is no longer the listed one (the next run reads the folder again)."""
        if self._selected == (wire, uidvalidity) and self._client is not None:
            return
        self._selected = (wire, uidvalidity)
        if self._client is None:
            self._call(f"EXAMINE {name}", lambda c: None)  # connects, then EXAMINEs and checks (_ensure)
            return
        info = self._call(f"EXAMINE {name}", lambda c: c.select_folder(wire, readonly=True))
        if int(info.get(b"UIDVALIDITY", 0)) != uidvalidity:
            raise _FolderError("UIDVALIDITY changed during the import; the next run reads the folder again")

    def _jobs_account(self):
        """The ImapAccount every job of this importer carries (the CA file read once, sent as PEM bytes)."""
        if self._account is None:
            from .imap_jobs import ImapAccount

            pem = None
            if self._ca_file and not self._insecure:
                try:
                    with open(self._ca_file, "rb") as f:
                        pem = f.read()
                except OSError as exc:
                    raise SourceError(f"cannot read the CA file {self._ca_file}: {exc.strerror or exc}") from None
            self._account = ImapAccount.of(self, pem)
        return self._account

    def _call(self, what: str, op: Callable[[IMAPClient], Any]) -> Any:
        """Run ``op`` on the connection; on a link failure reconnect (bounded backoff) and run it again.

        ``op`` must be repeatable (explicit UID lists): after a drop nothing of its answer was used.
        """
        def attempt() -> Any:
            client = self._ensure()
            _budget(client, OTHER_LITERALS)
            return op(client)

        while True:
            try:
                return with_reconnect(what, attempt, self._drop, self._retry, self._reconnecting)
            except IMAPClientError as exc:
                if not _throttled(exc):
                    raise
                self.throttled += 1
                self._retry.wait(what, exc)  # the same connection, after a pause: no re-login storm

    # -- scan ------------------------------------------------------------------------------------------
    def scan(self, cursor: Any, reporter: Reporter) -> Iterator[SourceItem]:
        """Items in folder and UID order; with ``prefetch`` a thread reads ahead while the pipeline works."""
        if self.prefetch <= 0:
            yield from self._scan(cursor, reporter)
            return
        yield from _read_ahead(lambda: self._scan(cursor, reporter), self.prefetch, self.prefetch_bytes)

    def _scan(self, cursor: Any, reporter: Reporter) -> Iterator[SourceItem]:
        state = load_cursor(cursor)
        done: dict[str, list[int]] = {k: list(v) for k, v in state.items()}
        streams: Iterator | None = None
        try:
            listing = self._call("LIST", lambda c: c.list_folders())
            personal = self._call("NAMESPACE", personal_namespace)
            chosen = self._choose(listing, reporter, personal)
            for wire, name in chosen:  # a cursor of a version that kept the server's names: carried over
                old = utf7.decode_lenient(wire)
                if old != name and name not in state and old in state:
                    state[name] = state.pop(old)
                    done[name] = done.pop(old)
            if self.connections > 1 and len(chosen) > 1:
                streams = self._parallel_streams(chosen, state, reporter)
            else:
                streams = ((name, self._folder_stream(wire, name, state.get(name), reporter)) for wire, name in chosen)
            for name, stream in streams:
                problems: list[SourceItem] = []
                try:
                    for item in stream:
                        if isinstance(item.cursor, dict) and "current" in item.cursor:
                            item.cursor["folders"] = done  # the folders finished before this one, in yield order
                        yield item
                except _FolderError as exc:
                    problems.append(SourceProblem(name, f"folder not imported: {exc}", None))
                except IMAPClientError as exc:  # NO/BAD from the server for this folder
                    problems.append(SourceProblem(name, f"folder not imported: {_server_text(exc)}", None))
                last = self._folder_last.get(name)
                if last is not None:
                    done = {**done, name: list(last)}
                for p in problems:
                    p.cursor = {"folders": done}
                    yield p
        finally:
            if streams is not None:
                streams.close()  # the other connections' threads end before this connection closes
            _close(self._client, logout=True)
            self._client = None

    def _folder_stream(self, wire: bytes, name: str, prev: tuple[int, int] | None, reporter: Reporter) -> Iterator[SourceItem]:
        """One folder on this importer's connection; a protocol break drops the connection (the next folder reconnects)."""
        try:
            yield from self._scan_folder(wire, name, prev, {}, reporter)
        except _ProtocolError:
            self._drop()
            raise
        finally:
            self._selected = None

    def _parallel_streams(self, chosen: list[tuple[bytes, str]], state: dict, reporter: Reporter) -> Iterator[tuple[str, Iterator]]:
        """(name, items) in the listing's order while up to ``connections`` connections read folders ahead.

        Each connection takes the next folder not yet started; what they read waits in per-folder queues
        bounded together by ``prefetch_bytes`` (the folder being handed over may always add one mail).
        """
        lock = threading.Lock()
        shared = _LockedReporter(reporter, lock)
        readers = [self] + [self._sibling() for _ in range(min(self.connections, len(chosen)) - 1)]
        feeds = _Feeds([name for _w, name in chosen], self.prefetch_bytes)
        order = iter(list(enumerate(chosen)))

        def work(reader: "ImapImporter") -> None:
            try:
                if reader is not self and not self._log_in_sibling(reader, shared):
                    return
                while True:
                    with lock:
                        nxt = next(order, None)
                    if nxt is None or feeds.stopped:
                        return
                    k, (wire, name) = nxt
                    feeds.run(k, reader._folder_stream(wire, name, state.get(name), shared))
            finally:
                if reader is not self:
                    _close(reader._client, logout=True)
                    reader._client = None

        threads = [threading.Thread(target=work, args=(r,), name="imap-connection", daemon=True) for r in readers]
        for t in threads:
            t.start()
        try:
            for k, (_wire, name) in enumerate(chosen):
                yield name, feeds.items(k)
        finally:
            feeds.stop()
            for t in threads:
                t.join()
            self.parallel_peak_bytes = max(self.parallel_peak_bytes, feeds.peak)
            for r in readers[1:]:
                self.logins += r.logins
                self.reconnects += r.reconnects
                self.throttled += r.throttled

    def _log_in_sibling(self, reader: "ImapImporter", reporter: Reporter) -> bool:
        """Open one more connection; when the server refuses it (a limit of connections per user, say),
        the folders are read on the connections that did open: never an error, never retried."""
        try:
            reader._ensure()
            return True
        except Exception as exc:  # the first connection logged in: this is a limit, not a wrong password
            reporter.info(f"{self.source_uri}: one more connection was refused ({exc}); reading with fewer")
            _close(reader._client)
            reader._client = None
            return False

    def _sibling(self) -> "ImapImporter":
        """Another connection to the same account: the same settings, its own session and retry budget."""
        other = copy.copy(self)
        other._client, other._selected = None, None
        other._retry = copy.copy(self._retry)
        other._retry.reset()
        other.logins = other.reconnects = other.throttled = 0
        return other

    def _choose(self, listing, reporter: Reporter, personal: tuple[str, str] | None = None) -> list[tuple[bytes, str]]:
        """(wire name, archive name) of the folders to read. The archive name is ``/``-separated whatever the
        server's separator, without the personal namespace's prefix (see :func:`folder_name`); a filter may
        also give the server's own name (``INBOX.Archive.2023``)."""
        self._folder_last: dict[str, tuple[int, int]] = {}
        out: list[tuple[bytes, str]] = []
        by_name: dict[str, bytes] = {}
        aliases: dict[str, str] = {}  # the server's decoded name -> the archive name
        for flags, delim, wire in listing:
            if isinstance(wire, str):
                wire = wire.encode("utf-8")
            lflags = {f.lower() for f in flags}
            if b"\\noselect" in lflags or b"\\nonexistent" in lflags:
                continue
            raw = utf7.decode_lenient(wire)
            # two server names, one archive name: the later keeps the server's own name
            name = next((n for n in (folder_name(raw, delim, personal), raw, wire.decode("ascii", "replace"))
                         if n not in by_name), None)
            if name is None:
                raise SourceError(f"{self.source_uri}: the folder {raw!r} cannot be told apart from "
                                  f"{by_name[raw]!r} in the archive's names; nothing imported")
            by_name[name] = wire
            aliases.setdefault(raw, name)
        names = self.folders if self.folders is not None else sorted(by_name, key=lambda n: (n != "INBOX", n))
        for name in names:
            if name not in by_name and name in aliases:
                name = aliases[name]
            if any(fnmatch.fnmatchcase(name, pat) for pat in self.exclude):
                continue
            if name not in by_name:  # a folder filter naming no folder is a usage error (exit 2)
                raise SourceMissingError(
                    f"{self.source_uri}: no selectable folder {name!r}; folders: {', '.join(sorted(by_name)) or '(none)'}"
                )
            out.append((by_name[name], name))
        return out

    def _search(self, c: IMAPClient, last_uid: int, exists: int) -> list[int]:
        uids: list[int] = []
        for lo, hi in search_chunks(exists, self.search_chunk):
            found = c.search([f"{lo}:{hi}".encode(), b"UID", f"{last_uid + 1}:*".encode()])
            uids.extend(u for u in found if u > last_uid)  # "n:*" always matches the highest UID
        return sorted(set(uids))

    def _sizes(self, c: IMAPClient, uids: list[int], meta: dict | None = None) -> dict[int, int]:
        """RFC822.SIZE per UID; with ``meta`` (mails fetched by the pack tasks) also each mail's FLAGS and
        INTERNALDATE into it, which the sightings need and the workers then need not send back."""
        sizes: dict[int, int] = {}
        items = [b"RFC822.SIZE"] if meta is None else [b"RFC822.SIZE", b"FLAGS", b"INTERNALDATE"]
        for i in range(0, len(uids), SIZE_CHUNK):
            part = uids[i:i + SIZE_CHUNK]
            for uid, d in _fetch(c, part, items).items():
                if b"RFC822.SIZE" in d:
                    sizes[uid] = int(d[b"RFC822.SIZE"])
                if meta is not None:
                    meta[uid] = (_flags(d.get(b"FLAGS", ())), d.get(b"INTERNALDATE"))
        return sizes

    def _batches(self, uids: list[int], sizes: dict[int, int]) -> Iterator[list[int]]:
        cur: list[int] = []
        nbytes = 0
        for uid in uids:
            if uid not in sizes:  # no RFC822.SIZE: fetched alone (its literal may be up to max_fetch)
                if cur:
                    yield cur
                    cur, nbytes = [], 0
                yield [uid]
                continue
            size = sizes[uid]
            if cur and (len(cur) >= self.batch or nbytes + size > self.batch_bytes // self.pipeline):
                yield cur
                cur, nbytes = [], 0
            cur.append(uid)
            nbytes += size
        if cur:
            yield cur

    def _allowed(self, batch: list[int], sizes: dict[int, int]) -> int:
        """The literal bytes a body FETCH of ``batch`` may bring: its RFC822.SIZE values (+ slack)."""
        known = all(u in sizes for u in batch)
        return (sum(sizes[u] for u in batch) if known else self.max_fetch) + FETCH_SLACK

    def _fetch_batches(self, name: str, batches: list[list[int]], sizes: dict[int, int]) -> Iterator[tuple[list[int], dict]]:
        """(batch, {uid: FETCH answer}) in order, with up to ``pipeline`` body FETCH commands in flight.

        The answers are read one command at a time, each within its own literal budget. A broken link:
        reconnect (bounded backoff) and send again every batch not yet handed over. A NO or BAD (throttling,
        a mail expunged): the commands in flight are read to their end and that batch takes the one-at-a-time
        path of ``_call`` (pause on throttling, mail by mail after a NO).
        """
        what = f"FETCH {name}"
        inflight: collections.deque = collections.deque()  # (batch, tag, allowed bytes), in the order sent
        stash: dict[int, dict] = {}  # answers read for a later batch (Dovecot runs pipelined FETCHes in parallel)
        credited: IMAPClient | None = None
        i = 0
        while i < len(batches):
            reading = False
            try:
                c = self._ensure()
                if c is not credited:  # a new connection: its literal budget is what the commands sent on it allow
                    _budget(c, 0)
                    credited = c
                window = sum(a for _b, _t, a in inflight)
                while len(inflight) < self.pipeline and i + len(inflight) < len(batches):
                    nxt = batches[i + len(inflight)]
                    allowed = self._allowed(nxt, sizes)
                    if inflight and window + allowed > self.batch_bytes + len(inflight) * FETCH_SLACK:
                        break  # the answers in flight may all be read at once: bounded in bytes
                    _credit(c, allowed)
                    inflight.append((nxt, send_fetch(c, nxt, self.fetch_items), allowed))
                    window += allowed
                batch, tag, _a = inflight[0]
                reading = True
                stash.update(complete_fetch(c, tag))
                inflight.popleft()
            except LINK_ERRORS as exc:
                inflight.clear()
                stash.clear()
                self._drop()
                self._retry.wait(what, exc)  # raises when the budget is spent
                self._reconnecting()
                continue
            except IMAPClientError as exc:
                if not reading:
                    raise
                batch = inflight.popleft()[0]
                self._drain(inflight)
                stash.clear()
                if _throttled(exc):
                    self.throttled += 1
                    self._retry.wait(what, exc)  # the same connection, after a pause: no re-login storm
                allowed = self._allowed(batch, sizes)
                stash.update(self._call(what, lambda c: (_budget(c, allowed), _fetch_tolerant(c, batch, self.fetch_items))[1]))
            self._retry.reset()
            data = {u: stash.pop(u) for u in batch if u in stash}
            later = {u for b, _t, _a in inflight for u in b}
            for u in [u for u in stash if u not in later]:  # unsolicited answers
                del stash[u]
            yield batch, data
            i += 1

    def _drain(self, inflight: collections.deque) -> None:
        """Read the answers of the commands still in flight and throw them away (they are sent again)."""
        while inflight and self._client is not None:
            _batch, tag, _allowed = inflight.popleft()
            try:
                complete_fetch(self._client, tag)
            except LINK_ERRORS:
                self._drop()
            except IMAPClientError:
                continue
        inflight.clear()

    def _scan_folder(self, wire: bytes, name: str, prev: tuple[int, int] | None, done: dict, reporter: Reporter) -> Iterator[SourceItem]:
        info = self._call(f"EXAMINE {name}", lambda c: c.select_folder(wire, readonly=True))
        uidvalidity = int(info.get(b"UIDVALIDITY", 0))
        exists = int(info.get(b"EXISTS", 0))
        self._selected = (wire, uidvalidity)
        last = 0
        if prev is not None:
            if prev[0] == uidvalidity:
                last = prev[1]
            else:
                reporter.info(f"{name}: UIDVALIDITY changed ({prev[0]} → {uidvalidity}): reading the folder again; dedup keeps duplicates out")
        self._folder_last[name] = (uidvalidity, last)
        if exists == 0:
            return
        uids = self._call(f"SEARCH {name}", lambda c: self._search(c, last, exists))
        if self._after_search is not None:
            self._after_search(name, uids)
        if not uids:
            return
        if self.fetch_in_tasks:
            yield from self._listed(wire, name, uidvalidity, uids, done, reporter)
            return
        sizes = self._call(f"FETCH sizes {name}", lambda c: self._sizes(c, uids))
        yield from self._too_big(name, uidvalidity, uids, sizes)
        uids = [u for u in uids if sizes.get(u, 0) <= self.max_fetch]
        task = f"folder {name}"
        reporter.start(task, len(uids), "mails")
        try:
            for batch, data in self._fetch_batches(name, list(self._batches(uids, sizes)), sizes):
                for uid in batch:
                    ref = f"{name};UIDVALIDITY={uidvalidity};UID={uid}"
                    cursor = {"folders": done, "current": [name, uidvalidity, uid]}
                    self._folder_last[name] = (uidvalidity, uid)
                    d = data.get(uid)
                    why = answer_problem(d, sizes.get(uid))
                    if why is not None:
                        yield SourceProblem(ref, why, cursor)
                        continue
                    raw = d[b"BODY[]"]
                    flags = _flags(d.get(b"FLAGS", ()))
                    reporter.advance(task, 1, bytes=len(raw))
                    yield SourceMail(raw=raw, ref=ref, folder=name, flags=flags, internal_date=d.get(b"INTERNALDATE"),
                                     date_source="imap-internaldate", cursor=cursor)
        finally:
            reporter.finish(task)

    def _too_big(self, name: str, uidvalidity: int, uids: list[int], sizes: dict[int, int]) -> Iterator[SourceItem]:
        """A problem for each mail above ``max_fetch`` (no cursor: the mails before it are still to come)."""
        for uid in uids:
            if sizes.get(uid, 0) > self.max_fetch:
                yield SourceProblem(
                    f"{name};UIDVALIDITY={uidvalidity};UID={uid}",
                    f"{sizes[uid]:,} bytes, above the {self.max_fetch:,}-byte limit of a mail fetched over IMAP; "
                    "not fetched (save it from a mail client as a file and use `import eml`)",
                    None,
                )

    def _listed(self, wire: bytes, name: str, uidvalidity: int, uids: list[int], done: dict,
                reporter: Reporter) -> Iterator[SourceItem]:
        """The folder's mails as jobs for the pack tasks (importers/imap_jobs.py): no body fetched here.

        Their sizes, flags and INTERNALDATE are listed in parts, the first of ``FIRST_SIZES`` UIDs: its
        mails are handed over after one short FETCH, so the first pack tasks (and the worker processes
        that run them) start while the rest of a large folder is listed."""
        from .imap_jobs import ImapFolder, ImapUid

        folder = ImapFolder(self._jobs_account(), wire, name, uidvalidity)
        for lo, hi in _parts(len(uids), min(FIRST_SIZES, SIZE_CHUNK), SIZE_CHUNK):
            part = uids[lo:hi]
            meta: dict[int, tuple] = {}
            sizes = self._call(f"FETCH sizes {name}", lambda c: (meta.clear(), self._sizes(c, part, meta))[1])
            yield from self._too_big(name, uidvalidity, part, sizes)
            for uid in part:
                size = sizes.get(uid)
                if size is not None and size > self.max_fetch:
                    continue
                ref = f"{name};UIDVALIDITY={uidvalidity};UID={uid}"
                cursor = {"folders": done, "current": [name, uidvalidity, uid]}
                self._folder_last[name] = (uidvalidity, uid)
                flags, date = meta.get(uid, ((), None))
                yield SourceMail(raw=None, ref=ref, folder=name, flags=flags, internal_date=date,
                                 date_source="imap-internaldate", cursor=cursor, size=size,
                                 job=ImapUid(folder, uid, size), on_read_error=functools.partial(_not_fetched, ref, cursor))


def _parts(n: int, first: int, rest: int) -> Iterator[tuple[int, int]]:
    """[lo, hi) ranges covering 0..n: the first ``first`` long, the others ``rest``."""
    lo, size = 0, max(1, first)
    while lo < n:
        yield lo, min(n, lo + size)
        lo, size = lo + size, max(1, rest)


def personal_namespace(c: IMAPClient) -> tuple[str, str] | None:
    """(prefix, separator) of the first personal namespace (RFC 2342), the prefix decoded, or None (no
    NAMESPACE, or none); a dropped connection is raised (the caller's retry reconnects). Also ``export imap``'s."""
    if b"NAMESPACE" not in c.capabilities():
        return None
    try:
        personal = c.namespace().personal
    except imaplib.IMAP4.abort:
        raise
    except IMAPClientError:  # refused or unparsable: the names stay the server's, separator aside
        return None
    if not personal:
        return None
    prefix, sep = personal[0]
    prefix = utf7.decode_lenient(prefix if isinstance(prefix, bytes) else prefix.encode("utf-8"))
    return prefix, (sep.decode("ascii", "replace") if isinstance(sep, bytes) else sep or "")


def folder_name(raw: str, delim, personal: tuple[str, str] | None) -> str:
    """The archive's name of a folder the server lists as ``raw`` (decoded) with hierarchy separator ``delim``:
    parts joined by ``/`` (the archive's separator, as ``import maildir`` names them), the personal namespace's
    prefix left out (Courier's and Cyrus's ``INBOX.``: ``INBOX.Archive.2023`` is ``Archive/2023``); a ``/``
    inside a level is written ``&AC8-`` (its modified UTF-7 form). INBOX, names outside the personal namespace and a flat server (NIL separator) keep their parts."""
    sep = delim.decode("ascii", "replace") if isinstance(delim, bytes) else (delim or "")
    if personal is not None:
        prefix = personal[0]
        if prefix and raw.startswith(prefix) and len(raw) > len(prefix):
            raw = raw[len(prefix):]
    if sep and sep != "/":  # a "/" inside a level is written as modified UTF-7 does (never a level of its own)
        raw = "/".join(part.replace("/", "&AC8-") for part in raw.split(sep))
    return raw


def answer_problem(d: dict | None, listed: int | None) -> str | None:
    """Why a body FETCH answer gives no mail (listed, never dropped: D1, D4), or None when its body is complete:
    the bytes received equal its RFC822.SIZE (of the answer, else of the listing) and the listing's.

    A mail is immutable under its UID, so a body of another size than the listing announced is not that
    mail: Courier answers the FETCH of a mail another session expunged meanwhile with a placeholder of its
    own ("Subject: message unavailable", RFC822.SIZE its own length), which would otherwise be archived."""
    if d is not None and UNPARSED in d:
        return f"no body could be read for it: {d[UNPARSED]}; not archived"
    if d is None or b"BODY[]" not in d:
        return f"{CHANGED}: the server returned no body for it (expunged before it could be fetched?)"
    raw = d[b"BODY[]"]
    size = d.get(b"RFC822.SIZE", listed)
    if raw is None or size is None or len(raw) != int(size):
        got = 0 if raw is None else len(raw)
        return f"incomplete: received {got} bytes, the server announced {size}; not archived"
    if raw == COURIER_GONE:
        return f"{CHANGED}: the server sent its placeholder for a mail expunged meanwhile; not archived"
    if listed is not None and len(raw) != listed:
        return (f"{CHANGED}: the server sent {len(raw)} bytes where the listing announced {listed} (a placeholder "
                "for a mail expunged meanwhile?); not archived")
    return None


def _not_fetched(ref: str, cursor: dict, exc: OSError) -> SourceProblem:
    """A mail the pack task could not fetch (expunged since the listing, a short literal): listed (D4)."""
    return SourceProblem(ref, exc.strerror or str(exc), cursor)


_END = object()


class _LockedReporter:
    """A reporter several connections' threads share: one call at a time."""

    def __init__(self, inner: Reporter, lock: threading.Lock):
        self._inner, self._lock = inner, lock

    def __getattr__(self, name: str):
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        def call(*a, **kw):
            with self._lock:
                return target(*a, **kw)
        return call


class _Stopped(Exception):
    """The consumer went away: the connections' threads end."""


class _Feeds:
    """Per-folder queues filled by several connections, emptied in folder order, bounded together in bytes."""

    def __init__(self, names: list[str], max_bytes: int):
        self._queues = [collections.deque() for _ in names]
        self._max = max_bytes
        self._bytes = 0
        self._head = 0  # the folder being handed over: it may always add one mail to an empty queue
        self._cond = threading.Condition()
        self.stopped = False
        self.peak = 0  # the most bytes of mail queued at once

    def _put(self, k: int, x) -> None:
        n = _size(x)
        q = self._queues[k]
        with self._cond:
            while n and self._bytes + n > self._max and not (k == self._head and not q):
                if self.stopped:
                    raise _Stopped
                self._cond.wait(0.2)
            if self.stopped:
                raise _Stopped
            q.append(x)
            self._bytes += n
            self.peak = max(self.peak, self._bytes)
            self._cond.notify_all()

    def run(self, k: int, gen: Iterator) -> None:
        """Read folder ``k`` into its queue: its items, then its end or its error."""
        try:
            for x in gen:
                self._put(k, x)
            self._put(k, _END)
        except _Stopped:
            gen.close()
        except BaseException as exc:  # handed to the consumer, in order
            try:
                self._put(k, _Failed(exc))
            except _Stopped:
                pass

    def items(self, k: int) -> Iterator:
        q = self._queues[k]
        while True:
            with self._cond:
                self._head = k
                self._cond.notify_all()
                while not q:
                    self._cond.wait(0.2)
                x = q.popleft()
                self._bytes -= _size(x)
                self._cond.notify_all()
            if x is _END:
                return
            if isinstance(x, _Failed):
                raise x.exc
            yield x

    def stop(self) -> None:
        with self._cond:
            self.stopped = True
            self._cond.notify_all()


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


def _size(x) -> int:
    return len(x.raw) if isinstance(x, SourceMail) and x.raw is not None else 0


def _read_ahead(make: Callable[[], Iterator], depth: int, max_bytes: int = PREFETCH_BYTES) -> Iterator:
    """Run the generator ``make()`` in a thread, ``depth`` items and ``max_bytes`` bytes of mail ahead
    (one item more when the queue is empty, however large); errors re-raised here, in order.

    Network reads (and TLS decryption, which releases the GIL) overlap with the pipeline's work.
    Closing this generator stops the thread after its current item.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    room = threading.Condition()
    queued = [0]  # bytes of mail in the queue

    def put(x) -> bool:
        n = _size(x)
        with room:
            while queued[0] and queued[0] + n > max_bytes:
                if stop.is_set():
                    return False
                room.wait(0.2)
            queued[0] += n
        while not stop.is_set():
            try:
                q.put(x, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        gen = make()
        try:
            for item in gen:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer
            put(_Failed(exc))
        finally:
            gen.close()

    t = threading.Thread(target=run, name="imap-read-ahead", daemon=True)
    t.start()
    try:
        while True:
            x = q.get()
            n = _size(x)
            if n:
                with room:
                    queued[0] -= n
                    room.notify()
            if x is _END:
                return
            if isinstance(x, _Failed):
                raise x.exc
            yield x
    finally:
        stop.set()
        t.join()


def _fetch(c: IMAPClient, uids: list[int], items: list[bytes]) -> dict[int, dict]:
    """One UID FETCH, its answers read by the lean reader (toolkit/net/fetch_reader.py)."""
    return complete_fetch(c, send_fetch(c, uids, items))


def _fetch_tolerant(c: IMAPClient, uids: list[int], items: list[bytes] = FETCH_ITEMS) -> dict[int, dict]:
    """FETCH a batch; when the server answers NO (e.g. [EXPUNGEISSUED]), fetch one by one to keep the rest (D4)."""
    try:
        return c.fetch(uids, items)
    except imaplib.IMAP4.abort:
        raise
    except IMAPClientError as exc:
        if _throttled(exc):
            raise
        if len(uids) == 1:
            return {}
    out: dict[int, dict] = {}
    for uid in uids:
        try:
            out.update(c.fetch([uid], items))
        except imaplib.IMAP4.abort:
            raise
        except IMAPClientError as exc:
            if _throttled(exc):
                raise
    return out


def _flags(raw) -> tuple[str, ...]:
    """Persistent flags and keywords as text; \\Recent is a per-session flag, not the mail's state."""
    out = []
    for f in raw:
        text = f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f)
        if text.lower() != "\\recent":
            out.append(text)
    return tuple(out)
