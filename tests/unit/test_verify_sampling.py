"""verify/sampling.py (RELIABILITY F6): the --subset values, the rotation order and the state file."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from toolkit.errors import UsageError
from verify.sampling import choose, load_state, parse_subset, record_reads

UUID = "00000000-0000-4000-8000-000000000001"
NOW = dt.datetime(2026, 12, 4, 8, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("text,total,size", [("10%", 30, 3), ("10%", 31, 4), ("0.1", 5, 1), ("1/3", 6, 2),
                                             ("100%", 7, 7), ("5", 3, 3), ("5", 30, 5), ("1%", 2, 1)])
def test_subset_sizes_round_up_and_never_exceed_the_packs(text, total, size):
    assert parse_subset(text).size(total) == size


@pytest.mark.parametrize("text", ["0", "0%", "101%", "1.5", "2/1", "1/0", "-3", "ten", ""])
def test_bad_subsets_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_subset(text)


def test_least_recently_read_first_ties_by_seed(tmp_path):
    tasks = [{"pack_id": f"{i:032x}"} for i in range(8)]
    state = {"packs": {tasks[0]["pack_id"]: {"run": 2}, tasks[1]["pack_id"]: {"run": 1}}, "runs": 2}
    one = parse_subset("1")
    never = {t["pack_id"] for t in tasks[2:]}
    picks = {choose(tasks, one, seed, state)[0]["pack_id"] for seed in range(30)}
    assert picks <= never and len(picks) > 1  # never-read packs first; the seed moves the choice among them
    assert choose(tasks, one, 4, state) == choose(tasks, one, 4, state)
    assert [t["pack_id"] for t in choose(tasks, parse_subset("7"), 0, state)][-1] == tasks[1]["pack_id"]


def test_record_reads_counts_runs_drops_gone_packs_and_ignores_a_foreign_or_broken_file(tmp_path):
    path = tmp_path / "verify-state.json"
    path.write_text("{not json")
    assert load_state(path, UUID) == {"packs": {}, "runs": 0}
    assert record_reads(path, UUID, ["a", "b"], {"a", "b", "c"}, NOW) == 1
    assert record_reads(path, UUID, ["c"], {"b", "c"}, NOW) == 2  # "a" is no longer in the catalog
    state = load_state(path, UUID)
    assert {p: v["run"] for p, v in state["packs"].items()} == {"b": 1, "c": 2}
    assert state["packs"]["c"]["read_at"] == "2026-12-04T08:00:00+00:00"
    assert load_state(path, "another-archive") == {"packs": {}, "runs": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["verify-state.json"]  # no temp file left
    assert json.loads(path.read_text())["archive"] == UUID
