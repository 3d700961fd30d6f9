"""The IMAP mails a pack task fetches itself (docs/architecture.md, "IMAP import over a long link").

``import imap`` lists a folder in the driver (UIDs, RFC822.SIZE, FLAGS, INTERNALDATE: the cursor, the
dedup order and the sightings need no more) and hands over one :class:`ImapUid` per mail instead of
its bytes. The pack task's worker process logs in itself (one connection per process, kept for its
next tasks: :func:`toolkit.remote_jobs.cached_session`), EXAMINEs the folder, checks that its
UIDVALIDITY is still the listed one and fetches the task's UIDs with pipelined ``UID FETCH``
(``ImapImporter._fetch_batches``: the same byte bounds, literal budget, reconnects with backoff and
throttling pauses as a fetch in the driver). The mail's bytes then go from the socket straight into
the task's pack; the driver gets rows back, as for every other task.

What a task carries: :class:`ImapAccount`, the server, the user and **the password** (and the TLS
settings, the CA as PEM bytes so that a Dask worker on another machine needs no file): sent to the
worker explicitly with each task, never through the environment (the same rule and the same trust
as the archive key the task carries already).

A mail the server no longer returns (expunged since the listing), a short literal, or a folder whose
UIDVALIDITY changed is a :class:`~toolkit.prepare.ReadFailure` for that mail: the driver lists it
(``source changed during import``), never drops it silently. A link that stays down past the retry
budget, or a rejected login, fails the task and so the run, which resumes from its committed cursor.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, NamedTuple
from urllib.parse import quote

from imapclient.exceptions import IMAPClientError

from toolkit.net.imap import server_text
from toolkit.prepare import ReadFailure
from toolkit.remote_jobs import cached_session, drop_session

#: What a worker fetches per mail (FLAGS and INTERNALDATE came with the listing).
BODY_ITEMS = [b"BODY.PEEK[]", b"RFC822.SIZE"]


@dataclass(frozen=True)
class ImapAccount:
    """Everything a worker needs to log in to one account as the importer would (no secrets in repr)."""

    url: str                                   # imap[s]://user@host:port (no folder)
    password: str = field(repr=False)
    ca_pem: bytes | None = field(default=None, repr=False)
    insecure: bool = False
    allow_plaintext: bool = False
    timeout: float = 60.0
    retries: int = 5
    backoff: float = 1.0
    retry_deadline: float = 300.0
    batch: int = 200
    batch_bytes: int = 16 << 20
    max_fetch: int = 1 << 30
    pipeline: int = 4
    keep: bool = True                          # keep the connection for the next task (False: a Dask worker's)

    @classmethod
    def of(cls, importer, ca_pem: bytes | None) -> "ImapAccount":
        u = importer.url
        host = f"[{u.host}]" if ":" in u.host else u.host
        return cls(f"{u.scheme}://{quote(u.user, safe='')}@{host}:{u.port}", importer._password, ca_pem,
                   importer._insecure, importer.allow_plaintext, importer.timeout, importer._retry.retries,
                   importer._retry.backoff, importer._retry.deadline, importer.batch,
                   min(importer.batch_bytes, ImapAccount.batch_bytes), importer.max_fetch, importer.pipeline,
                   getattr(importer, "keep_sessions", True))

    def open(self):
        """A fetcher for this account (an ImapImporter that fetches only); it connects on first use."""
        from toolkit.net.tls import tls_context

        from .imap import ImapImporter

        fetcher = ImapImporter(self.url, self.password, insecure=self.insecure, allow_plaintext=self.allow_plaintext,
                               timeout=self.timeout, retries=self.retries, backoff=self.backoff,
                               retry_deadline=self.retry_deadline, batch=self.batch, batch_bytes=self.batch_bytes,
                               max_fetch=self.max_fetch, pipeline=self.pipeline, prefetch=0, fetch_in_tasks=False)
        if self.ca_pem is not None and not self.insecure:
            fetcher._ctx = tls_context(ca_pem=self.ca_pem)
        fetcher.fetch_items = BODY_ITEMS
        return fetcher


@dataclass(frozen=True)
class ImapFolder:
    """One folder as listed: the account, its wire name, its decoded name and the UIDVALIDITY of the listing."""

    account: ImapAccount
    wire: bytes
    name: str
    uidvalidity: int


class ImapUid(NamedTuple):
    """A pack task's job (toolkit.remote_jobs): fetch this UID of this folder where the task runs."""

    folder: ImapFolder
    uid: int
    size: int | None                           # RFC822.SIZE from the listing (None: fetched alone)

    @property
    def batch_key(self) -> ImapFolder:
        return self.folder

    @classmethod
    def read_batch(cls, jobs: list["ImapUid"]) -> Iterator[bytes | ReadFailure]:
        """The bytes of each job's mail, in order (a ReadFailure for one the server no longer gives)."""
        from .imap import _FolderError, _ProtocolError

        folder = jobs[0].folder
        account = folder.account
        fetcher = cached_session(account, account.open, _logout)
        sizes = {j.uid: j.size for j in jobs if j.size is not None}
        uids = [j.uid for j in jobs]
        done = 0
        try:
            fetcher._switch(folder.wire, folder.uidvalidity, folder.name)
            for batch, data in fetcher._fetch_batches(folder.name, list(fetcher._batches(uids, sizes)), sizes):
                for uid in batch:
                    yield _body(data.get(uid), sizes.get(uid))
                    done += 1
        except (_FolderError, IMAPClientError) as exc:  # this folder only: each mail not fetched is listed
            fetcher._selected = None  # the next batch EXAMINEs and checks its folder again
            if isinstance(exc, _ProtocolError):
                drop_session(account)
            why = str(exc) if isinstance(exc, _FolderError) else server_text(exc)
            # the reason says what happened (a folder recreated meanwhile, a server that broke the protocol)
            failure = ReadFailure(0, f"folder {folder.name!r} could not be read ({why}); not archived")
            for _ in range(len(jobs) - done):
                yield failure
        finally:
            if not account.keep:  # connections counted per task in flight (toolkit/migrate/schedule.py)
                drop_session(account)


def _body(d: dict | None, listed: int | None) -> bytes | ReadFailure:
    """A FETCH answer's body, if complete (the bytes received equal its RFC822.SIZE, D1)."""
    from .imap import answer_problem

    why = answer_problem(d, listed)
    return d[b"BODY[]"] if why is None else ReadFailure(0, why)


def _logout(fetcher) -> None:
    from toolkit.net.imap import close

    close(fetcher._client, logout=True)
    fetcher._client = None


__all__ = ["ImapAccount", "ImapFolder", "ImapUid"]
