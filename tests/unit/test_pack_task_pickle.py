"""A pack task travels to its worker with each run of local files sharing check and cut as one list of paths
(toolkit/pack_tasks.py ``PackTask.__reduce__``): what arrives is the task as it was sent, job for job, in
order and of the same types, for any mix of jobs."""
from __future__ import annotations

import pickle
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from importers.eml import cut_envelope, not_mail
from toolkit.file_region import FileRegion
from toolkit.pack_tasks import MediumAccess, PackTask, Sealing, _LocalFiles, _runs
from toolkit.prepare import LocalFile

KEY = bytes(range(32))
CHECKS = [None, not_mail]
CUTS = [None, cut_envelope]

local_files = st.builds(LocalFile, st.binary(min_size=1, max_size=40), st.sampled_from(CHECKS), st.sampled_from(CUTS))
regions = st.builds(FileRegion, st.binary(min_size=1, max_size=20), st.integers(0, 2**40), st.integers(0, 2**30),
                    st.integers(0, 2**32 - 1), st.integers(0, 99), st.integers(0, 99), st.booleans(), st.integers(0, 2**40),
                    st.floats(0, 2e9, allow_nan=False))
jobs = st.lists(st.one_of(local_files, local_files, st.binary(max_size=30), regions), max_size=60)


@settings(max_examples=300, deadline=None)
@given(jobs, st.booleans(), st.one_of(st.none(), st.binary(min_size=16, max_size=16)))
def test_a_task_arrives_as_it_was_sent(jobs, two_phase, pack_id):
    task = PackTask(jobs, MediumAccess(3, "/srv/medium", "pw", False), Sealing(KEY, uuid.UUID(int=5)), 12.5,
                    pack_id=pack_id, two_phase=two_phase)
    back = pickle.loads(pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == task
    assert [type(j) for j in back.jobs] == [type(j) for j in jobs]
    assert all(a is b or a == b for a, b in zip(back.jobs, jobs))


def test_runs_of_local_files_travel_as_lists_of_paths():
    files = [LocalFile(f"/m/{i}".encode(), not_mail, cut_envelope) for i in range(5)]
    other = LocalFile(b"/m/x", None, cut_envelope)
    runs = _runs([*files[:3], other, *files[3:], b"raw mail"])
    assert [type(r) for r in runs] == [_LocalFiles, _LocalFiles, _LocalFiles, bytes]
    assert [r.paths for r in runs[:3]] == [[b"/m/0", b"/m/1", b"/m/2"], [b"/m/x"], [b"/m/3", b"/m/4"]]
    task = PackTask(files * 400, MediumAccess(1, "/m"), Sealing(KEY, uuid.UUID(int=1)))
    plain = pickle.dumps([tuple(f) for f in task.jobs])  # one tuple per job, the functions memoised
    assert len(pickle.dumps(task)) < len(plain)
