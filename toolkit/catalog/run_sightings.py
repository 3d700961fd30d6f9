"""Reads of the sightings recorded by given import runs."""
from __future__ import annotations


def count_sightings_of_runs(catalog, run_ids: list[int]) -> int:
    """How many sightings (one per source mail, with its dedup decision) the runs ``run_ids`` recorded."""
    with catalog.reading() as con:
        return con.execute("SELECT count(*) FROM sightings WHERE run_id IN (SELECT unnest(?))",
                           [list(run_ids)]).fetchone()[0]
