"""An import run's skips and errors held in columns (toolkit/problem_list.py; docs/reliability.md K8)."""
from __future__ import annotations

import datetime as dt
import json
import pickle
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.cli.output import _json_default
from toolkit.problem_list import ProblemList
from toolkit.source import RunSummary

_problems = st.lists(st.fixed_dictionaries({
    "ref": st.text(max_size=20), "kind": st.sampled_from(["skipped", "error"]),
    "message": st.sampled_from(["not mail: binary (--force-raw archives it anyway)", "empty file"]) | st.text(max_size=8),
}), max_size=30)


@settings(max_examples=300, deadline=None)
@given(problems=_problems)
def test_it_reads_as_the_list_of_dicts_it_was_given(problems):
    """Length, iteration, indexing from either end, slices, equality both ways, JSON (as the command line writes it)
    and a pickle (a migration's summaries come back from Dask workers) give the dicts appended, in order."""
    got = ProblemList()
    for p in problems:
        got.append(dict(p))
    assert len(got) == len(problems) and bool(got) == bool(problems)
    assert list(got) == problems and got == problems and problems == got
    assert [got[i] for i in range(len(problems))] == problems
    assert [got[-i] for i in range(1, len(problems) + 1)] == [problems[-i] for i in range(1, len(problems) + 1)]
    assert got[1:4] == problems[1:4]
    assert json.loads(json.dumps({"problems": got}, default=_json_default)) == {"problems": problems}
    again = pickle.loads(pickle.dumps(got))
    assert again == problems
    again.append({"ref": "x", "kind": "error", "message": "empty file"})
    assert list(again)[-1] == {"ref": "x", "kind": "error", "message": "empty file"} and len(again) == len(got) + 1
    merged: list = []
    merged += got  # a migration's outcome collects them so (toolkit/migrate/report.py)
    assert merged == problems


def test_a_problem_with_other_keys_is_refused():
    got = ProblemList()
    try:
        got.append({"ref": "a", "kind": "error", "message": "m", "extra": 1})
    except ValueError as exc:
        assert "ref, kind and message" in str(exc)
    else:
        raise AssertionError("a problem with another key was taken")
    assert len(got) == 0


def test_a_run_s_problems_cost_their_ref_and_a_few_bytes_each():
    """K8: 20,000 skipped files of a share (paths of ~40 characters, a few distinct reasons) are held in under their
    refs' size + 30 bytes each; a list of dicts held ~280 bytes each with its ref (~280 MB for a million)."""
    refs = [f"dept{i % 40:02d}/documents/report-{i:06d}.docx" for i in range(20_000)]
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        summary = RunSummary(run_id=1, source_uri="share:/srv")
        for i, ref in enumerate(refs):
            summary.problems.append({"ref": ref, "kind": "skipped",
                                     "message": ("not mail: binary (--force-raw archives it anyway)", "empty file")[i % 2]})
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    own = sum(len(r) + 49 for r in refs)  # the ref strings themselves (compact ASCII)
    assert (held - before - own) / len(refs) < 30, (held - before - own) / len(refs)
    assert summary.as_dict()["problems"][7] == {"ref": refs[7], "kind": "skipped", "message": "empty file"}


def _materialised(o):
    if isinstance(o, ProblemList):
        return o.to_list()
    if isinstance(o, dict):
        return {k: _materialised(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_materialised(v) for v in o]
    return o


@settings(max_examples=200, deadline=None)
@given(lists=st.lists(_problems, max_size=4), other=st.text(max_size=10), chunk=st.integers(1, 5),
       indent=st.sampled_from([None, 0, 1, 2]), bare=st.booleans())
def test_json_written_with_the_lists_streamed_is_the_json_of_the_lists_whole(lists, other, chunk, indent, bare):
    """``--json`` (toolkit/cli/output.py) and the migration report (indent 1) write each ProblemList a chunk at a
    time (toolkit/json_stream.py): the bytes are those of ``json.dumps`` of the result with every list whole, for
    results with none, one or several lists (empty ones too), a list as a member or as an item of a list (``bare``),
    a :class:`Streamed` iterator of rows beside them,
    strings with NUL, line breaks and non-ASCII characters beside them, chunks of any size, with and without indent."""
    import io

    from toolkit import json_stream

    sources = [{"source": f"share:/srv/{i}\x00{other}", "problems": ProblemList(p), "note": other} for i, p in enumerate(lists)]
    result = {"status": "complete", "sources": sources, "warnings": [other]}
    if bare:
        result["lists"] = [ProblemList(p) for p in lists]
    expected = _materialised(result)
    # rows of a query written an item at a time (the retention report): any JSON values, a date through ``default``
    rows = [{"n": i, "at": dt.date(2020, 1, 1 + i % 28), "items": [p["ref"] for p in lst]} for i, lst in enumerate(lists)]
    result["rows"] = json_stream.Streamed(iter(rows))
    expected["rows"] = [{**r, "at": str(r["at"])} for r in rows]
    old_chunk, json_stream.CHUNK = json_stream.CHUNK, chunk
    try:
        out = io.StringIO()
        json_stream.write_json(out, result, str, indent=indent)
    finally:
        json_stream.CHUNK = old_chunk
    assert out.getvalue() == json.dumps(expected, ensure_ascii=False, indent=indent) + "\n"


def test_the_cli_json_is_the_stream_without_indent():
    import io

    from toolkit.cli import output

    problems = ProblemList([{"ref": "a\nb", "kind": "error", "message": "é"}])
    out = io.StringIO()
    output.write_json(out, {"problems": problems, "n": 1})
    assert out.getvalue() == json.dumps({"problems": problems.to_list(), "n": 1}, ensure_ascii=False) + "\n"


def test_json_of_many_problems_is_written_in_chunks_not_made_whole_first():
    """20,000 problems: no single write holds more than a chunk of them, and the whole is the list."""
    from toolkit.cli import output
    from toolkit.json_stream import CHUNK

    problems = ProblemList({"ref": f"d/{i:06d}.pdf", "kind": "skipped", "message": "not mail: binary"} for i in range(20_000))

    class Writes:
        def __init__(self):
            self.parts: list[str] = []

        def write(self, text: str) -> None:
            self.parts.append(text)

    out = Writes()
    output.write_json(out, {"sources": [{"problems": problems}]})
    assert max(len(p) for p in out.parts) < 80 * CHUNK  # ~75 characters a problem
    assert json.loads("".join(out.parts)) == {"sources": [{"problems": problems.to_list()}]}
