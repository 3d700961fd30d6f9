"""Media rules, each refusal with its message (P1, P3, P4)."""
from __future__ import annotations

import json

from tests.cli import mailarchive
from tests.corpora import REPO


def _ids(home):
    return {m["id"]: m for m in mailarchive(home, "media", "list", json_out=True).result["media"]}


def test_media_rules(tmp_path):
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    media = _ids(home)
    assert list(media) == [1] and media[1]["state"] == "active" and media[1]["reachable"]

    assert mailarchive(home, "media", "add", str(tmp_path / "m2"), json_out=True).result["id"] == 2
    assert mailarchive(home, "media", "add", str(tmp_path / "m3"), json_out=True).result["id"] == 3
    label = json.loads((tmp_path / "m2" / "MEDIUM.json").read_text())
    assert label["medium"] == 2 and "hmac" in label

    # exactly one active medium
    p = mailarchive(home, "media", "deactivate", "1", check=2)
    assert "active" in p.stderr
    mailarchive(home, "media", "activate", "2")
    media = _ids(home)
    assert [i for i, m in media.items() if m["state"] == "active"] == [2]

    # medium 2 gets packs; 1 lies below it, 2 holds packs
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml" ), json_out=True)
    mailarchive(home, "media", "activate", "3")
    p = mailarchive(home, "media", "remove", "2", check=2)
    assert "holds" in p.stderr and "pack" in p.stderr
    p = mailarchive(home, "media", "remove", "1", check=2)
    assert "below medium 2" in p.stderr
    p = mailarchive(home, "media", "remove", "3", check=2)
    assert "active" in p.stderr

    # the last, empty medium can be removed; its ID is never handed out again (P1)
    assert mailarchive(home, "media", "add", str(tmp_path / "m4"), json_out=True).result["id"] == 4
    mailarchive(home, "media", "remove", "4")
    assert mailarchive(home, "media", "add", str(tmp_path / "m5"), json_out=True).result["id"] == 5
    assert _ids(home)[4]["state"] == "removed"
    mailarchive(home, "media", "deactivate", "1")
    assert _ids(home)[1]["state"] == "deactivated"
    events = mailarchive(home, "sql", "SELECT kind FROM events ORDER BY event_id", "--format", "json")
    kinds = [e["kind"] for e in json.loads(events.stdout)]
    assert kinds.count("medium-added") == 4 and "medium-removed" in kinds


def test_foreign_and_misnumbered_labels_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    mailarchive(a, "init", "--medium", str(tmp_path / "a1"))
    mailarchive(b, "init", "--medium", str(tmp_path / "b1"))
    mailarchive(a, "media", "add", str(tmp_path / "a2"))
    # adding a location that carries another archive's label is refused, naming it
    p = mailarchive(a, "media", "add", str(tmp_path / "b1"), check=2)
    assert "another archive" in p.stderr
    # a medium whose files were swapped for another archive's medium: refused on open, naming which
    (tmp_path / "a2" / "MEDIUM.json").write_bytes((tmp_path / "b1" / "MEDIUM.json").read_bytes())
    m = _ids(a)[2]
    assert m["reachable"] is False and "another archive" in m["problem"]
    # a label of this archive but another medium ID
    (tmp_path / "a2" / "MEDIUM.json").write_bytes((tmp_path / "a1" / "MEDIUM.json").read_bytes())
    m = _ids(a)[2]
    assert m["reachable"] is False and "medium 1" in m["problem"] and "not medium 2" in m["problem"]
    # a hand-edited label fails its HMAC
    label = json.loads((tmp_path / "a1" / "MEDIUM.json").read_text())
    label["created"] = "2000-01-01T00:00:00+00:00"
    (tmp_path / "a2" / "MEDIUM.json").write_text(json.dumps({**label, "medium": 2}))
    m = _ids(a)[2]
    assert m["reachable"] is False and "HMAC" in m["problem"]
    p = mailarchive(a, "media", "activate", "2", check=3)
    assert "HMAC" in p.stderr


def test_smb_credentials_are_sealed(tmp_path, samba, smb_location):
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", smb_location)
    toml = (home / "archive.toml").read_text()
    assert samba.password not in toml
    assert "secret" in toml
    # The sealed password is enough: no environment variable needed later.
    p = mailarchive(home, "media", "list", json_out=True, env={"MAILARCHIVE_SMB_PASSWORD": ""})
    assert p.result["media"][0]["reachable"] is True


def test_p9_a_missing_label_stops_writes_and_is_a_finding(tmp_path):
    """P9: MEDIUM.json deleted by hand on a medium that holds packs. The next import of new mail stops
    (exit 3) naming the medium and the next step, writes nothing and never writes a new label; quick
    verify reports the medium (Q01) and exits 1."""
    home, m1 = tmp_path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(m1))
    mailarchive(home, "import", "eml", str(REPO / "sample_data" / "eml"))
    (m1 / "MEDIUM.json").unlink()
    before = sorted(p.relative_to(m1) for p in m1.rglob("*"))
    new = tmp_path / "new"
    new.mkdir()
    (new / "1.eml").write_text("From: x@example.com\nSubject: new\nMessage-ID: <p9-new@example.com>\n\nhello\n")
    p = mailarchive(home, "import", "eml", str(new), check=3)
    err = " ".join(p.stderr.split())
    assert "medium 1" in err and "MEDIUM.json" in err and "media retarget" in err and "Traceback" not in err
    assert sorted(p.relative_to(m1) for p in m1.rglob("*")) == before  # no label, no pack, no temp file
    v = mailarchive(home, "verify", json_out=True, check=1).result
    q01 = next(c for c in v["checks"] if c["id"] == "Q01")
    assert q01["status"] == "finding" and "no MEDIUM.json" in json.dumps(q01)
