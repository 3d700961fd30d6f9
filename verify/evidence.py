"""Evidence bundles: one archived message with everything needed to prove it existed, unchanged, at genTime (docs/timestamps.md).

A bundle is a directory ``<msg_id>-<blob id prefix>/`` holding::

    message.eml     the mail, byte-exact (its SHA-256 is the blob id)
    root.bin        the 32-byte Merkle root of the message's stamp batch
    token.tsr       the whole RFC 3161 TimeStampResp (DER) over root.bin
    tsa-ca.pem      the CA certificate(s) the batch was stamped under (from the archive's CA history)
    evidence.json   the message's leaf, index and inclusion path, the batch, the token's fields
    SHA256SUMS      ``sha256sum -c`` input for the four files above
    VERIFY.txt      the steps below in words

A batch that was renewed (``verify.renewal``) also gets, per renewal link
``NN`` (01, 02, ... oldest first), a directory ``renewals/NN/`` with the
renewal's ``token.tsr``, ``root.bin``, ``tsa-ca.pem``, the inclusion path of
the batch's renewal leaf as ``path-K.bin`` files, and ``check.sh``: the
openssl/cat/cmp commands that recompute the leaf SHA-256(batch root ‖
SHA-256(previous token)), fold the path to ``root.bin`` and verify the
token. evidence.json lists the links under ``renewals``.

Checking one needs no archive and no key (:func:`verify_evidence`):

1. ``sha256sum message.eml`` = ``message.sha256`` in evidence.json (the blob id);
2. leaf = SHA-256(0x00 || blob id); folding the inclusion path (RFC 9162
   §2.1.3.2: inner nodes SHA-256(0x01 || left || right)) gives root.bin;
3. ``openssl ts -verify -in token.tsr -data root.bin -CAfile tsa-ca.pem -untrusted tsa-ca.pem``:
   the token stamps SHA-256(root.bin), signed by a TSA under that CA (``-untrusted`` lets openssl find
   a TSA or intermediate certificate that the TSA left out of its token in the CA file). The
   auditor compares the CA's fingerprint with the TSA's published one:
   ``tsa-ca.pem`` alone proves nothing (anyone can make a CA), so
   :func:`verify_evidence` fails a bundle unless a CA is given or the
   bundle's CA is trusted explicitly.
4. What evidence.json and SHA256SUMS say matches what they describe (sizes,
   header fields, token fields, hashes): docs/timestamps.md, "Evidence bundles".

:func:`export_evidence` writes bundles for a selection, each under a
temporary name renamed into place when complete, and ``evidence-index.json``
last (a run without it is incomplete; a rerun skips finished bundles).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import NextStep

from .merkle import leaf_hash_message, root_from_path

FORMAT = "mailarchive-evidence/1"
FILES = ("message.eml", "root.bin", "token.tsr", "tsa-ca.pem")
INDEX_NAME = "evidence-index.json"
LEAF_RULE = "SHA-256(0x00 || blob id)"
PATH_RULE = "RFC 9162 section 2.1.3.2; inner node = SHA-256(0x01 || left || right)"

VERIFY_TEXT = """\
How to check this evidence bundle (no archive and no key needed)

1. The mail is unchanged:
     sha256sum -c SHA256SUMS
     sha256sum message.eml      -> must equal "message.sha256" in evidence.json
2. The mail is a leaf of the stamped batch: leaf = SHA-256(0x00 || blob id);
   fold "path" in evidence.json from the leaf up (RFC 9162 section 2.1.3.2,
   inner node = SHA-256(0x01 || left || right), using "index" and "tree_size");
   the result must equal root.bin (hex in "batch.root").
3. The root existed at genTime, stamped by the TSA:
     openssl ts -verify -in token.tsr -data root.bin -CAfile tsa-ca.pem -untrusted tsa-ca.pem
   must print "Verification: OK". Compare the fingerprint of tsa-ca.pem
     openssl x509 -in tsa-ca.pem -noout -fingerprint -sha256
   with the one the TSA publishes.
4. Renewals (only when the directory renewals/ exists): each renewals/NN
   re-stamps the previous token (token.tsr, then renewals/01/token.tsr, ...)
   before that token's certificates expired. From this directory run
     sh renewals/NN/check.sh
   for NN = 01, 02, ... in order; each must end with "Verification: OK".
   The script only uses openssl, cat, printf and cmp: read it to see each
   step (leaf = SHA-256(root.bin || SHA-256(previous token)); the path folds
   with inner node = SHA-256(0x01 || left || right)). The renewal's
   "Time stamp" (openssl ts -reply -in renewals/NN/token.tsr -text) must be
   earlier than the "notAfter" of the previous link's certificates.
Or in one step:  mailarchive verify-evidence --ca-cert TSA-CA.pem THIS-DIRECTORY
   (TSA-CA.pem obtained from the TSA, not from this bundle; --trust-bundle-ca
   instead uses tsa-ca.pem once you have compared its fingerprint)
"""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _iso(t) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc).isoformat()


# -------------------------------------------------------------------------------------- check
@dataclass
class EvidenceCheck:
    path: str
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    msg_id: int | None = None
    blob_id: str | None = None
    batch_id: int | None = None
    root: str | None = None
    gen_time: str | None = None
    tsa_subject: str | None = None
    ca_fingerprint: str | None = None
    second_opinion: str | None = None
    trust: str | None = None   # what the token was checked against: "given CA", the bundle's CA, or "none"
    renewals: int = 0
    protected_until: str | None = None   # when the certificates of the newest token in the chain expire

    def as_dict(self) -> dict:
        return dict(self.__dict__)


TRUST_ANCHOR_MISSING = (
    "trust anchor not given: the token was checked only against the bundle's own tsa-ca.pem, which anyone "
    "can make; pass --ca-cert FILE with the TSA's CA certificate from a source you trust, or --trust-bundle-ca "
    "after comparing the bundle CA's fingerprint with the one the TSA publishes"
)


def verify_evidence(path: Path, ca_pem: bytes | None = None, trust_bundle_ca: bool = False, *,
                    at: dt.datetime | None = None, crls: list[bytes] | None = None) -> EvidenceCheck:
    """Check one bundle directory on its own; ``ca_pem`` replaces the bundle's CA (the one the auditor trusts).

    A bundle carries its own CA certificate, and a forger can make a CA and a
    valid token for any changed mail: without ``ca_pem`` the bundle never
    verifies (problem :data:`TRUST_ANCHOR_MISSING`) unless the caller says it
    trusts the bundle's CA (``trust_bundle_ca``). All other checks still run.
    ``at`` (verification time) and ``crls`` (revocation data for the TSA's
    chain) are those of :func:`verify.tokens.verify_token` (I16).
    Never raises for a damaged bundle: every failure is a problem string.
    """
    path = Path(path)
    res = EvidenceCheck(path=str(path))
    p = res.problems
    ev = _read_evidence_json(path, res)
    if ev is None:
        return res
    files = _read_bundle_files(path, ev, p)
    if "message.eml" not in files or "root.bin" not in files or "token.tsr" not in files:
        return res
    root = _check_inclusion(ev, files, p)
    _check_sums(path, files, p)
    _check_description(ev, files, p)
    ca = ca_pem if ca_pem is not None else files.get("tsa-ca.pem")
    if not ca:
        p.append("no CA certificate to verify the token against (tsa-ca.pem missing)")
        return res
    _check_token(ev, files["token.tsr"], root, ca, res, at, crls)
    _check_renewals(ev.get("renewals") or [], files, root, ca_pem, res, at, crls)
    if ca_pem is None and not trust_bundle_ca:
        p.append(TRUST_ANCHOR_MISSING)
    res.trust = "given CA" if ca_pem is not None else ("bundle CA (--trust-bundle-ca)" if trust_bundle_ca else "none")
    res.ok = not p
    return res


def _read_evidence_json(path: Path, res: EvidenceCheck) -> dict | None:
    """evidence.json of the bundle (its ids copied into ``res``), or None when it cannot be read."""
    p = res.problems
    try:
        ev = json.loads((path / "evidence.json").read_text(encoding="utf-8"))
        if ev.get("format") != FORMAT:
            p.append(f"evidence.json: format {ev.get('format')!r}, expected {FORMAT}")
        msg, _leaf, batch, _token = ev["message"], ev["leaf"], ev["batch"], ev["token"]  # all four are required
        res.msg_id, res.blob_id, res.batch_id, res.root = msg.get("msg_id"), msg["sha256"], batch.get("batch_id"), batch["root"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        p.append(f"evidence.json unreadable: {type(exc).__name__}: {exc}")
        return None
    return ev


def _read_bundle_files(path: Path, ev: dict, p: list[str]) -> dict[str, bytes]:
    """The bundle's files (the four fixed ones and the renewals/ ones evidence.json lists), each checked
    against its SHA-256 in evidence.json."""
    files: dict[str, bytes] = {}
    extra = [n for n in (ev.get("files") or {}) if isinstance(n, str) and n.startswith("renewals/") and ".." not in n]
    for name in (*FILES, *extra):
        try:
            files[name] = (path / name).read_bytes()
        except OSError as exc:
            p.append(f"{name}: cannot be read ({exc.strerror or exc})")
    for name, want in (ev.get("files") or {}).items():
        if name in files and _sha(files[name]) != want:
            p.append(f"{name}: SHA-256 {_sha(files[name])[:16]}… differs from evidence.json's {str(want)[:16]}…")
    return files


def _check_inclusion(ev: dict, files: dict[str, bytes], p: list[str]) -> bytes:
    """The mail is the stamped blob and its leaf and path give root.bin; returns root.bin."""
    msg, leaf, batch = ev["message"], ev["leaf"], ev["batch"]
    root = files["root.bin"]
    try:
        blob = bytes.fromhex(msg["sha256"])
        mail_sha = hashlib.sha256(files["message.eml"]).digest()
        if mail_sha != blob:
            p.append(f"message.eml: SHA-256 {mail_sha.hex()[:16]}… is not the stamped blob id {blob.hex()[:16]}… (mail changed)")
        leaf_hash = leaf_hash_message(blob)
        if leaf.get("hash") and leaf["hash"] != leaf_hash.hex():
            p.append("leaf: evidence.json's leaf hash is not SHA-256(0x00 || blob id)")
        path_bytes = [bytes.fromhex(x) for x in ev["path"]]
        computed = root_from_path(leaf_hash, int(leaf["index"]), int(leaf["tree_size"]), path_bytes)
        if computed != root:
            p.append(f"inclusion path: the mail's leaf and path give root {computed.hex()[:16]}…, "
                     f"root.bin is {root.hex()[:16]}… (path or mail changed)")
        if root.hex() != batch["root"]:
            p.append("root.bin differs from evidence.json's batch.root")
    except (ValueError, KeyError, TypeError) as exc:
        p.append(f"inclusion path: cannot be evaluated ({type(exc).__name__}: {exc})")
    return root


def _check_sums(path: Path, files: dict[str, bytes], p: list[str]) -> None:
    """SHA256SUMS (the ``sha256sum -c`` way of step 1) names exactly the bundle's hashed files, with their
    hashes: a bundle whose two lists of hashes disagree is damaged, whichever the auditor uses."""
    try:
        text = (path / "SHA256SUMS").read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        p.append(f"SHA256SUMS: cannot be read ({getattr(exc, 'strerror', None) or exc})")
        return
    listed: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            p.append(f"SHA256SUMS: line {n} is not 'SHA-256  NAME'")
            continue
        listed[name] = digest.lower()
    for name, data in files.items():
        if name not in listed:
            p.append(f"SHA256SUMS: {name} is not listed")
        elif listed[name] != _sha(data):
            p.append(f"SHA256SUMS: the hash of {name} is not the file's (SHA256SUMS or {name} changed)")
    for name in sorted(set(listed) - set(files)):
        p.append(f"SHA256SUMS: lists {name}, which is not a file of this bundle")


def _check_description(ev: dict, files: dict[str, bytes], p: list[str]) -> None:
    """What evidence.json says about the mail, the batch and the token matches what they are: its size,
    the header fields (read from message.eml as the import read them: toolkit.headers.header_fields), the
    token's imprint, the tree size and the bundle CA's fingerprint. The mail and the token are the proof;
    a description that differs from them was changed after export (or was never true)."""
    from toolkit.headers import header_fields

    from .tokens import ca_fingerprint

    msg, leaf, batch, tok = ev["message"], ev["leaf"], ev["batch"], ev["token"]
    mail = files["message.eml"]
    if msg.get("size") is not None and msg["size"] != len(mail):
        p.append(f"evidence.json: message.size {msg['size']} is not the mail's {len(mail)} bytes")
    meta = header_fields(mail)  # the fields scan() gives, without hashing the body again
    sent = _iso(meta.sent_date) if meta.sent_date is not None else None
    for key, value in (("message_id", meta.message_id), ("subject", meta.subject), ("from", meta.from_addr),
                       ("sent_date", sent)):
        if key in msg and msg[key] != value:
            p.append(f"evidence.json: message.{key} {msg[key]!r} is not the mail's {value!r}")
    for where, value, want in (("leaf.rule", leaf.get("rule"), LEAF_RULE), ("path_rule", ev.get("path_rule"), PATH_RULE)):
        if value is not None and value != want:
            p.append(f"evidence.json: {where} {value!r} is not this format's {want!r}")
    if tok.get("imprint") is not None and tok["imprint"] != _sha(files["root.bin"]):
        p.append("evidence.json: token.imprint is not SHA-256(root.bin)")
    if batch.get("leaf_count") is not None and leaf.get("tree_size") is not None and batch["leaf_count"] != leaf["tree_size"]:
        p.append(f"evidence.json: batch.leaf_count {batch['leaf_count']} is not leaf.tree_size {leaf['tree_size']}")
    if tok.get("ca_fingerprint") and files.get("tsa-ca.pem"):
        try:
            if ca_fingerprint(files["tsa-ca.pem"]) != tok["ca_fingerprint"]:
                p.append("evidence.json: token.ca_fingerprint is not tsa-ca.pem's")
        except Exception:  # an unreadable CA is reported by the token check
            pass


def _check_token(ev: dict, token: bytes, root: bytes, ca: bytes, res: EvidenceCheck, at=None, crls=None) -> None:
    """The token stamps root.bin under ``ca``, not before the mail was archived, at evidence.json's genTime."""
    from .tokens import ca_fingerprint, verify_token

    p, msg, tok = res.problems, ev["message"], ev["token"]
    try:
        res.ca_fingerprint = ca_fingerprint(ca)
    except Exception as exc:  # not a certificate: verify_token says so too
        res.ca_fingerprint = None
        p.append(f"CA: unreadable ({type(exc).__name__})")
    not_before = None
    if msg.get("archived_at"):
        try:
            not_before = dt.datetime.fromisoformat(msg["archived_at"])
        except ValueError:
            p.append("evidence.json: message.archived_at is not an ISO time")
    chk = verify_token(token, root, ca, not_before=not_before, at=at, crls=crls)
    for key, value in (("serial", chk.serial), ("policy", chk.policy), ("tsa", chk.tsa_subject)):
        if value is not None and tok.get(key) is not None and str(tok[key]) != value:
            p.append(f"evidence.json: token.{key} {tok[key]!r} is not the token's {value!r} (evidence.json changed)")
    res.second_opinion = chk.second_opinion
    res.tsa_subject = chk.tsa_subject
    res.gen_time = chk.gen_time.isoformat() if chk.gen_time else None
    p.extend(f"token: {x}" for x in chk.problems)
    if chk.gen_time and tok.get("gen_time"):
        try:
            if abs(dt.datetime.fromisoformat(tok["gen_time"]) - chk.gen_time) > dt.timedelta(seconds=1):
                p.append(f"token: genTime {chk.gen_time.isoformat()} differs from evidence.json's {tok['gen_time']}")
        except (ValueError, TypeError):
            p.append("evidence.json: token.gen_time is not an ISO time")


def _check_renewals(entries: list, files: dict, batch_root: bytes, ca_pem: bytes | None, res: "EvidenceCheck",
                    at=None, crls=None) -> None:
    """Each renewal link: leaf over the previous token, path to its root, token under the CA (at ``at``,
    against ``crls``, as the batch's own token), made in time."""
    from .renewal import renewal_leaf, token_expiry
    from .tokens import verify_token

    p = res.problems
    prev_token, prev_ca = files.get("token.tsr", b""), ca_pem if ca_pem is not None else files.get("tsa-ca.pem")
    res.protected_until = _iso(token_expiry(prev_token, prev_ca))
    for n, e in enumerate(entries, 1):
        d = f"renewals/{n:02d}"
        token, rroot = files.get(f"{d}/token.tsr"), files.get(f"{d}/root.bin")
        ca = ca_pem if ca_pem is not None else files.get(f"{d}/tsa-ca.pem")
        if not token or not rroot or not ca:
            p.append(f"{d}: token.tsr, root.bin or tsa-ca.pem missing")
            return
        try:
            leaf = renewal_leaf(batch_root, prev_token)
            if e.get("leaf") and e["leaf"] != leaf.hex():
                p.append(f"{d}: the renewal leaf does not cover this batch (SHA-256(root ‖ SHA-256(previous token)) "
                         f"is {leaf.hex()[:16]}…, evidence.json has {str(e['leaf'])[:16]}…)")
            got = root_from_path(leaf, int(e["index"]), int(e["tree_size"]), [bytes.fromhex(x) for x in e["path"]])
            if got != rroot:
                p.append(f"{d}: the leaf over the previous token and its path give {got.hex()[:16]}…, "
                         f"root.bin is {rroot.hex()[:16]}… (the renewal does not cover this batch)")
        except (KeyError, ValueError, TypeError) as exc:
            p.append(f"{d}: inclusion path cannot be evaluated ({type(exc).__name__}: {exc})")
        chk = verify_token(token, rroot, ca, at=at, crls=crls)
        p.extend(f"{d}: token: {x}" for x in chk.problems)
        expires = token_expiry(prev_token, prev_ca)
        if chk.gen_time and expires and chk.gen_time >= expires:
            p.append(f"{d}: made at {chk.gen_time.isoformat()}, after the previous token's certificates expired "
                     f"({expires.isoformat()})")
        prev_token, prev_ca = token, ca
        res.protected_until = _iso(token_expiry(token, ca))
    res.renewals = len(entries)


def _fold_steps(index: int, size: int, path: list[bytes]) -> list[str]:
    """For each path element, which side the sibling goes: "L" (sibling ‖ node) or "R" (node ‖ sibling)."""
    fn, sn, out = index, size - 1, []
    for _ in path:
        if fn & 1 or fn == sn:
            out.append("L")
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            out.append("R")
        fn, sn = fn >> 1, sn >> 1
    return out


def _check_script(nn: str, prev: str, steps: list[str]) -> str:
    lines = [
        "#!/bin/sh",
        f"# Renewal link {nn}: run from the bundle directory (sh renewals/{nn}/check.sh).",
        "set -e",
        f"d=renewals/{nn}",
        f"openssl dgst -sha256 -binary {prev} > $d/prev.sha256",
        "cat root.bin $d/prev.sha256 | openssl dgst -sha256 -binary > $d/node.bin",
    ]
    for k, side in enumerate(steps):
        pair = f"$d/path-{k}.bin $d/node.bin" if side == "L" else f"$d/node.bin $d/path-{k}.bin"
        lines.append(f"{{ printf '\\001'; cat {pair}; }} | openssl dgst -sha256 -binary > $d/node.tmp && mv $d/node.tmp $d/node.bin")
    lines += ["cmp $d/node.bin $d/root.bin",
              "openssl ts -verify -in $d/token.tsr -data $d/root.bin -CAfile $d/tsa-ca.pem -untrusted $d/tsa-ca.pem", ""]
    return "\n".join(lines)


def _renewal_files(files: dict, links: list, history: dict, settings) -> list[dict]:
    """Add renewals/NN/* for each renewal link of a batch; returns their evidence.json entries."""
    from . import ca_history

    out = []
    prev = "token.tsr"
    for n, link in enumerate(links, 1):
        nn = f"{n:02d}"
        anchor = ca_history.anchor_for(history, settings, link.ca_fingerprint)
        d = f"renewals/{nn}"
        files[f"{d}/token.tsr"] = link.token
        files[f"{d}/root.bin"] = bytes.fromhex(link.root)
        files[f"{d}/tsa-ca.pem"] = anchor.pem if anchor else b""
        for k, p in enumerate(link.path):
            files[f"{d}/path-{k}.bin"] = p
        files[f"{d}/check.sh"] = _check_script(nn, prev, _fold_steps(link.leaf_index, link.leaf_count, link.path)).encode()
        out.append({"dir": d, "renewal_id": link.id, "leaf": link.leaf, "index": link.leaf_index,
                    "tree_size": link.leaf_count, "path": [p.hex() for p in link.path], "root": link.root,
                    "gen_time": _iso(link.gen_time), "tsa_url": link.tsa_url, "ca_fingerprint": link.ca_fingerprint,
                    "previous_token": prev, "expires": _iso(link.expires)})
        prev = f"{d}/token.tsr"
    return out


def find_bundles(path: Path) -> list[Path]:
    """``path`` itself when it is a bundle, else the bundles directly inside it."""
    path = Path(path)
    if (path / "evidence.json").exists():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_dir() and (p / "evidence.json").exists())
    return []


# -------------------------------------------------------------------------------------- export
def _write_bundle(final: Path, files: dict[str, bytes], mode: int = 0o600) -> None:
    from exporters.naming import dir_mode, make_dirs, open_exclusive

    tmp = final.with_name(f".{final.name}.tmp")
    if tmp.is_symlink():
        raise OSError(f"refusing to write {tmp}: it is a symlink")
    if tmp.exists():
        shutil.rmtree(tmp)
    make_dirs(tmp.parent, tmp, dmode=dir_mode(mode))  # never through a symlink
    for name, data in files.items():
        if (tmp / name).parent != tmp:
            make_dirs(tmp, (tmp / name).parent, dmode=dir_mode(mode))  # renewals/NN/, never through a symlink
        with open_exclusive(tmp, tmp / name, mode=mode) as f:  # O_NOFOLLOW|O_EXCL
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    os.rename(tmp, final)   # a directory rename onto an existing non-empty dir fails: never overwrites


def export_evidence(archive, dest: Path, where: str | None = None, params: list | None = None, reporter=None,
                    mode: int = 0o600) -> dict:
    """Write one bundle per selected message in a stamped batch; returns the summary.

    Messages not yet in a stamped batch, or whose batch no longer verifies
    from the catalog (root or token), are listed under ``errors`` and get no bundle.
    """
    from toolkit.places import refuse_overlap

    refuse_overlap(archive, dest, "export evidence", around=False)  # never plaintext into a medium or the home
    from toolkit.reporter import NullReporter
    from toolkit.retrieval import read_messages, select_messages

    from exporters.layout import make_dest
    from exporters.naming import refuse_link, replace_file

    reporter = reporter or NullReporter()
    dest = make_dest(dest, "evidence", mode)
    refuse_link(dest / INDEX_NAME)
    refuse_link(dest / f".{INDEX_NAME}.tmp")
    selection = select_messages(archive, where, params)
    summary = {"dest": str(dest), "selected": len(selection), "written": 0, "already_present": 0,
               "bundles": [], "errors": _purged_selected(archive, where, params)}
    state = _EvidenceState.load(archive, [s.msg_id for s in selection])
    reporter.start("evidence", len(selection), "messages")
    for batch, group in state.by_batch(selection):  # one batch's tree at a time (docs/reliability.md K8)
        state.open_batch(archive, batch)
        usable = batch is not None and "error" not in state.batches[batch]
        for sm, data in (read_messages(archive, group) if usable else ((sm, None) for sm in group)):
            reporter.advance("evidence")
            _export_one(archive, dest, sm, data, state, summary, mode)
        state.close_batch(batch)
    reporter.finish("evidence")
    summary["bundles"].sort()  # by msg_id: the names begin with it, zero-padded
    summary["errors"].sort(key=lambda e: e["msg_id"])
    index_doc = {"format": FORMAT, "archive": str(archive.uuid), "created": _iso(dt.datetime.now(dt.timezone.utc)),
                 "where": where, "bundles": summary["bundles"], "errors": summary["errors"]}
    replace_file(dest, dest / INDEX_NAME, (json.dumps(index_doc, indent=2) + "\n").encode("utf-8"), mode=mode,
                 tmp=dest / f".{INDEX_NAME}.tmp")
    return summary


def _purged_selected(archive, where: str | None, params: list | None) -> list[dict]:
    """An error entry for each purged mail the condition names by msg_id, blob_id or batch_id: only its
    tombstone is left, there is no mail to prove (docs/retention.md "Purge and tombstones")."""
    from toolkit.catalog import purge_rows

    with archive.catalog.querying() as session:
        found = purge_rows.tombstones_matching(session, where, params)
    return [{"msg_id": m, "error": f"purged by approved deletion request {rid} on {_iso(at)}: only its tombstone "
                                   "is left, no mail to prove"} for m, rid, at in found]


@dataclass
class _EvidenceState:
    """What the catalog says about the selection's batches. The batches' rows are read at the start; a batch's
    leaves and tree only when its messages' turn comes (:meth:`open_batch`), checked (root, token) before any of
    its bundles, and dropped after them (:meth:`close_batch`): a selection spread over every batch of a large
    archive holds one batch's tree, not all of them (docs/reliability.md K8)."""

    settings: dict
    history: dict
    chains: dict
    meta: dict        # msg_id → (batch_id, archived_at, from_addr)
    batches: dict     # batch_id → {"row"} (+ "levels", "index", "ca_pem", "check" while open) or {"error"}

    @classmethod
    def load(cls, archive, ids: list[int]) -> "_EvidenceState":
        from toolkit.catalog import reads, stamps

        from . import ca_history, renewal

        settings = archive.config.settings.get("timestamp") or {}
        with archive.catalog.reading() as con:
            history = ca_history.load(con)
            chains = renewal.chains(con, history, settings)
            meta = {row[0]: row[1:] for row in reads.message_batches(con, ids)}
            batches: dict[int, dict] = {}
            for b in sorted({m[0] for m in meta.values() if m[0] is not None}):
                row = stamps.batch_for_evidence(con, b)
                if row is None or row[0] != "stamped" or row[2] is None:
                    batches[b] = {"error": f"stamp batch {b} is not stamped yet", "next_step": NextStep.STAMP_ALL}
                else:
                    batches[b] = {"row": row}
        return cls(settings, history, chains, meta, batches)

    def by_batch(self, selection: list) -> list[tuple[int | None, list]]:
        """The selection grouped by stamp batch (in batch order, the unbatched last), each group in the
        selection's own order (pack order: each pack is opened once per batch)."""
        groups: dict[int | None, list] = {}
        for sm in selection:
            groups.setdefault(self.meta.get(sm.msg_id, (None,))[0], []).append(sm)
        return sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))

    def open_batch(self, archive, b: int | None) -> None:
        """Read batch ``b``'s leaves into its tree and check it (root, token); a failure becomes its error."""
        from toolkit.catalog import stamps

        from .merkle import merkle_levels
        from .stamping import batch_leaves

        info = self.batches.get(b)
        if info is None or "error" in info:
            return
        with archive.catalog.reading() as con:
            leaves = [h for _, h in batch_leaves(con, b)]
            order = stamps.batch_message_ids(con, b)
        info["levels"] = merkle_levels(leaves) if leaves else [[]]
        info["index"] = {m: i for i, m in enumerate(order)}
        del leaves, order
        self._check_batch(b, info)

    def close_batch(self, b: int | None) -> None:
        info = self.batches.get(b)
        if info is not None:
            for k in ("levels", "index"):
                info.pop(k, None)

    def _check_batch(self, b: int, info: dict) -> None:
        """The batch's leaves still give its root and its token verifies under a CA trusted then; else an error."""
        from . import ca_history
        from .tokens import verify_token

        status, root_hex, token, gen_time, serial, tsa_url, fp, created, leaf_count = info["row"]
        if not info["levels"][0] or info["levels"][-1][0].hex() != root_hex:
            info["error"] = f"stamp batch {b}: the catalog no longer gives its stamped root; no evidence exported"
            info["next_step"] = NextStep.FULL_VERIFY_FIRST
            return
        anchor = ca_history.anchor_for(self.history, self.settings, fp)
        if anchor is None:
            info["error"] = f"stamp batch {b}: its TSA CA {(fp or '?')[:16]}… is not in the archive's CA history"
            info["next_step"] = NextStep.SEE_TSA_CAS
            return
        chk = verify_token(bytes(token), bytes.fromhex(root_hex), anchor.pem, policy=anchor.policy)
        why = ca_history.trust_problem(anchor, chk.gen_time)
        if not chk.ok or why:
            info["error"] = f"stamp batch {b}: its token does not verify: {'; '.join(chk.problems + [why] if why else chk.problems)}"
            return
        info["ca_pem"] = anchor.pem
        info["check"] = chk


def _export_one(archive, dest: Path, sm, data, state: _EvidenceState, summary: dict, mode: int) -> None:
    """The bundle of one selected message, or its entry under ``errors``."""
    batch, archived_at, from_addr = state.meta.get(sm.msg_id, (None, None, None))
    name = f"{sm.msg_id:08d}-{sm.blob_id[:12]}"
    error = step = None
    final = dest / name
    if batch is None:
        error, step = "not in a stamp batch yet", NextStep.STAMP_ALL
    elif "error" in state.batches[batch]:
        error, step = state.batches[batch]["error"], state.batches[batch].get("next_step")
    elif isinstance(data, Exception):
        error = str(data)
    elif final.is_symlink():
        error = f"{final}: a symlink is in its place; not followed"
    elif final.exists():
        summary["already_present"] += 1
        summary["bundles"].append(name)
        return
    else:
        files = _bundle_files(archive, sm, data, batch, archived_at, from_addr, state)
        if files is None:
            error = "the mail or its path does not give the stamped root"
        else:
            try:
                _write_bundle(final, files, mode)
            except OSError as exc:
                error = f"{final}: {exc.strerror or exc}"
    if error is not None:
        summary["errors"].append({"msg_id": sm.msg_id, "error": error, **({"next_step": step.value} if step else {})})
        return
    summary["written"] += 1
    summary["bundles"].append(name)


def _bundle_files(archive, sm, data: bytes, batch: int, archived_at, from_addr, state: _EvidenceState) -> dict | None:
    """The files of one bundle (evidence.json, SHA256SUMS, VERIFY.txt included); None when the mail or its
    path does not give the batch's stamped root."""
    from .merkle import path_in_levels
    from .tokens import ca_fingerprint

    info = state.batches[batch]
    status, root_hex, token, gen_time, serial, tsa_url, fp, created, leaf_count = info["row"]
    index = info["index"][sm.msg_id]
    size = len(info["levels"][0])
    path = path_in_levels(info["levels"], index)
    blob = bytes.fromhex(sm.blob_id)
    if hashlib.sha256(data).digest() != blob or root_from_path(leaf_hash_message(blob), index, size, path).hex() != root_hex:
        return None
    chk = info["check"]
    ca_pem = info["ca_pem"]
    files = {
        "message.eml": data,
        "root.bin": bytes.fromhex(root_hex),
        "token.tsr": bytes(token),
        "tsa-ca.pem": ca_pem,
    }
    ev = {
        "format": FORMAT,
        "archive": {"uuid": str(archive.uuid), "name": archive.config.name},
        "message": {"msg_id": sm.msg_id, "sha256": sm.blob_id, "size": sm.size, "message_id": sm.message_id,
                    "subject": sm.subject, "from": from_addr, "sent_date": _iso(sm.sent_date),
                    "archived_at": _iso(archived_at)},
        "leaf": {"kind": "message", "rule": LEAF_RULE, "hash": leaf_hash_message(blob).hex(),
                 "index": index, "tree_size": size},
        "path": [h.hex() for h in path],
        "path_rule": PATH_RULE,
        "batch": {"batch_id": batch, "root": root_hex, "leaf_count": leaf_count, "sealed_at": _iso(created)},
        "token": {"file": "token.tsr", "gen_time": _iso(chk.gen_time), "serial": chk.serial, "policy": chk.policy,
                  "tsa": chk.tsa_subject, "tsa_url": tsa_url, "imprint": _sha(bytes.fromhex(root_hex)),
                  "ca_file": "tsa-ca.pem", "ca_fingerprint": ca_fingerprint(ca_pem)},
        "files": {n: _sha(d) for n, d in files.items()},
    }
    ev["renewals"] = _renewal_files(files, state.chains.get(batch, [])[1:], state.history, state.settings)
    ev["files"] = {n: _sha(d) for n, d in files.items()}
    files["evidence.json"] = (json.dumps(ev, indent=2, ensure_ascii=False) + "\n").encode()
    files["SHA256SUMS"] = "".join(f"{_sha(d)}  {n}\n" for n, d in files.items() if n != "evidence.json").encode()
    files["VERIFY.txt"] = VERIFY_TEXT.encode()
    return files
