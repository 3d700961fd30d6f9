"""toolkit.crc: python-isal's CRC-32 gives zlib's values (the mbox cursor and FileRegion check, docs/reliability.md A5),
whole and chained piece by piece; without isal the module falls back to zlib's."""
from __future__ import annotations

import importlib.util
import sys
import zlib
from pathlib import Path

from hypothesis import given, settings, strategies as st

from tests.corpora import corpora_dir
from toolkit import crc

REPO = Path(__file__).resolve().parents[2]


def _chained(f, data: bytes, cuts: list[int], start: int = 0) -> int:
    value, pos = start, 0
    for cut in sorted(cuts) + [len(data)]:
        value = f(data[pos:cut], value)
        pos = max(pos, cut)
    return value


def test_isal_is_the_implementation_in_use():
    assert crc.IMPLEMENTATION == "isal"  # a pinned dependency (requirements.lock): the setup installs it


def test_equal_to_zlib_on_every_corpus_file():
    roots = [REPO / "sample_data"] + [corpora_dir() / d for d in ("a-mime-edge", "b-mbox-maildir", "e-real-corpus")]
    files = sorted(p for root in roots for p in root.rglob("*") if p.is_file() and p.stat().st_size < 8 << 20)
    assert len(files) > 1000
    for path in files:
        data = path.read_bytes()
        assert crc.crc32(data) == zlib.crc32(data), path
        cuts = list(range(0, len(data), 97))  # line-sized pieces, as the mbox splitter feeds them
        assert _chained(crc.crc32, data, cuts) == zlib.crc32(data), path


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=5000), st.lists(st.integers(0, 5000), max_size=8), st.integers(0, 2**32 - 1))
def test_equal_to_zlib_on_random_bytes_pieces_and_start_values(data, cuts, start):
    cuts = [c % (len(data) + 1) for c in cuts]
    assert crc.crc32(data, start) == zlib.crc32(data, start)
    assert _chained(crc.crc32, data, cuts, start) == _chained(zlib.crc32, data, cuts, start) == zlib.crc32(data, start)
    assert crc.crc32(memoryview(data)) == zlib.crc32(data)


def test_falls_back_to_zlib_without_isal(monkeypatch):
    monkeypatch.setitem(sys.modules, "isal", None)  # `import isal...` raises ImportError, as when it is not installed
    monkeypatch.setitem(sys.modules, "isal.isal_zlib", None)
    spec = importlib.util.spec_from_file_location("crc_without_isal", REPO / "toolkit" / "crc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.IMPLEMENTATION == "zlib" and module.crc32 is zlib.crc32
