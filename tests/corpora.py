"""Where the shared test corpora live (../shared/corpora, or $MAILARCHIVE_CORPORA)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def corpora_dir() -> Path:
    path = Path(os.environ.get("MAILARCHIVE_CORPORA", REPO.parent / "shared" / "corpora"))
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the test corpora are missing at {path} (CI must have them)")
        pytest.skip(f"test corpora not found at {path}")
    return path


def single_message_files(corpora: Path) -> list[Path]:
    """Every file of a-mime-edge that FEATURES.tsv classifies as one message."""
    out = []
    for line in (corpora / "FEATURES.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        cols = line.split("\t")
        if cols[0].startswith("a-mime-edge/") and cols[3].startswith("message"):
            out.append(corpora / cols[0])
    return out
