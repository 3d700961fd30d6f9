"""Issue 19, points 1 and 2: the directory (users, groups, local domains and aliases, revisor profiles) and
exports and SQL limited to what one person may see.

The source is sample_data's eml files and journal reports plus two mails written here
(one to a user under an alias domain, one only to a group's assigned address). The
expected selections are computed here, independently of the toolkit, by reading the
source mails with Python's email package: the header addresses (From, To, Cc, Bcc) of
each mail, or for a journal report those of its embedded original plus the envelope's
recipient lines (To/Cc/Recipient/Bcc). A mail is identified by its Message-ID, Date and
Subject, so the copies the archive merges count once.
"""
from __future__ import annotations

import email
import email.policy
import email.utils
import json
import shutil
from pathlib import Path

import pytest

from tests.cli import mailarchive
from tests.corpora import REPO

SAMPLE = REPO / "sample_data"
ACTOR = {"MAILARCHIVE_ACTOR": "lead"}

DIRECTORY = """
domains = ["example.com", "example.net"]
aliases = { "gmbh.example" = "example.com" }

[[user]]
name = "anna"
addresses = ["anna.mueller@example.com"]

[[user]]
name = "bernd"
addresses = ["Bernd.Schaefer@example.com"]

[[user]]
name = "david"
addresses = ["david.okafor@example.net"]

[[group]]
name = "nordlicht"
members = ["david.okafor@example.net"]
assigned = ["projekt-nordlicht@example.com"]
"""

#: the addresses each user may see, written out by hand from DIRECTORY and the rules (docs/cli.md):
#: own addresses under every alias of a local domain, plus the assigned addresses of their groups
EXPECTED_ADDRESSES = {
    "anna": {"anna.mueller@example.com", "anna.mueller@gmbh.example"},
    "bernd": {"bernd.schaefer@example.com", "bernd.schaefer@gmbh.example"},
    "david": {"david.okafor@example.net", "projekt-nordlicht@example.com", "projekt-nordlicht@gmbh.example"},
}

EXTRA = {
    "alias.eml": "From: Clara Jones <clara.jones@example.org>\nTo: Anna <anna.mueller@gmbh.example>\n"
                 "Subject: Alias domain test\nDate: Sun, 01 Aug 2021 10:00:00 +0000\n"
                 "Message-ID: <alias.1@example.org>\n\nTo Anna under the alias domain.\n",
    "group.eml": "From: Eva Lindqvist <eva.lindqvist@example.org>\nTo: Team <projekt-nordlicht@example.com>\n"
                 "Subject: Only to the group\nDate: Mon, 02 Aug 2021 10:00:00 +0000\n"
                 "Message-ID: <group.1@example.org>\n\nOnly the group address.\n",
}


def _key(msg) -> tuple:
    return (str(msg.get("Message-ID", "")).strip(), str(msg.get("Date", "")).strip(), str(msg.get("Subject", "")).strip())


def _header_addresses(msg) -> set[str]:
    fields = [str(v) for name in ("from", "to", "cc", "bcc") for v in msg.get_all(name, [])]
    return {a.lower() for _, a in email.utils.getaddresses(fields) if "@" in a}


def _envelope_addresses(report) -> set[str]:
    """The recipient lines of a journal report's envelope (its first text/plain part): the address before any
    ', Expanded:'/', Forwarded:' note."""
    part = next(p for p in report.walk() if p.get_content_type() == "text/plain")
    out = set()
    for line in part.get_payload(decode=True).decode("ascii").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("to", "cc", "bcc", "recipient"):
            out.add(value.split(",")[0].strip().strip("<>").lower())
    return out


def source_mails(src: Path) -> dict[tuple, dict]:
    """key → {"headers": header addresses, "envelope": envelope addresses, "date": the Date header} of every mail."""
    mails: dict[tuple, dict] = {}
    for path in sorted(p for p in src.rglob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
        envelope: set[str] = set()
        if msg.get("X-MS-Journal-Report") is not None:
            envelope = _envelope_addresses(msg)
            msg = next(p for p in msg.walk() if p.get_content_type() == "message/rfc822").get_payload(0)
        m = mails.setdefault(_key(msg), {"headers": set(), "envelope": set(), "date": msg.get("Date")})
        m["headers"] |= _header_addresses(msg)
        m["envelope"] |= envelope
    return mails


def _addresses(m: dict) -> set[str]:
    return m["headers"] | m["envelope"]


def exported_keys(dest: Path) -> list[tuple]:
    return [_key(email.message_from_bytes(p.read_bytes(), policy=email.policy.compat32))
            for p in sorted(dest.rglob("*.eml"))]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    base = tmp_path_factory.mktemp("directory")
    src = base / "src"
    shutil.copytree(SAMPLE / "eml", src / "eml")
    shutil.copytree(SAMPLE / "journal", src / "journal")
    for name, text in EXTRA.items():
        (src / name).write_text(text, encoding="utf-8")
    home = base / "home"
    mailarchive(home, "init", "--medium", str(base / "m1"), "--key-backup", str(base / "kb.txt"))
    mailarchive(home, "import", "eml", str(src))
    (base / "directory.toml").write_text(DIRECTORY, encoding="utf-8")
    mailarchive(home, "directory", "import", str(base / "directory.toml"), env=ACTOR)
    mailarchive(home, "directory", "revisor", "set", "net-only", "--domain", "example.net", env=ACTOR)
    return home, src, base


@pytest.mark.parametrize("user", sorted(EXPECTED_ADDRESSES))
def test_export_as_user_gives_exactly_the_users_mail(archive, user):
    home, src, base = archive
    mails = source_mails(src)
    expected = {k for k, m in mails.items() if _addresses(m) & EXPECTED_ADDRESSES[user]}
    dest = base / f"export-{user}"
    mailarchive(home, "export", "eml", str(dest), "--as-user", user)
    got = exported_keys(dest)
    assert len(got) == len(set(got)), "each mail once"
    assert set(got) == expected
    assert 0 < len(expected) < len(mails)
    manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    scope = manifest["filters"]["scope"]
    assert scope["as_user"] == user and scope["directory_version"] == _list(home)["version"] >= 2
    assert set(scope["addresses"]) == EXPECTED_ADDRESSES[user]


def test_the_special_cases_are_in_the_expected_sets(archive):
    """The selections above include a Bcc known only from a journal envelope, an alias domain and a group address."""
    home, src, base = archive
    mails = source_mails(src)
    bcc_only = [k for k, m in mails.items() if "bernd.schaefer@example.com" in m["envelope"]
                and "bernd.schaefer@example.com" not in m["headers"]]
    assert [k[2] for k in bcc_only] == ["Preisanpassung 2021 - vertraulich"]
    group_only = [k for k, m in mails.items() if _addresses(m) & {"projekt-nordlicht@example.com"}
                  and "david.okafor@example.net" not in _addresses(m)]
    assert any(k[2] == "Only to the group" for k in group_only)
    assert any(k[2] == "Alias domain test" for k, m in mails.items() if "anna.mueller@gmbh.example" in m["headers"])


def test_bcc_group_and_alias_mail_reach_their_users(archive):
    home, src, base = archive
    for user, subject in (("bernd", "Preisanpassung 2021 - vertraulich"), ("david", "Only to the group"),
                          ("anna", "Alias domain test")):
        dest = base / f"special-{user}"
        mailarchive(home, "export", "eml", str(dest), "--as-user", user, "--since", "2021-01-01")
        subjects = {k[2] for k in exported_keys(dest)}
        assert subject in subjects, user


def test_scope_composes_with_the_other_filters(archive):
    home, src, base = archive
    mails = source_mails(src)
    since = email.utils.parsedate_to_datetime("Fri, 01 Jan 2021 00:00:00 +0000")
    expected = {k for k, m in mails.items() if _addresses(m) & EXPECTED_ADDRESSES["anna"]
                and email.utils.parsedate_to_datetime(m["date"]) >= since}
    dest = base / "anna-2021"
    mailarchive(home, "export", "eml", str(dest), "--as-user", "anna", "--since", "2021-01-01")
    assert set(exported_keys(dest)) == expected and expected


def test_revisor_limited_to_one_domain_gets_nothing_else(archive):
    home, src, base = archive
    mails = source_mails(src)
    in_domain = {k for k, m in mails.items() if any(a.rpartition("@")[2] == "example.net" for a in _addresses(m))}
    dest = base / "revisor"
    mailarchive(home, "export", "eml", str(dest), "--as-revisor", "net-only")
    assert set(exported_keys(dest)) == in_domain and 0 < len(in_domain) < len(mails)
    assert json.loads((dest / "manifest.json").read_text())["filters"]["scope"]["as_revisor"] == "net-only"

    rows = mailarchive(home, "sql", "--as-revisor", "net-only", "--format", "json",
                       "SELECT m.msg_id, m.message_id, m.subject, m.from_addr, "
                       "(SELECT list(r.address) FROM recipients r WHERE r.msg_id = m.msg_id) AS rcpt FROM messages m"
                       ).stdout
    rows = json.loads(rows)
    assert len(rows) == len(in_domain)
    for r in rows:
        addrs = [r["from_addr"] or ""] + (r["rcpt"] or [])
        assert any(a.lower().rpartition("@")[2] == "example.net" for a in addrs), r
    total = json.loads(mailarchive(home, "sql", "--format", "json", "SELECT count(*) AS n FROM messages").stdout)
    assert total[0]["n"] > len(rows)
    # the scoped session holds only the rows in scope: every table, and no way around it
    for query in ("SELECT count(*) FROM cat.messages", "SELECT count(*) FROM packs",
                  "SELECT * FROM cat.main.recipients"):
        mailarchive(home, "sql", "--as-revisor", "net-only", query, check=2)
    dbs = json.loads(mailarchive(home, "sql", "--as-revisor", "net-only", "--format", "json",
                                 "SELECT database_name FROM duckdb_databases()").stdout)
    assert {d["database_name"] for d in dbs} == {"memory", "system", "temp"}
    stray = json.loads(mailarchive(home, "sql", "--as-revisor", "net-only", "--format", "json",
                                   "SELECT (SELECT count(*) FROM recipients WHERE msg_id NOT IN "
                                   "(SELECT msg_id FROM messages)) + (SELECT count(*) FROM sightings WHERE msg_id "
                                   "NOT IN (SELECT msg_id FROM messages)) AS n").stdout)
    assert stray[0]["n"] == 0


def test_sql_as_user_sees_only_the_users_rows(archive):
    home, src, base = archive
    mails = source_mails(src)
    expected = {k for k, m in mails.items() if _addresses(m) & EXPECTED_ADDRESSES["bernd"]}
    rows = json.loads(mailarchive(home, "sql", "--as-user", "bernd", "--format", "json",
                                  "SELECT subject FROM messages").stdout)
    assert len(rows) == len(expected)
    assert "Preisanpassung 2021 - vertraulich" in {r["subject"] for r in rows}


def test_unknown_user_or_profile_is_a_usage_error(archive):
    home, src, base = archive
    p = mailarchive(home, "export", "eml", str(base / "nobody"), "--as-user", "nobody", check=2)
    assert "no user 'nobody'" in p.stderr
    mailarchive(home, "sql", "--as-revisor", "nobody", "SELECT 1", check=2)
    mailarchive(home, "export", "eml", str(base / "both"), "--as-user", "anna", "--as-revisor", "net-only", check=2)
    assert not (base / "nobody").exists()


def _list(home) -> dict:
    return mailarchive(home, "directory", "list", "--json", json_out=True).result


def _directory_events(home) -> list[dict]:
    rows = json.loads(mailarchive(home, "sql", "--format", "json",
                                  "SELECT kind, detail FROM events WHERE kind LIKE 'directory-%' ORDER BY event_id").stdout)
    return [{"kind": r["kind"], **json.loads(r["detail"])} for r in rows]


def test_directory_import_replaces_and_every_change_is_a_versioned_event(tmp_path):
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"), "--key-backup", str(tmp_path / "kb.txt"))
    first = tmp_path / "first.toml"
    first.write_text(DIRECTORY, encoding="utf-8")
    p = mailarchive(home, "directory", "import", str(first), check=2)  # no actor: refused, nothing recorded
    assert "--actor" in p.stderr
    assert _list(home)["version"] == 0 and _list(home)["users"] == {}

    mailarchive(home, "directory", "import", str(first), env=ACTOR)
    d = _list(home)
    assert d["version"] == 1 and sorted(d["users"]) == ["anna", "bernd", "david"]
    assert d["users"]["bernd"] == ["bernd.schaefer@example.com"]  # lowercased
    assert d["aliases"] == {"gmbh.example": "example.com"} and d["domains"] == ["example.com", "example.net"]
    assert d["groups"]["nordlicht"]["assigned"] == ["projekt-nordlicht@example.com"]
    r = mailarchive(home, "directory", "import", str(first), env=ACTOR, json_out=True).result
    assert r["changed"] is False and r["version"] == 1

    second = tmp_path / "second.toml"
    second.write_text(DIRECTORY.replace('[[user]]\nname = "bernd"\naddresses = ["Bernd.Schaefer@example.com"]\n', "")
                      .replace('"example.net"]', '"example.net", "example.org"]'), encoding="utf-8")
    mailarchive(home, "directory", "import", str(second), "--actor", "ops")
    d = _list(home)
    assert d["version"] == 2 and sorted(d["users"]) == ["anna", "david"]
    assert d["domains"] == ["example.com", "example.net", "example.org"]
    assert d["last_change"]["actor"] == "ops"

    for bad in ('domains = ["example.com"]\naliases = { "x.example" = "example.net" }\n',
                '[[user]]\nname = "a"\naddresses = ["x@example.com"]\n[[user]]\nname = "b"\naddresses = ["X@example.com"]\n',
                '[[user]]\nname = "a"\naddresses = ["no-at-sign"]\n',
                '[[user]]\nname = "a"\nadresses = ["a@example.com"]\n',
                'domains = [\n'):
        (tmp_path / "bad.toml").write_text(bad, encoding="utf-8")
        mailarchive(home, "directory", "import", str(tmp_path / "bad.toml"), env=ACTOR, check=2)
    assert _list(home)["version"] == 2 and sorted(_list(home)["users"]) == ["anna", "david"]

    mailarchive(home, "directory", "revisor", "set", "tax", env=ACTOR, check=2)  # no scope given
    mailarchive(home, "directory", "revisor", "set", "tax", "--domain", "example.com", "--folder", "INBOX", env=ACTOR)
    assert _list(home)["revisors"] == {"tax": {"all": False, "domains": ["example.com"], "folders": ["INBOX"]}}
    mailarchive(home, "directory", "revisor", "remove", "tax", env=ACTOR)
    mailarchive(home, "directory", "revisor", "remove", "tax", env=ACTOR, check=2)
    assert _list(home)["version"] == 4 and _list(home)["revisors"] == {}

    events = _directory_events(home)
    assert [(e["kind"], e["version"], e["actor"]) for e in events] == [
        ("directory-imported", 1, "lead"), ("directory-imported", 2, "ops"),
        ("directory-revisor-set", 3, "lead"), ("directory-revisor-removed", 4, "lead")]
    assert events[0]["what"]["users"]["added"] == ["anna", "bernd", "david"]
    assert events[1]["what"]["users"]["removed"] == ["bernd"]
    assert events[1]["what"]["domains"]["added"] == ["example.org"]
    assert events[1]["source"]["file"] == "second.toml"


def test_every_export_format_takes_the_scope(archive):
    home, src, base = archive
    mails = source_mails(src)
    expected = {k for k, m in mails.items() if _addresses(m) & EXPECTED_ADDRESSES["david"]}
    meta = base / "david.json"
    r = mailarchive(home, "export", "metadata", str(meta), "--as-user", "david", json_out=True).result
    assert r["filters"]["scope"]["as_user"] == "david" and r["filters"]["scope"]["groups"] == ["nordlicht"]
    rows = json.loads(meta.read_text(encoding="utf-8"))
    assert len(rows) == len(expected)
    assert "Only to the group" in {r["subject"] for r in rows}
    for fmt in ("mbox", "maildir"):
        dest = base / f"david-{fmt}"
        mailarchive(home, "export", fmt, str(dest), "--as-user", "david")
        manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
        assert len({m["msg_id"] for m in manifest["messages"]}) == len(expected), fmt  # a row per folder copy
        assert manifest["filters"]["scope"] == r["filters"]["scope"]


def _keys_under(src: Path, sub: str) -> set[tuple]:
    return set(source_mails(src / sub))


def test_revisor_by_folder_and_domain_sees_their_union(archive):
    """A profile of folders sees the mail seen in them or below; with a domain too, the union of both."""
    home, src, base = archive
    mails = source_mails(src)
    mailarchive(home, "directory", "revisor", "set", "y2021", "--folder", "eml/2021", env=ACTOR)
    dest = base / "revisor-2021"
    mailarchive(home, "export", "eml", str(dest), "--as-revisor", "y2021")
    under = _keys_under(src, "eml/2021")
    assert set(exported_keys(dest)) == under and set(source_mails(src / "eml/2021/projects")) < under

    mailarchive(home, "directory", "revisor", "set", "mixed", "--folder", "eml/2020", "--domain", "example.net",
                env=ACTOR)
    in_domain = {k for k, m in mails.items() if any(a.rpartition("@")[2] == "example.net" for a in _addresses(m))}
    dest = base / "revisor-mixed"
    mailarchive(home, "export", "eml", str(dest), "--as-revisor", "mixed")
    assert set(exported_keys(dest)) == in_domain | _keys_under(src, "eml/2020")
    assert _keys_under(src, "eml/2020") - in_domain, "the folder adds mail outside the domain"


def test_sql_as_user_hides_who_else_was_blind_copied(archive):
    """A user sees the Bcc rows of the mail they sent and their own Bcc rows; on mail sent to them, not
    who else was blind-copied (that includes the journal envelope, which lists every recipient)."""
    home, src, base = archive
    own = EXPECTED_ADDRESSES["anna"]
    query = ("SELECT r.msg_id, lower(r.address) AS address, lower(m.from_addr) AS sender FROM recipients r "
             "JOIN messages m USING (msg_id) WHERE r.kind = 'bcc'")
    scoped_ids = {r["msg_id"] for r in json.loads(mailarchive(
        home, "sql", "--as-user", "anna", "--format", "json", "SELECT msg_id FROM messages").stdout)}
    everyone = [r for r in json.loads(mailarchive(home, "sql", "--format", "json", query).stdout)
                if r["msg_id"] in scoped_ids]
    hidden = [r for r in everyone if r["address"] not in own and r["sender"] not in own]
    assert hidden, "the sample must hold a mail Anna may see with someone else's Bcc"
    seen = json.loads(mailarchive(home, "sql", "--as-user", "anna", "--format", "json", query).stdout)
    assert sorted(map(json.dumps, seen)) == sorted(json.dumps(r) for r in everyone if r not in hidden)
    envelopes = json.loads(mailarchive(home, "sql", "--as-user", "anna", "--format", "json",
                                       "SELECT e.msg_id, lower(m.from_addr) AS sender FROM envelopes e "
                                       "JOIN messages m USING (msg_id)").stdout)
    assert all(e["sender"] in own for e in envelopes), envelopes
