"""The driver's cheaper per-mail steps of round two give exactly what the steps they replaced gave (issue 15).

Each replaced step is compared with its former code, kept here as the reference: the keys a chunk finds
in memory (``toolkit.ingest.found_in_memory``, was a loop over the chunk's mails in ``Ingest._lookup``).
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.dedup import Known
from toolkit.ingest import found_in_memory


def _old_found(blob_ids, dkeys, mids, run, ahead) -> Known:
    """Ingest._lookup's in-memory part before: a loop over the mails, then another for the tasks ahead."""
    found = Known()
    run_blobs, run_keys, run_mids = run
    for blob, dkey, mid in zip(blob_ids, dkeys, mids):
        if blob in run_blobs:
            found.blobs[blob] = run_blobs[blob]
        if dkey in run_keys:
            found.keys[dkey] = run_keys[dkey]
        if mid is not None and mid in run_mids:
            found.mids[mid] = run_mids[mid]
    ahead_blobs, ahead_keys, ahead_mids = ahead
    if ahead_blobs or ahead_mids:
        for blob, dkey, mid in zip(blob_ids, dkeys, mids):
            if blob in ahead_blobs:
                found.blobs[blob] = ahead_blobs[blob]
            if dkey in ahead_keys:
                found.keys[dkey] = ahead_keys[dkey]
            if mid is not None and mid not in found.mids and mid in ahead_mids:
                found.mids[mid] = ahead_mids[mid]
    return found


_KEY = st.sampled_from(["a", "b", "c", "d", "e", "f"])
_MID = st.one_of(st.none(), st.sampled_from(["", "<x@y>", "<z@y>", "<w@y>"]))
_TABLE = st.dictionaries(_KEY, st.integers(1, 50), max_size=5)
_MIDS = st.dictionaries(st.sampled_from([None, "", "<x@y>", "<z@y>", "<w@y>"]), st.integers(1, 50), max_size=3)


@settings(max_examples=500, deadline=None)
@given(mails=st.lists(st.tuples(_KEY, _KEY, _MID), max_size=12), run=st.tuples(_TABLE, _TABLE, _MIDS),
       ahead=st.tuples(_TABLE, _TABLE, _MIDS))
def test_keys_found_in_memory_are_those_the_loop_found(mails, run, ahead):
    blob_ids, dkeys, mids = ([m[i] for m in mails] for i in range(3))
    new, old = found_in_memory(blob_ids, dkeys, mids, run, ahead), _old_found(blob_ids, dkeys, mids, run, ahead)
    assert (new.blobs, new.keys, new.mids, new.converted_keys, new.converted) == \
        (old.blobs, old.keys, old.mids, old.converted_keys, old.converted)


# -- the worker's content checks of import eml (importers/content.py) -----------------------------------
import re  # noqa: E402

from importers.content import MAIL_HEADERS, _first_line_is_from, looks_like_headers, starts_with_headers  # noqa: E402
from importers.eml_check import cut_wrapper, not_mail  # noqa: E402
from importers.from_line import from_line_date, is_envelope_line, is_from_line  # noqa: E402
from tests.corpora import corpora_dir  # noqa: E402

_HEADER_LINE = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")


def _old_first_line_is_from(data: bytes, whole: bool = False) -> bool:
    """importers.content._first_line_is_from before: the first line split off without looking at it first."""
    body = data.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")
    line, nl, rest = body.partition(b"\n")
    if not is_from_line(line + nl):
        return is_envelope_line(line) and looks_like_headers(rest, whole)
    if from_line_date(line) is not None:
        return True
    return bool(_HEADER_LINE.match(rest))


def _old_starts_with_headers(data: bytes) -> bool:
    """importers.content.starts_with_headers before: the names seen kept in a set, intersected after each."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    pos, end, first = 0, len(data), True
    names: set[bytes] = set()
    while pos < end:
        nl = data.find(b"\n", pos)
        stop = end if nl < 0 else nl
        line = data[pos:stop].rstrip(b"\r")
        pos = stop + 1
        if first and line and not line.strip(b" \t"):
            continue
        if not line:
            break
        if line[:1] in (b" ", b"\t") and not first:
            continue
        m = _HEADER_LINE.match(line)
        if not m:
            break
        names.add(m.group(1).lower())
        first = False
        if names & MAIL_HEADERS:
            return True
    return False


def _agree(data: bytes) -> None:
    for whole in (False, True):
        assert _first_line_is_from(data, whole) == _old_first_line_is_from(data, whole), (data[:200], whole)
    assert starts_with_headers(data) == _old_starts_with_headers(data), data[:200]


def test_content_checks_agree_with_the_former_on_the_corpora():
    corpora = corpora_dir()
    files = [p for p in sorted(corpora.rglob("*")) if p.is_file() and p.stat().st_size < (4 << 20)]
    assert len(files) > 50
    for path in files:
        data = path.read_bytes()
        _agree(data[:64 << 10])
        _agree(data[:300])


_PIECES = st.sampled_from([b"From ", b"From", b"From:", b"from ", b"\xef\xbb\xbf", b"\r\n", b"\n", b" ", b"\t",
                           b"Subject: x", b"X-Foo: y", b"To: a@b", b"Date: Mon, 7 Jan 2019 09:15:00 +0000",
                           b"a@b Mon Jan  7 09:15:00 2019", b"-", b"bad line", b":", b"Received: from",
                           b"MESSAGE-ID: <x>", b"\x00\xff"])


@settings(max_examples=1500, deadline=None)
@given(pieces=st.lists(st.one_of(_PIECES, st.binary(max_size=8)), max_size=14))
def test_content_checks_agree_with_the_former_on_random_input(pieces):
    _agree(b"".join(pieces))


def test_a_from_line_is_still_cut_and_a_text_still_not_mail():
    mail = b"From a@b Mon Jan  7 09:15:00 2019\nSubject: x\n\nbody\n"
    trimmed = cut_wrapper(mail)
    assert trimmed.raw == b"Subject: x\n\nbody\n" and trimmed.removed == len(mail) - len(trimmed.raw)
    assert cut_wrapper(b"Subject: x\n\nbody\n") is None
    assert not_mail(b"Subject: x\n\nbody\n") is None
    assert not_mail(b"just some text\n") is not None


# -- a task's index in the driver (toolkit.ingest._entries) ---------------------------------------------------
import pyarrow as pa  # noqa: E402

from toolkit.ingest import _entries  # noqa: E402
from toolkit.pack_tasks import ROW_SCHEMA, PackResult  # noqa: E402


def _old_entries(rows) -> dict:
    """toolkit.ingest._entries before: the task's Arrow table (PackResult.rows, built from the worker's columns)
    read back with to_pydict."""
    cols = rows.to_pydict()
    return dict(zip([b.hex() for b in cols["blob_id"]], zip(cols["offset"], cols["length"], cols["size"], cols["csize"])))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, 2**40), st.integers(0, 2**31),
                          st.integers(0, 2**31), st.integers(0, 2**31)), max_size=20))
def test_a_tasks_index_from_its_columns_is_the_one_read_from_its_table(records):
    columns = tuple(list(c) for c in zip(*records)) if records else ([], [], [], [], [])
    from_columns = PackResult([], None, columns=columns)
    old = _old_entries(PackResult([], None, columns=columns).rows)
    assert _entries(from_columns) == old
    table = pa.Table.from_pylist([dict(zip(ROW_SCHEMA.names, r)) for r in records], schema=ROW_SCHEMA) \
        if records else ROW_SCHEMA.empty_table()
    assert _entries(PackResult([], None, table)) == old
