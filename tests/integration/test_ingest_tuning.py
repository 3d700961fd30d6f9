"""The pack target and the worker count are settings the CLI reads from the environment
(MAILARCHIVE_PACK_TARGET, MAILARCHIVE_WORKERS) and passes to the ingest driver; the driver itself
never reads the environment."""
from __future__ import annotations

import json
import os

from tests.cli import mailarchive
from tests.corpora import REPO
from toolkit.archive import Archive
from toolkit.ingest import Ingest
from toolkit.pack import PACK_TARGET_SIZE

SAMPLE_EML = REPO / "sample_data" / "eml"


def test_the_driver_takes_its_settings_from_the_caller_not_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILARCHIVE_PACK_TARGET", "4000")
    monkeypatch.setenv("MAILARCHIVE_WORKERS", "0")
    with Archive.create(tmp_path / "home", str(tmp_path / "m1")) as a:
        defaults = Ingest(a)
        assert defaults.pack_target == PACK_TARGET_SIZE
        assert defaults.workers == (os.cpu_count() or 1)
        given = Ingest(a, pack_target=4000, workers=0)
        assert (given.pack_target, given.workers) == (4000, 0)


def _packs_after_cli_import(home, env: dict) -> int:
    Archive.create(home, str(home.parent / (home.name + "-medium"))).close()
    mailarchive(home, "import", "eml", str(SAMPLE_EML), env=env)
    out = mailarchive(home, "sql", "SELECT count(*) AS n FROM packs", "--format", "json").stdout
    return json.loads(out)[0]["n"]


def test_the_cli_passes_the_pack_target_from_the_environment(tmp_path):
    assert _packs_after_cli_import(tmp_path / "small", {"MAILARCHIVE_PACK_TARGET": "4000", "MAILARCHIVE_WORKERS": "0"}) > 1
    assert _packs_after_cli_import(tmp_path / "default", {"MAILARCHIVE_WORKERS": "0"}) == 1
