"""Renewal chains: newer time-stamps over older ones, in the spirit of RFC 4998 evidence records.

A token proves its root only while its TSA certificate chain is valid (and
its hash algorithm strong). Before that runs out, ``renew`` stamps a new
Merkle tree whose leaves are, for each batch due, in batch order::

    leaf = SHA-256(batch root (32 bytes) ‖ SHA-256(DER of the batch's current token))

inner nodes as in every batch tree (RFC 9162: SHA-256(0x01 ‖ left ‖ right)).
The batch's *current token* is its own token, or the token of the last
renewal that covered it. Each renewal is kept in ``stamp_renewals`` (token,
TSA, CA fingerprint, genTime) with one ``renewal_links`` row per leaf, and
as a sealed manifest ``stamps/renewal-<id:08d>-<serial>.renewal`` on the
active medium.

A batch's chain is its own token followed by its renewals in order. It is
sound when every link verifies against the CA it records (trusted at its
genTime, see ``verify.ca_history``), every renewal leaf equals the rule above
over the previous link's token, the leaf and its path give the renewal's
root, and every renewal was made while the previous link was still valid.
A link is valid until the earliest notAfter among the certificates of its
token and of its CA file: the batch is *protected until* that time of the
newest link. :data:`WARN_AHEAD` before it, ``verify --full`` and
``timestamp status`` warn; ``timestamp renew`` (by default) renews exactly
those batches.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

from toolkit import crypto
from toolkit.catalog import stamps

from . import ca_history
from .merkle import inclusion_paths, merkle_root, root_from_path
from .tokens import ca_fingerprint, parse_fields, verify_token

WARN_AHEAD = dt.timedelta(days=90)
RENEWAL_PREFIX = "stamps/renewal-"
RENEWAL_SUFFIX = ".renewal"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(t):
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def renewal_leaf(batch_root: bytes, prev_token: bytes) -> bytes:
    """SHA-256(batch root ‖ SHA-256(previous token))."""
    return hashlib.sha256(batch_root + hashlib.sha256(prev_token).digest()).digest()


def token_expiry(tsr: bytes, ca_pem: bytes | None) -> dt.datetime | None:
    """The earliest notAfter among the certificates in the token and in its CA file (None when unreadable)."""
    from cryptography import x509

    from .tokens import load_ca

    ends = []
    try:
        resp = parse_fields(bytes(tsr)).response
        if resp is not None:
            ends += [x509.load_der_x509_certificate(d).not_valid_after_utc for d in resp.signed_data.certificates]
    except Exception:  # an unreadable token: verify reports it; no expiry from it
        pass
    if ca_pem:
        try:
            ends += [c.not_valid_after_utc for c in load_ca(ca_pem)[0]]
        except Exception:
            pass
    return min(ends) if ends else None


@dataclass
class Link:
    kind: str            # "batch" or "renewal"
    id: int
    token: bytes
    ca_fingerprint: str | None
    gen_time: dt.datetime | None
    tsa_url: str | None = None
    root: str | None = None          # the root the token stamps (batch root or renewal root)
    leaf: str | None = None          # renewal links: the leaf recorded for this batch
    leaf_index: int | None = None
    leaf_count: int | None = None
    path: list[bytes] = field(default_factory=list)
    expires: dt.datetime | None = None


def chains(con, history: dict, settings: dict | None) -> dict[int, list[Link]]:
    """Every stamped batch's chain: its own token, then its renewals in order (paths filled in)."""
    out: dict[int, list[Link]] = {}
    for bid, root, token, fp, gen, url in stamps.stamped_tokens(con):
        out[bid] = [Link("batch", bid, bytes(token), fp, _aware(gen), url, root)]
    for rid, root, token, fp, gen, url, count in stamps.renewals(con):
        links = stamps.renewal_links(con, rid)
        leaves = [bytes.fromhex(leaf) for _, _, leaf in links]
        paths = inclusion_paths(leaves) if leaves else []
        for (bid, idx, leaf), path in zip(links, paths):
            if bid in out:
                out[bid].append(Link("renewal", rid, bytes(token) if token else b"", fp, _aware(gen), url, root, leaf,
                                     idx, count, path))
    for links in out.values():
        for link in links:
            anchor = ca_history.anchor_for(history, settings, link.ca_fingerprint)
            link.expires = token_expiry(link.token, anchor.pem if anchor else None)
    return out


def check_chain(batch_root_hex: str, links: list[Link], history: dict, settings: dict | None, *,
                at: dt.datetime | None = None, crls: list[bytes] | None = None) -> list[str]:
    """Problems of one batch's renewal links (the batch's own token is checked by F06); ``at`` and
    ``crls`` as for F06: each renewal token is judged at that time against that revocation data."""
    problems = []
    for prev, link in zip(links, links[1:]):
        name = f"renewal {link.id}"
        want = renewal_leaf(bytes.fromhex(batch_root_hex), prev.token).hex()
        if link.leaf != want:
            problems.append(f"{name}: its leaf does not cover this batch (SHA-256(batch root ‖ SHA-256(token of "
                            f"{prev.kind} {prev.id})) is {want[:16]}…, the renewal records {str(link.leaf)[:16]}…)")
            continue
        try:
            got = root_from_path(bytes.fromhex(link.leaf), link.leaf_index, link.leaf_count, link.path)
        except (ValueError, TypeError) as exc:
            problems.append(f"{name}: its leaves do not form its tree ({exc})")
            continue
        if got.hex() != link.root:
            problems.append(f"{name}: its leaves give root {got.hex()[:16]}…, it records {str(link.root)[:16]}…")
            continue
        anchor = ca_history.anchor_for(history, settings, link.ca_fingerprint)
        if anchor is None:
            problems.append(f"{name}: its TSA CA {str(link.ca_fingerprint)[:16]}… is not in the archive's CA history")
            continue
        chk = verify_token(link.token, bytes.fromhex(link.root), anchor.pem, policy=anchor.policy, at=at, crls=crls)
        problems += [f"{name}: token rejected: {p}" for p in chk.problems]
        why = ca_history.trust_problem(anchor, chk.gen_time)
        if why:
            problems.append(f"{name}: {why}")
        if chk.gen_time and prev.expires and chk.gen_time >= prev.expires:
            problems.append(f"{name}: made at {chk.gen_time:%Y-%m-%d}, after the {prev.kind} {prev.id} token's "
                            f"certificates had expired ({prev.expires:%Y-%m-%d}); the chain is broken there")
    return problems


def protected_until(links: list[Link]) -> dt.datetime | None:
    return links[-1].expires if links else None


def due_batches(con, history, settings, *, before: dt.datetime | None, all_: bool, now: dt.datetime) -> list[int]:
    """Batches whose protection ends before ``before`` (default: now + WARN_AHEAD), or all stamped ones."""
    limit = before or (now + WARN_AHEAD)
    out = []
    for bid, links in chains(con, history, settings).items():
        until = protected_until(links)
        if all_ or until is None or until <= limit:
            out.append(bid)
    return out


def due_now(archive, *, before: dt.datetime | None = None, all_: bool = False) -> list[int]:
    """The batches :func:`renew` would renew now."""
    settings = archive.config.settings.get("timestamp")
    with archive.catalog.reading() as con:
        history = ca_history.load(con)
        return due_batches(con, history, settings, before=before, all_=all_, now=_utcnow())


def renew(archive, *, tsa_url: str, ca_pem: bytes, before: dt.datetime | None = None, all_: bool = False,
          policy: str | None = None, timeout: float = 30, access=None) -> dict | None:
    """Stamp one renewal over the batches due; returns its summary, or None when none is due.

    Raises :class:`TsaError` when the TSA fails or its token does not verify
    (nothing is recorded then; a rerun renews the same batches).
    """
    from .stamping import manifest_key, MANIFEST_CONTEXT
    from .tsa_client import TsaError, request_stamp  # here: checking renewals (verify) needs no HTTP client

    now = _utcnow()
    settings = archive.config.settings.get("timestamp")
    with archive.catalog.writing() as con:
        ca_history.adopt_settings_ca(con, settings)
        rec = ca_history.remember(con, ca_pem, tsa_url, policy=policy)
    with archive.catalog.reading() as con:
        history = ca_history.load(con)
        all_chains = chains(con, history, settings)
        due = due_batches(con, history, settings, before=before, all_=all_, now=now)
        roots = stamps.batch_roots(con)
    if not due:
        return None
    leaves, rows = [], []
    for i, bid in enumerate(due):
        current = all_chains[bid][-1]
        leaf = renewal_leaf(bytes.fromhex(roots[bid]), current.token)
        leaves.append(leaf)
        rows.append((i, bid, current.id if current.kind == "renewal" else None, leaf.hex()))
    root = merkle_root(leaves)
    tsr, nonce = request_stamp(tsa_url, root, timeout=timeout, access=access, policy=rec.policy)
    check = verify_token(tsr, root, rec.pem, nonce=nonce, not_before=now - dt.timedelta(minutes=1),
                         not_after=_utcnow(), policy=rec.policy)
    if not check.ok:
        raise TsaError(f"the renewal token from {tsa_url} does not verify against the CA in use: "
                       f"{'; '.join(check.problems)}; nothing recorded")
    with archive.catalog.reading() as con:
        rid = stamps.next_renewal_id(con)
    medium_id = archive.active_medium_id()
    name = f"{RENEWAL_PREFIX}{rid:08d}-{check.serial}{RENEWAL_SUFFIX}"
    manifest = {
        "archive": str(archive.uuid), "renewal_id": rid, "root": root.hex(),
        "links": [{"leaf_index": i, "batch_id": b, "prev_renewal_id": p, "leaf": leaf} for i, b, p, leaf in rows],
        "token": base64.b64encode(tsr).decode("ascii"), "nonce": str(nonce), "tsa_url": tsa_url,
        "ca_fingerprint": rec.fingerprint, "ca": ca_history.manifest_entry(rec), "gen_time": check.gen_time.isoformat(),
    }
    sealed = crypto.seal_blob(manifest_key(archive), json.dumps(manifest, sort_keys=True).encode(), MANIFEST_CONTEXT)
    archive.storage(medium_id).put(name, sealed)
    with archive.catalog.writing() as con:
        stamps.record_renewal(con, rid, root_hex=root.hex(), token=tsr, tsa_url=tsa_url,
                              ca_fingerprint=rec.fingerprint, gen_time=check.gen_time, serial=check.serial,
                              nonce=str(nonce), created_at=now, manifest_name=name, medium_id=medium_id, links=rows)
    return {"renewal_id": rid, "batches": due, "gen_time": check.gen_time, "serial": check.serial,
            "tsa_url": tsa_url, "ca_fingerprint": ca_fingerprint(rec.pem), "manifest": name,
            "protected_until": token_expiry(tsr, rec.pem)}


def restore_renewals(archive, problems: list) -> int:
    """``db rebuild``: renewals (and their CAs) back from the sealed renewal manifests on the media.

    A renewal whose links name batches the rebuilt catalog does not have is
    listed in ``problems`` (as dicts with ``batch_id`` and ``problem``).
    """
    from toolkit.errors import MailArchiveError

    from .stamping import MANIFEST_CONTEXT, manifest_key

    docs: dict[int, tuple[dict, str, int]] = {}
    for m in sorted(archive.config.media, key=lambda m: m.id):
        if m.state == "removed":
            continue
        try:
            storage = archive.storage(m.id)
            entries = [e for e in storage.list("stamps/") if e.name.startswith(RENEWAL_PREFIX) and e.name.endswith(RENEWAL_SUFFIX)]
        except MailArchiveError:
            continue
        for e in entries:
            try:
                doc = json.loads(crypto.open_blob(manifest_key(archive), storage.read(e.name), MANIFEST_CONTEXT,
                                                  what=f"renewal manifest {e.name}"))
                if doc.get("archive") != str(archive.uuid):
                    raise ValueError(f"belongs to archive {doc.get('archive')}")
                docs.setdefault(int(doc["renewal_id"]), (doc, e.name, m.id))
            except (MailArchiveError, ValueError, KeyError, TypeError) as exc:
                problems.append({"batch_id": None, "problem": f"renewal manifest {e.name}: {exc}"})
    with archive.catalog.writing() as con:
        have = stamps.batch_ids(con)
        for rid in sorted(docs):
            doc, name, medium_id = docs[rid]
            links = doc.get("links") or []
            missing = sorted({x["batch_id"] for x in links} - have)
            if missing:
                problems.append({"batch_id": missing[0], "problem": f"renewal {rid} names batches {missing} that were not rebuilt"})
            if doc.get("ca"):
                ca_history.restore_from_manifest(con, doc["ca"], _aware(dt.datetime.fromisoformat(doc["gen_time"])))
            token = base64.b64decode(doc.get("token") or "")
            stamps.record_renewal(
                con, rid, root_hex=doc["root"], token=token, tsa_url=doc.get("tsa_url"),
                ca_fingerprint=doc.get("ca_fingerprint"), gen_time=dt.datetime.fromisoformat(doc["gen_time"]),
                serial=parse_fields(token).serial if token else None, nonce=doc.get("nonce"), created_at=None,
                manifest_name=name, medium_id=medium_id,
                links=[(x["leaf_index"], x["batch_id"], x.get("prev_renewal_id"), x["leaf"]) for x in links])
    return len(docs)
