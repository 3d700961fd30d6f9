"""Retention policies, legal holds and approved deletion (docs/retention.md), through the real command line.

The source is sample_data's eml tree (folders 2019, 2020, 2021, 2021/projects) plus one mbox mail
without a Date header (so its keep runs from the mbox From_ line, its internal date). What the
report must say is computed here independently, from the source files read with Python's email
package: the addresses of From/To/Cc/Bcc, the folder each file lies in, and the Date header (or the
From_ line date), plus N calendar years.
"""
from __future__ import annotations

import collections
import datetime as dt
import email
import email.policy
import email.utils
import json
import shutil
from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.corpora import REPO
from toolkit.archive import Archive
from verify.stamping import batch_leaves, read_manifest

UTC = dt.timezone.utc
DIRECTORY = """
domains = ["example.com", "example.net"]
aliases = { "gmbh.example" = "example.com" }

[[user]]
name = "anna"
addresses = ["anna.mueller@example.com"]

[[user]]
name = "bernd"
addresses = ["bernd.schaefer@example.com"]

[[group]]
name = "board"
members = ["bernd.schaefer@example.com"]
assigned = ["board@example.com"]
"""
NODATE = ("From someone@example.org Mon Mar  4 10:00:00 2019\nFrom: Someone <someone@example.org>\n"
          "To: anna.mueller@example.com\nSubject: no date header\nMessage-ID: <nodate.1@example.org>\n\nbody\n\n")
NODATE_INTERNAL = dt.datetime(2019, 3, 4, 10, 0, tzinfo=UTC)
LEAD, ANNA, OFFICER = {"MAILARCHIVE_ACTOR": "lead"}, {"MAILARCHIVE_ACTOR": "anna"}, {"MAILARCHIVE_ACTOR": "officer"}


@pytest.fixture(scope="module")
def template(tmp_path_factory, tsa):
    base = tmp_path_factory.mktemp("retention")
    src = base / "src"
    shutil.copytree(REPO / "sample_data" / "eml", src)
    (base / "nodate.mbox").write_text(NODATE, encoding="utf-8")
    (base / "directory.toml").write_text(DIRECTORY, encoding="utf-8")
    home = base / "home"
    mailarchive(home, "init", "--medium", str(base / "m1"), "--key-backup", str(base / "kb.txt"))
    mailarchive(home, "import", "eml", str(src))
    mailarchive(home, "import", "mbox", str(base / "nodate.mbox"))
    mailarchive(home, "directory", "import", str(base / "directory.toml"), env=LEAD)
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa.url, "--ca-cert", str(tsa.ca_cert_path))
    shutil.copytree(home, base / "home-saved")
    shutil.copytree(base / "m1", base / "m1-saved")
    return base


@pytest.fixture
def home(template, tsa_ok) -> Path:
    """The template archive, fresh for each test (home and medium)."""
    for name in ("home", "m1"):
        shutil.rmtree(template / name)
        shutil.copytree(template / f"{name}-saved", template / name)
    return template / "home"


# -- the expectation, from the source files -------------------------------------------------------------
def source_mails(template: Path) -> list[dict]:
    """One entry per distinct mail (Message-ID, Date, Subject): addresses, folders, base date."""
    mails: dict[tuple, dict] = {}
    src = template / "src"
    for path in sorted(src.rglob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
        mid = str(msg.get("Message-ID", "")).strip().strip("<>") or None
        key = (mid, str(msg.get("Date", "")).strip(), str(msg.get("Subject", "")).strip())
        fields = [str(v) for name in ("from", "to", "cc", "bcc") for v in msg.get_all(name, [])]
        m = mails.setdefault(key, {"message_id": mid, "addresses": set(), "folders": set(),
                                   "date": email.utils.parsedate_to_datetime(msg["Date"]).astimezone(UTC)})
        m["addresses"] |= {a.lower() for _, a in email.utils.getaddresses(fields) if "@" in a}
        m["folders"].add(path.parent.relative_to(src).as_posix())
    out = list(mails.values())
    out.append({"message_id": "nodate.1@example.org", "addresses": {"someone@example.org", "anna.mueller@example.com"},
                "folders": {"nodate"}, "date": NODATE_INTERNAL})
    return out


def expected_keep(m: dict, domain: dict, folder: dict, user: dict) -> int | None:
    """The longest keep among the policies that cover mail ``m`` (None: none covers it); ``user`` maps a user's
    addresses to the years of the user's policy."""
    years = [y for d, y in domain.items() if any(a.rpartition("@")[2] == d for a in m["addresses"])]
    years += [y for f, y in folder.items() if any(x == f or x.startswith(f + "/") for x in m["folders"])]
    years += [y for addresses, y in user.items() if m["addresses"] & addresses]
    return max(years) if years else None


def plus_years(t: dt.datetime, n: int) -> dt.datetime:
    try:
        return t.replace(year=t.year + n)
    except ValueError:
        return t.replace(year=t.year + n, day=28)


def report(home: Path, *args: str) -> dict:
    return mailarchive(home, "retention", "report", *args, json_out=True).result


def events(home: Path) -> list[dict]:
    p = mailarchive(home, "sql", "SELECT event_id, kind, batch_id, detail FROM events ORDER BY event_id",
                    "--format", "json")
    return json.loads(p.stdout)


# -- retention report --------------------------------------------------------------------------------
def test_no_policy_nothing_deletable(home):
    r = report(home)
    assert r["mails"] == [] and r["policies"] == []
    assert r["counts"] == {"no-policy": len(source_mails(home.parent))}
    p = mailarchive(home, "delete", "request", "--where", "true", "--reason", "cleanup", env=ANNA, check=2)
    assert "covered by no retention policy" in p.stderr
    assert mailarchive(home, "delete", "list", json_out=True).result["requests"] == []


def test_report_for_policies_on_a_domain_a_folder_and_a_user(home):
    domain, folder, user = {"example.net": 5}, {"2019": 7, "2021/projects": 2}, {"anna": 3}
    mailarchive(home, "retention", "set", "--years", "5", "--domain", "example.net", env=LEAD)
    mailarchive(home, "retention", "set", "--years", "7", "--folder", "2019", env=LEAD)
    mailarchive(home, "retention", "set", "--years", "2", "--folder", "2021/projects/", "--actor", "lead")
    mailarchive(home, "retention", "set", "--years", "3", "--user", "anna", env=LEAD)
    at = dt.datetime(2025, 3, 1, tzinfo=UTC)
    got = report(home, "--at", "2025-03-01")
    users = {"anna": {"anna.mueller@example.com", "anna.mueller@gmbh.example"}}  # with the alias domain
    want = collections.Counter()
    for m in source_mails(home.parent):
        years = expected_keep(m, domain, folder, {frozenset(users[u]): y for u, y in user.items()})
        if years is None:
            continue
        until = plus_years(m["date"], years)
        want[(m["message_id"], m["date"], until, "deletable" if until <= at else "kept", years)] += 1
    have = collections.Counter(
        (x["message_id"], dt.datetime.fromisoformat(x["date"]), dt.datetime.fromisoformat(x["deletable_from"]),
         x["state"], x["policy"]["years"]) for x in got["mails"])
    assert have == want
    assert {x["date_kind"] for x in got["mails"] if x["message_id"] == "nodate.1@example.org"} == {"internal"}
    assert {"kept", "deletable"} <= set(got["counts"])  # the dates fall on both sides of the report day
    dates = [x["deletable_from"] for x in got["mails"]]
    assert dates == sorted(dates)
    kinds = [e["kind"] for e in events(home)]
    assert kinds.count("retention-policy-set") == 4


def test_policy_needs_one_scope_and_a_known_user(home):
    mailarchive(home, "retention", "set", "--years", "3", env=LEAD, check=2)
    mailarchive(home, "retention", "set", "--years", "3", "--domain", "example.com", "--folder", "2019", env=LEAD, check=2)
    p = mailarchive(home, "retention", "set", "--years", "3", "--user", "nobody", env=LEAD, check=2)
    assert "no user 'nobody'" in p.stderr
    p = mailarchive(home, "retention", "set", "--years", "3", "--domain", "example.com", check=2,
                    env={"MAILARCHIVE_ACTOR": ""})
    assert "--actor" in p.stderr


# -- holds and refusals ------------------------------------------------------------------------------------
def test_holds_block_deletion_until_released(home):
    mailarchive(home, "retention", "set", "--years", "1", "--domain", "example.com", env=LEAD)
    mailarchive(home, "retention", "hold", "add", "--address", "Bernd.Schaefer@example.com", "--reason", "case 12",
                env={"MAILARCHIVE_ACTOR": "legal"})
    mailarchive(home, "retention", "hold", "add", "--where", "m.subject ILIKE '%budget%'", "--reason", "audit",
                env={"MAILARCHIVE_ACTOR": "legal"})
    r = report(home)
    held = {x["msg_id"]: x["holds"] for x in r["mails"] if x["state"] == "held"}
    sql = json.loads(mailarchive(home, "sql", "SELECT msg_id, subject, from_addr FROM messages", "--format",
                                 "json").stdout)
    bernd = {x["msg_id"] for x in sql if x["from_addr"] == "bernd.schaefer@example.com"}
    budget = {x["msg_id"] for x in sql if "budget" in (x["subject"] or "").lower()}
    assert bernd and budget and bernd <= set(held) and budget <= set(held)
    assert all(1 in held[i] for i in bernd) and all(2 in held[i] for i in budget)

    where = "m.from_addr = 'bernd.schaefer@example.com'"
    p = mailarchive(home, "delete", "request", "--where", where, "--reason", "old", env=ANNA, check=2)
    assert "refused" in p.stderr and f"{len(bernd)} mails under legal hold #1" in p.stderr
    first = min(bernd)
    first_mid = next(x for x in json.loads(mailarchive(home, "sql", f"SELECT message_id FROM messages WHERE msg_id = {first}",
                                                       "--format", "json").stdout))["message_id"]
    assert first_mid in p.stderr
    assert mailarchive(home, "delete", "list", json_out=True).result["requests"] == []

    mailarchive(home, "retention", "hold", "release", "1", env={"MAILARCHIVE_ACTOR": "legal"})
    assert [h["hold_id"] for h in mailarchive(home, "retention", "hold", "list", json_out=True).result["holds"]] == [2]
    budget_by_bernd = bernd & budget
    where2 = where + " AND m.msg_id NOT IN (" + ",".join(map(str, budget_by_bernd or {0})) + ")"
    r = mailarchive(home, "delete", "request", "--where", where2, "--reason", "old", env=ANNA, json_out=True).result
    assert r["mails"] == len(bernd - budget) and r["status"] == "pending"
    kinds = [e["kind"] for e in events(home)]
    assert kinds.count("legal-hold-added") == 2 and "legal-hold-released" in kinds
    assert kinds.count("deletion-request-refused") == 1 and kinds.count("deletion-requested") == 1


def test_request_on_unexpired_mail_is_refused_with_the_policy(home):
    mailarchive(home, "retention", "set", "--years", "30", "--folder", "2020", env=LEAD)
    p = mailarchive(home, "delete", "request", "--where", "year(m.sent_date) = 2020", "--reason", "old", env=ANNA,
                    check=2)
    assert "7 mails kept by policy folder 2020 (30 years)" in p.stderr
    assert "budget2020.0115@example.com" in p.stderr  # the first of them
    p = mailarchive(home, "delete", "request", "--where", "m.msg_id < 0", "--reason", "x", env=ANNA, check=1)
    assert "selects no mail" in p.stderr
    p = mailarchive(home, "delete", "request", "--where", "true); DROP TABLE messages; SELECT (1", "--reason", "x",
                    env=ANNA, check=2)
    assert mailarchive(home, "delete", "list", json_out=True).result["requests"] == []


# -- approval, rejection, events and their stamp ------------------------------------------------------------
def test_approval_rejection_events_and_stamp(home, tsa):
    mailarchive(home, "timestamp", "run", "--all")  # an old batch: messages only
    mailarchive(home, "retention", "set", "--years", "1", "--folder", "2019", env=LEAD)
    r1 = mailarchive(home, "delete", "request", "--where", "m.subject ILIKE '%kantine%'", "--reason", "canteen plan",
                     env=ANNA, json_out=True).result
    r2 = mailarchive(home, "delete", "request", "--where", "m.from_addr = 'winner@lottery.example.net'",
                     "--reason", "spam", "--actor", "bernd", json_out=True).result
    p = mailarchive(home, "delete", "approve", str(r1["request_id"]), env={"MAILARCHIVE_ACTOR": " Anna "}, check=2)
    assert "cannot approve it too" in p.stderr
    p = mailarchive(home, "delete", "reject", str(r2["request_id"]), "--actor", "bernd", check=2)
    assert "cannot reject it too" in p.stderr
    mailarchive(home, "delete", "approve", str(r1["request_id"]), env=OFFICER)
    mailarchive(home, "delete", "reject", str(r2["request_id"]), "--note", "keep it", env=OFFICER)
    mailarchive(home, "delete", "approve", str(r2["request_id"]), env=OFFICER, check=2)  # decided already
    listed = {q["request_id"]: q for q in mailarchive(home, "delete", "list", json_out=True).result["requests"]}
    assert (listed[r1["request_id"]]["status"], listed[r1["request_id"]]["decided_by"]) == ("approved", "officer")
    assert (listed[r2["request_id"]]["status"], listed[r2["request_id"]]["note"]) == ("rejected", "keep it")
    assert listed[r1["request_id"]]["mails"] == 1

    # a mail archived after the decisions: its leaf comes before the events' in the next batch
    extra = home.parent / "late.eml"
    extra.write_text("From: a@example.org\nTo: b@example.org\nSubject: late\nDate: Tue, 01 Dec 2026 10:00:00 +0000\n"
                     "Message-ID: <late.1@example.org>\n\nlate\n", encoding="utf-8")
    mailarchive(home, "import", "eml", str(extra))
    st = mailarchive(home, "timestamp", "status", json_out=True).result  # the four events wait with the mail
    assert (st["pending_messages"], st["pending_events"]) == (1, 4), st
    mailarchive(home, "timestamp", "run", "--all")
    assert mailarchive(home, "timestamp", "status", json_out=True).result["pending_events"] == 0
    ev = events(home)
    stamped = [e for e in ev if e["kind"] in ("deletion-requested", "deletion-approved", "deletion-rejected")]
    assert [e["kind"] for e in stamped] == ["deletion-requested", "deletion-requested", "deletion-approved",
                                            "deletion-rejected"]
    batch = {e["batch_id"] for e in stamped}
    assert len(batch) == 1 and None not in batch
    batch_id = batch.pop()
    assert all(e["batch_id"] is None for e in ev if e not in stamped)  # refusals, policies: not stamped
    assert {e["kind"] for e in ev} >= {"retention-policy-set", "deletion-decision-refused"}
    assert sum(1 for e in ev if e["kind"] == "deletion-decision-refused") == 3
    with Archive.open(home) as archive:
        with archive.catalog.reading() as con:
            kinds = [k for k, _ in batch_leaves(con, batch_id)]
            row = con.execute("SELECT batch_id, manifest_name, medium_id FROM stamp_batches WHERE batch_id = ?",
                              [batch_id]).fetchone()
        manifest = read_manifest(archive, {"batch_id": row[0], "manifest_name": row[1], "medium_id": row[2]})
    assert kinds == ["message"] + ["event"] * 4
    assert [x["kind"] for x in manifest["leaves"]] == kinds
    assert [x.get("event_id") for x in manifest["leaves"][1:]] == [e["event_id"] for e in stamped]
    mailarchive(home, "verify", "--full")


def test_verify_full_finds_a_changed_stamped_event(home, tsa):
    mailarchive(home, "retention", "set", "--years", "1", "--folder", "2019", env=LEAD)
    r = mailarchive(home, "delete", "request", "--where", "m.subject ILIKE '%kantine%'", "--reason", "canteen",
                    env=ANNA, json_out=True).result
    with Archive.open(home, writer=True) as archive, archive.catalog.writing() as con:  # requested two days ago
        con.execute("UPDATE events SET at_time = at_time - INTERVAL 2 DAY WHERE kind = 'deletion-requested'")
    p = mailarchive(home, "verify", json_out=True, check=1)  # quick: Q07 names the event left unstamped
    assert "Q07" in p.stdout and "(deletion-requested," in p.stdout and "is not in a stamp batch" in p.stdout
    mailarchive(home, "timestamp", "run", "--all")
    mailarchive(home, "verify", "--full")
    with Archive.open(home, writer=True) as archive, archive.catalog.writing() as con:
        con.execute("UPDATE events SET detail = replace(detail, 'canteen', 'other') WHERE kind = 'deletion-requested' "
                    "AND json_extract(detail, '$.request_id') = ?", [r["request_id"]])
    p = mailarchive(home, "verify", "--full", json_out=True, check=1)
    assert "F05" in p.stdout and "tampering" in p.stdout
