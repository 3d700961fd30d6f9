"""Converted mail and its original MIME (issue 17): a mail built from an Outlook item is marked as
converted in the catalog, and when the same mail also arrives as MIME received as it was, both are
kept and linked with the decision ``converted-twin`` (docs/dedup.md); an auditor lists the pairs."""
from __future__ import annotations

import email
import email.policy
import json
import shutil

import pytest

from tests.cli import mailarchive
from tests.corpora import corpora_dir

MSG = "outlook-message-parser/simple sent.msg"


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    mailarchive(h, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    return h


def _sql(home, query):
    return json.loads(mailarchive(home, "sql", query, json_out=True).stdout)


def _converted_and_original(home, tmp_path):
    """Import one MSG (converted) and return the original MIME of the same mail: the converted bytes as
    a server would hold them, with a Received line of its own (other bytes, same Message-ID and body)."""
    src = tmp_path / "msg"
    src.mkdir()
    shutil.copy(corpora_dir() / "d-pst-msg" / MSG, src / "one.msg")
    out = tmp_path / "export"
    first = mailarchive(home, "import", "msg", str(src), json_out=True).result
    assert first["archived"] == 1
    mailarchive(home, "export", "eml", str(out))
    converted = next(out.rglob("*.eml")).read_bytes()
    shutil.rmtree(out)
    eml = tmp_path / "eml"
    eml.mkdir()
    (eml / "original.eml").write_bytes(b"Received: from mx.example.org by mail.example.org; "
                                       b"Mon, 1 Jan 2024 00:00:00 +0000\r\n" + converted)
    return src, eml, converted


def test_converted_mail_is_marked_and_its_original_is_kept_as_a_twin(home, tmp_path):
    src, eml, converted = _converted_and_original(home, tmp_path)
    assert _sql(home, "SELECT source_kind, converter FROM conversions") == [
        {"source_kind": "msg", "converter": "mapi2mime/1"}]

    r = mailarchive(home, "import", "eml", str(eml), json_out=True).result
    # without the rule this is a plain duplicate of the converted mail and the original MIME is lost
    assert r["archived"] == 1 and r["decisions"]["converted-twin"] == 1 and r["duplicates"] == 0
    pairs = _sql(home, "SELECT original_msg_id, converted_msg_id, source_kind, converter FROM converted_twins")
    ids = {r["via"]: r["msg_id"] for r in _sql(home, "SELECT via, msg_id FROM sightings")}
    assert pairs == [{"original_msg_id": ids["eml"], "converted_msg_id": ids["msg:mapi2mime/1"],
                      "source_kind": "msg", "converter": "mapi2mime/1"}]
    assert _sql(home, "SELECT count(*) AS n FROM messages WHERE id_conflict")[0]["n"] == 0

    # both again: each is an exact duplicate of its own kind, no new pair
    again = mailarchive(home, "import", "eml", str(eml), json_out=True).result
    assert again["archived"] == 0 and again["decisions"]["exact-duplicate"] == 1
    again = mailarchive(home, "import", "msg", str(src), json_out=True).result
    assert again["archived"] == 0 and again["decisions"]["exact-duplicate"] == 1
    assert len(_sql(home, "SELECT * FROM converted_twins")) == 1


def test_an_original_first_then_the_converted_copy_is_also_a_twin(home, tmp_path):
    src, eml, _ = _converted_and_original(home, tmp_path)
    # a second archive that gets the original first
    other = tmp_path / "other"
    mailarchive(other, "init", "--medium", str(tmp_path / "medium2"), "--key-backup", str(tmp_path / "kb2.txt"))
    assert mailarchive(other, "import", "eml", str(eml), json_out=True).result["decisions"]["new"] == 1
    r = mailarchive(other, "import", "msg", str(src), json_out=True).result
    assert r["archived"] == 1 and r["decisions"]["converted-twin"] == 1
    pairs = _sql(other, "SELECT original_msg_id, converted_msg_id FROM converted_twins")
    assert pairs == [{"original_msg_id": 1, "converted_msg_id": 2}]


def test_export_prefers_the_original_mime_of_a_twin_pair(home, tmp_path):
    src, eml, converted = _converted_and_original(home, tmp_path)
    mailarchive(home, "import", "eml", str(eml))
    out = tmp_path / "out"
    r = mailarchive(home, "export", "eml", str(out), json_out=True).result
    files = sorted(out.glob("*.eml"))
    # the original MIME is written; the converted twin is listed as left out, not silently dropped
    assert [f.read_bytes() for f in files] == [(eml / "original.eml").read_bytes()]
    pair = _sql(home, "SELECT original_msg_id, converted_msg_id FROM converted_twins")[0]
    assert r["selected"] == 2 and r["written"] == 1
    assert r["converted_twins_left_out"] == [{"msg_id": pair["converted_msg_id"],
                                              "original_msg_id": pair["original_msg_id"]}]
    # asked for, both are written, the converted one exactly as archived
    both = tmp_path / "both"
    r = mailarchive(home, "export", "eml", str(both), "--with-converted-twins", json_out=True).result
    assert r["written"] == 2 and not r["converted_twins_left_out"]
    assert sorted(f.read_bytes() for f in both.glob("*.eml")) == sorted([converted, (eml / "original.eml").read_bytes()])
    # a selection of the converted mail alone exports it
    only = tmp_path / "only"
    r = mailarchive(home, "export", "eml", str(only), "--where", f"msg_id = {pair['converted_msg_id']}",
                    json_out=True).result
    assert r["written"] == 1 and [f.read_bytes() for f in only.glob("*.eml")] == [converted]
