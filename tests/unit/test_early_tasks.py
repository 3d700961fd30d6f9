"""Tasks started ahead (toolkit/early_tasks.py, docs/architecture.md "Tasks started ahead"): the start-up cuts the
source's first chunk as the driver cuts one, and a pack task without key material prepares and holds its records
until the answer brings the key and the medium (``SealAs``), or keeps nothing and writes nothing."""
from __future__ import annotations

import functools
import os
import uuid
from pathlib import Path

import pytest

from importers.eml import EmlImporter
from toolkit import early_tasks, ingest
from toolkit.pack import PackReader, pack_name
from toolkit.pack_tasks import MediumAccess, PackTask, SealAs, Sealing, build_pack
from toolkit.reporter import NullReporter
from toolkit.source import SourceMail, SourceSkip
from toolkit.storage.local import LocalStorage

MAIL = "From: a{i}@example.org\nTo: b@example.org\nSubject: ahead {i}\nMessage-ID: <{i}@ahead>\n\n{body}\n"


def _tree(root: Path, n: int, size: int = 200) -> Path:
    root.mkdir()
    for i in range(n):
        (root / f"{i:04}.eml").write_text(MAIL.format(i=i, body="x" * size))
    (root / ".hidden").write_text("not read")  # a skip among the items: it counts in a chunk, as the driver counts it
    return root


def test_the_limits_are_the_driver_s():
    assert (early_tasks.CHUNK, early_tasks.CHUNK_BYTES) == (ingest.CHUNK, ingest.CHUNK_BYTES)


@pytest.mark.parametrize("n, max_bytes", [(7, 1 << 20), (1000, 2000), (3, 10)])
def test_chunks_end_where_the_driver_s_chunks_end(tmp_path, n, max_bytes):
    src = _tree(tmp_path / "src", 30)
    items = list(EmlImporter(str(src)).scan(None, NullReporter()))
    assert any(isinstance(i, SourceSkip) for i in items)
    cut = early_tasks.cut(iter(items), 3, n, max_bytes)
    it = iter(items)
    for count, jobs in cut:
        chunk, _ended = ingest._take_ended(it, n, max_bytes, ingest.REMOTE_CHUNK_BYTES)
        assert count == len(chunk)
        assert jobs == [ingest._job(i) for i in chunk if isinstance(i, SourceMail) and ingest._read_by_task(i)]
    assert len(cut) == 3


def test_a_chunk_ends_before_a_mail_its_task_does_not_read_from_a_file(tmp_path):
    src = _tree(tmp_path / "src", 5)
    items = list(EmlImporter(str(src)).scan(None, NullReporter()))
    items.insert(3, SourceMail(raw=b"From: x@example.org\n\nbytes\n", ref="given"))
    assert [count for count, _jobs in early_tasks.cut(iter(items), 2, 100, 1 << 20)] == [3]


def _task(paths: list[Path]) -> PackTask:
    from importers.eml import cut_wrapper, not_mail
    from toolkit.prepare import LocalFile

    jobs = [LocalFile(os.fsencode(p), not_mail, functools.partial(cut_wrapper, force_raw=False)) for p in paths]
    return PackTask(jobs, None, None, 20.0, pack_id=os.urandom(16), two_phase=True)


def test_a_task_without_key_material_is_sealed_as_answered(tmp_path):
    src = _tree(tmp_path / "src", 6)
    medium = tmp_path / "medium"
    medium.mkdir()
    storage = LocalStorage(str(medium))
    key, au = os.urandom(32), uuid.uuid4()
    task = _task(sorted(src.glob("*.eml")))
    asked = []

    def decide(prepared, records):
        asked.append(set(records))
        keep = set(sorted(records)[:4])  # two of them duplicates, say
        return SealAs(keep, Sealing(key, au), MediumAccess(1, str(medium)))

    res = build_pack(task, storage=storage, decide=decide)
    assert len(asked[0]) == 6
    assert res.pack is not None and res.pack.name == pack_name(task.pack_id)
    reader = PackReader(storage, res.pack.name, key, au)
    assert sorted(e.blob_id.hex() for e in reader.index()) == sorted(asked[0])[:4]
    assert all(exc is None for _entry, exc in reader.check_all(reader.index()))


def test_a_task_without_key_material_answered_with_nothing_writes_nothing(tmp_path):
    src = _tree(tmp_path / "src", 6)
    medium = tmp_path / "medium"
    medium.mkdir()
    storage = LocalStorage(str(medium))
    res = build_pack(_task(sorted(src.glob("*.eml"))), storage=storage, decide=lambda prepared, records: set())
    assert res.pack is None
    assert [p for p in medium.rglob("*") if p.is_file()] == []


def test_a_task_without_key_material_must_ask():
    with pytest.raises(ValueError):
        build_pack(PackTask([], None, None))
