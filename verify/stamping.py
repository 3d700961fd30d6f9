"""Stamp batches: unstamped messages, envelopes and stamped events → Merkle root → RFC 3161 token (docs/timestamps.md, docs/reliability.md A2, I10).

A batch's leaves, in this order (the order is part of the proof):

1. its messages ordered by ``msg_id``: ``leaf_hash_message(blob_id)``;
2. then its envelopes ordered by ``envelope_id``:
   ``leaf_hash_envelope(SHA-256(envelope text), blob_id of the envelope's message)``;
3. then its stamped events (the steps of an approved deletion) ordered by ``event_id``:
   ``leaf_hash_event(SHA-256(the event's canonical JSON))`` (``toolkit.catalog.events.canonical_json``).
   A batch sealed before events were stamped has none and verifies as before.

Life of a batch:

* one catalog transaction creates the ``stamp_batches`` row (status
  ``pending``, root, counts) and sets ``batch_id`` on its messages,
  envelopes and events — so a batch is either fully sealed or does not exist;
* the token is requested outside any catalog session and verified
  (``verify_token`` with the request's nonce);
* the sealed manifest ``stamps/<batch_id:08d>-<root[:16]>.manifest`` is
  written create-only onto the active medium;
* one transaction sets status ``stamped`` with token, TSA URL, CA
  fingerprint, genTime, serial, nonce, manifest name and medium.

The CA a run uses is first recorded in the archive's CA history
(``verify.ca_history``; a retired CA is refused), and the manifest carries
that CA (``ca``: fingerprint, PEM, added_at, TSA URLs), so a batch always
names the certificate it verifies against, and ``db rebuild`` can bring the
history back from the media.

A TSA failure leaves the batch ``pending`` (the error says so); the next run
retries pending batches first, for the same root. A crash anywhere before the
last transaction leaves it pending too; a manifest already written for it is
adopted when its token verifies, so the medium and the catalog agree.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any

from toolkit import crypto, faults, marks
from toolkit.catalog import events, stamps
from toolkit.errors import IntegrityError, NextStep, ObjectExistsError
from toolkit.reporter import NullReporter

from . import ca_history
from .merkle import leaf_hash_envelope, leaf_hash_event, leaf_hash_message, merkle_root
from .tokens import ca_fingerprint, verify_token

MANIFEST_PREFIX = "stamps/"
MANIFEST_CONTEXT = b"stamp-manifest"
MANIFEST_PURPOSE = "manifest"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def manifest_name(batch_id: int, root_hex: str) -> str:
    return f"{MANIFEST_PREFIX}{batch_id:08d}-{root_hex[:16]}.manifest"


def manifest_key(archive) -> bytes:
    return crypto.derive_key(archive.key, archive.uuid, MANIFEST_PURPOSE)


# -- reading ---------------------------------------------------------------------------------------
def pending_count(archive) -> int:
    """Leaves waiting for a batch: messages, journal envelopes and stamped events with no batch_id."""
    with archive.catalog.reading() as con:
        return _pending(con)["total"]


def pending_leaves(con) -> dict[str, int]:
    """Leaves waiting for a batch by kind ("messages", "envelopes", "events") and their "total"."""
    return _pending(con)


def _pending(con) -> dict[str, int]:
    m, e = stamps.unbatched_counts(con)
    v = len(_event_items(con, None))
    return {"messages": m, "envelopes": e, "events": v, "total": m + e + v}


def _event_items(con, batch_id: int | None, limit: int | None = None) -> list[tuple[str, str, int]]:
    """("event", SHA-256 hex of its canonical JSON, event_id) of a batch's stamped events (None: unbatched ones)."""
    if not events.has_event_batches(con):  # a catalog no writer has migrated yet holds no stamped events
        return []
    return [("event", hashlib.sha256(events.canonical_json(eid, at, kind, detail)).hexdigest(), eid)
            for eid, at, kind, detail in events.stamped_event_rows(con, batch_id, limit)]


def _batch_items(con, batch_id: int) -> list[tuple]:
    """(kind, blob_id hex, envelope sha256 hex | None) of messages and envelopes, then
    ("event", event sha256 hex, event_id) of events, in leaf order."""
    msgs, envs = stamps.batch_members(con, batch_id)
    return ([("message", b, None) for b in msgs] + [("envelope", b, s) for b, s in envs]
            + _event_items(con, batch_id))


def _leaf(kind: str, blob_hex: str, env_hex) -> bytes:
    if kind == "message":
        return leaf_hash_message(bytes.fromhex(blob_hex))
    if kind == "event":
        return leaf_hash_event(bytes.fromhex(blob_hex))
    return leaf_hash_envelope(bytes.fromhex(env_hex), bytes.fromhex(blob_hex))


def manifest_leaf(item: tuple) -> dict:
    """One leaf of a sealed manifest (docs/formats.md)."""
    kind, a, b = item
    if kind == "event":
        return {"kind": "event", "event_sha256": a, "event_id": b}
    return {"kind": kind, "blob_id": a, "envelope_sha256": b}


def manifest_item(leaf: dict) -> tuple:
    """One leaf of a manifest as an item of :func:`_batch_items`, to compare with the catalog."""
    if leaf.get("kind") == "event":
        return ("event", leaf.get("event_sha256"), leaf.get("event_id"))
    return (leaf.get("kind"), leaf.get("blob_id"), leaf.get("envelope_sha256"))


def manifest_items(manifest: dict) -> list[tuple]:
    """The leaves of a manifest as the items of :func:`_batch_items`, to compare with the catalog."""
    return [manifest_item(x) for x in manifest.get("leaves") or []]


def batch_leaves(con, batch_id) -> list[tuple[str, bytes]]:
    """Ordered (kind, leaf hash) of a batch: its messages by msg_id, its envelopes by envelope_id, its events by event_id."""
    return [(k, _leaf(k, b, s)) for k, b, s in _batch_items(con, int(batch_id))]


def item_leaves(items: list[tuple]) -> list[bytes]:
    """The leaf hashes of a batch's items (:func:`_batch_items`), in their order."""
    return [_leaf(*it) for it in items]


def _get(row: Any, name: str):
    if isinstance(row, dict):
        return row[name]
    return getattr(row, name)


def read_manifest(archive, batch_row) -> dict:
    """The sealed manifest of a batch (a mapping or object with ``manifest_name`` and ``medium_id``), opened."""
    name, medium_id = _get(batch_row, "manifest_name"), _get(batch_row, "medium_id")
    if not name or medium_id is None:
        raise IntegrityError(f"stamp batch {_get(batch_row, 'batch_id')} has no manifest recorded (not stamped)")
    return _open_manifest(archive, archive.storage(int(medium_id)).read(name), name)


def _open_manifest(archive, sealed: bytes, name: str) -> dict:
    data = crypto.open_blob(manifest_key(archive), sealed, MANIFEST_CONTEXT, what=f"stamp manifest {name}")
    manifest = json.loads(data)
    if manifest.get("archive") != str(archive.uuid):
        raise IntegrityError(f"stamp manifest {name} belongs to archive {manifest.get('archive')}, not {archive.uuid}")
    return manifest


# -- stamping --------------------------------------------------------------------------------------
def stamp_pending(
    archive,
    *,
    tsa_url: str,
    ca_pem: bytes,
    min_pending: int = 10_000,
    all_: bool = False,
    batch_size: int = 100_000,
    reporter=None,
    timeout: float = 30,
    policy: str | None = None,
    access=None,
) -> list[dict]:
    """Stamp pending batches (first), then new batches of unstamped leaves; returns one dict per stamped batch.

    Without ``all_`` new batches are made only while at least ``min_pending``
    leaves wait; with it, until none wait. Raises :class:`TsaError` (its
    ``stamped`` attribute lists the batches done before) when the TSA fails;
    the failed batch stays pending. ``archive`` must be opened as writer.
    ``access`` (a :class:`verify.tsa_client.TsaAccess`) gives TLS trust, the
    basic-auth password and retries. ``policy`` pins the TSA policy OID for this CA (kept in the CA history);
    a token with another policy is refused and its batch stays pending.
    """
    reporter = reporter or NullReporter()
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    stamped: list[dict] = []
    fp = ca_fingerprint(ca_pem)
    with archive.catalog.writing() as con:
        ca_history.adopt_settings_ca(con, archive.config.settings.get("timestamp"))
        ca_entry = ca_history.manifest_entry(ca_history.remember(con, ca_pem, tsa_url, policy=policy))
    reporter.start("stamp", None, "batches")
    try:
        with archive.catalog.reading() as con:
            pending_batches = stamps.open_batch_ids(con)
        for batch_id in pending_batches:
            reporter.info(f"retrying pending stamp batch {batch_id}")
            stamped.append(_finish(archive, batch_id, tsa_url, ca_pem, fp, stamped, timeout, ca_entry, access))
            reporter.advance("stamp")
        while True:
            batch_id = _seal_new_batch(archive, min_pending, all_, batch_size)
            if batch_id is None:
                break
            faults.hit("stamp_after_batch_row")
            stamped.append(_finish(archive, batch_id, tsa_url, ca_pem, fp, stamped, timeout, ca_entry, access))
            reporter.advance("stamp")
    finally:
        reporter.finish("stamp")
    return stamped


def _seal_new_batch(archive, min_pending: int, all_: bool, batch_size: int) -> int | None:
    """One transaction: the next batch's row (pending) and batch_id on its leaves; None when nothing to batch."""
    with archive.catalog.writing() as con:
        waiting = _pending(con)["total"]
        if waiting == 0 or (not all_ and waiting < min_pending):
            return None
        msgs = stamps.unbatched_messages(con, batch_size)
        room = batch_size - len(msgs)
        envs = []
        if room > 0:
            envs = stamps.unbatched_envelopes(con, room)
        room -= len(envs)
        evs = _event_items(con, None, room) if room > 0 else []
        leaves = [leaf_hash_message(bytes.fromhex(b)) for _, b in msgs]
        leaves += [leaf_hash_envelope(bytes.fromhex(s), bytes.fromhex(b)) for _, b, s in envs]
        leaves += [_leaf(*it) for it in evs]
        if not leaves:  # only envelopes of messages that do not exist: nothing provable
            return None
        root = merkle_root(leaves)
        batch_id = stamps.next_batch_id(con)
        first_msg = msgs[0][0] if msgs else None
        last_msg = msgs[-1][0] if msgs else None
        stamps.open_batch(con, batch_id, first_msg, last_msg, len(leaves), root.hex(), _utcnow())
        if msgs:
            # Exactly the selected rows: the first len(msgs) unbatched messages by msg_id.
            stamps.batch_messages_up_to(con, batch_id, last_msg)
        if envs:
            stamps.batch_envelopes_up_to(con, batch_id, envs[-1][0])
        if evs:
            events.batch_events_up_to(con, batch_id, evs[-1][2])
        return batch_id


def _finish(archive, batch_id: int, tsa_url: str, ca_pem: bytes, fp: str, stamped: list[dict], timeout: float,
            ca_entry: dict | None = None, access=None) -> dict:
    """Token, manifest and the stamped row for one pending batch."""
    with archive.catalog.reading() as con:
        row = stamps.sealed_batch(con, batch_id)
        items = _batch_items(con, batch_id)
        event_docs = _event_docs(con, batch_id)
    root_hex, leaf_count, first_msg, last_msg, created_at = row
    created_at = _aware(created_at)
    _check_sealed_root(batch_id, items, root_hex, leaf_count)
    root = bytes.fromhex(root_hex)
    medium_id = archive.active_medium_id()
    storage = archive.storage(medium_id)
    name = manifest_name(batch_id, root_hex)

    adopted = _adopt_manifest(archive, storage, name, batch_id, root, ca_pem, created_at)
    if adopted is not None:
        tsr, nonce, check = adopted
    else:
        tsr, nonce, check = _fetch_token(batch_id, leaf_count, root, tsa_url, ca_pem, created_at, stamped, timeout,
                                         ca_entry, access)
        manifest = _manifest(archive, batch_id, root_hex, items, tsr, nonce, tsa_url, fp, ca_entry, check, created_at,
                             event_docs)
        storage.put(name, crypto.seal_blob(manifest_key(archive), json.dumps(manifest, sort_keys=True).encode(),
                                           MANIFEST_CONTEXT))
        faults.hit("stamp_after_manifest")

    with archive.catalog.writing() as con:
        stamps.mark_batch_stamped(con, batch_id, token=tsr, tsa_url=tsa_url, ca_fingerprint=fp,
                                  gen_time=check.gen_time, serial=check.serial, nonce=str(nonce), manifest_name=name,
                                  medium_id=medium_id)
    marks.mark_batch(storage, archive.uuid, batch_id)  # after the commit: a high-water mark (RELIABILITY H2)
    return {
        "batch_id": batch_id,
        "leaf_count": leaf_count,
        "messages": sum(1 for k, _, _ in items if k == "message"),
        "envelopes": sum(1 for k, _, _ in items if k == "envelope"),
        "events": sum(1 for k, _, _ in items if k == "event"),
        "first_msg_id": first_msg,
        "last_msg_id": last_msg,
        "root": root_hex,
        "gen_time": check.gen_time,
        "serial": check.serial,
        "tsa_url": tsa_url,
        "manifest": name,
        "medium_id": medium_id,
    }


def _check_sealed_root(batch_id: int, items: list, root_hex: str, leaf_count: int) -> None:
    """Refuse a batch whose leaves in the catalog no longer give the root recorded when it was sealed."""
    leaves = item_leaves(items)
    if not leaves or len(leaves) != leaf_count or merkle_root(leaves).hex() != root_hex:
        raise IntegrityError(
            f"stamp batch {batch_id}: its messages/envelopes in the catalog no longer give the recorded root "
            f"{root_hex} ({len(leaves)} leaves, {leaf_count} recorded)", next_step=NextStep.FULL_VERIFY
        )


def _fetch_token(batch_id: int, leaf_count: int, root: bytes, tsa_url: str, ca_pem: bytes, created_at,
                 stamped: list[dict], timeout: float, ca_entry: dict | None, access):
    """(token, nonce, check) from the TSA, verified against the CA in use; a failure keeps the batch pending."""
    from .tsa_client import TsaError, request_stamp  # here: reading stamps (verify) needs no HTTP client

    try:
        tsr, nonce = request_stamp(tsa_url, root, timeout=timeout, access=access,
                                   policy=(ca_entry or {}).get("policy"))
    except TsaError as exc:
        err = type(exc)(  # a rejected login keeps its exit status
            f"stamp batch {batch_id} ({leaf_count} leaves) stays pending: {exc}",
            next_step=NextStep.RETRY_STAMPING, cause=exc,
        )
        err.stamped = stamped
        raise err from None
    faults.hit("stamp_after_token")
    check = verify_token(tsr, root, ca_pem, nonce=nonce, not_before=created_at, not_after=_utcnow(),
                         policy=(ca_entry or {}).get("policy"))
    if not check.ok:
        err = TsaError(
            f"stamp batch {batch_id} stays pending: the token from {tsa_url} does not verify "
            f"against the CA in use: {'; '.join(check.problems)}"
        )
        err.stamped = stamped
        raise err
    return tsr, nonce, check


def _event_docs(con, batch_id: int) -> dict[int, dict]:
    """The canonical JSON documents of a batch's stamped events by event_id (a manifest carries them, so that
    a catalog rebuilt from the media gets the events back: docs/formats.md §7)."""
    if not events.has_event_batches(con):
        return {}
    return {eid: json.loads(events.canonical_json(eid, at, kind, detail))
            for eid, at, kind, detail in events.stamped_event_rows(con, batch_id)}


def _manifest(archive, batch_id: int, root_hex: str, items: list, tsr: bytes, nonce, tsa_url: str, fp: str,
              ca_entry: dict | None, check, created_at, event_docs: dict[int, dict] | None = None) -> dict:
    """The content of a batch's sealed manifest; an event leaf carries its event's canonical document."""
    leaves = [manifest_leaf(it) for it in items]
    for leaf in leaves:
        doc = (event_docs or {}).get(leaf.get("event_id")) if leaf["kind"] == "event" else None
        if doc is not None:
            leaf["event"] = doc
    return {
        "archive": str(archive.uuid),
        "batch_id": batch_id,
        "root": root_hex,
        "leaves": leaves,
        "token": base64.b64encode(tsr).decode("ascii"),
        "nonce": str(nonce),
        "tsa_url": tsa_url,
        "ca_fingerprint": fp,
        "ca": ca_entry,
        "gen_time": check.gen_time.isoformat(),
        "created_at": created_at.isoformat() if created_at else None,
    }


def _adopt_manifest(archive, storage, name, batch_id, root, ca_pem, created_at):
    """(token, nonce, check) from a manifest a crashed run already wrote for this batch, else None."""
    if not storage.exists(name):
        return None
    manifest = _open_manifest(archive, storage.read(name), name)
    tsr = base64.b64decode(manifest.get("token") or "")
    nonce = int(manifest["nonce"]) if manifest.get("nonce") else None
    check = verify_token(tsr, root, ca_pem, nonce=nonce, not_before=created_at)
    if manifest.get("batch_id") != batch_id or manifest.get("root") != root.hex() or not check.ok:
        raise ObjectExistsError(
            f"{name} already exists on the active medium but is not a valid manifest of stamp batch {batch_id} "
            f"({'; '.join(check.problems) or 'other batch or root'})", next_step=NextStep.RERUN_STAMPING
        )
    return tsr, nonce, check
