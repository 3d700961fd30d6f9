"""An export maildir rerun's view of the files an earlier run left (exporters/earlier_files.py; docs/reliability.md K8)."""
from __future__ import annotations

import os
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporters.earlier_files import EarlierFiles


def _stem(ts: int, msg_id: int, blob: str, size: int) -> str:
    return f"{ts}.M{msg_id}_{blob}.mailarchive,S={size}"  # exporters/maildir.py file_stem


def _old_lookup(cur) -> dict[str, str]:
    """What the exporter held before: every name not starting with a dot, by its part before ':2,'."""
    return {n.split(":2,", 1)[0]: n for n in os.listdir(cur) if not n.startswith(".")}


_stems = st.builds(_stem, st.integers(-2**40, 2**40), st.integers(1, 2**63 - 1),
                   st.text("0123456789abcdef", min_size=12, max_size=12), st.integers(0, 2**40))
_infos = st.sampled_from(["", ":2,", ":2,S", ":2,RS", ":2,DFPRST", ":2,S,extra", ":2,:2,S"])
_foreign = st.sampled_from([
    "1700000000.M123P456.host,S=10:2,S",        # another delivery agent's unique name
    "1700000000.M99999999999999999999999_aaaaaaaaaaaa.mailarchive,S=1:2,",  # a msg id past 64 bits
    ".1700000000.M5_0123456789ab.mailarchive,S=3:2,S.0a1b2c3d.part",       # an interrupted part
    ".hidden", "notes.txt", "M5_", "-.M5_x",
])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(st.tuples(_stems, _infos), max_size=30, unique_by=lambda f: f[0]),
       foreign=st.lists(_foreign, max_size=4, unique=True), absent=st.lists(_stems, max_size=5))
def test_a_lookup_finds_what_the_dict_of_names_found(tmp_path_factory, files, foreign, absent):
    """For the stem of every file an earlier run wrote, and for stems of files not there, the same answer as the
    dict of every name by its stem: the existing name with its info letters, or nothing."""
    cur = tmp_path_factory.mktemp("cur")
    for stem, info in files:
        (cur / (stem + info)).touch()
    for name in foreign:
        (cur / name).touch()
    old = _old_lookup(cur)
    earlier = EarlierFiles(cur)
    assert len(earlier) == len(files)
    for stem, _ in files + [(s, "") for s in absent]:
        msg_id = int(stem.split(".M", 1)[1].split("_", 1)[0])
        assert earlier.name_of(msg_id, stem) == old.get(stem), stem
        assert earlier.name_of(msg_id + 1, stem) is None  # another message's id never finds this stem


def test_two_files_of_one_message_in_a_folder_are_both_found_by_their_stems(tmp_path):
    """A message placed twice under different times (its internal date changed between runs), and a stem that a
    second file repeats with other letters: each stem finds a file of its own."""
    a, b = _stem(100, 7, "a" * 12, 5), _stem(200, 7, "a" * 12, 5)
    for name in (a + ":2,S", b + ":2,", b + ":2,RS", _stem(100, 6, "b" * 12, 5) + ":2,S"):
        (tmp_path / name).touch()
    earlier = EarlierFiles(tmp_path)
    assert earlier.name_of(7, a) == a + ":2,S"
    assert earlier.name_of(7, b) in (b + ":2,", b + ":2,RS")
    assert earlier.name_of(7, _stem(300, 7, "a" * 12, 5)) is None
    assert earlier.name_of(8, a) is None


def test_an_empty_cur_and_a_single_file(tmp_path):
    empty = tmp_path / "e"
    empty.mkdir()
    assert len(EarlierFiles(empty)) == 0 and EarlierFiles(empty).name_of(1, _stem(1, 1, "c" * 12, 1)) is None
    one = tmp_path / "o"
    one.mkdir()
    (one / (_stem(-5, 3, "d" * 12, 9) + ":2,F")).touch()
    assert EarlierFiles(one).name_of(3, _stem(-5, 3, "d" * 12, 9)) == _stem(-5, 3, "d" * 12, 9) + ":2,F"


def test_the_earlier_files_of_a_large_folder_cost_a_few_bytes_each(tmp_path):
    """K8: 20,000 earlier files are held in under 40 bytes each (the dict of names held ~260: 260 MB at a million
    mails in one folder, on top of the export's own memory), and reading them never holds a Python string per file
    beyond the one being read."""
    n = 20_000
    for i in range(n):
        (tmp_path / (_stem(1_700_000_000 + i, 10_000_000 + (i * 7919) % n, f"{i:012x}", 40_000 + i) + ":2,S")).touch()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        earlier = EarlierFiles(tmp_path)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(earlier) == n
    assert (held - before) / n < 40, (held - before) / n
    assert (peak - before) / n < 80, (peak - before) / n
    stem = _stem(1_700_000_000 + 5, 10_000_000 + (5 * 7919) % n, f"{5:012x}", 40_005)
    assert earlier.name_of(10_000_000 + (5 * 7919) % n, stem) == stem + ":2,S"
