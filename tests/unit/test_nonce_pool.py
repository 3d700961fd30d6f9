"""Nonces drawn in batches (toolkit/pack.py ``NoncePool``): every record and footer of every pack still gets
96 random bits of its own. Two records never share a nonce, within a task, across the tasks of one worker,
across worker processes, nor in a process forked from one that had drawn a batch (docs/formats.md)."""
from __future__ import annotations

import multiprocessing
import os
import uuid

import pytest

from toolkit.pack import NONCE_SIZE, HEADER_SIZE, PackReader, NoncePool
from toolkit.pack_tasks import MediumAccess, PackTask, Sealing, build_pack
from toolkit.storage.local import LocalStorage

KEY = bytes(range(32))
AU = uuid.UUID(int=11)


def mails(n: int, tag: str) -> list[bytes]:
    return [(f"From: a{i}@example.com\r\nTo: b@example.org\r\nSubject: {tag} {i}\r\nMessage-ID: <{tag}{i}@x>\r\n\r\n"
             f"body {i}\r\n").encode() for i in range(n)]


def pack_nonces(root: str, name: str) -> list[bytes]:
    """The nonce of every record and of the footer, read from the pack file itself."""
    storage = LocalStorage(root)
    reader = PackReader(storage, name, KEY, AU)
    entries = reader.index()
    data = (storage.root / name).read_bytes()
    assert entries and entries[0].offset == HEADER_SIZE
    return [data[e.offset:e.offset + NONCE_SIZE] for e in entries] + [data[reader.footer_offset:][:NONCE_SIZE]]


def run_tasks(root: str, tag: str, tasks: int, two_phase: bool) -> list[str]:
    """``tasks`` pack tasks of 300 mails each (more than one batch of the pool) in this process; their pack names."""
    storage = LocalStorage(root)
    names = []
    for t in range(tasks):
        task = PackTask(mails(300, f"{tag}-{t}-"), MediumAccess(1, root), Sealing(KEY, AU), two_phase=two_phase)
        decide = (lambda prepared, records: set(records)) if two_phase else None
        names.append(build_pack(task, storage=storage, decide=decide).pack.name)
    return names


def test_a_pool_never_gives_a_nonce_twice_and_draws_in_batches(monkeypatch):
    draws = []
    real = os.urandom

    def urandom(n):
        draws.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", urandom)
    pool = NoncePool(batch=16)
    got = [pool(NONCE_SIZE) for _ in range(100)]
    assert all(type(n) is bytes and len(n) == NONCE_SIZE for n in got)
    assert len(set(got)) == 100
    assert draws == [16 * NONCE_SIZE] * 7   # 100 nonces: 7 draws of 16, not 100 calls
    assert len(pool(32)) == 32 and draws[-1] == 32  # another size: straight from os.urandom


def test_records_of_tasks_in_two_worker_processes_never_share_a_nonce(tmp_path):
    root = str(tmp_path)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as workers:
        names = workers.starmap(run_tasks, [(root, "w0", 2, True), (root, "w1", 2, False)])
    nonces = [n for worker in names for name in worker for n in pack_nonces(root, name)]
    assert len(names) == 2 and all(len(w) == 2 for w in names)
    assert len(nonces) == 4 * 301                 # 300 records and a footer per pack
    assert len(set(nonces)) == len(nonces)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_pool_forked_after_a_draw_draws_afresh_in_the_child():
    pool = NoncePool(batch=64)
    first = pool(NONCE_SIZE)                      # the parent holds 63 undrawn nonces now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the nonces it gives next
        try:
            os.close(read)
            os.write(write, b"".join(pool(NONCE_SIZE) for _ in range(63)))
        finally:
            os._exit(0)
    os.close(write)
    child = b""
    while chunk := os.read(read, 4096):
        child += chunk
    os.close(read)
    os.waitpid(pid, 0)
    parent = [pool(NONCE_SIZE) for _ in range(63)]
    child_nonces = [child[i:i + NONCE_SIZE] for i in range(0, len(child), NONCE_SIZE)]
    assert len(child_nonces) == 63
    assert not set(child_nonces) & set(parent + [first])
