"""A stored time-stamp token swapped for another *valid* token over the same Merkle root
(docs/reliability.md I15): same TSA, same root, a different genTime and serial number.

The token verifies on its own, so the swap is found only by comparing it with what was recorded
when the batch was stamped: the catalog row (genTime) and the sealed stamp manifest on the medium.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from fixtures_tsa import tsa  # noqa: F401  (also loaded by conftest's pytest_plugins)
from tests.integration.verify_support import build_archive, clone, run_verify, sql
from toolkit.archive import Archive
from tests.services.tsa import query_for


@pytest.fixture(scope="module")
def base(tmp_path_factory, tsa):  # noqa: F811
    root = tmp_path_factory.mktemp("swap-base")
    build_archive(root, tsa)
    return root


def _batch(home: Path, batch: int) -> tuple[bytes, bytes]:
    with Archive.open(home) as a, a.catalog.reading() as con:
        token, root = con.execute(
            "SELECT token, merkle_root FROM stamp_batches WHERE batch_id = ?", [batch]).fetchone()
    return bytes(token), bytes.fromhex(root)


def test_i15_token_swapped_for_another_valid_token_over_the_same_root(base, tmp_path, tsa):  # noqa: F811
    home = clone(base, tmp_path / "copy")
    old, root = _batch(home, 1)
    time.sleep(1.1)  # a later genTime (whole seconds in the local TSA's tokens)
    other = tsa.tsa.reply(query_for(root))
    assert other != old
    sql(home, "UPDATE stamp_batches SET token = ? WHERE batch_id = ?", [other, 1])
    report = run_verify(home)
    findings = {c.id: c.items for c in report.checks if c.status == "finding"}
    assert findings, "a swapped token over the same root went unnoticed"
    # the token check compares serial and genTime with the catalog's record of the stamping
    f06 = [i for i in findings.get("F06", []) if i.get("batch") == 1]
    assert f06 and "token replaced?" in f06[0]["detail"] and "serial" in f06[0]["detail"], findings
    # and the sealed manifest on the medium still holds the original token
    f07 = [i for i in findings.get("F07", []) if i.get("batch") == 1]
    assert f07 and "token differs" in f07[0]["detail"], findings
