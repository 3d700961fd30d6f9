"""A pack task's result carries its index rows as plain columns (toolkit/pack_tasks.py ``PackResult``): the
Arrow table the driver asks for, the entries it reads and what survives pickling are those of the pack's
own index, and a worker process never imports pyarrow."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa

from toolkit.pack import PackReader
from toolkit.pack_tasks import ROW_SCHEMA, MediumAccess, PackResult, PackTask, Sealing, build_pack
from toolkit.storage.local import LocalStorage

REPO = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))


def mails(n: int) -> list[bytes]:
    return [(f"From: a{i}@example.com\r\nTo: b@example.org\r\nSubject: mail {i}\r\nMessage-ID: <m{i}@x>\r\n\r\n"
             f"body {i}\r\n" + "line of text\r\n" * i).encode() for i in range(n)]


def test_rows_entries_and_pickle_match_the_pack_index(tmp_path):
    storage, au = LocalStorage(tmp_path), uuid.uuid4()
    jobs = mails(30) + mails(3)  # three duplicates: written once
    task = PackTask(jobs, MediumAccess(1, str(tmp_path)), Sealing(KEY, au), pack_id=os.urandom(16))
    result = build_pack(task, storage=storage)
    index = PackReader(storage, result.pack.name, KEY, au).index()
    assert len(index) == 30
    expected = pa.table({"blob_id": [e.blob_id for e in index], "offset": [e.offset for e in index],
                         "length": [e.length for e in index], "size": [e.size for e in index],
                         "csize": [e.csize for e in index]}, schema=ROW_SCHEMA)
    for r in (result, pickle.loads(pickle.dumps(result))):
        assert r.entries() == {e.blob_id.hex(): e for e in index}
        assert r.rows.equals(expected)
        assert r.entries() == {e.blob_id.hex(): e for e in index}  # also once the table exists
        assert [p.blob_id for p in r.prepared] == [p.blob_id for p in result.prepared]
        assert r.pack == result.pack


def test_a_result_made_from_a_table_keeps_it():
    empty = ROW_SCHEMA.empty_table()
    r = PackResult([], None, empty)
    assert r.rows is empty and r.entries() == {}
    again = pickle.loads(pickle.dumps(r))
    assert again.rows.equals(empty) and again.entries() == {}


def test_a_worker_imports_no_pyarrow(tmp_path):
    code = ("import os, sys, uuid\n"
            "from toolkit.worker_entry import pack_in_worker\n"
            "from toolkit.pack_tasks import PackTask, MediumAccess, Sealing, build_pack\n"
            "from toolkit.storage.local import LocalStorage\n"
            f"task = PackTask([b'Subject: x\\r\\n\\r\\nbody\\r\\n'], MediumAccess(1, {str(tmp_path)!r}), "
            f"Sealing({KEY!r}, uuid.uuid4()), pack_id=os.urandom(16))\n"
            f"r = build_pack(task, storage=LocalStorage({str(tmp_path)!r}))\n"
            "assert len(r.entries()) == 1\n"
            "print('pyarrow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
