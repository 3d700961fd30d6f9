"""K8 for the exports and the catalog backup (docs/reliability.md): ``export metadata`` and ``db backup`` read the
catalog by pages and write as they go, so their memory is bounded by the page, not by the catalog; the output is
the same as the whole-table code wrote (the references below are built that old way)."""
from __future__ import annotations

import io
import json

import polars as pl
import pyarrow as pa
import pytest

import importers
import toolkit
from exporters import metadata
from exporters.filters import Filters
from tests.corpora import REPO
from toolkit.catalog import reads

MBOX = REPO / "sample_data" / "mbox" / "archive-2018.mbox"
LISTS = REPO / "sample_data" / "mbox" / "lists.mbox"


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory):
    """A real archive of two sample mboxes (recipients, sightings in folders, several runs)."""
    home = tmp_path_factory.mktemp("meta") / "home"
    toolkit.init_archive(home, password="correct horse battery staple 2018", key_backup=home.parent / "kb.txt")
    with toolkit.open_archive(home, writer=True) as archive:
        for box in (MBOX, LISTS):
            toolkit.import_mail(archive, importers.MboxImporter(str(box)), workers=0)
    return home


def _reference(archive, fmt: str, filters: Filters | None = None) -> bytes:
    """The file as the old code wrote it: one polars frame of every row."""
    df = metadata.metadata_frame(archive, filters)
    f = io.BytesIO()
    if fmt == "parquet":
        df.write_parquet(f)
    elif fmt == "json":
        f.write(json.dumps(df.to_dicts(), ensure_ascii=False, indent=1, default=metadata._json_default).encode("utf-8"))
    else:
        df.with_columns(
            pl.Series("recipients", [json.dumps(v, ensure_ascii=False) for v in df["recipients"].to_list()]),
            pl.Series("sightings", [json.dumps(v, ensure_ascii=False, default=metadata._json_default)
                                    for v in df["sightings"].to_list()]),
        ).write_csv(f)
    return f.getvalue()


@pytest.mark.parametrize("where", [None, "m.msg_id % 3 = 1", "false"])
def test_metadata_written_by_pages_equals_the_whole_table_export(small_archive, tmp_path, monkeypatch, where):
    """Ranges of 2 msg_ids (many pages, one short last page, or none selected) give the same rows, in msg_id order:
    the same JSON and CSV bytes, the same Parquet table."""
    monkeypatch.setattr(reads, "METADATA_PAGE", 2)
    filters = Filters(where=where) if where else None
    with toolkit.open_archive(small_archive) as archive:
        n = len(metadata.metadata_frame(archive, filters))
        assert (n > 3) == (where != "false")
        for fmt in ("json", "csv", "parquet"):
            dest = tmp_path / f"{fmt}-{bool(where)}.{fmt}"
            got = metadata.export_metadata(archive, dest, filters)
            assert got["rows"] == n
            old = _reference(archive, fmt, filters)
            if fmt == "parquet":
                new = pl.read_parquet(dest)
                ref = pl.read_parquet(io.BytesIO(old))
                assert new.schema == ref.schema and new.equals(ref)
                assert ref.height == n
            else:
                assert dest.read_bytes() == old


def test_export_metadata_reads_a_page_at_a_time_and_writes_as_it_goes(tmp_path, monkeypatch):
    """K8: the export of 30,000 mails by ranges of 1,000 msg_ids never holds more than a range's rows, and the file
    has grown before the last range is read (the old export held one frame of every row: 3.1 GB at a million,
    bench/RESULTS.md "Memory at a million mails")."""
    from tests.reliability.test_catalog_memory import _committed

    monkeypatch.setattr(reads, "METADATA_PAGE", 1000)
    pages = reads.metadata_pages
    seen: list[tuple[int, int]] = []

    def watched(*args, **kwargs):
        for table in pages(*args, **kwargs):
            part = [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".part")]
            seen.append((table.num_rows, sum(p.stat().st_size for p in part)))
            yield table

    monkeypatch.setattr(reads, "metadata_pages", watched)
    (tmp_path / "out").mkdir()
    with _committed(tmp_path, 30_000) as (a, _):
        with a.catalog.writing() as con:  # the mails' pack (the export joins them with it)
            con.execute("INSERT INTO packs (pack_id, medium_id, name, bytes, records, blake3) VALUES (?, 1, ?, 1, 1, ?)",
                        ["ab" * 16, "p-1.pack", "00" * 32])
        for fmt in ("parquet", "csv", "json"):
            seen.clear()
            got = metadata.export_metadata(a, tmp_path / "out" / f"all.{fmt}")
            assert got["rows"] == 30_000
            assert len(seen) == 30 and max(n for n, _ in seen) == 1000
            assert seen[-1][1] > 0  # pages were written before the last one was read


def _tables(archive, sealed: bytes, name: str) -> tuple[dict, list]:
    from media_tools import backup

    content = backup.decode_backup(archive.key, archive.uuid, name, sealed)
    backup.check_content(content)
    meta = {k: v for k, v in content.meta.items() if k != "parts"}
    parts = [({k: v for k, v in info.items() if k != "length"}, table) for info, table in content.parts]
    return meta, parts


def test_a_backup_streamed_batch_by_batch_holds_the_rows_of_the_whole_table_one(small_archive, monkeypatch):
    """K8: ``db backup`` reads each table by record batches (here of 3 rows) into its compressed IPC stream and
    checks the file back batch by batch; the file opens with the reader of every backup and holds the same header
    and rows as one built from whole tables, and the streamed check refuses a changed part."""
    import datetime as dt

    from media_tools import backup
    from toolkit.catalog import snapshots
    from toolkit.errors import IntegrityError

    batches = snapshots.select_batches
    monkeypatch.setattr(snapshots, "select_batches", lambda *a: batches(*a, rows=3))
    now = dt.datetime(2026, 12, 5, tzinfo=dt.timezone.utc)
    with toolkit.open_archive(small_archive) as archive:
        name, meta, parts = backup.build_backup(archive, "full", now, None)
        old = backup.encode_backup(archive.key, archive.uuid, name, meta, parts)
        name2, meta2, parts2 = backup.build_backup_streamed(archive, "full", now, None)
        assert name2 == name and meta2 == meta
        assert any(p.length > 0 for p in parts2)
        new = backup.encode_streamed(archive.key, archive.uuid, name, meta2, parts2)
        assert parts2 == []  # each part was let go once written
        old_meta, old_parts = _tables(archive, old, name)
        new_meta, new_parts = _tables(archive, new, name)
        assert new_meta == old_meta
        assert len(new_parts) == len(old_parts) > 5
        assert sum(t.num_rows for _, t in new_parts) > 30
        for (i_old, t_old), (i_new, t_new) in zip(old_parts, new_parts):
            assert i_new == i_old and t_new.equals(t_old)
        assert backup.check_sealed(archive.key, archive.uuid, name, new)["tables"] == meta["tables"]
        # a part whose rows differ from their checksum is refused by the streamed check as by check_content
        name3, meta3, parts3 = backup.build_backup_streamed(archive, "full", now, None)
        victim = next(p for p in parts3 if p.info["checksum"][0] > 2)
        victim.info["checksum"] = [victim.info["checksum"][0], "12345"]
        bad = backup.encode_streamed(archive.key, archive.uuid, name, meta3, parts3)
        with pytest.raises(IntegrityError, match="expected"):
            backup.check_sealed(archive.key, archive.uuid, name, bad)


def test_a_range_refused_by_duckdb_s_memory_limit_is_read_in_halves(small_archive):
    """A range whose query exceeds the session's memory limit (a costly ``--where``) is halved until it fits: the
    same rows in the same order, no error."""
    import re

    import duckdb

    class Tight:
        def __init__(self, session):
            self.session, self.refused = session, 0

        def execute(self, sql, params=None):
            got = re.search(r"BETWEEN (-?\d+) AND (-?\d+)", sql)
            if got and int(got[2]) - int(got[1]) > 1:
                self.refused += 1
                raise duckdb.OutOfMemoryException("Out of Memory Error: (test)")
            return self.session.execute(sql, params)

    with toolkit.open_archive(small_archive) as archive, archive.catalog.querying() as session:
        whole = reads.metadata_table(session)
        tight = Tight(session)
        pages = list(reads.metadata_pages(tight, None, None, page=8))
        assert tight.refused > 0 and max(t.num_rows for t in pages) <= 2
        assert pa.concat_tables(pages).equals(whole)


def test_the_streamed_check_refuses_a_truncated_or_unparsable_part_as_the_whole_file_reader_does(small_archive):
    import datetime as dt
    import struct

    import zstandard

    from media_tools import backup
    from toolkit import crypto
    from toolkit.errors import IntegrityError

    now = dt.datetime(2026, 12, 5, tzinfo=dt.timezone.utc)
    with toolkit.open_archive(small_archive) as archive:
        name, meta, parts = backup.build_backup_streamed(archive, "full", now, None)
        info = dict(parts[0].info)

        def sealed(length: int, data: bytes) -> bytes:
            head = json.dumps(dict(meta, parts=[dict(info, length=length)]), sort_keys=True).encode()
            payload = backup.PAYLOAD_MAGIC + struct.pack(">I", len(head)) + head + data
            return crypto.seal_blob(backup.backup_key(archive.key, archive.uuid),
                                    zstandard.ZstdCompressor().compress(payload), backup._context(name))

        for length, data, why in ((1000, b"x" * 10, "truncated"), (64, b"\xff" * 64, "does not parse")):
            blob = sealed(length, data)
            with pytest.raises(IntegrityError, match=why):
                backup.decode_backup(archive.key, archive.uuid, name, blob)
            with pytest.raises(IntegrityError, match=why):
                backup.check_sealed(archive.key, archive.uuid, name, blob)


def _old_manifest(kind: str, rows: list[dict], errors: list, extra: dict) -> tuple[bytes, bytes]:
    """manifest.csv and manifest.json as one whole text each (the code before K8's blocks)."""
    import csv

    from exporters.manifest import FIELDS

    rows = sorted(rows, key=lambda r: (r["msg_id"], r.get("folder") or "", r.get("path") or "", r.get("target") or ""))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    doc = {"kind": kind, "complete": not errors, "count": len(rows), "bytes": sum(int(r["size"] or 0) for r in rows),
           **extra, "errors": errors, "messages": rows}
    return buf.getvalue().encode(), json.dumps(doc, indent=1, ensure_ascii=False, default=str).encode()


@pytest.mark.parametrize("n", [0, 1, 3, 7])
def test_the_manifest_written_in_blocks_is_the_same_bytes(tmp_path, monkeypatch, n):
    """manifest.csv and manifest.json written by blocks of 3 rows (none, one, a full block, a short last block), their
    rows spilled in sorted runs of 2 (blocks of 2 on disk), are byte for byte the whole-text files of every row sorted
    at once; strings with line ends, quotes, commas and non-ASCII included, equal keys kept in their order."""
    from exporters import manifest as mf
    from exporters import spill

    monkeypatch.setattr(mf, "_BLOCK", 3)
    monkeypatch.setattr(spill, "RUN", 2)
    monkeypatch.setattr(spill, "BLOCK", 2)
    m = mf.Manifest(tmp_path / f"m{n}", "mbox")
    m.begin()
    given = []
    for i in range(n):
        row = dict(msg_id=(n - i) // 2, message_id=f'<a"{i},\n\u00e9@x>' if i % 2 else None, blob_id="b" * 64,
                   sha256="c" * 64, size=100 + i, folder="Entw\u00fcrfe\n" if i == 2 else None,
                   path=f"messages-{i % 2}.mbox", uid=i)
        m.add(**row)
        given.append({k: row.get(k) for k in mf.FIELDS})
    errors = [{"msg_id": 99, "error": "a line that is just 'From'\nsecond"}] if n == 7 else []
    extra = {"filters": {"where": "m.size > 1"}, "per_folder": False, "files_written": 2}
    m.write(errors=errors, extra=extra)
    old_csv, old_json = _old_manifest("mbox", given, errors, extra)
    assert (m.directory / "manifest.csv").read_bytes() == old_csv
    assert (m.directory / "manifest.json").read_bytes() == old_json
    assert sorted(p.name for p in m.directory.iterdir()) == ["manifest.csv", "manifest.json"]  # no spill file left


def _selection_peak(a, monkeypatch, old: bool) -> tuple[int, list]:
    import tracemalloc

    from toolkit import retrieval

    if old:  # the whole fetchall, then the objects
        monkeypatch.setattr(reads, "stored_message_batches",
                            lambda session, where, params: iter([reads.stored_messages(session, where, params)]))
    tracemalloc.start()
    try:
        got = retrieval.select_messages(a)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    monkeypatch.undo()
    return peak, got


def test_an_export_s_selection_is_made_a_fetch_at_a_time_without_a_dict_per_mail(tmp_path, monkeypatch):
    """K8: the selection of an export (a StoredMessage per mail, in pack order) is built from fetches of 10,000 rows
    with slotted objects and one string per pack name: the same selection as from one fetchall, at least 100 bytes
    a mail less (the fetched tuples of every mail were held beside an object with a __dict__ each)."""
    from tests.reliability.test_catalog_memory import _committed

    with _committed(tmp_path, 30_000) as (a, _):
        with a.catalog.writing() as con:
            con.execute("INSERT INTO packs (pack_id, medium_id, name, bytes, records, blake3) VALUES (?, 1, ?, 1, 1, ?)",
                        ["ab" * 16, "p-1.pack", "00" * 32])
        old_peak, old = _selection_peak(a, monkeypatch, old=True)
        new_peak, new = _selection_peak(a, monkeypatch, old=False)
    assert new == old and len(new) == 30_000
    assert [s.entry.offset for s in new] == sorted(s.entry.offset for s in new)
    assert not hasattr(new[0], "__dict__")
    # measured: 1,555 → 1,425 bytes a mail here (~650 of them the long subjects of this catalog)
    assert new_peak < old_peak - 100 * 30_000, (new_peak, old_peak)


def test_an_mbox_export_s_facts_are_the_catalog_s_in_a_slotted_object_per_mail(small_archive):
    """K8 (and speed): ``message_facts`` joins the selection's msg_ids as an Arrow column (a list parameter of a
    million ids took DuckDB minutes) and keeps a slotted object per mail instead of a dict: the same values."""
    from exporters.layout import message_facts

    with toolkit.open_archive(small_archive) as archive:
        with archive.catalog.reading() as con:
            rows = con.execute("SELECT msg_id, from_addr, sent_date, internal_date, archived_at FROM messages").fetchall()
        ids = [r[0] for r in rows]
        facts = message_facts(archive, ids + ids[:3] + [10**9])  # repeated and unknown ids as before: ignored
    assert len(rows) > 10 and facts.keys() == set(ids)
    names = ("from_addr", "sent_date", "internal_date", "archived_at")
    for r in rows:
        assert {k: facts[r[0]].get(k) for k in names} == dict(zip(names, r[1:]))
        assert not hasattr(facts[r[0]], "__dict__") and facts[r[0]].get("other", 7) == 7


# -- exports by pages of the selection (export mbox|eml|maildir, eml --zip) ---------------------------------------
TINY = 4_000


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory):
    """An archive of 4,000 tiny distinct mails (bench/bench_tiny.py's mbox), packs of ~300 mails."""
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    try:
        from bench_tiny import write_mbox
    finally:
        sys.path.pop(0)
    work = tmp_path_factory.mktemp("tiny")
    write_mbox(work / "tiny.mbox", TINY, seed=3)
    home = work / "home"
    toolkit.init_archive(home, password="correct horse battery staple 2018", key_backup=work / "kb.txt")
    with toolkit.open_archive(home, writer=True) as archive:
        toolkit.import_mail(archive, importers.MboxImporter(str(work / "tiny.mbox")), workers=0, pack_target=64 << 10)
    return home


def _export(kind: str, archive, dest, filters):
    from exporters.eml import export_eml
    from exporters.maildir import export_maildir
    from exporters.mbox import export_mbox
    from exporters.zip_package import export_eml_zip

    if kind == "mbox":
        return export_mbox(archive, dest, filters)
    if kind == "zip":
        return export_eml_zip(archive, dest, filters=filters, layout="folder")
    if kind == "maildir":
        return export_maildir(archive, dest, filters)
    return export_eml(archive, dest, filters=filters, layout="folder")


def _export_held(kind: str, archive, dest, filters, monkeypatch) -> int:
    """The most Python memory the export holds between two mails (tracemalloc, sampled every 50 mails as they are
    read): what it keeps while it runs. Left out: what pathlib allocates (it interns every path part, and the
    interpreter's table of interned strings, ~2 MB in a test run, is rebuilt now and then: not the export's)."""
    import gc
    import pathlib
    import tracemalloc

    from exporters import eml

    held = [0]
    read = eml.read_messages

    def sampled(*args, **kwargs):
        for n, item in enumerate(read(*args, **kwargs)):
            if n % 50 == 0:  # by the allocating frame's file (what a filter on pathlib's file would keep, unfiltered)
                stats = tracemalloc.take_snapshot().statistics("filename")
                held[0] = max(held[0], sum(stat.size for stat in stats
                                           if stat.traceback[0].filename != pathlib.__file__))
            yield item

    monkeypatch.setattr(eml, "read_messages", sampled)
    gc.collect()  # what the run before left in reference cycles
    tracemalloc.start()
    try:
        summary = _export(kind, archive, dest, filters)
    finally:
        tracemalloc.stop()
        monkeypatch.setattr(eml, "read_messages", read)
    assert not summary.errors
    return held[0]


@pytest.mark.parametrize("kind", ["mbox", "zip", "eml", "maildir"])
def test_an_export_holds_a_page_of_the_selection_not_a_row_per_mail(tiny_archive, tmp_path, monkeypatch, kind):
    """K8: an export of 4,000 mails read by pages of 250, its manifest rows spilled in sorted runs of 500 (and the
    zip's central directory in blocks of 100), holds at most 250 bytes a mail more while it runs than the export of
    1,000 of them (measured 40–130: the msg_ids of the selection are 8 bytes a mail, the rest is where in its run of
    rows a sample falls). The old exports held a StoredMessage, the facts
    or placements, a manifest row (and a ZipInfo, a remembered file name) per mail: 1.5–4 KB more a mail, 1.9–3.9 GB
    at a million (bench/RESULTS.md "Memory at a million mails"). The manifest written at the end by blocks is
    test_the_manifest_written_in_blocks_is_the_same_bytes'."""
    import importlib

    from toolkit import retrieval

    monkeypatch.setattr(retrieval, "PAGE", 250, raising=False)  # raising=False: the test runs on the old code too
    try:
        spill = importlib.import_module("exporters.spill")
        monkeypatch.setattr(spill, "RUN", 500)
        monkeypatch.setattr(spill, "BLOCK", 100)
    except ImportError:
        pass  # the old code, which held every row
    with toolkit.open_archive(tiny_archive) as archive:
        with archive.catalog.reading() as con:
            (cut,) = con.execute("SELECT msg_id FROM messages ORDER BY msg_id LIMIT 1 OFFSET 999").fetchone()
        small = _export_held(kind, archive, tmp_path / "small", Filters(where=f"m.msg_id <= {cut}"), monkeypatch)
        big = _export_held(kind, archive, tmp_path / "big", None, monkeypatch)
    per_mail = (big - small) / (TINY - 1000)
    assert per_mail < 250, (kind, small, big, per_mail)
