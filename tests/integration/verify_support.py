"""Building small stamped archives for the verify, evidence and report tests (library calls, no subprocess)."""
from __future__ import annotations

import shutil
from pathlib import Path

from importers.eml import EmlImporter
from tests.corpora import REPO
from toolkit.archive import Archive
from toolkit.home import CONFIG_NAME
from toolkit.ingest import Ingest

SAMPLE = REPO / "sample_data" / "eml"


def twin(letter: str) -> bytes:
    """Mails that differ in one letter per field: same size, and (zstd being deterministic) the same record length."""
    return (
        f"From: Twin {letter} <twin@example.org>\r\nTo: audit@example.org\r\n"
        f"Subject: Twin message {letter}\r\nDate: Mon, 01 Jul 2019 10:00:00 +0000\r\n"
        f"Message-ID: <twin-{letter}@example.org>\r\n\r\n"
        + f"Quarterly figures, line {letter}: revenue, cost, margin.\r\n" * 8
    ).encode()


def build_archive(root: Path, tsa, *, pack_target: int = 6000, stamp: bool = True) -> Path:
    """An archive under ``root`` (home ``root/home``, medium ``root/medium``), small packs:

    run 1: twins A and B (one pack of two records); run 2: the 2019 sample mail; stamp → batch 1;
    run 3: 2020–2021 sample mail and twin C; stamp → batch 2.

    The runs are inline (``workers=0``): packs cut at ``pack_target`` alone, six of them, which the tests count on
    (on a pool the source's tail is cut into smaller tasks and packs: docs/architecture.md "The import's tail").
    """
    home, medium = root / "home", root / "medium"
    archive = Archive.create(home, str(medium), name="verify-test")
    try:
        if tsa is not None:
            archive.config.settings["timestamp"] = {"tsa_url": tsa.url, "ca_pem": Path(tsa.ca_cert_path).read_text()}
            archive.save_config()
        runs = [(["twins-ab"], False), (["2019"], True), (["2020", "2021", "twin-c"], True)]
        for parts, then_stamp in runs:
            src = root / f"src-{parts[0]}"
            for part in parts:
                if part == "twins-ab":
                    (src / part).mkdir(parents=True)
                    (src / part / "a.eml").write_bytes(twin("A"))
                    (src / part / "b.eml").write_bytes(twin("B"))
                elif part == "twin-c":
                    (src / part).mkdir(parents=True)
                    (src / part / "c.eml").write_bytes(twin("C"))
                else:
                    shutil.copytree(SAMPLE / part, src / part)
            Ingest(archive, pack_target=pack_target, workers=0).run(EmlImporter(str(src)))
            if stamp and then_stamp:
                from verify.stamping import stamp_pending

                stamp_pending(archive, tsa_url=tsa.url, ca_pem=Path(tsa.ca_cert_path).read_bytes(), all_=True)
    finally:
        archive.close()
    return home


def clone(base_root: Path, dest_root: Path) -> Path:
    """A copy of an archive built by :func:`build_archive`, its medium location pointed at the copy."""
    shutil.copytree(base_root / "home", dest_root / "home")
    shutil.copytree(base_root / "medium", dest_root / "medium")
    cfg = dest_root / "home" / CONFIG_NAME
    text = cfg.read_text()
    old, new = str((base_root / "medium").resolve()), str((dest_root / "medium").resolve())
    assert old in text, f"{old} not in {cfg}"
    cfg.write_text(text.replace(old, new))
    return dest_root / "home"


def messages(home: Path) -> dict[int, dict]:
    """Catalog rows by msg_id: msg_id, blob_id, pack name, offset, length, batch_id, subject, path on disk."""
    with Archive.open(home) as archive:
        with archive.catalog.reading() as con:
            rows = con.execute(
                """SELECT m.msg_id, m.blob_id, p.pack_id, p.name, m."offset", m.length, m.batch_id, m.subject, m.csize
                   FROM messages m JOIN packs p USING (pack_id) ORDER BY m.msg_id"""
            ).fetchall()
    medium = home.parent / "medium"
    out = {}
    for msg_id, blob, pack_id, name, off, length, batch, subject, csize in rows:
        out[msg_id] = {
            "msg_id": msg_id, "blob_id": blob, "pack_id": pack_id, "pack": medium / name, "offset": off,
            "length": length, "batch": batch, "subject": subject, "csize": csize,
        }
    return out


def run_verify(home: Path, full: bool = True, **kw):
    from verify.checks import verify_archive

    with Archive.open(home) as archive:
        return verify_archive(archive, full=full, **kw)


def sql(home: Path, statement: str, params: list | None = None) -> None:
    """Edit the catalog directly, as a key holder could (H5)."""
    with Archive.open(home, writer=True) as archive:
        with archive.catalog.writing() as con:
            con.execute(statement, params or [])


def by_subject(rows: dict[int, dict], subject: str) -> dict:
    found = [r for r in rows.values() if r["subject"] == subject]
    assert len(found) == 1, f"{len(found)} messages with subject {subject!r}"
    return found[0]
