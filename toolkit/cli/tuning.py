"""Hidden tuning and test knobs of the import commands, read from the environment by the command line (the core
never reads it): also at start-up (toolkit/cli/early.py), before click loads, for the tasks started ahead."""
from __future__ import annotations

import os


def parse_limit(environ=os.environ) -> float | None:
    """Seconds one mail's parse may take before it is archived with the defect parse-timeout
    (hidden setting MAILARCHIVE_PARSE_LIMIT, for tests and slow machines; unset: the default)."""
    value = environ.get("MAILARCHIVE_PARSE_LIMIT")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def ingest_tuning(environ=os.environ) -> dict:
    """Hidden tuning and test knobs: MAILARCHIVE_PACK_TARGET (pack size in bytes; small packs make crash
    tests meaningful) and MAILARCHIVE_WORKERS (worker processes; 0 prepares everything inline)."""
    target, workers = environ.get("MAILARCHIVE_PACK_TARGET"), environ.get("MAILARCHIVE_WORKERS")
    return {"pack_target": int(target) if target else None, "workers": int(workers) if workers else None}
