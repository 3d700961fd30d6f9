"""How far the catalog reaches (docs/reliability.md Q3): its mails, packs and stamped batches, as a
mirror run records them, and how far a catalog is ahead of such a record.

A mirror run records the extent of the catalog it copied (``media_tools/mirror.py``); later,
``mirror-status`` counts what the archive committed since (the mirror is that far behind), and a
restore compares the catalog it restored with the mirror's record (the restored catalog is that
far behind what the mirror had).
"""
from __future__ import annotations

KEYS = ("messages", "max_msg_id", "packs", "stamped_batches")


def catalog_extent(con) -> dict:
    """``{"messages", "max_msg_id", "packs", "stamped_batches"}`` of the catalog now."""
    messages, max_msg_id = con.execute("SELECT count(*), max(msg_id) FROM messages").fetchone()
    packs = con.execute("SELECT count(*) FROM packs").fetchone()[0]
    stamped = con.execute("SELECT count(*) FROM stamp_batches WHERE status = 'stamped'").fetchone()[0]
    return {"messages": messages, "max_msg_id": max_msg_id, "packs": packs, "stamped_batches": stamped}


def committed_since(con, recorded: dict) -> dict:
    """What the catalog committed after ``recorded`` (an extent): ``{"mails", "packs", "batches"}``, the
    mails above its highest msg_id, the packs holding them, and the stamped batches beyond its count."""
    since = recorded.get("max_msg_id")
    mails, packs = con.execute(
        "SELECT count(*), count(DISTINCT pack_id) FROM messages WHERE msg_id > ?", [-1 if since is None else since]
    ).fetchone()
    stamped = con.execute("SELECT count(*) FROM stamp_batches WHERE status = 'stamped'").fetchone()[0]
    return {"mails": mails, "packs": packs, "batches": max(0, stamped - int(recorded.get("stamped_batches") or 0))}


def short_of(extent: dict, recorded: dict) -> dict:
    """How far ``extent`` (a catalog's) falls short of ``recorded`` (a newer one's): ``{"mails", "packs",
    "batches"}``, each at least 0."""
    def gap(key: str) -> int:
        return max(0, int(recorded.get(key) or 0) - int(extent.get(key) or 0))

    return {"mails": gap("messages"), "packs": gap("packs"), "batches": gap("stamped_batches")}


def describe(gap: dict) -> str:
    """'2 stamp batch(es), 1 pack(s) and 5 mail(s)' of a gap."""
    return f"{gap['batches']} stamp batch(es), {gap['packs']} pack(s) and {gap['mails']} mail(s)"
