"""`mailarchive import mbox` end to end on sample_data/mbox (L3, L4, L8 rerun = duplicates)."""
from __future__ import annotations

import json
import re

from tests.cli import mailarchive
from tests.corpora import REPO

MBOX = REPO / "sample_data" / "mbox"
EXPECTED = json.loads((REPO / "sample_data" / "EXPECTED.json").read_text())


def test_import_mbox_counts_rerun_and_export(tmp_path):
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    rd = mailarchive(home, "import", "mbox", str(MBOX / "archive-2018.mbox"), "--variant", "mboxrd", json_out=True).result
    o = mailarchive(home, "import", "mbox", str(MBOX / "lists.mbox"), json_out=True).result
    assert rd["seen"] == rd["archived"] == EXPECTED["mbox"]["archive-2018.mbox"]
    assert o["seen"] == o["archived"] == EXPECTED["mbox"]["lists.mbox"]
    assert rd["errors"] == o["errors"] == 0

    again = mailarchive(home, "import", "mbox", str(MBOX / "lists.mbox"), json_out=True).result
    assert again["archived"] == 0 and again["duplicates"] == EXPECTED["mbox"]["lists.mbox"]

    out = tmp_path / "export"
    mailarchive(home, "export", "eml", str(out))
    texts = [p.read_bytes() for p in out.glob("*.eml")]
    assert len(texts) == sum(EXPECTED["mbox"].values())
    everything = b"\n".join(texts)
    # mboxrd: exactly one '>' removed (L3); mboxo: stored as written (L4)
    assert re.search(rb"(?m)^From the desk of Bernd", everything)
    assert re.search(rb"(?m)^>From here on the old quoting rule", everything)
    assert re.search(rb"(?m)^From 17:30 mulled wine", everything)
    assert re.search(rb"(?m)^>From experience: start early", everything)
    # what was archived is the mbox text between From_ line and separator, re-quoted for mboxrd
    source = (MBOX / "archive-2018.mbox").read_bytes()
    for text in texts:
        if b"From the desk" in text:
            assert re.sub(rb"(?m)^(>*From )", rb">\1", text) in source


def test_a_file_with_no_from_line_says_what_it_is_instead(tmp_path):
    """`import mbox` given one .eml, an Outlook store or plain text: exit 1, and for the first two the import
    that reads them (before: only "N bytes before the first From_ line are not a message")."""
    import shutil

    from tests.corpora import corpora_dir

    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    one = next((REPO / "sample_data" / "eml").rglob("*.eml"))
    store = tmp_path / "old.pst"
    shutil.copy(corpora_dir() / "d-pst-msg" / "pstsdk" / "sample1.pst", store)
    text = tmp_path / "notes.txt"
    text.write_text("hello\nworld\n")
    said = {}
    for path in (one, store, text):
        r = mailarchive(home, "import", "mbox", str(path), json_out=True, check=1).result
        said[path.name] = " ".join(p["message"] for p in r["sources"][0]["problems"])
    assert "it is one message without a From_ line, not an mbox; the eml import reads it" in said[one.name]
    assert "it is an Outlook PST/OST store; the pst import reads it" in said["old.pst"]
    assert "bytes before the first From_ line are not a message" in said["notes.txt"]
    assert ": it is" not in said["notes.txt"]


def test_export_mbox_flags_carries_maildir_flags_to_a_mail_program(tmp_path):
    """`export mbox --flags` on the command line: the flags of a Maildir import (in its file names) reach
    the Status:/X-Status: fields mutt and the standard library read; without it no such field is added."""
    import mailbox

    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    mailarchive(home, "import", "maildir", str(REPO / "sample_data" / "maildir"), json_out=True)
    names = sorted(p.name for p in (REPO / "sample_data" / "maildir").rglob("*")
                   if p.is_file() and p.parent.name in ("cur", "new"))
    letters = {"S": "R", "R": "A", "F": "F", "D": "T", "T": "D"}
    infos = [n.split(":2,")[1] if ":2," in n else "" for n in names]  # new/ names carry no flags
    wanted = sorted("".join(sorted({letters[c] for c in info if c in letters} | {"O"})) for info in infos)
    assert any(len(w) > 2 for w in wanted), "sample_data's Maildir should hold a mail with several flags"

    def exported(*options):
        out = tmp_path / ("with" if options else "without")
        r = mailarchive(home, "export", "mbox", str(out), *options, json_out=True).result
        assert r["written"] == len(names)
        return [m for m in mailbox.mbox(str(out / "messages.mbox"))]

    assert sorted("".join(sorted(m.get_flags())) for m in exported("--flags")) == wanted
    assert not [m for m in exported() if m["X-Mozilla-Status"] is not None]
