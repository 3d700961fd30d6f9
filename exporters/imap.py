"""``export imap imap[s]://user@host[:port][/prefix]``: APPEND into folders that mirror the source folders.

Each selected message is appended once per source folder (the latest
sighting there gives the flags; messages without a folder go to INBOX),
into ``PREFIX/Folder/Sub`` (the server's hierarchy separator replaces
``/``; a separator inside a name part becomes ``_``) inside the server's
personal namespace (NAMESPACE: Cyrus's and Courier's ``INBOX.``, where a
top-level ``Archive`` is refused), with the original
INTERNALDATE (sighting, else the catalog's internal date, else the sent
date) and flags (``\\Seen``, ``\\Answered``, ``\\Flagged``, ``\\Deleted``,
``\\Draft`` and keywords). Folders are created and subscribed as needed.

Bytes: IMAP carries messages with CRLF line ends (RFC 3501 §4.3), and
servers such as Dovecot hand out CRLF whatever was stored, so a bare LF is
sent as CRLF. A message that has CRLF line ends already goes out byte for
byte and comes back with the same blob id; for the others the manifest's
``sha256`` is of the bytes sent (its ``blob_id`` stays the archived one).
Servers may still store other bytes than were sent (tests/README.md
"Servers other than Dovecot"): Courier-IMAP 5.0 ends a message that has no
final line end with a CRLF (2 bytes more), and Cyrus 3.6 (``munge8bit:
yes``, its default) turns each 8-bit byte of a header into ``X`` (same
size); Dovecot keeps the bytes. ``import imap`` of such a copy gives
another blob. So, unless ``read_back`` is off, every copy appended with a
UID (UIDPLUS) is read back at the end of the run (``UID FETCH BODY.PEEK[]``
per folder, in chunks of at most :data:`READ_BACK_CHUNK` mails and
:data:`READ_BACK_BYTES` bytes) and its SHA-256 compared with the bytes sent
(docs/reliability.md D14). An altered or missing copy is an error of the
run (exit 1), recorded in the state file with what the server holds, so a
rerun lists it again instead of calling it present; a copy checked equal is
recorded as checked and never read again, and one appended but not yet
checked (a kill before the end) is read back by the next run. Without
UIDPLUS nothing can be read back by UID: the summary counts those copies.

Resuming (decision): the exporter keeps a state file, one JSON line per
appended copy (blob id, target folder, UID), written and fsynced right
after the server's OK, in ``HOME/export-state/imap-<hash of the target
URL>.jsonl``. A rerun skips every copy listed there; the target is never
searched in bulk (fast on large folders, and a copy the user deleted on
the target is not silently re-appended... unless the state file is
removed, which makes the next run append everything again). The one
window — killed between the server's OK and the state line — is closed
after a dropped connection by a ``SEARCH HEADER Message-ID`` with the same
size before the APPEND is repeated. With UIDPLUS the new UID (APPENDUID)
goes into the state and the manifest.

The manifest (CSV + JSON, :mod:`exporters.manifest`) is written last into
``HOME/export-state/imap-<hash>/`` (or ``manifest_dir``).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from importers.imap import personal_namespace
from toolkit import faults
from toolkit.archive import Archive
from toolkit.net import imap as net_imap
from toolkit.net.retry import Retry, describe, with_reconnect
from toolkit.errors import AuthenticationError, IntegrityError, SourceError, StorageError, UsageError
from toolkit.reporter import NullReporter, Reporter
from toolkit.retrieval import StoredMessage, select_paged, stream_message

from .eml import ExportSummary, readable
from .filters import Filters
from .layout import DEFAULT_FOLDER, placements
from .manifest import Manifest

_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.I)
READ_BACK_CHUNK = 200            # mails per read-back FETCH
READ_BACK_BYTES = 64 << 20       # ... and at most this many bytes of them (one larger mail goes alone)


class TargetAuthError(AuthenticationError):
    """The target server rejected the user name or password: not retried."""


@dataclass(frozen=True)
class ImapTarget:
    host: str
    port: int
    user: str
    implicit_tls: bool
    prefix: str = ""

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "imaps" if self.implicit_tls else "imap"
        return f"{scheme}://{self.user}@{host}:{self.port}/{self.prefix.strip('/')}"

    @property
    def key(self) -> str:
        return hashlib.sha256(self.uri.encode("utf-8")).hexdigest()[:16]


def crlf(data: bytes) -> bytes:
    """Bare LF → CRLF (what an IMAP APPEND carries); bytes with CRLF already are unchanged: a CR goes before every LF
    that has none. In bytes methods (GB/s; the lookbehind pattern ``(?<!\r)\n`` that did it ran at ~100 MB/s, tried at
    every byte): a line end that has its CR loses it and gets it back, every other LF gets one
    (tests/unit/test_export_crlf.py pins it to that pattern)."""
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def target_folder(folder: str | None, prefix: str, delimiter: str, personal: str = "") -> str:
    """The target mailbox name for a source folder (``/``-separated) under an optional prefix, inside the
    server's personal namespace ``personal`` (Cyrus's and Courier's ``INBOX.``: ``Archive/2019`` is
    ``INBOX.Archive.2019`` there, the name ``import imap`` reads back as ``Archive/2019``)."""
    parts = [p for p in (prefix or "").split("/") if p] + [p for p in (folder or DEFAULT_FOLDER).split("/") if p]
    if delimiter and delimiter != "/":
        parts = [p.replace(delimiter, "_") for p in parts]
    name = (delimiter or "/").join(parts)
    if personal and name.upper() != "INBOX" and not name.startswith(personal):
        name = personal + name
    return name


class _State:
    """The append log of one target: {(blob_id, source folder): record}."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.done: dict[tuple[str, str], dict] = {}
        if self.path.exists():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue  # a torn last line from a kill
                    self.done[(rec["blob_id"], rec["source"])] = rec
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:  # never through a symlink planted at the log's name
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise UsageError(f"refusing to write {str(self.path)!r}: a symlink or not a file is in its place "
                             f"({exc.strerror})") from None
        self._f = os.fdopen(fd, "a", encoding="utf-8")
        if self._f.tell() and not self.path.read_bytes().endswith(b"\n"):
            self._f.write("\n")  # end a torn line so the next record starts on its own

    def add(self, rec: dict) -> None:
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.done[(rec["blob_id"], rec["source"])] = rec

    def close(self) -> None:
        self._f.close()


def _export_gives_up(what: str, exc: BaseException, failures: int, seconds: float) -> Exception:
    return SourceError(f"{what}: {describe(exc)}; gave up after {failures} attempts. Rerun: the export resumes.")


class _Connection:
    def __init__(self, target: ImapTarget, password: str, ctx: ssl.SSLContext, allow_plaintext: bool,
                 timeout: float, retries: int, backoff: float):
        self.target, self._password, self._ctx = target, password, ctx
        self.allow_plaintext, self.timeout = allow_plaintext, timeout
        self._retry = Retry(retries, backoff, deadline=None, jitter=0.0, give_up=_export_gives_up)
        self.client: IMAPClient | None = None
        self.delimiter = "/"
        self.personal = ""  # the personal namespace's prefix (importers.imap.personal_namespace)
        self.created: set[str] = set()
        self.dropped = False  # a drop happened since the last successful APPEND

    def open(self) -> IMAPClient:
        if self.client is not None:
            return self.client
        t = self.target
        c = net_imap.connect(t.host, t.port, t.implicit_tls, self._ctx, user=t.user, password=self._password,
                             auth_error=TargetAuthError, allow_plaintext=self.allow_plaintext, timeout=self.timeout)
        try:
            listing = c.list_folders("", "INBOX") or c.list_folders("", "")
            self.personal = (personal_namespace(c) or ("", ""))[0]
        except BaseException:
            net_imap.close(c)
            raise
        if listing and listing[0][1]:
            d = listing[0][1]
            self.delimiter = d.decode() if isinstance(d, bytes) else str(d)
        self.client = c
        return c

    def _drop(self) -> None:
        self.dropped = True
        net_imap.close(self.client)
        self.client = None

    def call(self, what: str, op: Callable[[IMAPClient], object]):
        """``op`` on the open connection; after a dropped link reconnect and repeat it (bounded backoff)."""
        try:
            return with_reconnect(what, lambda: op(self.open()), self._drop, self._retry)
        finally:
            self._retry.reset()  # the budget is per call

    def ensure_folder(self, name: str) -> None:
        if name in self.created or name == "INBOX":
            return

        def make(c: IMAPClient):
            # LIST takes "*" and "%" in a name as wildcards: only the folder of this very name counts
            listed = [f for f in c.list_folders("", name) if f[2] == name]
            flags = {f.lower() for f in listed[0][0]} if listed else set()
            if not listed or b"\\noselect" in flags or b"\\nonexistent" in flags:
                try:
                    c.create_folder(name)  # also a parent that exists only as a \Noselect placeholder
                except IMAPClientError as exc:
                    if b"ALREADYEXISTS" not in str(exc).encode().upper() and "exists" not in str(exc).lower():
                        raise
            try:
                c.subscribe_folder(name)
            except IMAPClientError:
                pass

        self.call(f"CREATE {name}", make)
        self.created.add(name)

    def close(self) -> None:
        net_imap.close(self.client, logout=True)
        self.client = None


class _Pace:
    """At most ``per_second`` APPENDs a second (None: no limit)."""

    def __init__(self, per_second: float | None):
        self.gap = 1.0 / per_second if per_second else 0.0
        self.last = 0.0

    def wait(self) -> None:
        pause = self.last + self.gap - time.monotonic()
        if self.gap and pause > 0:
            time.sleep(pause)

    def done(self) -> None:
        self.last = time.monotonic()


def default_state_dir(archive: Archive) -> Path:
    return archive.home_files.export_state_dir


def export_imap(
    archive: Archive,
    target: ImapTarget,
    password: str,
    filters: Filters | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    allow_plaintext: bool = False,
    timeout: float = 60.0,
    retries: int = 5,
    backoff: float = 1.0,
    max_per_second: float | None = None,
    state_path: Path | None = None,
    manifest_dir: Path | None = None,
    reporter: Reporter | None = None,
    read_back: bool = True,
) -> ExportSummary:
    """Append the selected messages to the target account (see the module docstring)."""
    reporter = reporter or NullReporter()
    if max_per_second is not None and max_per_second <= 0:
        raise UsageError("--max-per-second must be positive")
    base = default_state_dir(archive)
    state_path = Path(state_path or base / f"imap-{target.key}.jsonl")
    manifest = Manifest(Path(manifest_dir or base / f"imap-{target.key}"), "imap")
    manifest.begin()
    selection = select_paged(archive, *(filters or Filters()).sql())
    summary = ExportSummary(dest=target.uri, selected=len(selection))
    places: dict = {}

    def on_page(page) -> None:  # the placements of one page of the selection at a time (K8)
        places.clear()
        places.update(placements(archive, [sm.msg_id for sm in page], filters))

    state = _State(state_path)
    conn = _Connection(target, password, ssl_context or ssl.create_default_context(), allow_plaintext,
                       timeout, retries, backoff)
    pace = _Pace(max_per_second)
    check = _ReadBack(summary) if read_back else None
    reporter.start("export", len(selection), "mails")
    try:
        mails = selection.mails(on_page, gone=lambda msg_id: summary.gone(msg_id, reporter))
        for sm, data in readable(archive, mails, summary, reporter):
            wrote = False
            sent: bytes | None = None
            for p in places[sm.msg_id]:
                source = p.folder or DEFAULT_FOLDER
                rec = state.done.get((sm.blob_id, source))
                if rec is not None:
                    summary.already_present += 1
                    if check is not None:
                        check.earlier(sm, rec, reporter)
                else:
                    if sent is None:
                        try:
                            raw = data if data is not None else b"".join(stream_message(archive, sm))
                        except (IntegrityError, StorageError) as exc:
                            summary.error(sm, exc, reporter)
                            break
                        sent = crlf(raw)
                    pace.wait()
                    conn.call("LOGIN", lambda c: c)
                    name = target_folder(p.folder, target.prefix, conn.delimiter, conn.personal)
                    when = p.internal_date or sm.internal_date or sm.sent_date
                    try:
                        conn.ensure_folder(name)
                        rec = _append(conn, name, sent, p.flags, when, sm)
                    except IMAPClientError as exc:
                        summary.error(sm, SourceError(f"APPEND to {name!r} refused: {exc}"), reporter)
                        continue
                    pace.done()
                    rec.update(msg_id=sm.msg_id, blob_id=sm.blob_id, sha256=hashlib.sha256(sent).hexdigest(),
                               size=len(sent), target=name, source=source)
                    state.add(rec)
                    if check is not None:
                        check.pending(sm, rec)
                    wrote = True
                    summary.bytes += len(sent)
                    faults.hit("export_after_file")
                manifest.add(msg_id=sm.msg_id, message_id=sm.message_id, blob_id=sm.blob_id, sha256=rec["sha256"],
                             size=rec["size"], folder=p.folder, target=rec["target"], uid=rec.get("uid"))
            if wrote:
                summary.written += 1
        if check is not None:
            check.run(conn, state, reporter)
    except BaseException:
        manifest.close()
        raise
    finally:
        reporter.finish("export")
        conn.close()
        state.close()
    manifest.write(errors=summary.errors, extra={"target": target.uri, "filters": (filters or Filters()).describe(),
                                                 "state_file": str(state_path)})
    return summary


def _append(conn: _Connection, name: str, raw: bytes, flags: tuple[str, ...], when: dt.datetime | None,
            sm: StoredMessage) -> dict:
    def op(c: IMAPClient):
        if conn.dropped and sm.message_id:
            found = _already_there(c, name, sm.message_id, len(raw), raw.endswith(b"\r\n"))
            if found is not None:
                return found
        return c.append(name, raw, flags=flags, msg_time=when)

    resp = conn.call(f"APPEND to {name}", op)
    conn.dropped = False
    if isinstance(resp, dict):
        return resp
    m = _APPENDUID.search(resp if isinstance(resp, bytes) else str(resp).encode())
    return {"uidvalidity": int(m.group(1)), "uid": int(m.group(2))} if m else {"uidvalidity": None, "uid": None}


def _leave_folder(c: IMAPClient) -> None:
    """Leave the folder selected read-only (UNSELECT where offered; CLOSE expunges nothing then)."""
    c.unselect_folder() if b"UNSELECT" in c.capabilities() else c.close_folder()


def _already_there(c: IMAPClient, name: str, message_id: str, size: int, ends_with_line_end: bool = True) -> dict | None:
    """After a dropped link: did the interrupted APPEND arrive? (same Message-ID and size)"""
    if not c.folder_exists(name):
        return None
    info = c.select_folder(name, readonly=True)
    try:
        uids = c.search(["HEADER", "Message-ID", message_id])
        if not uids:
            return None
        # Courier-IMAP stores a mail without a final line end with one more CRLF (D14): that size counts too,
        # or a copy that did arrive would be appended a second time
        sizes = {size, size + 2} if not ends_with_line_end else {size}
        for uid, d in c.fetch(uids, [b"RFC822.SIZE"]).items():
            if int(d.get(b"RFC822.SIZE", -1)) in sizes:
                return {"uidvalidity": int(info.get(b"UIDVALIDITY", 0)) or None, "uid": uid}
        return None
    finally:
        _leave_folder(c)



class _ReadBack:
    """The read-back of appended copies (docs/reliability.md D14): their SHA-256 against the bytes sent."""

    def __init__(self, summary: ExportSummary):
        self.summary = summary
        self.todo: dict[str, list[tuple[StoredMessage, dict]]] = {}   # target folder -> copies to read back
        summary.read_back = {"checked": 0, "altered": 0, "missing": 0, "without_uid": 0}

    def pending(self, sm: StoredMessage, rec: dict) -> None:
        if rec.get("uid") is None:
            self.summary.read_back["without_uid"] += 1
        else:
            self.todo.setdefault(rec["target"], []).append((sm, rec))

    def earlier(self, sm: StoredMessage, rec: dict, reporter: Reporter) -> None:
        """A copy an earlier run appended: an altered one is listed again; an unchecked one is read back now."""
        if rec.get("stored_sha256") or rec.get("missing"):
            self.summary.read_back["altered" if rec.get("stored_sha256") else "missing"] += 1
            self.summary.error(sm, IntegrityError(_finding(rec) + " (found by an earlier run's read-back)"), reporter)
        elif not rec.get("checked") and rec.get("uid") is not None:
            self.pending(sm, rec)

    def run(self, conn: _Connection, state: _State, reporter: Reporter) -> None:
        total = sum(len(v) for v in self.todo.values())
        if not total:
            return
        reporter.start("read back", total, "mails")
        try:
            for name, copies in self.todo.items():
                for chunk in _chunks(copies):
                    uids = [rec["uid"] for _, rec in chunk]
                    validity, stored = conn.call(f"read back from {name}", lambda c: _fetch_back(c, name, uids))
                    for sm, rec in chunk:
                        self._judge(sm, rec, validity, stored.get(rec["uid"]), state, reporter)
                    reporter.advance("read back", len(chunk))
        finally:
            reporter.finish("read back")

    def _judge(self, sm: StoredMessage, rec: dict, validity: int | None, got: tuple[str, int] | None,
               state: _State, reporter: Reporter) -> None:
        if rec.get("uidvalidity") and validity and rec["uidvalidity"] != validity:
            got = None  # the folder was recreated since the APPEND: that UID names another mail, or none
        if got is not None and got[0] == rec["sha256"]:
            self.summary.read_back["checked"] += 1
            state.add({**rec, "checked": True})
            return
        if got is None:
            rec = {**rec, "checked": True, "missing": True}
            self.summary.read_back["missing"] += 1
        else:
            rec = {**rec, "checked": True, "stored_sha256": got[0], "stored_size": got[1],
                   "crlf_added": got[2] == rec["sha256"]}
            self.summary.read_back["altered"] += 1
        state.add(rec)
        self.summary.error(sm, IntegrityError(_finding(rec)), reporter)


def _finding(rec: dict) -> str:
    where = f"{rec['target']!r} (UID {rec['uid']})"
    if rec.get("missing"):
        return (f"the copy appended to {where} is not there when read back: deleted, moved or the folder "
                f"recreated on the server since")
    why = ("the server added a line end at the end" if rec.get("crlf_added")
           else "same size, other bytes: a server that rewrites 8-bit header bytes (Cyrus's munge8bit) does this"
           if rec["stored_size"] == rec["size"] else "the size differs")
    return (f"the server stored other bytes than were sent to {where}: sent {rec['size']} bytes (SHA-256 "
            f"{rec['sha256'][:16]}…), it holds {rec['stored_size']} bytes (SHA-256 {rec['stored_sha256'][:16]}…): "
            f"{why}; the archived mail is unchanged, this copy is not byte-identical")


def _chunks(copies: list[tuple[StoredMessage, dict]]):
    chunk: list[tuple[StoredMessage, dict]] = []
    size = 0
    for item in copies:
        if chunk and (len(chunk) >= READ_BACK_CHUNK or size + item[1]["size"] > READ_BACK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item[1]["size"]
    if chunk:
        yield chunk


def _fetch_back(c: IMAPClient, name: str, uids: list[int]) -> tuple[int | None, dict[int, tuple[str, int, str]]]:
    """(the folder's UIDVALIDITY, {uid: (SHA-256 hex, size, SHA-256 hex without a final CRLF or "")})."""
    info = c.select_folder(name, readonly=True)
    try:
        stored: dict[int, tuple[str, int, str]] = {}
        for uid, d in c.fetch(uids, [b"BODY.PEEK[]"]).items():
            body = d.get(b"BODY[]")
            if isinstance(body, bytes):
                tail = hashlib.sha256(memoryview(body)[:-2]).hexdigest() if body.endswith(b"\r\n") else ""
                stored[uid] = (hashlib.sha256(body).hexdigest(), len(body), tail)
        return int(info.get(b"UIDVALIDITY", 0)) or None, stored
    finally:
        _leave_folder(c)
