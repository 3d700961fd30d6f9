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
