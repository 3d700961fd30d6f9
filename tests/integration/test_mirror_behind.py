"""Q3 (docs/reliability.md): a mirror older than the archive says by how much. `mirror-status` counts the
packs, mails and stamp batches the archive committed after the last completed mirror run; a restore
from a mirror whose newest catalog backup is unusable says how many stamp batches, packs and mails the
restored catalog lacks against the mirror's last run."""
from __future__ import annotations

from pathlib import Path

from tests.cli import mailarchive
from tests.corpora import REPO

SAMPLE = REPO / "sample_data" / "eml"


def _mails(folder: str) -> int:
    return sum(1 for p in (SAMPLE / folder).rglob("*") if p.is_file())


def test_q3_mirror_behind_the_archive_is_counted_in_mirror_status_and_restore(tmp_path, tsa_ok):
    home, dest, kb = tmp_path / "home", tmp_path / "mirror", tmp_path / "kb.txt"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"), "--key-backup", str(kb))
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa_ok.url, "--ca-cert", str(tsa_ok.ca_cert_path))
    mailarchive(home, "import", "eml", str(SAMPLE / "2019"))
    mailarchive(home, "timestamp", "run", "--all")
    mailarchive(home, "mirror", str(dest))
    st = mailarchive(home, "mirror-status", str(dest), json_out=True).result
    assert st["state"] == "current" and st["behind"] == {"mails": 0, "packs": 0, "batches": 0}

    # the archive moves on: one more import (one pack) and one more stamp batch
    mailarchive(home, "import", "eml", str(SAMPLE / "2020"))
    mailarchive(home, "timestamp", "run", "--all")
    st = mailarchive(home, "mirror-status", str(dest), json_out=True).result
    assert st["state"] == "current" and st["behind"] == {"mails": _mails("2020"), "packs": 1, "batches": 1}
    text = " ".join(mailarchive(home, "mirror-status", str(dest)).stderr.split())
    assert (f"the mirror is 1 pack(s) ({_mails('2020')} mail(s)) and 1 stamp batch(es) behind the archive" in text
            and f"mailarchive mirror {dest}" in text), text

    # the next run catches up; then its newest catalog backup is lost at DEST
    mailarchive(home, "mirror", str(dest))
    assert mailarchive(home, "mirror-status", str(dest), json_out=True).result["behind"] == {
        "mails": 0, "packs": 0, "batches": 0}
    backups = sorted((dest / "medium-1" / "db-backups").glob("*.dbk"))
    assert len(backups) == 2
    backups[-1].unlink()
    r = mailarchive(tmp_path / "restored", "restore", "--from", str(dest), "--key-backup", str(kb),
                    json_out=True).result
    assert r["status"] == "restored" and r["messages"] == _mails("2019")
    assert r["behind"] == {"mails": _mails("2020"), "packs": 1, "batches": 1}
    warning = next(w for w in r["warnings"] if w.startswith("the restored catalog is"))
    assert warning.startswith(f"the restored catalog is 1 stamp batch(es), 1 pack(s) and {_mails('2020')} mail(s) "
                              "behind the mirror's last run"), warning
    assert "db rebuild --force" in warning
    # H2: the high-water marks the mirror copied name the same pack and batch, in the same (one) warning
    assert [len(r["marked_not_in_catalog"][k]) for k in ("packs", "batches")] == [1, 1]
    assert "the high-water marks at DEST name 1 pack(s) and 1 stamp batch(es)" in warning, warning
    assert not [w for w in r["warnings"] if "newer than the restored catalog" in w], r["warnings"]
    q10 = {c["id"]: c for c in mailarchive(tmp_path / "restored", "verify", json_out=True, check=1).result["checks"]}["Q10"]
    assert "1 packs / 1 batches newer than it" in q10["examples"][0]["detail"], q10
