"""The blob ids by multi-buffer SHA-256 (toolkit/_sha256mb.c, toolkit/blob_ids.py) equal hashlib's.

Each engine the CPU runs (AVX-512VL, AVX2) is compared with hashlib on the NIST vectors, on
hypothesis-random batches (lengths 0..10,000 with every length around the block and padding edges
55/56/63/64/119/120/128, bytes, bytearray and memoryview buffers, empty and one-element batches) and on a
batch far larger than the 8 lanes with very different lengths. A pack task gives the same prepared mails
and the same pack index with either engine, on the shared corpora's mails (journal reports unwrapped
among them, a file with a From_ line cut, an unreadable file). No byte outside a buffer is read (buffers
against an inaccessible page). Without the compiled module, or with it built as for another architecture,
hashlib does it all. Under CI=true a missing module is a failure (docs/architecture.md, "Multi-buffer SHA-256").
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid

import pytest
from hypothesis import given, settings, strategies as st

from tests.guard_pages import guarded
from tests.corpora import REPO, corpora_dir
from toolkit import blob_ids
from toolkit.pack import PackReader
from toolkit.pack_tasks import MediumAccess, PackTask, Sealing, build_pack
from toolkit.prepare import LocalFile, ReadFailure
from toolkit.storage.local import LocalStorage

LEVELS = blob_ids.multi_buffer_levels()


@pytest.fixture(autouse=True)
def _need_module(request):
    if not LEVELS and "fallback" not in request.node.name:
        if os.environ.get("CI") == "true":
            pytest.fail("toolkit._sha256mb is not built or this CPU has no AVX2 (CI must run the multi-buffer "
                        "engine): run `pip install --no-deps -e .` with a C compiler and the Python headers")
        pytest.skip("no multi-buffer SHA-256 engine here (module not built, or no AVX2)")


@pytest.fixture(autouse=True)
def _engine_chosen_again():
    yield
    blob_ids.use(None)


def _hashlib(buffers) -> list[bytes]:
    return [hashlib.sha256(bytes(b)).digest() for b in buffers]


NIST = [  # FIPS 180-4 examples (NIST CSRC "SHA256.pdf", "SHA2_Additional.pdf")
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    (b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrst"
     b"nopqrstu", "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
    (b"a" * 1_000_000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
    (b"\xbd", "68325720aabd7c82f30f554b313d0570c95accbb7dc4b5aae11204c08ffe732b"),
    (b"\x00" * 55, "02779466cdec163811d078815c633f21901413081449002f24aa3e80f0b88ef7"),
    (b"\x00" * 56, "d4817aa5497628e7c77e6b606107042bbba3130888c5f47a375e6179be789fbb"),
    (b"\x00" * 57, "65a16cb7861335d5ace3c60718b5052e44660726da4cd13bb745381b235a1785"),
    (b"\x00" * 64, "f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b"),
    (b"\x00" * 1000, "541b3e9daa09b20bf85fa273e5cbd3e80185aa4ec298e765db87742b70138a53"),
]


@pytest.mark.parametrize("level", LEVELS or ["none"])
def test_the_nist_vectors(level):
    digests = blob_ids.sha256_multi([m for m, _ in NIST], level)
    assert [d.hex() for d in digests] == [h for _, h in NIST]
    # each on its own too (seven lanes idle)
    assert [blob_ids.sha256_multi([m], level)[0].hex() for m, _ in NIST] == [h for _, h in NIST]


EDGES = [n + d for n in (55, 56, 63, 64, 119, 120, 128) for d in (-1, 0, 1)]
lengths = st.one_of(st.sampled_from(EDGES), st.integers(0, 200), st.integers(0, 10_000))
buffer = lengths.flatmap(lambda n: st.tuples(st.binary(min_size=n, max_size=n), st.sampled_from(["bytes", "bytearray", "memoryview", "slice"])))


def _as(data: bytes, kind: str):
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        return memoryview(data)
    if kind == "slice":  # a contiguous view into a larger buffer, not at its start
        return memoryview(b"\xff" * 3 + data + b"\xee" * 5)[3:3 + len(data)]
    return data


@settings(max_examples=150, deadline=None)
@given(batch=st.lists(buffer, max_size=40))
def test_random_batches_equal_hashlib(batch):
    buffers = [_as(data, kind) for data, kind in batch]
    expected = _hashlib(buffers)
    for level in LEVELS:
        assert blob_ids.sha256_multi(buffers, level) == expected
    blob_ids.use(LEVELS[0])
    assert blob_ids.sha256_many(buffers) == expected


@pytest.mark.parametrize("level", LEVELS or ["none"])
def test_empty_and_one_element_batches(level):
    assert blob_ids.sha256_multi([], level) == []
    assert blob_ids.sha256_multi((), level) == []
    for n in (0, 1, 55, 56, 64, 65, 4096):
        data = bytes(range(256)) * (n // 256 + 1)
        assert blob_ids.sha256_multi([data[:n]], level) == [hashlib.sha256(data[:n]).digest()]


@pytest.mark.parametrize("level", LEVELS or ["none"])
def test_a_batch_far_larger_than_the_lanes_with_very_different_lengths(level):
    # one long mail and many short ones: lanes refill many times while one lane works on the long one;
    # the same buffer twice, and lengths in no order
    rnd = os.urandom(300_000)
    sizes = [300_000, 0, 1, 64, 5, 70_000, 119, 120, 3, 200_000] + [(i * 7919) % 3000 for i in range(90)]
    buffers = [rnd[i:i + n] for i, n in enumerate(sizes)]
    buffers.append(buffers[0])
    assert blob_ids.sha256_multi(buffers, level) == _hashlib(buffers)


def test_what_is_not_a_contiguous_buffer_is_refused():
    with pytest.raises(TypeError):
        blob_ids.sha256_multi(["text"])
    with pytest.raises(TypeError):
        blob_ids.sha256_multi(5)
    with pytest.raises((BufferError, TypeError, ValueError)):
        blob_ids.sha256_multi([memoryview(b"abcdef")[::2]])
    with pytest.raises(ValueError):
        blob_ids.sha256_multi([b"x"], "sse9")


def test_the_engine_is_chosen_by_timing_once_and_can_be_set():
    blob_ids.use(None)
    chosen = blob_ids.choose()
    assert chosen in ["hashlib", *LEVELS]
    assert blob_ids.choose() == chosen  # kept for the process's life
    t_hashlib, t_multi = blob_ids.measure()
    assert t_hashlib > 0 and t_multi > 0
    for engine in ["hashlib", *LEVELS]:
        blob_ids.use(engine)
        assert blob_ids.choose() == engine and blob_ids.multi_buffer_chosen() == (engine != "hashlib")
        data = [b"x" * n for n in range(30)]
        assert blob_ids.sha256_many(data) == _hashlib(data)
    with pytest.raises(ValueError):
        blob_ids.use("md5")


KEY = bytes(range(32))


def _corpus_jobs(tmp_path) -> list:
    corpora = corpora_dir()
    files = sorted(p for d in ("a-mime-edge", "c-exchange-journal") for p in (corpora / d).rglob("*.eml"))
    jobs: list = [p.read_bytes() for p in files]
    # a local file with a From_ line before the message (cut in the worker: a Trimmed), and one that is gone
    from importers.eml_check import cut_envelope
    framed = tmp_path / "framed.eml"
    framed.write_bytes(b"From someone@example.com Mon Jan  1 00:00:00 2024\n" + jobs[0])
    jobs[3:3] = [LocalFile(os.fsencode(framed), None, cut_envelope), LocalFile(os.fsencode(tmp_path / "gone.eml"))]
    return jobs


def _pack_task(tmp_path, name: str, engine: str, jobs: list):
    blob_ids.use(engine)
    root = tmp_path / name
    root.mkdir()
    storage, au = LocalStorage(root), uuid.UUID(int=7)
    result = build_pack(PackTask(jobs, MediumAccess(1, str(root)), Sealing(KEY, au), pack_id=b"\2" * 16), storage=storage)
    index = PackReader(storage, result.pack.name, KEY, au).index()
    return result.prepared, [(e.blob_id, e.offset, e.length, e.size, e.csize) for e in index]


def test_a_pack_task_gives_the_same_blob_ids_with_either_engine(tmp_path):
    jobs = _corpus_jobs(tmp_path)
    old_prepared, old_index = _pack_task(tmp_path, "hashlib", "hashlib", jobs)
    assert any("journal-unwrapped" in p.defects for p in old_prepared if hasattr(p, "defects"))
    assert any(getattr(p, "source_note", None) is not None for p in old_prepared)
    assert any(isinstance(p, ReadFailure) for p in old_prepared)
    for level in LEVELS:
        prepared, index = _pack_task(tmp_path, level, level, jobs)
        assert prepared == old_prepared  # blob id, headers, envelope, defects, size, source note: mail by mail
        assert index == old_index


def test_batches_of_a_task_are_bounded_and_hash_every_mail(monkeypatch):
    from toolkit import pack_tasks

    monkeypatch.setattr(pack_tasks, "HASH_BATCH_BYTES", 1000)
    blob_ids.use(LEVELS[0])
    seen: list[int] = []
    real = blob_ids.sha256_many
    monkeypatch.setattr(blob_ids, "sha256_many", lambda mails: seen.append(sum(map(len, mails))) or real(mails))
    results = [b"a" * 300, ReadFailure(2, "gone"), b"b" * 900, b"c" * 10, b"d" * 2000, b"e" * 5]
    out = list(pack_tasks._hashed(iter(results)))
    assert [r for r, _ in out] == results
    assert [d for _, d in out] == [None if isinstance(r, ReadFailure) else hashlib.sha256(r).digest() for r in results]
    assert seen == [1200, 2010, 5]  # each batch ends once it holds HASH_BATCH_BYTES of mail


def _prints_ok(code: str) -> None:
    """Run ``code`` in a fresh interpreter in the checkout: it must end well and print ``ok``."""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_the_fallback_without_the_compiled_module():
    # a process where toolkit._sha256mb cannot be imported: hashlib is the engine, a pack task runs as before
    code = (
        "import sys; sys.modules['toolkit._sha256mb'] = None\n"
        "import hashlib, pytest\n"
        "from toolkit import blob_ids, pack_tasks\n"
        "assert blob_ids._sha256mb is None and blob_ids.multi_buffer_levels() == []\n"
        "assert blob_ids.choose() == 'hashlib' and not blob_ids.multi_buffer_chosen()\n"
        "data = [b'x' * n for n in range(40)]\n"
        "assert blob_ids.sha256_many(data) == [hashlib.sha256(d).digest() for d in data]\n"
        "assert [d for _, d in pack_tasks._hashed(iter(data))] == [None] * 40\n"
        "with pytest.raises(RuntimeError):\n"
        "    blob_ids.sha256_multi(data)\n"
        "with pytest.raises(ValueError):\n"
        "    blob_ids.use('avx2')\n"
        "print('ok')\n")
    _prints_ok(code)


def test_a_mail_that_would_run_alone_in_its_lane_goes_to_hashlib():
    big = os.urandom(500_000)
    batch = [b"s%d" % i * 2000 for i in range(60)]
    batch.insert(17, big)
    for level in LEVELS:
        blob_ids.use(level)
        for speedup in (1.2, 3.0):  # the engine's speed over hashlib's, as measured where it is chosen
            assert blob_ids._alone(batch, speedup) == [17]
            assert blob_ids._alone(batch[:17] + batch[18:], speedup) == []  # the lanes end together
            assert blob_ids._alone([big] * 8 + batch, speedup) == []  # eight long ones fill the lanes
        # an engine slower than hashlib (set by use()): the lanes keep at least their number of mails
        assert 17 in blob_ids._alone(batch, 0.5) and len(blob_ids._alone(batch, 0.5)) == len(batch) - 8
        assert blob_ids.sha256_many(batch) == _hashlib(batch)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mmap/mprotect through libc")
def test_no_byte_outside_a_buffer_is_read():
    # buffers that end right before an inaccessible page, or start right after it: a read past either end
    # of a buffer (a whole block loaded where only the tail is the mail's) kills the process
    with guarded(pages=20) as (before, after):
        before[:] = os.urandom(len(before))
        after[:] = os.urandom(len(after))
        sizes = [*range(0, 200), 4095, 4096, 8191, 40_000, 81_920]
        buffers = [before[len(before) - n:] for n in sizes] + [after[:n] for n in sizes]
        for level in LEVELS:
            assert blob_ids.sha256_multi(buffers, level) == _hashlib(buffers)
        del before, after, buffers


def test_the_fallback_where_no_engine_runs(tmp_path):
    # the module as built for another architecture (or a compiler without per-function targets): it imports,
    # names no engine, refuses to hash, and blob_ids then runs hashlib
    import shutil
    import sysconfig

    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no C compiler: CI builds the compiled modules, so it must have one")
        pytest.skip("no C compiler")
    so = tmp_path / "toolkit" / ("_sha256mb" + sysconfig.get_config_var("EXT_SUFFIX"))
    so.parent.mkdir()
    built = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-DSHA256MB_NO_ENGINES", f"-I{sysconfig.get_paths()['include']}",
                            str(REPO / "toolkit" / "_sha256mb.c"), "-o", str(so)], capture_output=True, text=True)
    if built.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot build the module: {built.stderr[-300:]}")
        pytest.skip(f"cannot build the module here: {built.stderr[-300:]}")
    code = (
        "import importlib.util, sys, hashlib, pytest\n"
        f"spec = importlib.util.spec_from_file_location('toolkit._sha256mb', {str(so)!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "sys.modules['toolkit._sha256mb'] = mod\n"
        "assert mod.levels() == []\n"
        "with pytest.raises(RuntimeError):\n"
        "    mod.sha256_many([b'x'])\n"
        "from toolkit import blob_ids\n"
        "assert blob_ids._sha256mb is mod and blob_ids.multi_buffer_levels() == [] and blob_ids.choose() == 'hashlib'\n"
        "data = [b'y' * n for n in range(20)]\n"
        "assert blob_ids.sha256_many(data) == [hashlib.sha256(d).digest() for d in data]\n"
        "print('ok')\n")
    _prints_ok(code)
