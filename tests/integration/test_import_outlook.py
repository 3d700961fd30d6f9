"""``import msg`` / ``import pst`` on the Outlook files of the d-pst-msg corpus."""
from __future__ import annotations

import email
import hashlib
import email.policy
import json

import pytest

from tests.cli import mailarchive, run_cli
from tests.corpora import corpora_dir

#: Header defects Python's parser finds that the source data already has, in the transport headers
#: the .msg file carries (by subject): ``To: "Sven Sielenkemper"`` (a display name, no address) and
#: ``To: C.Cane <benny.bottema@aegon.nl>`` (an unquoted dot in the display name).
KNOWN_SOURCE_DEFECTS = {
    "Test E-Mail": {"To:InvalidHeaderDefect"},
    "hey": {"To:ObsoleteHeaderDefect"},
}



def _nonzero(decisions: dict) -> dict:
    """The decision kinds that occurred (a summary lists every kind, zeros included)."""
    return {k: v for k, v in decisions.items() if v}

def _defects(msg) -> set[str]:
    out = set()
    for part in msg.walk():
        out |= {type(d).__name__ for d in part.defects}
        for k, v in part.items():
            out |= {f"{k}:{type(d).__name__}" for d in getattr(v, "defects", ())}
    return out


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    mailarchive(h, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    return h


def _sql(home, query):
    return json.loads(mailarchive(home, "sql", query, json_out=True).stdout)


def test_import_msg_every_file_one_mail_no_new_defects_and_rerun_all_duplicates(home, tmp_path):
    corpus = corpora_dir() / "d-pst-msg"
    files = sorted(p for p in corpus.rglob("*") if p.suffix.lower() in (".msg", ".oft"))
    assert len(files) == 49
    first = mailarchive(home, "import", "msg", str(corpus), json_out=True).result
    assert first["errors"] == 0
    # every MSG gives one mail; two files of the corpus are the same file (same SHA-256), so the
    # second one converts to the same bytes and is an exact duplicate
    distinct = len({hashlib.sha256(p.read_bytes()).digest() for p in files})
    assert distinct == 48
    assert first["seen"] == 49 and first["archived"] == distinct and first["duplicates"] == 1
    # everything else under the corpus (PSTs, TNEF, the licence text) is listed as skipped, not lost
    others = [p for p in corpus.rglob("*") if p.is_file() and p not in files]
    assert first["skipped"] == len(others)

    again = mailarchive(home, "import", "msg", str(corpus), json_out=True).result
    assert again["archived"] == 0 and _nonzero(again["decisions"]) == {"exact-duplicate": 49}

    rows = _sql(home, "SELECT via, count(*) AS n FROM sightings GROUP BY via")
    assert rows == [{"via": "msg:mapi2mime/1", "n": 98}]  # marked converted, with converter and version

    out = tmp_path / "export"
    mailarchive(home, "export", "eml", str(out))
    exported = sorted(out.rglob("*.eml"))
    assert len(exported) == 48
    types, bad = {}, {}
    for p in exported:
        msg = email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        types[p.name] = msg.get_content_type()
        found = _defects(msg) - KNOWN_SOURCE_DEFECTS.get(str(msg["Subject"]), set())
        if found:
            bad[p.name] = found
    assert bad == {}
    # S/MIME rebuilt as real S/MIME entities, embedded messages as message/rfc822
    assert sum(t == "multipart/signed" for t in types.values()) == 2
    assert sum(t == "application/pkcs7-mime" for t in types.values()) == 2
    bodies = b"".join(p.read_bytes() for p in exported)
    assert bodies.count(b"Content-Type: message/rfc822") >= 5


def test_msg_bcc_from_recipient_table(home, tmp_path):
    corpus = corpora_dir() / "d-pst-msg" / "outlook-message-parser"
    src = corpus / "simple email with TO and CC_multiple.msg"
    mailarchive(home, "import", "msg", str(src))
    out = tmp_path / "export"
    mailarchive(home, "export", "eml", str(out))
    (eml,) = out.rglob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert msg["Bcc"] is not None and msg["Bcc"].addresses


#: Mail items per store (IPM.Note*, REPORT.*, IPM.Schedule.*, IPM.Post), counted in the study of
#: these files with pypff and cross-checked against readpst: 139 in all.
PST_MAIL = {
    "pstsdk/test_ansi.pst": 1, "pstsdk/sample2.pst": 1, "pstsdk/test_unicode.pst": 2, "pstsdk/sample1.pst": 1,
    "pstsdk/submessage.pst": 1, "java-libpst/dist-list.pst": 0, "java-libpst/passworded.pst": 0,
    "aspose-email/Outlook.pst": 14, "aspose-email/source.pst": 14, "aspose-email/passwordprotectedPST.pst": 18,
    "aspose-email/SampleContacts.pst": 0, "aspose-email/PersonalStorage.pst": 0, "aspose-email/SampleOstFile.ost": 87,
}


#: Embedded messages (attach method 5) of the mail items, recovered with readpst: the study found 17 in
#: the corpus; the other 2 are exceptions of an appointment (java-libpst/dist-list.pst), not mail.
PST_EMBEDDED_IN_MAIL = {
    "pstsdk/submessage.pst": 1, "aspose-email/Outlook.pst": 4, "aspose-email/source.pst": 4,
    "aspose-email/passwordprotectedPST.pst": 5, "aspose-email/SampleOstFile.ost": 1,
}


def test_import_pst_counts_folders_non_mail_listed_rerun_duplicates(home, tmp_path):
    corpus = corpora_dir() / "d-pst-msg"
    first = mailarchive(home, "import", "pst", str(corpus), json_out=True).result
    embedded_total = sum(PST_EMBEDDED_IN_MAIL.values())
    assert first["errors"] == 0 and first["seen"] == sum(PST_MAIL.values()) + embedded_total == 139 + 15
    rows = _sql(home, "SELECT source_ref, folder, via FROM sightings")
    per_store = {k: 0 for k in PST_MAIL}
    per_store_embedded = {k: 0 for k in PST_MAIL}
    for r in rows:
        store = r["source_ref"].split("#", 1)[0]
        if "/embedded=" in r["source_ref"]:
            per_store_embedded[store] += 1
            assert r["via"] == "pst:readpst"
        else:
            per_store[store] += 1
            assert r["via"] == "pst:mapi2mime/1"
    assert per_store == PST_MAIL
    assert {k: v for k, v in per_store_embedded.items() if v} == PST_EMBEDDED_IN_MAIL
    # every embedded message is linked to the mail it was embedded in, one link per pair
    links = _sql(home, """SELECT c.source_ref AS child, p.source_ref AS parent, l.kind FROM message_links l
                          JOIN sightings c ON c.msg_id = l.msg_id AND c.run_id = l.run_id
                          JOIN sightings p ON p.msg_id = l.parent_msg_id AND p.run_id = l.run_id""")
    linked = {(r["child"].rsplit("/embedded=", 1)[0], r["kind"]) for r in links if "/embedded=" in r["child"]}
    parents = {r["source_ref"].rsplit("/embedded=", 1)[0] for r in rows if "/embedded=" in r["source_ref"]}
    assert {p for p, _ in linked} == parents and {k for _, k in linked} == {"embedded"}
    assert len(parents) == 11
    n_links = _sql(home, "SELECT count(*) AS n FROM message_links")[0]["n"]
    # the embedded messages that are the same mail (the Inbox and Sent Items copies) are archived once
    assert n_links == len(_sql(home, "SELECT DISTINCT msg_id, parent_msg_id FROM message_links"))
    embedded = [e for e in _sql(home, "SELECT DISTINCT m.subject FROM message_links l JOIN messages m USING (msg_id)")]
    assert {"This is an embedded message"} <= {e["subject"] for e in embedded}
    folders = {r["folder"] for r in rows}
    assert {"Inbox", "Sent Items", "Deleted Items", "Inbox/sub1", "Sync Issues"} <= folders
    assert not any(f and ("IPM_SUBTREE" in f or "Top of Personal Folders" in f) for f in folders)
    # non-mail items are listed with their class, not imported
    reasons = [p["message"] for p in first["sources"][0]["problems"] if p["kind"] == "skipped"]
    assert reasons.count("not mail: IPM.Contact") == 1 + 1 + 6 + 1 + 1
    assert reasons.count("not mail: IPM.DistList") == 2
    assert reasons.count("not mail: IPM.Appointment") == 1 + 1 + 1 + 5
    # the other 2 of the corpus's 17 embedded messages: exceptions of an appointment, listed, not mail
    assert reasons.count("not mail: embedded item of IPM.Appointment") == 2

    again = mailarchive(home, "import", "pst", str(corpus), json_out=True).result
    # Same bytes again: everything archived is an exact duplicate now. Two items are the same mail
    # as another item with other bytes (a copy in Sent Items without transport headers, a second
    # copy in the Inbox): those were recorded as duplicates, not stored, and stay duplicates.
    assert again["archived"] == 0
    assert _sql(home, "SELECT count(*) AS n FROM message_links")[0]["n"] == n_links  # no link twice
    assert _nonzero(again["decisions"]) == {"exact-duplicate": 154 - first["decisions"]["duplicate"],
                                  "duplicate": first["decisions"]["duplicate"]}
    assert first["decisions"]["duplicate"] == 2

    out = tmp_path / "export"
    mailarchive(home, "export", "eml", str(out))
    msgs = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in out.rglob("*.eml")]
    bcc = [m for m in msgs if m["Subject"] == "test mail(Aspose.Email Evaluation)" and m["Bcc"]]
    assert bcc and "receiver3@receiver.com" in str(bcc[0]["Bcc"])


def test_pst_attachments_byte_identical_to_the_reader():
    import pypff

    from importers.pst import PstImporter
    from toolkit.reporter import NullReporter
    from toolkit.source import SourceMail

    store = corpora_dir() / "d-pst-msg" / "aspose-email" / "Outlook.pst"
    f = pypff.file()
    f.open(str(store))
    expected = set()
    stack = [f.root_folder]
    while stack:
        folder = stack.pop()
        stack += list(folder.sub_folders)
        for i in range(folder.number_of_sub_messages):
            m = folder.get_sub_message(i)
            for j in range(getattr(m, "number_of_attachments", 0)):
                a = m.get_attachment(j)
                if a.size:
                    expected.add(a.read_buffer(a.size))
    f.close()
    got = set()
    for item in PstImporter(str(store)).scan(None, NullReporter()):
        if isinstance(item, SourceMail):
            for part in email.message_from_bytes(item.raw, policy=email.policy.default).walk():
                if part.get_content_disposition() in ("attachment", "inline") and not part.is_multipart():
                    got.add(part.get_payload(decode=True))
    mail_attachments = {b for b in expected if b in got}
    assert len(mail_attachments) >= 3 and got >= mail_attachments


def test_pst_password_flag_reported_and_store_read():
    from importers.pst import PstImporter
    from toolkit.reporter import ListReporter
    from toolkit.source import SourceMail

    rep = ListReporter()
    store = corpora_dir() / "d-pst-msg" / "aspose-email" / "passwordprotectedPST.pst"
    items = list(PstImporter(str(store)).scan(None, rep))
    mails = [i for i in items if isinstance(i, SourceMail)]
    assert sum(i.parent_ref is None for i in mails) == 18
    assert [w for w in rep.warnings if "password-flagged (0x11A89DA7)" in w]
    # the 5 embedded messages (4 NDR/DR originals, 1 forwarded mail) follow their parent, each linked
    # to it; the cursor passes the parent only with its last embedded message (a resume never splits them)
    children = [i for i in mails if i.parent_ref is not None]
    assert len(children) == 5 and not [w for w in rep.warnings if "not recovered" in w]
    for n, item in enumerate(mails):
        if item.embedded:
            kids = mails[n + 1:n + 1 + item.embedded]
            assert item.cursor is None and kids[-1].cursor is not None
            assert all(k.parent_ref == item.ref and k.cursor is None for k in kids[:-1])
            assert all(k.parent_ref == item.ref for k in kids)
    for child in children:
        msg = email.message_from_bytes(child.raw, policy=email.policy.default)
        assert msg["Subject"] and msg["From"] and not child.raw.startswith((b">From ", b"From "))
    # the same store gives the same bytes again (readpst's random boundaries are replaced)
    again = [i.raw for i in PstImporter(str(store)).scan(None, ListReporter()) if isinstance(i, SourceMail)]
    assert again == [i.raw for i in mails]


def test_pst_without_readpst_keeps_the_parent_and_reports_the_embedded_messages(monkeypatch):
    from importers.pst import PstImporter
    from toolkit.reporter import ListReporter
    from toolkit.source import SourceMail

    monkeypatch.setenv("PATH", "/nonexistent")  # readpst cannot be found
    rep = ListReporter()
    store = corpora_dir() / "d-pst-msg" / "pstsdk" / "submessage.pst"
    mails = [i for i in PstImporter(str(store)).scan(None, rep) if isinstance(i, SourceMail)]
    assert len(mails) == 1 and mails[0].cursor is not None
    assert [w for w in rep.warnings if "1 embedded message(s) not recovered" in w and "pst-utils" in w]


def test_pst_truncated_store_is_an_error_naming_the_file(tmp_path):
    from importers.pst import PstImporter
    from toolkit.reporter import NullReporter
    from toolkit.source import SourceProblem

    data = (corpora_dir() / "d-pst-msg" / "aspose-email" / "Outlook.pst").read_bytes()
    (tmp_path / "cut.pst").write_bytes(data[:4096])
    items = list(PstImporter(str(tmp_path / "cut.pst")).scan(None, NullReporter()))
    assert items and all(isinstance(i, SourceProblem) for i in items)
    assert items[0].ref == "cut.pst" and "PST/OST" in items[0].message


def test_pst_resume_from_a_cursor_gives_the_rest():
    from importers.pst import PstImporter
    from toolkit.reporter import NullReporter

    store = corpora_dir() / "d-pst-msg" / "aspose-email" / "SampleOstFile.ost"
    full = list(PstImporter(str(store)).scan(None, NullReporter()))
    sent = [i for i in full if getattr(i, "folder", None) == "Sent Items"]
    assert len(sent) == 6  # their sender is an X.500 DN only; the Inbox copies give its SMTP address
    for i in sent:
        assert email.message_from_bytes(i.raw, policy=email.policy.default)["From"].addresses[0].addr_spec == \
            "saqib.razzaq@ex2010.local"
    k = 40
    rest = list(PstImporter(str(store)).scan(full[k].cursor, NullReporter()))
    assert [i.ref for i in rest] == [i.ref for i in full[k + 1:]]
    assert [getattr(i, "raw", None) for i in rest] == [getattr(i, "raw", None) for i in full[k + 1:]]


def _mixed_tree(root):
    """PST, OST-free small stores, MSG, TNEF, EML and an mbox side by side (names that hide nothing)."""
    import shutil

    from tests.corpora import REPO

    corpus = corpora_dir() / "d-pst-msg"
    (root / "outlook" / "stores").mkdir(parents=True)
    shutil.copy(corpus / "pstsdk" / "test_unicode.pst", root / "outlook" / "stores" / "old.pst")
    shutil.copy(corpus / "aspose-email" / "SampleContacts.pst", root / "outlook" / "stores" / "contacts")
    shutil.copy(corpus / "outlook-message-parser" / "simple sent.msg", root / "outlook" / "dragged.dat")
    shutil.copy(corpus / "mimekit-tnef" / "body.tnef", root / "outlook" / "winmail.dat")
    (root / "mail").mkdir()
    (root / "mail" / "one.eml").write_bytes(
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: eml\r\nMessage-ID: <mix-1@example.com>\r\n\r\nbody\r\n")
    shutil.copy(REPO / "sample_data" / "mbox" / "lists.mbox", root / "mail" / "lists.mbox")


def _check_mixed(result, rows):
    assert result["errors"] == 0
    assert result["seen"] == 2 + 1 + 1 + 1 + 5
    by_via = {}
    for r in rows:
        by_via[r["via"]] = by_via.get(r["via"], 0) + 1
    # an EML file and an mbox on the share are recorded as read from such a file (their flags field holds notes)
    assert by_via == {"pst:mapi2mime/1": 2, "msg:mapi2mime/1": 1, "tnef:mapi2mime/1": 1, "eml": 1, "mbox": 5}
    folders = {r["folder"] for r in rows if r["via"].startswith("pst:")}
    assert folders == {"outlook/stores/old.pst", "outlook/stores/old.pst/Folder"}
    listed = {p["ref"]: p["message"] for p in result["sources"][0]["problems"]}
    tnef = [r for r in rows if r["via"].startswith("tnef:")]
    assert tnef[0]["folder"] == "outlook"
    assert sum(m == "not mail: IPM.Contact" for m in listed.values()) == 6


def test_share_routes_outlook_files_by_content(home, tmp_path):
    root = tmp_path / "tree"
    _mixed_tree(root)
    r = mailarchive(home, "import", "share", str(root), json_out=True).result
    _check_mixed(r, _sql(home, "SELECT via, folder FROM sightings"))
    again = mailarchive(home, "import", "share", str(root), json_out=True).result
    assert again["archived"] == 0 and again["duplicates"] == 10


@pytest.mark.samba
def test_share_on_samba_routes_outlook_files(home, samba, smb_location):
    sub = smb_location.rstrip("/").rpartition("/")[2]
    root = samba.share_dir / sub
    root.mkdir()
    _mixed_tree(root)
    r = mailarchive(home, "import", "share", smb_location, json_out=True, timeout=120).result
    _check_mixed(r, _sql(home, "SELECT via, folder FROM sightings"))
    # import pst on the share: the same store, the same bytes (exact duplicates), folders as locally
    p = mailarchive(home, "import", "pst", f"{smb_location}/outlook/stores", json_out=True, timeout=120).result
    assert p["errors"] == 0 and p["seen"] == 2 and _nonzero(p["decisions"]) == {"exact-duplicate": 2}
    rows = _sql(home, "SELECT folder FROM sightings WHERE source_uri LIKE 'pst:%'")
    assert sorted(r["folder"] or "" for r in rows) == ["", "Folder"]


def _pst_import(home, store, fault=None):
    import os
    import subprocess
    import sys

    from tests.cli import PASSWORD

    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": str(64 * 1024)}
    env.pop("MAILARCHIVE_FAULT", None)
    if fault:
        env["MAILARCHIVE_FAULT"] = fault
    return run_cli([sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "import", "pst", str(store)],
                   env=env, timeout=600)


def test_pst_kill_9_then_rerun_gives_the_clean_blob_set(tmp_path):
    import signal

    store = corpora_dir() / "d-pst-msg" / "aspose-email" / "SampleOstFile.ost"
    blobs = {}
    for name, fault in (("clean", None), ("killed", "after_db_commit:2")):
        home = tmp_path / name
        mailarchive(home, "init", "--medium", str(tmp_path / f"m-{name}"))
        p = _pst_import(home, store, fault)
        if fault:
            assert p.returncode == -signal.SIGKILL, p.stderr
            p = _pst_import(home, store)
            resumed = json.loads(p.stdout)
            assert resumed["seen"] < 87  # it went on after the committed part, not from the start
        assert p.returncode == 0, p.stderr
        rows = _sql(home, "SELECT blob_id FROM messages")
        blobs[name] = [r["blob_id"] for r in rows]
    assert len(blobs["killed"]) == len(set(blobs["killed"]))
    assert set(blobs["killed"]) == set(blobs["clean"]) and len(blobs["clean"]) > 80


@pytest.mark.parametrize("name", ["S_MIME test message signed.msg", "OutlookMessage with X500 dual address.msg"])
def test_smime_signed_msg_converts_to_a_signature_openssl_accepts(tmp_path, name):
    import subprocess

    from importers.msg import item_from_msg

    src = corpora_dir() / "d-pst-msg" / "outlook-message-parser" / name
    item = item_from_msg(src.read_bytes(), name, None, None)
    out = tmp_path / "signed.eml"
    out.write_bytes(item.raw)
    assert email.message_from_bytes(item.raw, policy=email.policy.default).get_content_type() == "multipart/signed"
    p = subprocess.run(["openssl", "smime", "-verify", "-noverify", "-in", str(out), "-out", str(tmp_path / "content")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    # a changed byte in the signed content makes openssl refuse it: the check is real
    tampered = item.raw
    body_at = tampered.index(b"\r\n\r\n--") + 4
    boundary_end = tampered.index(b"\r\n", body_at)
    first_part_at = tampered.index(b"\r\n\r\n", boundary_end) + 4
    bad = tampered[:first_part_at] + (b"X" if tampered[first_part_at:first_part_at + 1] != b"X" else b"Y") + tampered[first_part_at + 1:]
    (tmp_path / "bad.eml").write_bytes(bad)
    p = subprocess.run(["openssl", "smime", "-verify", "-noverify", "-in", str(tmp_path / "bad.eml"), "-out", "/dev/null"],
                       capture_output=True, text=True)
    assert p.returncode != 0


#: The .msg files of the corpus with an embedded message (attach method 5); the reader alone
#: drops every one of them (it reads the embedded property header with the top-level layout).
EMBEDDED_MSG = ["aspose-email/msg/WithEmbeddedMsg.msg", "aspose-email/msg/failed.msg", "aspose-email/msg/message3.msg",
                "outlook-message-parser/nested simple mail.msg", "outlook-message-parser/testgetmsgAttch.msg"]


@pytest.mark.parametrize("rel", EMBEDDED_MSG)
def test_msg_embedded_message_becomes_message_rfc822(rel):
    from importers.msg import item_from_msg

    item = item_from_msg((corpora_dir() / "d-pst-msg" / rel).read_bytes(), rel, None, None)
    msg = email.message_from_bytes(item.raw, policy=email.policy.default)
    inner = [p.get_content() for p in msg.walk() if p.get_content_type() == "message/rfc822"]
    assert inner and all(len(m.keys()) >= 2 and m.get_body() is not None for m in inner)
    assert b"could not be converted" not in item.raw


def test_import_msg_does_not_read_other_files_whole(tmp_path):
    """A file that is not a .msg is recognised from its first bytes and never loaded whole (a 64 MiB
    sparse 'PST' here: the whole-file read is watched and must not happen)."""
    from importers.msg import MsgImporter
    from toolkit.reporter import NullReporter
    from toolkit.source import SourceSkip

    big = tmp_path / "store.pst"
    with open(big, "wb") as f:
        f.write(b"!BDN")
        f.truncate(64 << 20)
    reads = []
    imp = MsgImporter(str(tmp_path))
    import importers.msg as m

    orig = m.read_local
    m.read_local = lambda *a: reads.append(a) or orig(*a)
    try:
        items = list(imp.scan(None, NullReporter()))
    finally:
        m.read_local = orig
    assert len(items) == 1 and isinstance(items[0], SourceSkip) and reads == []


def test_every_tnef_of_the_corpus_converts_without_defects():
    from importers.tnef import item_from_tnef
    from toolkit.source import SourceMail

    files = sorted((corpora_dir() / "d-pst-msg" / "mimekit-tnef").glob("*.tnef"))
    assert len(files) == 19
    for p in files:
        item = item_from_tnef(p.read_bytes(), p.name, None, None)
        assert isinstance(item, SourceMail), (p.name, getattr(item, "message", None))
        assert item_from_tnef(p.read_bytes(), p.name, None, None).raw == item.raw
        assert _defects(email.message_from_bytes(item.raw, policy=email.policy.default)) == set(), p.name
    # attachments come through with their bytes; a nested TNEF becomes message/rfc822
    from tnefparse import TNEF

    src = corpora_dir() / "d-pst-msg" / "mimekit-tnef" / "two-files.tnef"
    want = {a.data for a in TNEF(src.read_bytes(), do_checksum=False).attachments}
    msg = email.message_from_bytes(item_from_tnef(src.read_bytes(), "x", None, None).raw, policy=email.policy.default)
    assert {p.get_payload(decode=True) for p in msg.iter_attachments()} == want
    xmas = item_from_tnef((corpora_dir() / "d-pst-msg" / "mimekit-tnef" / "christmas.tnef").read_bytes(), "x", None, None)
    assert b"Content-Type: message/rfc822" in xmas.raw


def test_a_damaged_msg_is_an_error_and_another_ole2_file_a_skip(tmp_path):
    """A file named .msg that is an OLE2 compound file without MSG streams is a damaged message: an error (exit 1),
    in `import msg` and in `import share`; another OLE2 file (a .doc) stays a skip."""
    from importers.msg import MsgImporter
    from importers.share import ShareImporter
    from toolkit.reporter import NullReporter
    from toolkit.source import SourceProblem, SourceSkip

    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 20
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "Offer.msg").write_bytes(ole2)
    (tmp_path / "t" / "Report.doc").write_bytes(ole2)
    for importer in (MsgImporter(str(tmp_path / "t")), ShareImporter(str(tmp_path / "t"))):
        kinds = {i.ref: type(i) for i in importer.scan(None, NullReporter()) if i.ref in ("Offer.msg", "Report.doc")}
        assert kinds == {"Offer.msg": SourceProblem, "Report.doc": SourceSkip}, importer
    home = tmp_path / "home"
    mailarchive(home, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / "kb.txt"))
    r = mailarchive(home, "import", "msg", str(tmp_path / "t"), json_out=True, check=1).result
    (problem,) = [p for p in r["sources"][0]["problems"] if p["ref"] == "Offer.msg"]
    assert problem["kind"] == "error" and "holds no readable MSG streams" in problem["message"]


def test_a_pst_without_its_signature_is_an_error_and_other_files_skips(tmp_path):
    from importers.pst import PstImporter
    from toolkit.reporter import NullReporter
    from toolkit.source import SourceProblem, SourceSkip

    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "archive2019.pst").write_bytes(b"\0" * 4096)  # a store whose header was overwritten
    (tmp_path / "t" / "notes.txt").write_bytes(b"not a store")
    got = {i.ref: i for i in PstImporter(str(tmp_path / "t")).scan(None, NullReporter())}
    assert isinstance(got["archive2019.pst"], SourceProblem) and "!BDN" in got["archive2019.pst"].message
    assert isinstance(got["notes.txt"], SourceSkip)
