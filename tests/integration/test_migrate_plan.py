"""``migrate run`` / ``migrate check`` against the real Dovecot (docs/cli.md "migrate").

A plan of 12 sources (IMAP accounts, POP3 maildrops, mbox files, Maildirs) that share mails, so
that dedup across sources matters: the parallel run must leave the catalog a sequential run leaves
(the same blobs, and the same decision for every arrival: commits go in plan-line order).
"""
from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.cli import PASSWORD, mailarchive


def _mail(tag: str, n: int, body: str = "") -> bytes:
    return (f"From: {tag}{n}@example.org\r\nTo: r@example.org\r\nSubject: {tag} {n}\r\n"
            f"Message-ID: <{tag}-{n}@example.org>\r\nDate: Mon, 1 Jun 2020 10:00:{n % 60:02d} +0000\r\n\r\n"
            f"{body or tag} body {n}\r\n").encode()


SHARED = [_mail("shared", i) for i in range(4)]  # in several sources: archived once


def _users(dovecot, n: int) -> list[tuple[str, str]]:
    taken = sys.modules["fixtures_dovecot"]._taken  # the pool of the mail_user fixture
    free = [u for u in sorted(dovecot.users) if u not in taken][:n]
    assert len(free) == n, "not enough test mailbox users: raise USERS in tests/fixtures_dovecot.py"
    taken.extend(free)
    return [(u, dovecot.users[u]) for u in free]


def _load(dovecot, user, pw, mails, folder="INBOX"):
    c = IMAPClient("127.0.0.1", port=dovecot.imaps_port,
                   ssl_context=ssl.create_default_context(cafile=str(dovecot.ca_cert_path)), timeout=30)
    c.login(user, pw)
    if folder != "INBOX":
        c.create_folder(folder)
    for m in mails:
        c.append(folder, m)
    c.logout()


def _maildir(root: Path, mails: list[bytes]) -> None:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    for i, m in enumerate(mails):
        (root / "cur" / f"{1000 + i}.M{i}P1.host:2,S").write_bytes(m)


def _mbox(path: Path, mails: list[bytes]) -> None:
    path.write_bytes(b"".join(b"From sender@example.org Mon Jun  1 10:00:00 2020\n" + m.replace(b"\r\n", b"\n") + b"\n"
                              for m in mails))


def _plan(tmp_path, dovecot, n_imap=6, n_pop=2):
    """A 12-line plan (n_imap IMAP + n_pop POP3 accounts, 2 mbox files, 2 Maildirs); returns (plan, users)."""
    users = _users(dovecot, n_imap + n_pop)
    lines = ["kind,location,user,password_file,owner,folders"]
    for i, (u, pw) in enumerate(users):
        mails = [_mail(u, k) for k in range(5)] + SHARED[: 1 + i % 4]
        _load(dovecot, u, pw, mails)
        if i < n_imap and i % 2:
            _load(dovecot, u, pw, [_mail(u + "-arch", 1), SHARED[3]], folder="Archive")
        (tmp_path / f"{u}.pw").write_text(pw + "\n")
        kind, port = ("imap", dovecot.imaps_port) if i < n_imap else ("pop3", dovecot.pop3s_port)
        folders = "Archive" if i == 1 else ""  # that account: only its Archive folder
        lines.append(f"{kind},{kind}s://127.0.0.1:{port},{u},{u}.pw,owner-{u},{folders}")
    for j in range(2):
        _mbox(tmp_path / f"box{j}.mbox", [_mail(f"mbox{j}-", k) for k in range(6)] + SHARED[j:j + 2])
        lines.append(f"mbox,box{j}.mbox,,,archivist,")
        _maildir(tmp_path / f"md{j}", [_mail(f"md{j}-", k) for k in range(4)] + SHARED[:2])
        lines.append(f"maildir,md{j},,,archivist,")
    plan = tmp_path / "plan.csv"
    plan.write_text("\n".join(lines) + "\n")
    return plan, users


def _init(tmp_path, name) -> Path:
    home = tmp_path / name
    mailarchive(home, "init", "--medium", str(tmp_path / f"{name}-medium"), "--key-backup", str(tmp_path / f"{name}-kb.txt"))
    return home


def _sql(home, query) -> list[dict]:
    return json.loads(mailarchive(home, "sql", query, "--format", "json").stdout)


def _catalog(home) -> tuple[set, list]:
    blobs = {r["blob_id"] for r in _sql(home, "SELECT blob_id FROM messages")}
    arrivals = sorted((r["source_uri"], r["source_ref"], r["decision"], r["blob_id"], r["owner"]) for r in _sql(
        home, "SELECT s.source_uri, s.source_ref, s.decision, m.blob_id, s.owner FROM sightings s JOIN messages m USING (msg_id)"))
    return blobs, arrivals


def _run(home, plan, dovecot, *args, check=0):
    return mailarchive(home, "migrate", "run", str(plan), "--ca-file", str(dovecot.ca_cert_path), *args,
                       json_out=True, check=check)


def test_parallel_run_equals_the_sequential_one(dovecot, tmp_path):
    plan, users = _plan(tmp_path, dovecot)
    seq, par = _init(tmp_path, "seq"), _init(tmp_path, "par")
    r_seq = _run(seq, plan, dovecot, "--parallel", "1").result
    r_par = _run(par, plan, dovecot, "--parallel", "4", "--per-server", "3", "--report", str(tmp_path / "r.json"),
                 "--html-report", str(tmp_path / "r.html")).result
    assert [s["status"] for s in r_par["sources"]] == ["complete"] * 12
    assert r_par["seen"] == r_seq["seen"] and r_par["archived"] == r_seq["archived"]
    assert r_par["duplicates"] > 0  # the shared mails were seen again across sources
    blobs_seq, arrivals_seq = _catalog(seq)
    blobs_par, arrivals_par = _catalog(par)
    assert blobs_par == blobs_seq and len(blobs_par) == r_par["archived"]
    assert arrivals_par == arrivals_seq  # the same decision for every arrival
    assert {a[4] for a in arrivals_par} >= {"archivist"} and all(a[4] for a in arrivals_par)
    assert json.loads((tmp_path / "r.json").read_text())["sources"] == r_par["sources"]
    folders = _sql(par, f"SELECT DISTINCT folder FROM sightings WHERE owner = 'owner-{users[1][0]}'")
    assert folders == [{"folder": "Archive"}]  # the plan's folders column is an include list
    page = (tmp_path / "r.html").read_text()
    assert page.count("<tr class=\"complete\">") == 12 and "<script" not in page and "http" not in page.split("<table")[0].lower()
    # every owner is unknown to the (empty) directory: warned about, not an error
    assert any("archivist" in w for w in r_par["warnings"])
    again = _run(par, plan, dovecot, "--parallel", "4").result  # a rerun skips the finished sources
    assert [s["status"] for s in again["sources"]] == ["done-before"] * 12 and again["seen"] == 0


def test_wrong_password_fails_that_source_only_and_a_rerun_archives_only_it(dovecot, tmp_path):
    plan, users = _plan(tmp_path, dovecot, n_imap=3, n_pop=1)
    bad_user, good_pw = users[1]
    (tmp_path / f"{bad_user}.pw").write_text("not-the-password\n")
    home = _init(tmp_path, "home")
    r = _run(home, plan, dovecot, "--parallel", "3", check=1).result
    by_line = {s["line"]: s for s in r["sources"]}
    bad = by_line[3]
    assert bad["user"] == bad_user and bad["status"] == "failed" and "rejected" in bad["reason"].lower()
    assert all(s["status"] == "complete" for n, s in by_line.items() if n != 3)
    before = {b for b in _catalog(home)[0]}
    (tmp_path / f"{bad_user}.pw").write_text(good_pw + "\n")
    r2 = _run(home, plan, dovecot, "--parallel", "3").result
    again = {s["line"]: s for s in r2["sources"]}
    assert again[3]["status"] == "complete" and again[3]["seen"] > 0
    assert all(s["status"] == "done-before" and s["seen"] == 0 for n, s in again.items() if n != 3)
    after = _catalog(home)[0]
    own = {b["blob_id"] for b in _sql(home, f"SELECT m.blob_id FROM messages m JOIN sightings s USING (msg_id) "
                                            f"WHERE s.owner = 'owner-{bad_user}' AND s.decision = 'new'")}
    assert after - before == own and own  # only that account's mails were archived by the rerun


def test_check_lists_every_broken_line_and_runs_nothing(dovecot, tmp_path):
    (u1, p1), (u2, _p2) = _users(dovecot, 2)
    (tmp_path / "good.pw").write_text(p1)
    (tmp_path / "bad.pw").write_text("wrong")
    _maildir(tmp_path / "md", [_mail("c", 1)])
    plan = tmp_path / "plan.csv"
    plan.write_text(
        "kind,location,user,password_file,owner,folders\n"
        f"imap,imaps://127.0.0.1:{dovecot.imaps_port},{u1},good.pw,,\n"        # line 2: fine
        "floppy,/dev/fd0,,,,\n"                                                 # line 3: unknown kind
        f"imap,imaps://127.0.0.1:1,{u1},good.pw,,\n"                           # line 4: unreachable
        f"pop3,pop3s://127.0.0.1:{dovecot.pop3s_port},{u2},bad.pw,,\n"          # line 5: bad login
        "maildir,md,,,,\n")                                                     # line 6: fine
    home = _init(tmp_path, "home")
    p = mailarchive(home, "migrate", "check", str(plan), "--ca-file", str(dovecot.ca_cert_path), json_out=True, check=1)
    lines = {x["line"]: x["problem"] for x in p.result["problems"]}
    assert set(lines) == {3, 4, 5}
    assert "floppy" in lines[3] and "connect" in lines[4] and "rejected" in lines[5].lower()
    assert _sql(home, "SELECT count(*) AS n FROM runs") == [{"n": 0}]  # nothing ran
    run = mailarchive(home, "migrate", "run", str(plan), "--ca-file", str(dovecot.ca_cert_path), check=2)
    assert "line 3" in run.stderr and "floppy" in run.stderr


def test_kill_9_midway_then_rerun_gives_the_clean_blob_set(dovecot, tmp_path):
    plan, _ = _plan(tmp_path, dovecot)
    clean = _init(tmp_path, "clean")
    _run(clean, plan, dovecot, "--parallel", "4")
    home = _init(tmp_path, "home")
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": "2000"}
    cmd = [sys.executable, "-m", "toolkit", "--archive", str(home), "migrate", "run", str(plan), "--parallel", "4",
           "--ca-file", str(dovecot.ca_cert_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:  # wait for the first committed pack
        if list((tmp_path / "home-medium").rglob("*.pack")):
            break
        time.sleep(0.05)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed, "the run ended before it could be killed: make the plan larger"
    _run(home, plan, dovecot, "--parallel", "4")
    assert _catalog(home)[0] == _catalog(clean)[0]
    dup = _sql(home, "SELECT count(*) AS n FROM (SELECT dedup_key FROM messages GROUP BY dedup_key HAVING count(*) > 1)")
    assert dup == [{"n": 0}]
