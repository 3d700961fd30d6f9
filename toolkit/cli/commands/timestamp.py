"""``mailarchive timestamp configure | run | status | ca list|add|retire`` (docs/timestamps.md).

Every CA certificate the archive trusts is kept in its CA history (the
catalog's ``tsa_cas``; see ``verify.ca_history``): ``configure`` and
``ca add`` add to it, ``run --ca-cert F`` adds F, ``ca retire`` ends a CA's
trust from now on. Each batch records the CA it was stamped under.
"""
from __future__ import annotations

from pathlib import Path

import click

from ...catalog import stamps
from ...errors import UsageError
from ..main import cli, command, pass_ctx, subgroup

timestamp_group = subgroup(
    cli, "timestamp",
    "RFC 3161 time-stamps: unstamped mail is stamped in Merkle batches by a time-stamping authority (TSA).",
)


def _read_ca(path: Path) -> str:
    from verify.tokens import load_ca

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the CA certificate {path}: {exc.strerror or exc}") from None
    try:
        _, pem = load_ca(data)
    except Exception as exc:  # cryptography's ValueError for anything not a certificate
        raise UsageError(f"{path} holds no readable X.509 certificate (PEM or DER): {exc}") from None
    return pem.decode("ascii")


def _oid(value: str | None) -> str | None:
    import re

    if value is not None and not re.fullmatch(r"[0-2](\.(0|[1-9][0-9]*))+", value):
        raise UsageError(f"--policy {value!r} is not a dotted OID such as 1.2.3.4")
    return value


PASSWORD_ENV = "MAILARCHIVE_TSA_PASSWORD"


def _tls_pem(path: Path | None) -> str | None:
    if path is None:
        return None
    from verify.tokens import load_ca

    try:
        return load_ca(Path(path).read_bytes())[1].decode("ascii")
    except (OSError, ValueError) as exc:
        raise UsageError(f"--tls-ca-file {path}: not a readable X.509 certificate (PEM or DER): {exc}") from None


def _access(conf: dict, url: str, tls_ca_file: Path | None, password_file: Path | None, retries: int):
    """How to reach the TSA: TLS trust (the option, else the configured one), basic-auth password, retries."""
    import os
    import urllib.parse

    from verify.tsa_client import TsaAccess

    from verify.tsa_client import check_tsa_url

    check_tsa_url(url)
    tls = _tls_pem(tls_ca_file) or conf.get("tls_ca_pem")
    password = None
    if password_file is not None:
        try:
            password = Path(password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise UsageError(f"cannot read the password file {password_file}: {exc.strerror}") from None
    elif urllib.parse.urlsplit(url).username is not None:
        password = os.environ.get(PASSWORD_ENV) or None
    return TsaAccess(tls_ca_pem=tls.encode() if tls else None, password=password, retries=retries)


def _net_options(f):
    """--tls-ca-file, --password-file, --retries (shared by run and renew)."""
    f = click.option("--retries", type=click.IntRange(min=0, max=10), default=2, show_default=True,
                     help="Retries after a connection failure, timeout, HTTP 429/5xx or a 'waiting' answer "
                          "(1 s, 2 s, 4 s, ... apart).")(f)
    f = click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help=f"Basic-auth password for the user in the TSA URL (https://USER@host/...); else ${PASSWORD_ENV}.")(f)
    f = click.option("--tls-ca-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
                     help="CA certificate(s) the https:// TSA's server certificate must chain to (default: the configured "
                          "one, else the system's).")(f)
    return f


def _settings(archive) -> dict:
    return dict(archive.config.settings.get("timestamp") or {})


def check_tsa(tsa_url: str, ca_pem: bytes, timeout: float = 30.0, access=None, policy: str | None = None) -> dict:
    """One test request to the TSA, its token verified against ``ca_pem``: the TSA's name and policy.

    Raises TsaError when the TSA cannot be reached or refuses, IntegrityError when its token
    does not verify under the CA (the wrong CA file, or not a TSA).
    """
    import hashlib
    import os

    from verify.tokens import verify_token
    from verify.tsa_client import request_stamp

    from ...errors import IntegrityError

    root = hashlib.sha256(b"mailarchive timestamp configure check " + os.urandom(16)).digest()
    tsr, nonce = request_stamp(tsa_url, root, timeout=timeout, access=access, policy=policy)
    check = verify_token(tsr, root, ca_pem, nonce=nonce, policy=policy)
    if not check.ok:
        raise IntegrityError(f"the TSA at {tsa_url} answered, but its token does not verify under this CA: "
                             + "; ".join(check.problems) + " (nothing was stored; --no-check stores it unchecked)")
    return {"tsa_name": check.tsa_subject, "policy": check.policy, "gen_time": check.gen_time}


@command(timestamp_group, "configure")
@click.option("--tsa-url", required=True, help="The TSA's HTTP(S) URL (RFC 3161 over HTTP POST).")
@click.option("--ca-cert", required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="The CA certificate (PEM or DER) the TSA's certificate must chain to; added to the trusted CAs.")
@click.option("--policy", default=None, callback=lambda c, p, v: _oid(v),
              help="Pin the TSA policy OID (dotted) that every token under this CA must carry.")
@click.option("--tls-ca-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="CA certificate(s) an https:// TSA's server certificate must chain to (kept in the settings).")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="Basic-auth password for the test request to a TSA whose URL names a user (else $MAILARCHIVE_TSA_PASSWORD).")
@click.option("--no-check", is_flag=True, help="Store without sending the test request to the TSA.")
@pass_ctx
def configure_cmd(ctx, tsa_url, ca_cert, policy, tls_ca_file, password_file, no_check):
    """Use this TSA from now on, and add its CA certificate to the archive's trusted CAs.

    First one test request goes to the TSA and its token is verified under the
    CA; the TSA's name and policy are shown (--no-check skips this). CAs
    trusted before stay trusted for the batches stamped under them (a change
    of TSA provider keeps older batches verifying); `timestamp ca retire`
    ends a CA's trust.
    """
    from verify import ca_history

    from verify.tsa_client import check_tsa_url

    check_tsa_url(tsa_url)
    pem = _read_ca(ca_cert)
    checked = None if no_check else check_tsa(tsa_url, pem.encode(), access=_access({}, tsa_url, tls_ca_file, password_file, 0),
                                              policy=policy)
    with ctx.open(writer=True) as archive:
        with archive.catalog.writing() as con:
            ca_history.adopt_settings_ca(con, _settings(archive))
            rec = ca_history.remember(con, pem.encode(), tsa_url, policy=policy)
            n = len(ca_history.load(con))
        extra = {"tls_ca_pem": _tls_pem(tls_ca_file)} if tls_ca_file else {}
        archive.config.settings["timestamp"] = {**_settings(archive), "tsa_url": tsa_url, "ca_pem": pem, **extra}
        archive.save_config()
    result = {"tsa_url": tsa_url, "ca_fingerprint": rec.fingerprint, "trusted_cas": n, "check": checked}
    ctx.ui.emit(result, lambda r: ctx.ui.say(
        f"TSA {r['tsa_url']}, CA SHA-256 {r['ca_fingerprint']} trusted ({r['trusted_cas']} CAs in the history)"
        + (f"\n  test stamp OK: TSA {r['check']['tsa_name']}, policy {r['check']['policy']}" if r["check"] else
           "\n  not checked (--no-check)")))


def _when(t) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S}Z" if t is not None else "-"


ca_group = subgroup(timestamp_group, "ca", "The TSA CA certificates the archive trusts, and when it trusted them.")


@command(ca_group, "list")
@pass_ctx
def ca_list_cmd(ctx):
    """List every TSA CA the archive has trusted: fingerprint, subject, added, retired, batches, TSA URLs."""
    from verify import ca_history

    with ctx.open() as archive:
        with archive.catalog.reading() as con:
            history = ca_history.load(con)
            counts = stamps.stamped_count_by_ca(con)
        legacy = ca_history.legacy_record(_settings(archive)) if not history else None
    recs = list(history.values()) or ([legacy] if legacy else [])
    result = {"cas": [{**{k: v for k, v in r.as_dict().items() if k != "pem"}, "batches": counts.get(r.fingerprint, 0)}
                      for r in recs]}

    def human(r):
        if not r["cas"]:
            ctx.ui.say("no TSA CA trusted yet; `mailarchive timestamp configure --tsa-url URL --ca-cert FILE`")
            return
        ctx.ui.table("TSA CAs of this archive", ["SHA-256", "subject", "added", "retired", "batches", "TSA URLs"],
                     [[c["fingerprint"], c["subject"], _when(c["added_at"]), _when(c["retired_at"]), c["batches"],
                       ", ".join(c["tsa_urls"])] for c in r["cas"]])

    ctx.ui.emit(result, human)


@command(ca_group, "add")
@click.argument("ca_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--tsa-url", default=None, help="The TSA URL this CA serves (recorded with it).")
@click.option("--policy", default=None, callback=lambda c, p, v: _oid(v),
              help="Pin the TSA policy OID (dotted) that every token under this CA must carry.")
@pass_ctx
def ca_add_cmd(ctx, ca_file, tsa_url, policy):
    """Trust the CA certificate in CA_FILE (PEM, may hold intermediates after the root; or DER) from now on."""
    from verify import ca_history

    pem = _read_ca(ca_file).encode()
    with ctx.open(writer=True) as archive:
        with archive.catalog.writing() as con:
            ca_history.adopt_settings_ca(con, _settings(archive))
            rec = ca_history.remember(con, pem, tsa_url, policy=policy)
    kind, notes = ca_history.anchor_notes(pem)
    result = {"fingerprint": rec.fingerprint, "subject": rec.subject, "added_at": rec.added_at, "kind": kind,
              **({"warnings": notes} if notes else {})}

    def human(r):
        what = "CA" if r["kind"] == "ca" else "TSA certificate (pinned itself: no CA above it)"
        ctx.ui.say(f"trusted {what} {r['subject']} (SHA-256 {r['fingerprint']}) since {_when(r['added_at'])}")
        for note in r.get("warnings", []):
            ctx.ui.say(f"warning: {note}")

    ctx.ui.emit(result, human)


@command(ca_group, "retire")
@click.argument("fingerprint")
@pass_ctx
def ca_retire_cmd(ctx, fingerprint):
    """Stop trusting a CA (SHA-256 FINGERPRINT, or a unique prefix) for stamps from now on.

    Batches stamped under it before keep verifying; a later one would be a finding.
    """
    from verify import ca_history

    with ctx.open(writer=True) as archive:
        with archive.catalog.writing() as con:
            ca_history.adopt_settings_ca(con, _settings(archive))
            rec = ca_history.retire(con, fingerprint)
    ctx.ui.emit({"fingerprint": rec.fingerprint, "subject": rec.subject, "retired_at": rec.retired_at},
                lambda r: ctx.ui.say(f"retired CA {r['subject']} (SHA-256 {r['fingerprint']}) at {_when(r['retired_at'])}"))


@command(timestamp_group, "run")
@click.option("--tsa-url", default=None, help="Use this TSA for this run (default: the configured one).")
@click.option("--ca-cert", default=None, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Verify this run's tokens against this CA certificate and record it in the CA history "
                   "with the batches (default: the configured one).")
@click.option("--policy", default=None, callback=lambda c, p, v: _oid(v),
              help="Pin the TSA policy OID (dotted) for this run's CA; a token with another policy is refused.")
@click.option("--min-pending", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Make new batches only while at least this many messages and envelopes wait.")
@click.option("--all", "all_", is_flag=True, help="Stamp everything that waits, even a single message (the daily run).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds one attempt at the TSA may take in all (connection, answer, body).")
@_net_options
@pass_ctx
def run_cmd(ctx, tsa_url, ca_cert, policy, min_pending, all_, timeout, tls_ca_file, password_file, retries):
    """Stamp pending batches first, then new batches of unstamped mail.

    Each batch's Merkle root is stamped by the TSA, the token is verified
    against the pinned CA, the sealed batch manifest is written to the active
    medium, and the batch is marked stamped. When the TSA fails or refuses,
    the batch stays pending (exit 3) and the next run retries it.
    """
    from verify.stamping import pending_count, stamp_pending
    from verify.tsa_client import TsaError

    with ctx.open(writer=True) as archive:
        conf = _settings(archive)
        url = tsa_url or conf.get("tsa_url")
        pem = _read_ca(ca_cert).encode() if ca_cert else (conf.get("ca_pem") or "").encode()
        if not url or not pem:
            raise UsageError(
                "no TSA configured; run `mailarchive timestamp configure --tsa-url URL --ca-cert FILE` "
                "or pass --tsa-url and --ca-cert"
            )
        try:
            batches = stamp_pending(
                archive, tsa_url=url, ca_pem=pem, min_pending=min_pending, all_=all_, reporter=ctx.ui.reporter(),
                timeout=timeout, policy=policy, access=_access(conf, url, tls_ca_file, password_file, retries),
            )
        except TsaError as exc:
            for b in getattr(exc, "stamped", []):
                ctx.ui.say(f"stamped batch {b['batch_id']} ({b['leaf_count']} leaves) at {b['gen_time']:%Y-%m-%d %H:%M:%S}Z")
            raise
        left = pending_count(archive)
    result = {"stamped": batches, "pending": left, "min_pending": min_pending, "all": all_}

    def human(r):
        for b in r["stamped"]:
            ctx.ui.say(
                f"stamped batch {b['batch_id']}: {b['messages']} messages, {b['envelopes']} envelopes, "
                f"genTime {b['gen_time']:%Y-%m-%d %H:%M:%S}Z, serial {b['serial']}, manifest {b['manifest']}"
            )
        if not r["stamped"]:
            ctx.ui.say("nothing stamped")
        if r["pending"]:
            why = "" if r["all"] else f" (a batch is made from {r['min_pending']}; --all stamps them now)"
            ctx.ui.say(f"{r['pending']} messages/envelopes wait for a batch{why}")

    ctx.ui.emit(result, human)


@command(timestamp_group, "renew")
@click.option("--before", default=None, metavar="DATE",
              help="Renew the batches whose protection ends before DATE (YYYY-MM-DD; default: within 90 days).")
@click.option("--all", "all_", is_flag=True, help="Renew every stamped batch.")
@click.option("--tsa-url", default=None, help="Use this TSA (default: the configured one).")
@click.option("--ca-cert", default=None, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Verify the renewal token against this CA certificate and record it (default: the configured one).")
@click.option("--policy", default=None, callback=lambda c, p, v: _oid(v), help="Pin the TSA policy OID for this CA.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds one attempt at the TSA may take in all (connection, answer, body).")
@_net_options
@pass_ctx
def renew_cmd(ctx, before, all_, tsa_url, ca_cert, policy, timeout, tls_ca_file, password_file, retries):
    """Stamp a renewal over the batches due, so their proof outlives their TSA certificate.

    One new token covers, for each batch due, SHA-256(batch root ‖ SHA-256
    of the batch's current token); `verify --full` follows every chain.
    Nothing due: exit 0 with a note.
    """
    import datetime as dt

    from verify.renewal import due_now, renew

    when = None
    if before:
        try:
            when = dt.datetime.fromisoformat(before)
        except ValueError:
            raise UsageError(f"--before {before!r} is not a date (YYYY-MM-DD)") from None
        when = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
    with ctx.open(writer=True) as archive:
        conf = _settings(archive)
        url = tsa_url or conf.get("tsa_url")
        pem = _read_ca(ca_cert).encode() if ca_cert else (conf.get("ca_pem") or "").encode()
        if (not url or not pem) and due_now(archive, before=when, all_=all_):
            raise UsageError("no TSA configured; run `mailarchive timestamp configure --tsa-url URL --ca-cert FILE` "
                             "or pass --tsa-url and --ca-cert")
        done = None if not url or not pem else renew(
            archive, tsa_url=url, ca_pem=pem, before=when, all_=all_, policy=policy, timeout=timeout,
            access=_access(conf, url, tls_ca_file, password_file, retries))

    result = {"renewal": done}

    def human(r):
        x = r["renewal"]
        if x is None:
            ctx.ui.say("no batch due for renewal")
            return
        ctx.ui.say(f"renewal {x['renewal_id']}: batches {', '.join(map(str, x['batches']))}, genTime "
                   f"{_when(x['gen_time'])}, protected until {_when(x['protected_until'])}, manifest {x['manifest']}")

    ctx.ui.emit(result, human)


@command(timestamp_group, "status")
@pass_ctx
def status_cmd(ctx):
    """Show what waits for a stamp, pending and stamped batches, and how long each batch is protected.

    "protected until" is when the certificates of a batch's newest token
    (its own, or its last renewal's) run out; within 90 days a warning
    says to run `mailarchive timestamp renew`.
    """
    import datetime as dt

    from verify import ca_history, renewal
    from verify.stamping import pending_leaves
    with ctx.open() as archive:
        conf = _settings(archive)
        with archive.catalog.reading() as con:
            waiting = pending_leaves(con)
            pending = stamps.open_batches(con)
            n_stamped, stamped_leaves, last = stamps.stamped_summary(con)
            history = ca_history.load(con)
            chains = renewal.chains(con, history, conf)
    now = dt.datetime.now(dt.timezone.utc)
    protection = []
    for bid, links in chains.items():
        until = renewal.protected_until(links)
        protection.append({"batch_id": bid, "ca_fingerprint": links[0].ca_fingerprint, "renewals": [x.id for x in links[1:]],
                           "protected_until": until,
                           "warning": until is not None and until <= now + renewal.WARN_AHEAD})
    result = {
        "pending_messages": waiting["messages"],
        "pending_envelopes": waiting["envelopes"],
        "pending_events": waiting["events"],
        "pending_batches": [{"batch_id": b, "leaf_count": n, "created_at": c} for b, n, c in pending],
        "stamped_batches": n_stamped,
        "stamped_leaves": int(stamped_leaves),
        "last_gen_time": last,
        "tsa_url": conf.get("tsa_url"),
        "protection": protection,
    }

    def human(r):
        ctx.ui.say(f"TSA: {r['tsa_url'] or 'not configured (`mailarchive timestamp configure`)'}")
        ctx.ui.say(f"waiting for a batch: {r['pending_messages']} messages, {r['pending_envelopes']} envelopes, "
                   f"{r['pending_events']} deletion events")
        ctx.ui.say(f"stamped: {r['stamped_batches']} batches, {r['stamped_leaves']} leaves, last genTime {r['last_gen_time'] or '-'}")
        if r["protection"]:
            ctx.ui.table("Stamped batches", ["batch", "CA (SHA-256)", "renewals", "protected until"],
                         [[p["batch_id"], (p["ca_fingerprint"] or "?")[:16] + "…", len(p["renewals"]),
                           _when(p["protected_until"]) + ("  (renew!)" if p["warning"] else "")] for p in r["protection"]])
        due = [p["batch_id"] for p in r["protection"] if p["warning"]]
        if due:
            ctx.ui.say(f"warning: the protection of batches {', '.join(map(str, due))} ends within 90 days or has "
                       "ended; run `mailarchive timestamp renew`")
        if r["pending_batches"]:
            ctx.ui.table(
                "Batches pending a stamp (retried by `mailarchive timestamp run`)",
                ["batch", "leaves", "sealed at"],
                [[b["batch_id"], b["leaf_count"], b["created_at"]] for b in r["pending_batches"]],
            )

    ctx.ui.emit(result, human)
