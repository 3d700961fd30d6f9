"""``run_plan``: a validated plan run into an archive opened as writer; returns the report as a dict."""
from __future__ import annotations

import os
from typing import Callable

from ..catalog import directory
from ..executors import DaskExecutor, ExecutorSpec
from ..executors import parse_executor as parse_executor_spec
from ..ingest import SharedPool, kill_pool
from ..reporter import Reporter
from ..own_files import keep_out
from .plan import Plan
from .report import Outcome, owner_warnings
from .schedule import Migration
from .sources import ServerOptions, make_importer


def run_plan(archive, plan: Plan, passwords: dict[int, str], server: ServerOptions, *,
             reporter: Reporter | None = None, parallel: int = 1, per_server: int = 4, retry_wait: float = 30.0,
             smb_password: str | None = None, ingest_options: dict | None = None,
             on_start: Callable[[Migration], Callable[[], object]] | None = None) -> dict:
    """Run every line of ``plan`` (see :mod:`.schedule`). ``on_start(migration)`` may install signal
    handlers that call ``migration.request_stop()``; it returns the function that removes them."""
    jobs = [(Outcome(line), make_importer(line, passwords.get(line.number), server, smb_password))
            for line in plan.lines]
    for outcome, importer in jobs:  # the archive's own files are never imported (toolkit/own_files.py)
        keep_out(archive.home, archive.config, importer, outcome.line.label())
    options = dict(ingest_options or {})
    spec = options.get("executor")
    migration = None
    if isinstance(spec, ExecutorSpec) and spec.distributed:  # one Dask client (or cluster) for every source
        options["executor"] = DaskExecutor(spec)
    elif spec is None or isinstance(spec, ExecutorSpec) or isinstance(spec, str) and not parse_executor_spec(spec).distributed:
        workers = options.get("workers")
        workers = (os.cpu_count() or 1) if workers is None else workers
        if workers > 0:  # one pool of worker processes for every source (started with the first task)
            options["executor"] = SharedPool(workers)
    try:
        migration = Migration(archive, jobs, reporter=reporter, parallel=parallel, per_server=per_server,
                              retry_wait=retry_wait, ingest_options=options)
        undo = on_start(migration) if on_start is not None else None
        try:
            report = migration.run()
        finally:
            if undo is not None:
                undo()
    finally:
        shared = (migration.ingest_options if migration is not None else options).get("executor")
        if isinstance(shared, SharedPool):
            if migration is not None and migration.stopped:
                kill_pool(shared)  # a stuck worker is never waited for
            else:
                shared.shutdown(wait=True, cancel_futures=True)
        elif isinstance(shared, DaskExecutor):
            shared.shutdown(wait=False, cancel_futures=True)
    report.plan = str(plan.path)
    with archive.catalog.reading() as con:
        report.warnings += owner_warnings(report.outcomes, directory.user_names(con))
    return report.as_dict()
