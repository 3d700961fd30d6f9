"""``mailarchive timestamp configure | run | status`` (DESIGN §8)."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .main import cli, command, pass_ctx, subgroup

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


def _settings(archive) -> dict:
    return dict(archive.config.settings.get("timestamp") or {})


def check_tsa(tsa_url: str, ca_pem: bytes, timeout: float = 30.0) -> dict:
    """One test request to the TSA, its token verified against ``ca_pem``: the TSA's name and policy.

    Raises TsaError when the TSA cannot be reached or refuses, IntegrityError when its token
    does not verify under the CA (the wrong CA file, or not a TSA).
    """
    import hashlib
    import os

    from verify.tokens import verify_token
    from verify.tsa_client import request_stamp

    from ..errors import IntegrityError

    root = hashlib.sha256(b"mailarchive timestamp configure check " + os.urandom(16)).digest()
    tsr, nonce = request_stamp(tsa_url, root, timeout=timeout)
    check = verify_token(tsr, root, ca_pem, nonce=nonce)
    if not check.ok:
        raise IntegrityError(f"the TSA at {tsa_url} answered, but its token does not verify under this CA: "
                             + "; ".join(check.problems) + " (nothing was stored; --no-check stores it unchecked)")
    return {"tsa_name": check.tsa_subject, "policy": check.policy, "gen_time": check.gen_time}


@command(timestamp_group, "configure")
@click.option("--tsa-url", required=True, help="The TSA's HTTP(S) URL (RFC 3161 over HTTP POST).")
@click.option("--ca-cert", required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="The CA certificate (PEM or DER) the TSA's certificate must chain to; it is pinned.")
@click.option("--no-check", is_flag=True, help="Store without sending the test request to the TSA.")
@pass_ctx
def configure_cmd(ctx, tsa_url, ca_cert, no_check):
    """Store the TSA URL and pin its CA certificate in the archive settings.

    First one test request goes to the TSA and its token is verified under the
    CA; the TSA's name and policy are shown (--no-check skips this).
    """
    from verify.tokens import ca_fingerprint

    if not tsa_url.startswith(("http://", "https://")):
        raise UsageError(f"--tsa-url {tsa_url!r} is not an http:// or https:// URL")
    pem = _read_ca(ca_cert)
    checked = None if no_check else check_tsa(tsa_url, pem.encode())
    with ctx.open(writer=True) as archive:
        archive.config.settings["timestamp"] = {**_settings(archive), "tsa_url": tsa_url, "ca_pem": pem}
        archive.save_config()
    result = {"tsa_url": tsa_url, "ca_fingerprint": ca_fingerprint(pem.encode()), "check": checked}
    ctx.ui.emit(result, lambda r: ctx.ui.say(
        f"TSA {r['tsa_url']}, CA pinned (SHA-256 {r['ca_fingerprint']})"
        + (f"\n  test stamp OK: TSA {r['check']['tsa_name']}, policy {r['check']['policy']}" if r["check"] else
           "\n  not checked (--no-check)")))


@command(timestamp_group, "run")
@click.option("--tsa-url", default=None, help="Use this TSA for this run (default: the configured one).")
@click.option("--ca-cert", default=None, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Pin this CA certificate for this run (default: the configured one).")
@click.option("--min-pending", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Make new batches only while at least this many messages and envelopes wait.")
@click.option("--all", "all_", is_flag=True, help="Stamp everything that waits, even a single message (the daily run).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="Seconds to wait for the TSA's answer.")
@pass_ctx
def run_cmd(ctx, tsa_url, ca_cert, min_pending, all_, timeout):
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
                timeout=timeout,
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


@command(timestamp_group, "status")
@pass_ctx
def status_cmd(ctx):
    """Show what waits for a stamp, pending batches, stamped batches and the last genTime."""
    with ctx.open() as archive:
        conf = _settings(archive)
        with archive.catalog.reading() as con:
            pm = con.execute("SELECT count(*) FROM messages WHERE batch_id IS NULL").fetchone()[0]
            pe = con.execute("SELECT count(*) FROM envelopes WHERE batch_id IS NULL").fetchone()[0]
            pending = con.execute(
                "SELECT batch_id, leaf_count, created_at FROM stamp_batches WHERE status = 'pending' ORDER BY batch_id"
            ).fetchall()
            n_stamped, stamped_leaves, last = con.execute(
                "SELECT count(*), COALESCE(sum(leaf_count), 0), max(gen_time) FROM stamp_batches WHERE status = 'stamped'"
            ).fetchone()
    result = {
        "pending_messages": pm,
        "pending_envelopes": pe,
        "pending_batches": [{"batch_id": b, "leaf_count": n, "created_at": c} for b, n, c in pending],
        "stamped_batches": n_stamped,
        "stamped_leaves": int(stamped_leaves),
        "last_gen_time": last,
        "tsa_url": conf.get("tsa_url"),
    }

    def human(r):
        ctx.ui.say(f"TSA: {r['tsa_url'] or 'not configured (`mailarchive timestamp configure`)'}")
        ctx.ui.say(f"waiting for a batch: {r['pending_messages']} messages, {r['pending_envelopes']} envelopes")
        ctx.ui.say(f"stamped: {r['stamped_batches']} batches, {r['stamped_leaves']} leaves, last genTime {r['last_gen_time'] or '-'}")
        if r["pending_batches"]:
            ctx.ui.table(
                "Batches pending a stamp (retried by `mailarchive timestamp run`)",
                ["batch", "leaves", "sealed at"],
                [[b["batch_id"], b["leaf_count"], b["created_at"]] for b in r["pending_batches"]],
            )

    ctx.ui.emit(result, human)
