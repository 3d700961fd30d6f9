"""`mailarchive timestamp` against the local TSA: batches, manifests, TSA failures (I10) and kill -9 (A2)."""
from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.corpora import REPO
from toolkit.archive import Archive
from verify.merkle import merkle_root
from verify.stamping import batch_leaves, read_manifest
from verify.tokens import ca_fingerprint, verify_token


@pytest.fixture(scope="module")
def template(tmp_path_factory, tsa):
    """An archive with the sample mail imported and the TSA configured, saved aside to restore per test."""
    base = tmp_path_factory.mktemp("ts")
    home = base / "home"
    mailarchive(home, "init", "--key-backup", str(base / "kb.txt"))
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml"))
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path))
    shutil.copytree(home, base / "saved")
    return base


@pytest.fixture
def home(template, tsa_ok) -> Path:
    """The template archive, fresh (media and config point at this same path)."""
    h = template / "home"
    shutil.rmtree(h)
    shutil.copytree(template / "saved", h)
    return h


def state(home: Path) -> dict:
    """The stamping state of the catalog and media, in a form that compares across runs."""
    with Archive.open(home) as archive:
        with archive.catalog.reading() as con:
            batches = con.execute(
                "SELECT batch_id, first_msg_id, last_msg_id, leaf_count, merkle_root, status, token IS NOT NULL, "
                "manifest_name, medium_id, token, nonce FROM stamp_batches ORDER BY batch_id"
            ).fetchall()
            msgs = con.execute("SELECT msg_id, batch_id FROM messages ORDER BY msg_id").fetchall()
            leaves = {b[0]: [leaf for _, leaf in batch_leaves(con, b[0])] for b in batches}
        manifests = {}
        for b in batches:
            if b[7]:
                manifests[b[0]] = read_manifest(archive, {"batch_id": b[0], "manifest_name": b[7], "medium_id": b[8]})
        on_medium = sorted(e.name for e in archive.storage(archive.active_medium_id()).list("stamps/"))
    return {"batches": batches, "msgs": msgs, "leaves": leaves, "manifests": manifests, "on_medium": on_medium}


def assert_all_stamped(s: dict, ca_pem: bytes) -> None:
    """Every message in a stamped batch; every stamped batch has a verifying token and its manifest."""
    assert s["msgs"] and all(batch is not None for _, batch in s["msgs"])
    assert s["batches"]
    for (bid, _f, _l, count, root_hex, status, has_token, name, _m, token, nonce) in s["batches"]:
        assert status == "stamped" and has_token, f"batch {bid} is {status}"
        assert merkle_root(s["leaves"][bid]).hex() == root_hex and len(s["leaves"][bid]) == count
        check = verify_token(token, bytes.fromhex(root_hex), ca_pem, nonce=int(nonce))
        assert check.ok, check.problems
        m = s["manifests"][bid]
        assert m["root"] == root_hex and m["batch_id"] == bid and len(m["leaves"]) == count
        assert base64.b64decode(m["token"]) == token  # catalog and medium agree
        assert name in s["on_medium"]
    assert len(s["on_medium"]) == len(s["batches"])


def comparable(s: dict) -> list:
    """What must be equal between a clean run and a crashed-and-rerun one (tokens differ by nature)."""
    return [b[:7] for b in s["batches"]] + [s["msgs"]]


def test_run_stamps_all_and_writes_manifest(home, tsa):
    before = state(home)
    n = len(before["msgs"])
    assert n > 0 and before["batches"] == [] and all(b is None for _, b in before["msgs"])

    # Below --min-pending nothing is batched.
    run = mailarchive(home, "timestamp", "run", json_out=True).result
    assert run["stamped"] == [] and run["pending"] == n

    run = mailarchive(home, "timestamp", "run", "--all", json_out=True).result
    assert [b["leaf_count"] for b in run["stamped"]] == [n] and run["pending"] == 0
    b = run["stamped"][0]
    assert (home / "medium-1" / b["manifest"]).is_file()
    assert b["manifest"] == f"stamps/{b['batch_id']:08d}-{b['root'][:16]}.manifest"

    s = state(home)
    assert_all_stamped(s, tsa.ca_cert_path.read_bytes())
    m = s["manifests"][1]
    assert m["archive"] and m["tsa_url"] == tsa.url and [leaf["kind"] for leaf in m["leaves"]] == ["message"] * n
    assert m["ca_fingerprint"] == ca_fingerprint(tsa.ca_cert_path.read_bytes())
    st = mailarchive(home, "timestamp", "status", json_out=True).result
    assert st["pending_messages"] == 0 and st["stamped_batches"] == 1 and st["last_gen_time"]


def test_tsa_failures_leave_batch_pending_then_retry(home, tsa):
    """I10: HTTP 500 and a rejection keep the batch pending (exit 3, listed); the next run stamps it."""
    tsa.mode = "http500"
    p = mailarchive(home, "timestamp", "run", "--all", check=3)
    assert "stays pending" in p.stderr and "HTTP 500" in p.stderr
    st = mailarchive(home, "timestamp", "status", json_out=True).result
    assert [b["batch_id"] for b in st["pending_batches"]] == [1]
    assert st["pending_messages"] == 0  # sealed into batch 1, waiting for its token
    sealed = state(home)
    assert sealed["batches"][0][5] == "pending" and not sealed["batches"][0][6] and sealed["on_medium"] == []

    tsa.mode = "reject"
    p = mailarchive(home, "timestamp", "run", "--timeout", "5", check=3)
    assert "rejection" in p.stderr

    tsa.mode = "ok"
    run = mailarchive(home, "timestamp", "run", json_out=True).result  # pending batches first, even below min-pending
    assert [b["batch_id"] for b in run["stamped"]] == [1]
    s = state(home)
    assert_all_stamped(s, tsa.ca_cert_path.read_bytes())
    assert s["batches"][0][4] == sealed["batches"][0][4]  # the same root was stamped


def test_missing_configuration_is_a_usage_error(home):
    with Archive.open(home, writer=True) as archive:
        del archive.config.settings["timestamp"]
        archive.save_config()
    p = mailarchive(home, "timestamp", "run", "--all", check=2)
    assert "timestamp configure" in p.stderr


@pytest.fixture(scope="module")
def clean_state(template, tsa):
    """The state after an uninterrupted `timestamp run --all` on the template."""
    h = template / "home"
    shutil.rmtree(h)
    shutil.copytree(template / "saved", h)
    tsa.mode = "ok"
    mailarchive(h, "timestamp", "run", "--all")
    return state(h)


@pytest.mark.parametrize("point", ["stamp_after_batch_row", "stamp_after_token", "stamp_after_manifest"])
def test_kill_9_then_rerun_gives_the_clean_state(clean_state, home, tsa, point):
    """A2: kill -9 at each kill point; never stamped without a token; a rerun reaches the clean run's state."""
    p = mailarchive(home, "timestamp", "run", "--all", env={"MAILARCHIVE_FAULT": point}, check=None)
    assert p.returncode == -9, (p.returncode, p.stderr)
    crashed = state(home)
    assert len(crashed["batches"]) == 1
    assert crashed["batches"][0][5] == "pending" and not crashed["batches"][0][6]
    assert len(crashed["on_medium"]) == (1 if point == "stamp_after_manifest" else 0)

    mailarchive(home, "timestamp", "run", "--all")
    final = state(home)
    assert_all_stamped(final, tsa.ca_cert_path.read_bytes())
    assert comparable(final) == comparable(clean_state)


def test_batch_sizes_and_envelope_leaves(home, tsa):
    """Library level: full batches only at min_pending, the rest with all_; envelopes follow messages;
    an envelope learned after its message was stamped goes into the batch of the run that learned it."""
    import datetime as dt
    import hashlib

    from verify.merkle import leaf_hash_envelope
    from verify.stamping import pending_count, stamp_pending

    ca = tsa.ca_cert_path.read_bytes()
    now = dt.datetime.now(dt.timezone.utc)
    with Archive.open(home, writer=True) as archive:
        with archive.catalog.writing() as con:
            msgs = con.execute("SELECT msg_id, blob_id FROM messages ORDER BY msg_id").fetchall()
            env1 = b"Envelope-To: hidden@example.org\r\n"
            con.execute("INSERT INTO envelopes VALUES (1, ?, NULL, ?, ?, ?, NULL)",
                        [msgs[1][0], env1.decode(), hashlib.sha256(env1).hexdigest(), now])
        n = len(msgs) + 1
        assert pending_count(archive) == n

        done = stamp_pending(archive, tsa_url=tsa.url, ca_pem=ca, min_pending=10, batch_size=10)
        assert [b["leaf_count"] for b in done] == [10] * (n // 10)
        assert pending_count(archive) == n % 10
        done += stamp_pending(archive, tsa_url=tsa.url, ca_pem=ca, min_pending=10, batch_size=10, all_=True)
        assert [b["leaf_count"] for b in done] == [10] * (n // 10) + [n % 10]
        assert pending_count(archive) == 0
        last = done[-1]
        assert last["envelopes"] == 1 and last["last_msg_id"] == msgs[-1][0]
        with archive.catalog.reading() as con:
            kinds = [k for k, _ in batch_leaves(con, last["batch_id"])]
            assert kinds == ["message"] * (len(kinds) - 1) + ["envelope"]
            assert batch_leaves(con, last["batch_id"])[-1][1] == leaf_hash_envelope(
                hashlib.sha256(env1).digest(), bytes.fromhex(msgs[1][1]))

        # A Bcc learned later for an already stamped message: a batch of its own.
        env2 = b"Envelope-To: late@example.org\r\n"
        with archive.catalog.writing() as con:
            con.execute("INSERT INTO envelopes VALUES (2, ?, NULL, ?, ?, ?, NULL)",
                        [msgs[0][0], env2.decode(), hashlib.sha256(env2).hexdigest(), now])
        (late,) = stamp_pending(archive, tsa_url=tsa.url, ca_pem=ca, all_=True)
        assert late["leaf_count"] == 1 and late["messages"] == 0 and late["first_msg_id"] is None
        m = read_manifest(archive, {"batch_id": late["batch_id"], "manifest_name": late["manifest"], "medium_id": late["medium_id"]})
        assert m["leaves"] == [{"kind": "envelope", "blob_id": msgs[0][1], "envelope_sha256": hashlib.sha256(env2).hexdigest()}]
    assert_all_stamped(state(home), ca)
