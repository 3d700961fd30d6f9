"""Several UID FETCH commands in flight on one IMAP connection (pipelining, RFC 3501 section 5.5).

imapclient sends a command and waits for its completion; over a link with a
long round-trip time each batch then costs one round trip of idle line.
Here a command is sent (:func:`send_fetch`) before the answers to the earlier
ones are read (:func:`complete_fetch`, in the order sent): the server works
on the next batch while the client reads this one. Nothing more is held in
memory than before: the answers not yet read wait in the socket buffers
(TCP flow control), and each is read in full only when completed.

A server may interleave the FETCH answers of commands in flight: the answer
of :func:`complete_fetch` is every FETCH read so far, keyed by UID; the caller
keeps what belongs to a later command.
"""
from __future__ import annotations

from imapclient import IMAPClient
from imapclient.util import to_bytes

from .fetch_reader import read_fetch


def send_fetch(client: IMAPClient, uids: list[int], items: list[bytes]) -> str:
    """Send ``UID FETCH uids (items)`` without waiting; returns the command's tag."""
    uid_set = b",".join(to_bytes(str(u)) for u in uids)
    return client._imap._command("UID", "FETCH", uid_set, b"(" + b" ".join(items) + b")")


def complete_fetch(client: IMAPClient, tag: str) -> dict[int, dict]:
    """Read up to the completion of the command ``tag``: {uid: {item: value}} of every FETCH answer read
    (toolkit/net/fetch_reader.py; a mail whose answer could not be parsed carries ``UNPARSED``).

    A NO or BAD raises imapclient's error (``IMAPClientError``), a broken link imaplib's ``abort`` or an ``OSError``.
    """
    typ, data, answers = read_fetch(client._imap, tag, client.normalise_times)  # not imapclient's parser: lean
    client._checkok("fetch", typ, data)
    return answers
