"""The per-pack check of ``verify --full`` as it was before the speed work of issue 15 (verify/deep.py at d469f3c),
kept as the reference that tests/integration/test_verify_exact.py compares today's code with.

Its algorithm: one query of every catalog row with every compared field into Arrow, each pack's rows in its task; per
pack one pass (``PackReader.verify_all``) that checks F01-F03 and compares each mail's header fields
(``header_fields``, the reference reader) with its row (F04) in the same process, a pack with any problem read
twice (B8). :func:`reference_full` runs it over every pack in this process and adds F01-F04 to a report as
``verify.deep.run_full`` adds them. Copied, not imported: the code under test must not change the reference.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from toolkit.catalog import check_session
from toolkit.errors import MailArchiveError
from toolkit.headers import header_fields
from toolkit.pack import IndexEntry, PackReader, RecordAuthError, RecordCorruptError
from verify.deep import AUTH_FAIL_LIMIT, FULL_CHECKS, SCAN_CAP, _probe_copies
from verify.report import Report


def _aware(t):
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MICROSECOND = dt.timedelta(microseconds=1)


def _text_key(value: str | None) -> str:
    """One field in the F04 key: ``N`` for NULL, else ``S<UTF-8 bytes>:<value>`` (the length keeps the fields
    apart whatever they hold)."""
    if value is None:
        return "N"
    return f"S{len(value.encode('utf-8', 'surrogatepass'))}:{value}"


def _list_key(values) -> str:
    return "".join(f"{len(v.encode('utf-8', 'surrogatepass'))}:{v}" for v in sorted(set(values)))


def f04_key(meta) -> str:
    """The compared header fields of a mail (:func:`toolkit.headers.header_fields`) as one string, built as
    :data:`_F04_KEY` builds it from a catalog row: equal keys, equal fields (docs/verification.md, F04)."""
    when = "N" if meta.sent_date is None else f"T{(meta.sent_date - _EPOCH) // _MICROSECOND}"
    return (_text_key(meta.message_id) + _text_key(meta.from_addr) + _text_key(meta.subject) + when
            + "|" + _list_key(meta.to) + "|" + _list_key(meta.cc))


def _compare(row: dict, meta) -> list[str]:
    """The catalog fields that differ from what the mail's headers say (``meta``, from
    :func:`toolkit.headers.header_fields`), one text each.

    Only the header block is parsed (docs/verification.md: Message-ID, from, to/cc,
    subject, date). The body is not normalised and hashed again: F03 already
    proved the bytes by their SHA-256, and a dedup key depends only on those
    bytes, so re-deriving it would cost ~40 % of a full verify for nothing new.
    """
    diffs = []
    for name, got in (("message_id", meta.message_id), ("from_addr", meta.from_addr), ("subject", meta.subject)):
        if got != row.get(name):
            diffs.append(f"{name}: catalog {row.get(name)!r}, mail {got!r}")
    a, b = _aware(row.get("sent_date")), _aware(meta.sent_date)
    if a != b:
        diffs.append(f"sent_date: catalog {a.isoformat() if a else None}, mail {b.isoformat() if b else None}")
    for kind, got in (("to", meta.to), ("cc", meta.cc)):
        want = sorted(set(row.get(kind) or []))
        if sorted(set(got)) != want:
            diffs.append(f"{kind} recipients: catalog {want}, mail {sorted(set(got))}")
    return diffs



def check_pack(archive, task: dict) -> dict:
    """Check one pack; a pack that fails its check is read a second time (docs/reliability.md B8).

    One garbled read (a flaky cable, a share that returns wrong bytes once) must not be reported
    as a damaged pack: when the second read is clean, the result is the second one and the first
    read's problems become one warning ("ok on 2nd read"); when it fails too, its problems are the
    findings. A pack that is missing or on an unreachable medium is not read again.
    """
    first = _check_pack_once(archive, task)
    if not first["problems"] or first.get("unread"):
        return first
    second = _check_pack_once(archive, task)
    if second["problems"]:
        return second
    ids = sorted({cid for cid, _d, _o in first["problems"]})
    detail = first["problems"][0][1]
    more = len(first["problems"]) - 1
    second["warnings"] = [(ids[0], f"pack {task['name']}: ok on 2nd read (the first read failed: {detail}"
                           + (f"; +{more} more" if more else "") + ")",
                           {"pack": task["pack_id"], "medium": task["medium_id"], "name": task["name"]})]
    return second


def _check_pack_once(archive, task: dict) -> dict:
    """Check one pack in one sequential pass; returns its problems as (check id, detail, objects) tuples.

    ``task``: medium_id, pack_id, name, bytes, blake3 (hex, the pack checksum), rows (catalog rows of its messages).
    """
    pack, medium, name = task["pack_id"], task["medium_id"], task["name"]
    rows = sorted(_rows(task["rows"]), key=lambda r: r["offset"])
    out: dict[str, Any] = {"pack": pack, "medium": medium, "records": len(rows), "ok": 0, "bytes_read": 0,
                           "problems": [], "stopped": False, "auth_failed": []}
    problems = out["problems"]
    where = {"pack": pack, "medium": medium}

    def problem(cid: str, detail: str, **objs) -> None:
        problems.append((cid, detail, {**where, **objs}))

    try:
        storage = archive.storage(medium)
        st = storage.stat(name)
    except MailArchiveError as exc:
        problem("F01", f"pack {name} not checked: medium {medium}: {exc}", name=name, next_step=exc.next_step)
        out["unread"] = True
        return out
    if st is None:
        problem("F01", f"pack {name} is missing from medium {medium}: its {len(rows)} messages cannot be read", name=name)
        out["unread"] = True
        return out
    size = st.size
    if size != task["bytes"]:
        problem("F01", f"pack {name} is {size} bytes, the catalog records {task['bytes']}"
                + (" (truncated)" if size < task["bytes"] else ""), name=name)
    reader = PackReader(storage, name, archive.key, archive.uuid)
    by_offset = {r["offset"]: r for r in rows}
    entries = [IndexEntry(bytes.fromhex(r["blob_id"]), r["offset"], r["length"], r["size"], r["csize"]) for r in rows]
    _check_footer(reader, entries, by_offset, name, problem)
    _check_records(reader, entries, by_offset, size, name, out, problem, task["rows"])
    if not out["stopped"]:
        got = reader.file_blake3
        if got is None:
            problem("F01", f"pack {name}: not hashed", name=name)
        elif got.hex() != task["blake3"]:
            problem("F01", f"pack {name}: checksum (BLAKE3) {got.hex()[:16]}… differs from the catalog's {task['blake3'][:16]}…",
                    name=name)
    out["bytes_read"] = size if not out["stopped"] else out["bytes_read"]
    return out


def _check_footer(reader, entries: list[IndexEntry], by_offset: dict, name: str, problem) -> None:
    """F01: the footer index (a few small reads at the end) against the catalog."""
    try:
        footer = {(e.blob_id.hex(), e.offset, e.length, e.size, e.csize) for e in reader.index()}
    except MailArchiveError as exc:
        problem("F01", f"{exc}", name=name)
        return
    cat = {(e.blob_id.hex(), e.offset, e.length, e.size, e.csize) for e in entries}
    for blob, off, _l, _s, _c in sorted(cat - footer, key=lambda x: x[1]):
        r = by_offset[off]
        problem("F01", f"message {r['msg_id']} (offset {off}) is not in the footer index of pack {name}",
                msg_id=r["msg_id"], blob_id=blob, batch=r.get("batch_id"))
    extra = sorted(footer - cat, key=lambda x: x[1])
    if extra:
        problem("F01", f"pack {name} holds {len(extra)} records the catalog does not list (adoptable), "
                f"first blob {extra[0][0][:16]} at offset {extra[0][1]}", name=name)


def _check_records(reader, entries: list[IndexEntry], by_offset: dict, size: int, name: str, out: dict,
                   problem, table=None) -> None:
    """F02–F04 in one sequential read of the records; stops a pack that never authenticates (F8).

    F04: the key of the mail's header fields (:func:`f04_key`) against the row's (:data:`_F04_KEY`); where
    they differ, the full row (from ``table``, the task's rows) is compared field by field and each field
    that differs is named."""
    problems = out["problems"]
    buf: dict[str, Any] = {"offset": None, "chunks": [], "n": 0}

    def on_data(entry: IndexEntry, chunk: bytes) -> None:
        if buf["offset"] != entry.offset:
            buf["offset"], buf["chunks"], buf["n"] = entry.offset, [], 0
        if buf["n"] < SCAN_CAP:
            buf["chunks"].append(chunk)
        buf["n"] += len(chunk)

    consecutive = 0
    it = reader.verify_all(entries, on_data=on_data)
    try:
        for entry, exc in it:
            r = by_offset[entry.offset]
            objs = {"msg_id": r["msg_id"], "blob_id": r["blob_id"], "batch": r.get("batch_id")}
            out["bytes_read"] += entry.length
            if exc is None:
                out["ok"] += 1
                consecutive = 0
                data = b"".join(buf["chunks"]) if buf["offset"] == entry.offset else b""
                buf["chunks"] = []
                meta = header_fields(data)
                diffs = [] if r.get("f04") == f04_key(meta) else _compare(_full_row(table, r), meta)
                if diffs:
                    batch = f" (stamp batch {r['batch_id']})" if r.get("batch_id") else ""
                    problem("F04", f"message {r['msg_id']}{batch}: catalog row differs from the mail: " + "; ".join(diffs), **objs)
                continue
            buf["chunks"] = []
            text = str(exc)
            if isinstance(exc, RecordCorruptError) and "bound to another blob id" in text:
                problem("F03", f"message {r['msg_id']}: {text}", **objs, record=exc.record)
                continue
            if isinstance(exc, RecordAuthError):
                if exc.bound_to is not None:
                    text += f" [bound to blob {exc.bound_to.hex()}]"
                    objs["name"] = f"bound_to:{exc.bound_to.hex()}"
                cut_off = entry.offset + entry.length > size
                if cut_off:
                    text += f" [pack is {size} bytes: truncated]"
                elif exc.bound_to is None:
                    out["auth_failed"].append({"msg_id": r["msg_id"], "offset": entry.offset, "length": entry.length,
                                               "csize": entry.csize, "index": len(problems)})
                consecutive = 0 if cut_off else consecutive + 1
            problem("F02", f"message {r['msg_id']}: {text}", **objs, record=getattr(exc, "record", None))
            if consecutive >= AUTH_FAIL_LIMIT and out["ok"] == 0:
                out["stopped"] = True
                left = len(entries) - sum(1 for p in problems if p[0] in ("F02", "F03")) - out["ok"]
                problem("F02", f"pack {name}: stopped after {consecutive} consecutive authentication failures and "
                        f"no record that authenticates — wrong key or foreign archive? ({left} records not checked)",
                        name=name)
                break
    except MailArchiveError as exc:  # the storage failed mid-read
        problem("F01", f"pack {name}: reading stopped: {exc}", name=name)
        out["stopped"] = True
    finally:
        it.close()



def _sql_text_key(col: str) -> str:
    return f"CASE WHEN {col} IS NULL THEN 'N' ELSE 'S' || strlen({col}) || ':' || {col} END"


def _sql_list_key(col: str) -> str:
    return f"coalesce(array_to_string(list_transform(list_sort(list_distinct({col})), x -> strlen(x) || ':' || x), ''), '')"


#: a row's compared header fields as one string, as :func:`f04_key` builds it from a mail: each text
#: ``N`` (NULL) or ``S<UTF-8 bytes>:<text>``, the date ``N`` or ``T<microseconds since 1970>``, then each
#: recipient list sorted and without repeats, ``<UTF-8 bytes>:<address>`` each, after a ``|``
_F04_KEY = " || ".join([
    _sql_text_key("m.message_id"), _sql_text_key("m.from_addr"), _sql_text_key("m.subject"),
    "CASE WHEN m.sent_date IS NULL THEN 'N' ELSE 'T' || epoch_us(m.sent_date) END",
    "'|'", _sql_list_key('rc."to"'), "'|'", _sql_list_key("rc.cc"),
])


_TASK_ROWS = """
    WITH rc AS (
        SELECT msg_id, list(address) FILTER (WHERE kind = 'to') AS "to", list(address) FILTER (WHERE kind = 'cc') AS cc
        FROM recipients WHERE kind IN ('to', 'cc'){rc_where} GROUP BY msg_id
    )
    SELECT m.msg_id, m.blob_id, m.pack_id, m."offset", m.length, m.size, m.csize, m.message_id, m.from_addr, m.subject,
           m.sent_date, m.batch_id, rc."to", rc.cc, """ + _F04_KEY + """ AS f04
    FROM messages m LEFT JOIN rc USING (msg_id){m_where}
    ORDER BY m.pack_id, m."offset"
"""


def _task_rows_sql(pack: bool = False) -> str:
    """The query of the tasks' rows: of every message, or (``pack``) of one pack's, its id the one parameter."""
    if not pack:
        return _TASK_ROWS.format(rc_where="", m_where="")
    return _TASK_ROWS.format(rc_where=" AND msg_id IN (SELECT msg_id FROM messages WHERE pack_id = $1)",
                             m_where=" WHERE m.pack_id = $1")


def _arrow(result):
    """A query's result as one Arrow table (newer DuckDB hands a lazy reader: read it inside the session)."""
    table = result.arrow()
    return table.read_all() if hasattr(table, "read_all") else table


_PACKS = "SELECT pack_id, medium_id, name, bytes, blake3 FROM packs ORDER BY medium_id, name"


def _tasks(con, pack: str | None = None) -> list[dict]:
    """One task per pack (only ``pack``'s, when given); its ``rows`` are the catalog rows of its messages, an
    Arrow table in offset order.

    One query for all messages with their to/cc lists, into Arrow: the rows cross to the worker
    processes as column buffers and become Python values there (:func:`_rows`), in parallel.
    """
    import pyarrow as pa

    packs = [p for p in con.execute(_PACKS).fetchall() if pack is None or p[0] == pack]
    table = _arrow(con.execute(_task_rows_sql(True), [pack]) if pack is not None else con.execute(_task_rows_sql()))
    by_pack: dict[str, Any] = {}
    ids = table.column("pack_id").to_pylist()
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            # take(), not slice(): a slice pickles the whole table's buffers, the task would carry every row
            by_pack[ids[start]] = table.take(pa.array(range(start, i), pa.int64()))
            start = i
    empty = table.slice(0, 0).take(pa.array([], pa.int64()))
    return [
        {"pack_id": p, "medium_id": med, "name": name, "bytes": nbytes, "blake3": sha, "rows": by_pack.get(p, empty)}
        for p, med, name, nbytes, sha in packs
    ]


#: the columns of a task's rows that every record needs (the compared fields only where the F04 keys differ)
_LIGHT = ("msg_id", "blob_id", "offset", "length", "size", "csize", "batch_id", "f04")


def _rows(rows) -> list[dict]:
    """A task's rows as dicts: from the Arrow table of :func:`_tasks` only the :data:`_LIGHT` columns, each row
    with its index ``i`` in the table (:func:`_full_row`); a list of dicts as it is."""
    if not hasattr(rows, "column"):
        return list(rows)
    cols = [rows.column(c).to_pylist() for c in _LIGHT]
    return [dict(zip(_LIGHT, vals), i=i) for i, vals in enumerate(zip(*cols))]


def _full_row(table, row: dict) -> dict:
    """Every column of ``row`` (one from :func:`_rows`)."""
    return table.slice(row["i"], 1).to_pylist()[0] if "i" in row and hasattr(table, "slice") else row


def reference_full(archive) -> Report:
    """F01-F04 of every pack, by the reference algorithm, in a report of their own (as run_full fills them)."""
    report = Report(archive={}, mode="full", started_at="", host="", version="")
    with check_session(archive.catalog) as con:
        tasks = _tasks(con)
    results = [check_pack(archive, t) for t in tasks]
    checks = {cid: report.check(cid, title, tier="full") for cid, title in FULL_CHECKS[:4]}
    by_pack = {t["pack_id"]: t for t in tasks}
    with check_session(archive.catalog) as con:
        for res in results:
            if res.get("auth_failed") and res["pack"] in by_pack:
                _probe_copies(archive, con, res, by_pack[res["pack"]])
    bytes_read = records = ok = 0
    for res in sorted(results, key=lambda r: (r["medium"] is None, r["medium"] or 0, r["pack"] or "")):
        bytes_read += res["bytes_read"]
        records += res["records"]
        ok += res["ok"]
        for cid, detail, objs in res["problems"]:
            checks[cid].add(detail, **objs)
        for cid, detail, objs in res.get("warnings", ()):
            checks[cid].warn(detail, **objs)
    checks["F01"].note = f"{len(results)} packs, {bytes_read:,} bytes read"
    checks["F02"].note = f"{ok:,} of {records:,} records authenticate"
    return report
