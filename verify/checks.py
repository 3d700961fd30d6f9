"""Quick verification: SQL over the catalog joined with what the media hold (docs/verification.md).

Nothing here reads a pack's contents; :mod:`verify.deep` does that for
``--full``. The media are listed once (``Storage.list``) into a ``listing``
table (medium_id, name, size) that the checks join with the catalog in one
short read-only session, so a quick verify runs beside an import and sees a
consistent snapshot (docs/reliability.md O6): the catalog is read *before* the
media are listed, so a pack an import publishes meanwhile shows up as an
unknown pack (a warning), never as a missing one.

Check IDs:

Q01 media reachable and correctly labelled
Q02 every pack in the catalog present on its medium with its size
Q03 unknown packs on media (warning: adoptable, e.g. left by a crash — never deleted)
Q04 every message in a pack the catalog knows, inside its recorded size
Q05 message ids, dedup keys and blob ids unique among messages
Q06 media ID rules (one active medium, IDs below the high-water mark, packs only on live media)
Q07 timestamp coverage (messages unbatched longer than the policy, pending batches)
Q08 catalog backups present, recent and on their medium
Q09 sealed stamp manifests present on their medium
Q10 the catalog is not older than the media: every pack and stamp batch whose high-water mark
    (``toolkit/marks.py``, written after its commit) is on a medium is in the catalog (H2)
Q11 mails deleted by approval: the tombstones of purged mails, counted (never reported missing);
    a msg_id both archived and tombstoned is a finding
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
from dataclasses import dataclass

from toolkit.catalog import check_session
from toolkit.errors import MailArchiveError, NextStep
from toolkit.reporter import NullReporter

from .report import Report

#: how long a message may wait for its timestamp before Q07 reports it
STAMP_POLICY = dt.timedelta(hours=24)
#: a newest catalog backup older than this is a warning
BACKUP_AGE = dt.timedelta(days=7)
#: media states whose storage must be reachable
LIVE_STATES = ("active", "standby", "deactivated")

_PACK_RE = re.compile(r"^packs/[0-9a-f]{2}/[0-9a-f]{32}\.pack$")


@dataclass
class MediaListing:
    reachable: dict[int, bool]
    medium_ids: list[int]        # the listing's rows, by column: medium_id, name, size
    names: list[str]
    sizes: list[int]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def list_media(archive, report: Report, reporter=None) -> MediaListing:
    """Q01, and the listing of every reachable live medium."""
    reporter = reporter or NullReporter()
    q01 = report.check("Q01", "Media reachable and correctly labelled")
    ids, names, sizes = [], [], []
    reachable: dict[int, bool] = {}
    live = [m for m in archive.config.media if m.state in LIVE_STATES]
    reporter.start("list media", len(live), "media")
    for m in live:
        try:
            storage = archive.storage(m.id)
            entries = storage.list("")
        except MailArchiveError as exc:
            reachable[m.id] = False
            q01.add(str(exc), medium=m.id, name=m.location)
        else:
            reachable[m.id] = True
            for e in entries:
                ids.append(m.id)
                names.append(e.name)
                sizes.append(e.size)
        reporter.advance("list media")
    reporter.finish("list media")
    q01.note = f"{len(live)} live media checked" + (
        f"; {len(archive.config.media) - len(live)} retired/removed not expected to be reachable"
        if len(archive.config.media) > len(live) else ""
    )
    return MediaListing(reachable, ids, names, sizes)


#: the tables the checks join with the catalog's: the media listing (medium_id, name, size), the configured media
#: (medium_id, state, location) and the reachable media (medium_id); each column one JSON list parameter (no
#: Arrow: registering an Arrow table makes DuckDB import pyarrow.dataset, ~0.1 CPU-s with pyarrow itself)
_TABLES = """WITH listing AS (SELECT unnest(from_json($1, '["INTEGER"]')) AS medium_id, unnest(from_json($2, '["VARCHAR"]')) AS name,
                        unnest(from_json($3, '["BIGINT"]')) AS size),
     cfg_media AS (SELECT unnest(from_json($4, '["INTEGER"]')) AS medium_id, unnest(from_json($5, '["VARCHAR"]')) AS state,
                          unnest(from_json($6, '["VARCHAR"]')) AS location),
     reachable AS (SELECT unnest(from_json($7, '["INTEGER"]')) AS medium_id)
"""


def _text(name: str) -> str:
    """A listed name as text DuckDB takes: bytes that are not UTF-8 (a local file name, kept by Python as
    surrogate escapes) become U+FFFD, so such a file is listed (an unknown file) instead of stopping the checks."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return name


class _Tables:
    """Runs a check's query with the listing, the configured media and the reachable media beside the catalog."""

    def __init__(self, con, listing: MediaListing, archive, reachable: list[int]):
        media = archive.config.media
        self._con = con
        self._params = [json.dumps(v) for v in (
            listing.medium_ids, [_text(n) for n in listing.names], listing.sizes,
            [m.id for m in media], [m.state for m in media], [m.location for m in media], reachable)]

    def execute(self, sql: str, params: list | None = None):
        assert not params, "the tables' queries take no parameters of their own"
        return self._con.execute(_TABLES + sql, self._params)


def run_quick(archive, report: Report, *, now: dt.datetime | None = None,
              stamp_policy: dt.timedelta = STAMP_POLICY, reporter=None) -> None:
    """Add Q01–Q10 to ``report`` and fill its stats."""
    now = now or _now()
    # Catalog first, media listing second: what an import adds meanwhile is an unknown pack, not a missing one (O6).
    with check_session(archive.catalog) as con:
        pack_count = con.execute("SELECT count(*) FROM packs").fetchone()[0]
    listing = list_media(archive, report, reporter)
    reachable = sorted(k for k, v in listing.reachable.items() if v)
    with check_session(archive.catalog) as con:
        tables = _Tables(con, listing, archive, reachable)
        # the checks that join the listing or the configured media run their queries through ``tables``
        _packs_present(tables, report)
        _unknown_packs(tables, report)
        _messages_in_packs(con, report)
        _unique_keys(con, report)
        _media_rules(tables, report, archive)
        _stamp_coverage(con, report, now, stamp_policy)
        _backups(tables, report, now)
        _manifests(tables, report)
        _high_water_marks(con, tables, report)
        _tombstones(con, report)
        report.stats.update(collect_stats(con))
    report.stats.setdefault("packs", pack_count)


def _packs_present(con, report: Report) -> None:
    c = report.check("Q02", "Every pack in the catalog present on its medium with its size")
    rows = con.execute(
        """
        SELECT p.pack_id, p.name, p.medium_id, p.bytes, l.size,
               (SELECT count(*) FROM messages m WHERE m.pack_id = p.pack_id) AS msgs
        FROM packs p JOIN reachable r USING (medium_id)
        LEFT JOIN listing l ON l.medium_id = p.medium_id AND l.name = p.name
        WHERE l.size IS NULL OR l.size <> p.bytes
        ORDER BY p.medium_id, p.name
        """
    ).fetchall()
    for pack_id, name, medium, nbytes, size, msgs in rows:
        if size is None:
            c.add(f"pack {name} is missing from medium {medium} ({msgs} messages, {nbytes} bytes lost unless a mirror holds it)",
                  pack=pack_id, medium=medium, name=name)
        else:
            c.add(f"pack {name} on medium {medium} is {size} bytes, the catalog records {nbytes}"
                  + (" (truncated)" if size < nbytes else ""), pack=pack_id, medium=medium, name=name)
    n = con.execute("SELECT count(*) FROM packs p JOIN reachable USING (medium_id)").fetchone()[0]
    c.note = f"{n} packs on reachable media"


def _unknown_packs(con, report: Report) -> None:
    c = report.check("Q03", "Unknown packs on media (adoptable, never deleted)", severity="warning")
    rows = con.execute(
        """
        SELECT l.medium_id, l.name, l.size, p.medium_id AS cat_medium
        FROM listing l
        LEFT JOIN packs p ON p.name = l.name
        WHERE l.name LIKE 'packs/%' AND l.name LIKE '%.pack'
          AND (p.pack_id IS NULL OR p.medium_id <> l.medium_id)
        ORDER BY l.medium_id, l.name
        """
    ).fetchall()
    for medium, name, size, cat_medium in rows:
        pack_id = name.rsplit("/", 1)[-1].removesuffix(".pack") if _PACK_RE.match(name) else None
        where = f"the catalog places it on medium {cat_medium}" if cat_medium is not None else "no catalog row"
        c.add(f"{name} ({size} bytes) on medium {medium}: {where}", NextStep.ADOPT_ORPHAN_PACK,
              pack=pack_id, medium=medium, name=name)
    c.note = "orphans after a crash are expected and are listed, not errors"


def _messages_in_packs(con, report: Report) -> None:
    c = report.check("Q04", "Every message in a pack the catalog knows, within its size")
    rows = con.execute(
        """
        SELECT m.msg_id, m.blob_id, m.pack_id, p.name, p.medium_id, p.bytes, m."offset", m.length, m.batch_id
        FROM messages m LEFT JOIN packs p USING (pack_id)
        WHERE p.pack_id IS NULL OR m."offset" < 40 OR m.length <= 0 OR m."offset" + m.length > p.bytes
        ORDER BY m.msg_id
        """
    ).fetchall()
    for msg_id, blob, pack_id, name, medium, nbytes, off, length, batch in rows:
        if name is None:
            c.add(f"message {msg_id} points to pack {pack_id}, which the catalog does not know",
                  msg_id=msg_id, blob_id=blob, pack=pack_id, batch=batch)
        else:
            c.add(f"message {msg_id} claims bytes {off}..{off + length} of pack {name} ({nbytes} bytes)",
                  msg_id=msg_id, blob_id=blob, pack=pack_id, medium=medium, batch=batch)
    rows = con.execute(
        """
        SELECT pack_id, "offset", list(msg_id ORDER BY msg_id) FROM messages
        WHERE hash(pack_id, "offset") IN (SELECT hash(pack_id, "offset") FROM messages GROUP BY 1 HAVING count(*) > 1)
        GROUP BY pack_id, "offset" HAVING count(*) > 1 ORDER BY pack_id, "offset"
        """
    ).fetchall()
    for pack_id, off, ids in rows:
        c.add(f"messages {ids} all claim the record at offset {off} of pack {pack_id}", msg_id=ids[0], pack=pack_id)


#: the rows whose ``col`` may be shared: those whose hash of it is (the groups of a million messages as 8-byte hashes,
#: counted, not as texts each with its list of msg_ids: half the memory, docs/reliability.md K8); the exact
#: GROUP BY then runs over these rows only, so a hash collision adds a candidate, never a finding
_SHARED = "hash({col}) IN (SELECT hash({col}) FROM messages GROUP BY 1 HAVING count(*) > 1)"


def _unique_keys(con, report: Report) -> None:
    c = report.check("Q05", "Message ids, dedup keys and blob ids unique among messages")
    for col in ("msg_id", "dedup_key", "blob_id"):  # msg_id: no index enforces it (catalog migration 0172)
        rows = con.execute(
            f"SELECT {col}, list(msg_id ORDER BY msg_id) FROM messages WHERE {_SHARED.format(col=col)} "
            f"GROUP BY {col} HAVING count(*) > 1 ORDER BY 1"
        ).fetchall()
        for key, ids in rows:
            c.add(f"{col} {key} is shared by messages {ids}", msg_id=ids[0], blob_id=key if col == "blob_id" else None)


def _media_rules(con, report: Report, archive) -> None:
    c = report.check("Q06", "Media ID rules")
    cfg = archive.config
    active = [m.id for m in cfg.media if m.state == "active"]
    if len(active) != 1:
        c.add(f"{len(active)} active media ({active}); exactly one must be active", NextStep.ACTIVATE_ONE_MEDIUM)
    seen: set[int] = set()
    for m in cfg.media:
        if m.id in seen:
            c.add(f"medium ID {m.id} is registered twice", medium=m.id)
        seen.add(m.id)
        if m.id >= cfg.next_medium_id or m.id < 1:
            c.add(f"medium ID {m.id} is not below the high-water mark {cfg.next_medium_id} (IDs are never reused)", medium=m.id)
    rows = con.execute(
        """
        SELECT p.medium_id, cm.state, count(*), min(p.name)
        FROM packs p LEFT JOIN cfg_media cm USING (medium_id)
        WHERE cm.state IS NULL OR cm.state IN ('removed', 'retired')
        GROUP BY 1, 2 ORDER BY 1
        """
    ).fetchall()
    for medium, state, n, first in rows:
        why = "no such medium" if state is None else f"medium {medium} is {state}"
        c.add(f"{n} packs are placed on medium {medium} ({why}), e.g. {first}", medium=medium, name=first)
    rows = con.execute(
        """
        SELECT coalesce(a.medium_id, b.medium_id), a.state, b.state FROM media a FULL JOIN cfg_media b USING (medium_id)
        WHERE a.medium_id IS NULL OR b.medium_id IS NULL OR a.state IS DISTINCT FROM b.state ORDER BY 1
        """
    ).fetchall()
    for medium, cat_state, cfg_state in rows:
        c.warn(f"medium {medium}: the catalog's media table says {cat_state}, archive.toml says {cfg_state} "
               "(run any media command to resync)", medium=medium)


def _stamp_coverage(con, report: Report, now: dt.datetime, policy: dt.timedelta) -> None:
    c = report.check("Q07", "Timestamp coverage")
    cutoff = now - policy
    rows = con.execute(
        "SELECT msg_id, blob_id, archived_at FROM messages WHERE batch_id IS NULL AND archived_at < ? ORDER BY msg_id",
        [cutoff],
    ).fetchall()
    for msg_id, blob, at in rows:
        c.add(f"message {msg_id} archived {at.isoformat()} is not in a stamp batch after {policy.total_seconds() / 3600:g} h",
              NextStep.STAMP_ALL, msg_id=msg_id, blob_id=blob)
    rows = con.execute(
        "SELECT batch_id, leaf_count, created_at FROM stamp_batches WHERE status IS DISTINCT FROM 'stamped' ORDER BY batch_id"
    ).fetchall()
    for batch, leaves, created in rows:
        text = f"stamp batch {batch} ({leaves} leaves, sealed {created.isoformat() if created else '?'}) is pending its token"
        if created is None or created < cutoff:
            c.add(text + f" for longer than {policy}", NextStep.RETRY_STAMPING, batch=batch)
        else:
            c.warn(text, batch=batch)
    rows = con.execute(
        """
        SELECT m.batch_id, count(*), min(m.msg_id) FROM messages m LEFT JOIN stamp_batches b USING (batch_id)
        WHERE m.batch_id IS NOT NULL AND b.batch_id IS NULL GROUP BY 1 ORDER BY 1
        """
    ).fetchall()
    for batch, n, first in rows:
        c.add(f"{n} messages (first {first}) name stamp batch {batch}, which does not exist", batch=batch, msg_id=first)
    _stamped_event_coverage(con, c, cutoff, policy)
    c.note = f"policy: every message in a stamped batch within {policy.total_seconds() / 3600:g} h of archiving"


def _stamped_event_coverage(con, c, cutoff: dt.datetime, policy: dt.timedelta) -> None:
    """Q07 for the stamped events (the steps of a deletion, docs/retention.md): in a batch within the policy, and
    only in batches that exist. A catalog no writer migrated yet has no ``events.batch_id`` and no such events."""
    from toolkit.catalog.events import STAMPED_KINDS, has_event_batches

    if not has_event_batches(con):
        return
    rows = con.execute(
        "SELECT event_id, kind, at_time FROM events WHERE batch_id IS NULL AND at_time < ? "
        "AND kind IN (SELECT unnest(?::VARCHAR[])) ORDER BY event_id", [cutoff, list(STAMPED_KINDS)]).fetchall()
    for eid, kind, at in rows:
        c.add(f"event {eid} ({kind}, {at.isoformat()}) is not in a stamp batch after {policy.total_seconds() / 3600:g} h",
              NextStep.STAMP_ALL, event=eid)
    rows = con.execute(
        "SELECT e.batch_id, count(*), min(e.event_id) FROM events e LEFT JOIN stamp_batches b USING (batch_id) "
        "WHERE e.batch_id IS NOT NULL AND b.batch_id IS NULL GROUP BY 1 ORDER BY 1").fetchall()
    for batch, n, first in rows:
        c.add(f"{n} stamped events (first {first}) name stamp batch {batch}, which does not exist", batch=batch)


def _backups(con, report: Report, now: dt.datetime) -> None:
    c = report.check("Q08", "Catalog backups present, recent and on their medium")
    rows = con.execute(
        """
        SELECT b.name, b.medium_id, b.bytes, b.created_at, b.verified, l.size,
               b.medium_id IN (SELECT medium_id FROM reachable) AS listed
        FROM db_backups b LEFT JOIN listing l
          ON l.medium_id = b.medium_id AND (l.name = b.name OR ends_with(l.name, '/' || b.name))
        ORDER BY b.created_at
        """
    ).fetchall()
    if not rows:
        c.warn("no catalog backup yet", NextStep.DB_BACKUP)
        return
    verified = [r for r in rows if r[4]]
    if not verified:
        c.warn("no catalog backup has been verified")
    else:
        newest = max(r[3] for r in verified if r[3] is not None) if any(r[3] for r in verified) else None
        if newest is None or newest < now - BACKUP_AGE:
            c.warn(f"the newest verified catalog backup is from {newest}; older than {BACKUP_AGE.days} days")
    for name, medium, nbytes, _created, _verified, size, listed in rows:
        if not listed:
            continue
        if size is None:
            c.add(f"catalog backup {name} is missing from medium {medium}", medium=medium, name=name)
        elif nbytes is not None and size != nbytes:
            c.add(f"catalog backup {name} on medium {medium} is {size} bytes, {nbytes} recorded", medium=medium, name=name)
    c.note = f"{len(rows)} backups recorded, {len(verified)} verified"


def _manifests(con, report: Report) -> None:
    c = report.check("Q09", "Sealed stamp manifests present on their medium")
    rows = con.execute(
        """
        SELECT b.batch_id, b.manifest_name, b.medium_id, l.size, b.medium_id IN (SELECT medium_id FROM reachable)
        FROM stamp_batches b LEFT JOIN listing l ON l.medium_id = b.medium_id AND l.name = b.manifest_name
        WHERE b.status = 'stamped' ORDER BY b.batch_id
        """
    ).fetchall()
    for batch, name, medium, size, listed in rows:
        if name is None or medium is None:
            c.add(f"stamped batch {batch} records no manifest", batch=batch)
        elif listed and size is None:
            c.add(f"manifest {name} of stamped batch {batch} is missing from medium {medium}", batch=batch, medium=medium, name=name)


def _high_water_marks(con, tables, report: Report) -> None:
    """Q10: marks of packs and batches the catalog does not hold: it was rolled back to an older state (H2).

    A mark is written only after its pack's or batch's commit, and the listing is taken before
    this session opens, so a pack an import commits meanwhile is in the catalog read here. The marks
    of packs a recorded purge removed (kept on a mirror) are left out (``toolkit/marks.py`` ``lacking``,
    which a restore uses too).
    """
    from toolkit import marks
    from toolkit.catalog import media_rows, purge_rows, stamps

    c = report.check("Q10", "Catalog not older than the media (high-water marks)")
    rows = tables.execute(
        "SELECT medium_id, name FROM listing WHERE starts_with(name, 'marks/') ORDER BY medium_id, name").fetchall()
    pack_ids, stamped, purged = media_rows.pack_ids(con), stamps.stamped_batch_ids(con), purge_rows.purged_pack_ids(con)
    by_medium: dict[int, list[str]] = {}
    for medium, name in rows:
        by_medium.setdefault(medium, []).append(name)
    packs: list[tuple[int, str]] = []
    batches: dict[int, int] = {}
    for medium, names in sorted(by_medium.items()):
        p, b = marks.lacking(names, pack_ids, stamped, purged)
        packs += [(medium, x) for x in p]
        for x in b:
            batches.setdefault(x, medium)
    batches = sorted(((m, b) for b, m in batches.items()), key=lambda mb: mb[1])
    marked = sum(1 for _m, n in rows if marks.marked_pack(n) or marks.marked_batch(n) is not None)
    c.note = f"{marked} high-water marks on reachable media"
    if not packs and not batches:
        return
    media = sorted({m for m, _ in packs} | {m for m, _ in batches})
    first = (f"first pack {packs[0][1]} on medium {packs[0][0]}" if packs
             else f"first batch {batches[0][1]} on medium {batches[0][0]}")
    c.add(f"catalog older than the media: {len(packs)} packs / {len(batches)} batches newer than it were committed "
          f"by a later catalog ({first}; media {', '.join(map(str, media))}) — it was put back from an older backup "
          "or copy", NextStep.PUT_BACK_NEWER_CATALOG,
          medium=media[0], pack=packs[0][1] if packs else None, batch=batches[0][1] if batches else None)


def _tombstones(con, report: Report) -> None:
    """Q11: purged mails leave a tombstone (docs/retention.md); counted, and never both archived and purged."""
    from toolkit.catalog import purge_rows

    c = report.check("Q11", "Mails deleted by approval (tombstones)")
    n = purge_rows.tombstone_count(con)
    c.note = f"{n} mail(s) deleted by approval"
    report.stats["deleted_by_approval"] = n
    for msg_id in purge_rows.live_and_tombstoned(con):
        c.add(f"mail {msg_id} is both archived and tombstoned (purged)", msg_id=msg_id)


def collect_stats(con) -> dict:
    """Counts for the report: messages, per month (date sent), per medium, stamp coverage."""
    messages = con.execute("SELECT count(*) FROM messages").fetchone()[0]
    packs = con.execute("SELECT count(*) FROM packs").fetchone()[0]
    size = con.execute("SELECT coalesce(sum(size), 0) FROM messages").fetchone()[0]
    by_month = con.execute(
        """
        SELECT coalesce(strftime(timezone('UTC', sent_date), '%Y-%m'), 'no date') AS month, count(*)
        FROM messages GROUP BY 1 ORDER BY (month = 'no date'), month
        """
    ).fetchall()
    by_medium = con.execute(
        "SELECT p.medium_id, count(*) FROM messages m JOIN packs p USING (pack_id) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    st = con.execute(
        """
        SELECT count(*) FILTER (WHERE status = 'stamped'), count(*) FILTER (WHERE status IS DISTINCT FROM 'stamped'),
               max(gen_time), max(tsa_url) FROM stamp_batches
        """
    ).fetchone()
    stamped_msgs = con.execute(
        "SELECT count(*) FROM messages m JOIN stamp_batches b USING (batch_id) WHERE b.status = 'stamped'"
    ).fetchone()[0]
    unbatched = con.execute("SELECT count(*) FROM messages WHERE batch_id IS NULL").fetchone()[0]
    return {
        "messages": messages,
        "packs": packs,
        "message_bytes": int(size),
        "by_month": [[m, n] for m, n in by_month],
        "by_medium": [[m, n] for m, n in by_medium],
        "stamps": {
            "batches_stamped": st[0], "batches_pending": st[1], "latest_gen_time": st[2], "tsa_url": st[3],
            "stamped_messages": stamped_msgs, "unbatched_messages": unbatched,
        },
    }


def new_report(archive, mode: str) -> Report:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("mailarchive-toolkit")
    except PackageNotFoundError:
        v = "unknown"
    media = ", ".join(f"{m.id}:{m.state}" for m in archive.config.media)
    return Report(
        archive={"name": archive.config.name, "uuid": str(archive.uuid), "fingerprint": archive.fingerprint,
                 "home": str(archive.home), "media": media},
        mode=mode, started_at=_now(), host=f"{socket.gethostname()} (pid {os.getpid()})", version=v,
    )


def verify_archive(archive, *, full: bool = False, workers: int | None = None, reporter=None,
                   now: dt.datetime | None = None, stamp_policy: dt.timedelta = STAMP_POLICY,
                   pool_min_bytes: int | None = None, crls: list[bytes] | None = None,
                   subset=None, seed: int = 0, early=None) -> Report:
    """Run the quick checks, and with ``full`` the deep ones (:mod:`verify.deep`); returns the report.

    ``now`` is the verification time (default: the clock), also for the tokens; ``crls`` are
    revocation data for the TSA chains of the tokens (``full`` only; RELIABILITY I16). ``subset``
    (a :class:`verify.sampling.Subset`, or its text such as ``"10%"``) makes it a sampled full
    verification that reads only those packs, ``seed`` ordering the ties (RELIABILITY F6). ``early``: the
    pack workers, already forked (:class:`verify.deep.EarlyWorkers`), for ``full``."""
    if subset is not None:
        from .sampling import Subset, parse_subset

        subset = subset if isinstance(subset, Subset) else parse_subset(str(subset))
        full = True
    report = new_report(archive, "full" if full else "quick")

    def quick() -> None:
        run_quick(archive, report, now=now, stamp_policy=stamp_policy, reporter=reporter)

    if full:
        from .deep import run_full

        # the quick checks run while the worker processes read the packs (they need neither the other)
        kw = {} if pool_min_bytes is None else {"pool_min_bytes": pool_min_bytes}
        run_full(archive, report, workers=workers, reporter=reporter, at=now, crls=crls, subset=subset, seed=seed,
                 alongside=quick, early=early, **kw)
    else:
        from .deep import FULL_CHECKS

        quick()
        for cid, title in FULL_CHECKS:
            report.check(cid, title, tier="full").skip("only with --full")
    report.finished_at = _now()
    return report
