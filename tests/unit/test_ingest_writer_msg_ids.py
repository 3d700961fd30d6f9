"""The commit's msg_id column (toolkit.ingest_writer._msg_id_list) against the Arrow-compute formula it replaced."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, strategies as st

from toolkit.ingest_writer import _msg_id_list

_targets = st.lists(st.tuples(st.sampled_from(["new", "old"]), st.integers(0, 2**40)), min_size=1, max_size=300)


def _reference(targets, base):
    kinds, refs = zip(*targets)
    refs = pa.array(refs, pa.int64())
    return pc.if_else(pc.equal(pa.array(kinds, pa.string()), "new"), pc.add(refs, pa.scalar(base, pa.int64())), refs)


@given(_targets, st.integers(1, 2**40))
def test_msg_ids_equal_the_arrow_compute_formula(targets, base):
    got = pa.array(_msg_id_list(targets, base), pa.int64())
    assert got.equals(_reference(targets, base))


def test_an_unknown_target_kind_is_an_error_not_a_wrong_id():
    try:
        _msg_id_list([("new", 1), ("neu", 2)], 10)
    except KeyError:
        return
    raise AssertionError("a target kind other than new/old gave a msg_id")
