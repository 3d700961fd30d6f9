"""`db adopt` (docs/reliability.md P7): valid packs the catalog does not know are taken in, never deleted.

Each test kills a real import after a pack was renamed into place and before its catalog commit
(MAILARCHIVE_FAULT ``after_pack_seal``, as tests/integration/test_crash_resume.py does), which leaves
exactly one orphan pack on the medium, and then runs the real `mailarchive db adopt`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from tests.cli import PASSWORD, mailarchive

N_MAILS = 16


def _source(root: Path) -> set[str]:
    """N_MAILS small mails; returns their blob ids (SHA-256 of the file: an EML is archived as it is)."""
    root.mkdir()
    blobs = set()
    for i in range(N_MAILS):
        data = (f"From: a{i}@example.com\nTo: b@example.org\nSubject: adopt {i}\nMessage-ID: <adopt-{i}@x>\n\n"
                + f"body {i}\n" * 40).encode()
        (root / f"{i:02d}.eml").write_bytes(data)
        blobs.add(hashlib.sha256(data).hexdigest())
    return blobs


def _import(home: Path, source: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": "2048"}
    env.pop("MAILARCHIVE_FAULT", None)
    if fault:
        env["MAILARCHIVE_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "import", "eml", str(source)],
                          capture_output=True, text=True, env=env, timeout=300)


def _killed(tmp_path: Path) -> tuple[Path, Path, set[str], str]:
    """(home, medium, the source's blob ids, the orphan pack's name): an import killed between the
    rename of its second pack and that pack's commit."""
    blobs = _source(tmp_path / "src")
    home, medium = tmp_path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(medium))
    p = _import(home, tmp_path / "src", fault="after_pack_seal:2")
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
    q03 = _check(home, "Q03")
    assert q03["count"] == 1, q03
    orphan = q03["examples"][0]
    assert orphan["next_step"] == "adopt-orphan-pack"
    return home, medium, blobs, orphan["name"]


def _check(home: Path, cid: str, *args: str) -> dict:
    v = mailarchive(home, "--json", "verify", *args, check=None)
    return next(c for c in json.loads(v.stdout)["checks"] if c["id"] == cid)


def _rows(home: Path) -> dict:
    q = ("SELECT (SELECT count(*) FROM messages) AS messages, (SELECT count(*) FROM packs) AS packs, "
         "(SELECT count(*) FROM events WHERE kind = 'pack-adopted') AS events, "
         "(SELECT list(blob_id ORDER BY blob_id) FROM messages) AS blobs")
    return json.loads(mailarchive(home, "sql", q, "--format", "json").stdout)[0]


def _adopt(home: Path, *args: str, rc: int = 0) -> dict:
    return mailarchive(home, "db", "adopt", *args, "--json", check=rc, json_out=True).result


def _mark(medium: Path, pack_name: str) -> Path:
    return medium / "marks" / f"pack-{Path(pack_name).stem}.mark"


def test_p7_orphan_of_a_kill_is_adopted_and_the_rerun_archives_nothing_twice(tmp_path):
    home, medium, blobs, orphan = _killed(tmp_path)
    before = _rows(home)
    # --dry-run reads and lists, and changes nothing: no rows, no event, no mark
    dry = _adopt(home, "--dry-run")
    assert dry["dry_run"] and [p["name"] for p in dry["adopted"]] == [orphan]
    n = dry["adopted"][0]["messages"]
    assert n == dry["adopted"][0]["records"] > 0 and dry["adopted"][0]["msg_ids"] is None
    assert _rows(home) == before and not _mark(medium, orphan).exists()

    r = _adopt(home)
    assert [p["name"] for p in r["adopted"]] == [orphan] and r["messages"] == n
    assert not r["refused"] and not r["nothing_new"]
    after = _rows(home)
    assert after["messages"] == before["messages"] + n and after["packs"] == before["packs"] + 1
    assert after["events"] == 1
    assert _mark(medium, orphan).exists()  # the high-water mark, as after an import's commit

    again = _adopt(home)  # adopted once: nothing left to adopt
    assert not again["adopted"] and not again["nothing_new"] and _rows(home) == after

    p = _import(home, tmp_path / "src")  # the rerun finds the adopted mails archived
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["decisions"]["exact-duplicate"] >= n and res["archived"] == N_MAILS - after["messages"]
    final = _rows(home)
    assert sorted(final["blobs"]) == sorted(blobs) and len(final["blobs"]) == N_MAILS
    v = mailarchive(home, "--json", "verify", "--full", check=None)
    report = json.loads(v.stdout)
    assert v.returncode == 0 and report["totals"]["findings"] == 0, v.stdout[-2000:]
    assert next(c for c in report["checks"] if c["id"] == "Q03")["count"] == 0  # no longer listed


def test_p7_orphan_whose_mails_are_all_archived_adopts_nothing_new_and_stays(tmp_path):
    """The orphan's mails came in again from another source as other bytes of the same mails (CRLF line
    ends: the same dedup key, docs/dedup.md) and were archived: the orphan's records are duplicates,
    and none becomes a second message."""
    home, medium, _blobs, orphan = _killed(tmp_path)
    crlf = tmp_path / "src-crlf"
    crlf.mkdir()
    for f in sorted((tmp_path / "src").iterdir()):
        (crlf / f.name).write_bytes(f.read_bytes().replace(b"\n", b"\r\n"))
    p = _import(home, crlf)
    assert p.returncode == 0, p.stderr
    before = _rows(home)
    assert before["messages"] == N_MAILS  # each mail once: the committed ones as LF, the others as CRLF
    r = _adopt(home)
    assert not r["adopted"] and r["messages"] == 0 and not r["refused"]
    [nn] = r["nothing_new"]
    assert nn["name"] == orphan and nn["duplicates"] == nn["records"] > 0 and nn["exact_duplicates"] == 0
    assert _rows(home) == before
    assert (medium / orphan).exists() and not _mark(medium, orphan).exists()  # left; no mark claims a commit


def test_p7_a_forged_or_damaged_unknown_pack_is_refused_and_left(tmp_path):
    home, medium, _blobs, orphan = _killed(tmp_path)
    raw = bytearray((medium / orphan).read_bytes())
    raw[len(raw) // 3] ^= 0x01  # a flipped bit inside a record: its authentication fails
    (medium / orphan).write_bytes(bytes(raw))
    forged_name = f"packs/ab/ab{secrets.token_hex(15)}.pack"
    (medium / forged_name).parent.mkdir(parents=True, exist_ok=True)
    (medium / forged_name).write_bytes(os.urandom(3000))
    sha = {n: hashlib.sha256((medium / n).read_bytes()).hexdigest() for n in (orphan, forged_name)}
    before = _rows(home)

    r = _adopt(home, rc=1)
    assert {p["name"] for p in r["refused"]} == {orphan, forged_name}
    assert not r["adopted"] and all(p["problems"] for p in r["refused"])
    assert _rows(home) == before
    assert {n: hashlib.sha256((medium / n).read_bytes()).hexdigest() for n in sha} == sha  # left as they were
    assert not _mark(medium, orphan).exists()
    human = mailarchive(home, "db", "adopt", check=1)
    assert "refused" in human.stderr and "Traceback" not in human.stderr
    v = mailarchive(home, "verify", check=0)  # still listed (a warning), never deleted, with the way to adopt
    out = " ".join((v.stdout + v.stderr).split())
    assert re.search(r"Q03 │ [^│]+│ warning │ 2 ", out) and "mailarchive db adopt" in out, out
