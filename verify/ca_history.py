"""The archive's TSA CA history: every CA certificate it ever trusted, and when.

A row of ``tsa_cas`` (see migration ``m0040_tsa_ca_history``) is one trust
anchor: its DER, the PEM file it came from (anchor plus intermediates), its
subject and expiry, ``added_at``, ``retired_at`` and the TSA URLs it served.
Rows are never deleted by the toolkit: retiring keeps the certificate so
that batches stamped before the retirement keep verifying.

Rules a batch is held to (``verify --full``, ``export evidence``):

* it verifies against the CA whose fingerprint it records — never another;
* that CA is in the history, was added no later than the batch's genTime
  (``CLOCK_SKEW`` allowed: the CA is recorded just before the request, the
  TSA's clock may differ) and was not retired at genTime.

Archives from before the history kept one pinned CA in their settings
(``timestamp.ca_pem``). :func:`adopt_settings_ca` copies that CA into the
history, dated back to the earliest genTime of the batches stamped under it;
until some command has done that, a history that is empty falls back to
the settings CA (:func:`anchor_for`).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from toolkit.catalog import stamps, tsa_cas
from toolkit.errors import NextStep, UsageError

from .tokens import CLOCK_SKEW, ca_fingerprint, load_ca


@dataclass
class CaRecord:
    fingerprint: str
    pem: bytes
    subject: str | None = None
    not_after: dt.datetime | None = None
    added_at: dt.datetime | None = None   # None: the legacy settings CA, trusted with no recorded start
    retired_at: dt.datetime | None = None
    tsa_urls: list[str] = field(default_factory=list)
    policy: str | None = None   # the TSA policy OID pinned for tokens under this CA

    def as_dict(self) -> dict:
        return {"fingerprint": self.fingerprint, "subject": self.subject, "not_after": self.not_after,
                "added_at": self.added_at, "retired_at": self.retired_at, "tsa_urls": list(self.tsa_urls),
                "policy": self.policy, "pem": self.pem.decode("ascii")}


def _aware(t):
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def describe(pem: bytes) -> tuple[str, bytes, bytes, str, dt.datetime]:
    """(fingerprint, anchor DER, normalised PEM of the whole file, anchor subject, anchor notAfter)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    certs, norm = load_ca(pem)
    anchor = certs[0]
    return (ca_fingerprint(norm), anchor.public_bytes(Encoding.DER), norm, anchor.subject.rfc4514_string(),
            anchor.not_valid_after_utc)


def anchor_notes(pem: bytes, now: dt.datetime | None = None) -> tuple[str, list[str]]:
    """("ca" or "tsa", what a person adding this trust anchor should know): a certificate that is no CA (a TSA's
    own certificate pinned directly), or one expired or not yet valid (new stamps under it will be refused)."""
    from cryptography import x509

    now = now or _utcnow()
    certs, _ = load_ca(pem)
    anchor = certs[0]
    try:
        is_ca = anchor.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    notes = []
    if anchor.not_valid_after_utc < now:
        notes.append(f"the certificate expired on {anchor.not_valid_after_utc:%Y-%m-%d}: batches stamped while it was "
                     "valid verify under it, but a new token under it will be refused (its genTime lies after the expiry)")
    elif anchor.not_valid_before_utc > now:
        notes.append(f"the certificate is valid only from {anchor.not_valid_before_utc:%Y-%m-%d %H:%M}Z: a token "
                     "dated before that will be refused")
    if not is_ca:
        notes.append("this is no CA certificate (no basicConstraints CA:TRUE) but, by the look of it, a TSA's own: "
                     "tokens verify only while that TSA signs with this very certificate; a renewed TSA certificate "
                     "must be added again (pin the CA that issues it instead, when there is one)")
    return ("ca" if is_ca else "tsa"), notes


def load(con) -> dict[str, CaRecord]:
    """Every CA of the history, by fingerprint."""
    out = {}
    for fp, pem, subject, not_after, added, retired, urls, policy in tsa_cas.all_cas(con):
        try:
            url_list = list(json.loads(urls or "[]"))
        except ValueError:
            url_list = []
        out[fp] = CaRecord(fp, (pem or "").encode("ascii"), subject, _aware(not_after), _aware(added),
                           _aware(retired), url_list, policy)
    return out


def remember(con, pem: bytes, tsa_url: str | None = None, now: dt.datetime | None = None,
             policy: str | None = None) -> CaRecord:
    """Add ``pem`` to the history (or add ``tsa_url`` and new intermediates to a known CA); refuses a retired CA.

    Needs a writing session.

    ``policy`` pins the TSA policy OID for tokens under this CA; changing a
    pinned policy is refused once batches were stamped under it.

    A CA new to the history is dated ``now``, or earlier when batches already
    record it (an archive from before the history, or a CA re-added after
    it was removed by hand): then from the earliest genTime among them.
    """
    now = now or _utcnow()
    fp, der, norm, subject, not_after = describe(pem)
    row = tsa_cas.ca_state(con, fp)
    if row is not None:
        retired, urls, old_policy = row
        if policy and policy != old_policy:
            used = stamps.stamped_count_for_ca(con, fp)
            if old_policy and used:
                raise UsageError(f"the TSA CA {fp[:16]}… has policy {old_policy} pinned, not {policy}; "
                                 f"{used} batches already stamped under it carry that one")
            tsa_cas.set_policy(con, fp, policy)
        if retired is not None:
            raise UsageError(
                f"the TSA CA {fp[:16]}… ({subject}) was retired on {_aware(retired):%Y-%m-%d %H:%M:%S}Z; "
                "a retired CA is not trusted for new stamps (use another TSA/CA)"
            )
        _add_intermediates(con, fp, norm)
        url_list = list(json.loads(urls or "[]"))
        if tsa_url and tsa_url not in url_list:
            url_list.append(tsa_url)
            tsa_cas.set_tsa_urls(con, fp, json.dumps(url_list))
        return load(con)[fp]
    earliest = stamps.earliest_gen_time_for_ca(con, fp)
    added = min(now, _aware(earliest)) if earliest is not None else now
    tsa_cas.add_ca(con, fingerprint=fp, der=der, pem=norm.decode("ascii"), subject=subject, not_after=not_after,
                   added_at=added, tsa_urls_json=json.dumps([tsa_url] if tsa_url else []), policy=policy)
    return load(con)[fp]


def _add_intermediates(con, fp: str, pem: bytes) -> None:
    """Keep the intermediate CA certificates a file brings for a known anchor (never another self-signed root)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    stored_pem = tsa_cas.ca_pem(con, fp)
    stored = load_ca(stored_pem.encode())[0]
    have = {c.public_bytes(Encoding.DER) for c in stored}
    extra = [c for c in load_ca(pem)[0] if c.public_bytes(Encoding.DER) not in have and c.issuer != c.subject]
    if extra:
        merged = stored_pem.encode() + b"".join(c.public_bytes(Encoding.PEM) for c in extra)
        tsa_cas.set_pem(con, fp, merged.decode("ascii"))


def adopt_settings_ca(con, settings: dict | None) -> None:
    """Copy the CA pinned in the archive settings (before the history existed) into the history."""
    pem = ((settings or {}).get("ca_pem") or "").encode()
    if not pem:
        return
    try:
        fp = describe(pem)[0]
    except Exception:  # a damaged setting: verify reports the batches it leaves unproven
        return
    if tsa_cas.ca_known(con, fp):
        return
    try:
        remember(con, pem, (settings or {}).get("tsa_url"))
    except UsageError:
        pass


def resolve(con, fingerprint: str) -> str:
    """The full fingerprint of the CA that ``fingerprint`` names (full, or a unique prefix of ≥ 8 hex digits)."""
    want = fingerprint.replace(":", "").strip().lower()
    if len(want) < 8 or any(c not in "0123456789abcdef" for c in want):
        raise UsageError(f"{fingerprint!r} is not a SHA-256 fingerprint (hex, at least 8 digits)")
    found = tsa_cas.fingerprints_starting(con, want)
    if not found:
        raise UsageError(f"no TSA CA with fingerprint {want} in the archive's history", next_step=NextStep.LIST_TSA_CAS)
    if len(found) > 1:
        raise UsageError(f"{want} matches {len(found)} CAs; give more digits")
    return found[0]


def retire(con, fingerprint: str, now: dt.datetime | None = None) -> CaRecord:
    """Mark a CA retired from ``now``: batches stamped before keep verifying, later ones do not."""
    fp = resolve(con, fingerprint)
    rec = load(con)[fp]
    if rec.retired_at is not None:
        raise UsageError(f"the TSA CA {fp[:16]}… was already retired on {rec.retired_at:%Y-%m-%d %H:%M:%S}Z")
    tsa_cas.retire_ca(con, fp, now or _utcnow())
    return load(con)[fp]


def legacy_record(settings: dict | None) -> CaRecord | None:
    """The settings' pinned CA as a history entry with no start, or None."""
    pem = ((settings or {}).get("ca_pem") or "").encode()
    if not pem:
        return None
    try:
        fp, _der, norm, subject, not_after = describe(pem)
    except Exception:
        return None
    return CaRecord(fp, norm, subject, not_after, None, None, [u for u in [(settings or {}).get("tsa_url")] if u])


def anchor_for(history: dict[str, CaRecord], settings: dict | None, fingerprint: str | None) -> CaRecord | None:
    """The history entry a batch recording ``fingerprint`` verifies against (None: not in the history)."""
    if fingerprint and fingerprint in history:
        return history[fingerprint]
    if not history:
        legacy = legacy_record(settings)
        if legacy is not None and (fingerprint is None or legacy.fingerprint == fingerprint):
            return legacy
    return None


def trust_problem(rec: CaRecord, gen_time: dt.datetime | None) -> str | None:
    """Why ``rec`` was not trusted at ``gen_time``, or None."""
    if gen_time is None:
        return None
    g = _aware(gen_time)
    if rec.added_at is not None and g < rec.added_at - CLOCK_SKEW:
        return (f"CA: genTime {g:%Y-%m-%d %H:%M:%S}Z is before the CA {rec.fingerprint[:16]}… was trusted "
                f"({rec.added_at:%Y-%m-%d %H:%M:%S}Z)")
    if rec.retired_at is not None and g >= rec.retired_at:
        return (f"CA: stamped at {g:%Y-%m-%d %H:%M:%S}Z, after its CA {rec.fingerprint[:16]}… was retired "
                f"({rec.retired_at:%Y-%m-%d %H:%M:%S}Z)")
    return None


def manifest_entry(rec: CaRecord) -> dict:
    """What a sealed batch manifest keeps of its CA, so that ``db rebuild`` can bring the history back."""
    return {"fingerprint": rec.fingerprint, "pem": rec.pem.decode("ascii"),
            "added_at": rec.added_at.isoformat() if rec.added_at else None, "tsa_urls": list(rec.tsa_urls),
            "policy": rec.policy}


def restore_from_manifest(con, entry: dict, gen_time: dt.datetime | None) -> None:
    """Insert the CA a manifest carries into a rebuilt catalog (earliest ``added_at`` wins)."""
    pem = str(entry.get("pem") or "").encode()
    if not pem:
        return
    fp, der, norm, subject, not_after = describe(pem)
    added = _aware(dt.datetime.fromisoformat(entry["added_at"])) if entry.get("added_at") else _aware(gen_time)
    row = tsa_cas.ca_start(con, fp)
    urls = [u for u in entry.get("tsa_urls") or [] if isinstance(u, str)]
    if row is None:
        tsa_cas.add_ca(con, fingerprint=fp, der=der, pem=norm.decode("ascii"), subject=subject, not_after=not_after,
                       added_at=added or _utcnow(), tsa_urls_json=json.dumps(urls), policy=entry.get("policy"))
        return
    _add_intermediates(con, fp, norm)
    old_added, old_urls = row
    merged = list(json.loads(old_urls or "[]"))
    merged += [u for u in urls if u not in merged]
    if added is not None and (old_added is None or added < _aware(old_added)):
        old_added = added
    tsa_cas.set_start(con, fp, old_added, json.dumps(merged))
