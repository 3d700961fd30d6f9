"""Many tiny mails: peak memory and catalog size against the number of mails (docs/reliability.md K8).

For each count N of ``--counts`` (default 10000,20000,40000), one mbox of N tiny,
distinct mails (~250 bytes each, seeded) is imported with ``mailarchive import
mbox`` into a fresh archive (``init`` not timed). Per N: wall time, mails/s,
peak RSS of the largest process (wait4 and sampled VmHWM), the catalog's bytes
on disk (catalog.duckdb with its WAL, after the import's checkpoint) and the
bytes of packs, and each per mail. "Linear" means: the catalog bytes per mail
added per mail stay about constant as N grows (the catalog grows in proportion), and the peak
RSS does not grow with N beyond a constant (memory is bounded by the pack and
batch sizes, not by the number of mails seen). The report prints the ratios
from the smallest to the largest N of both.

The one-million-mail figure of K8 is the same script with larger counts (about
1 GB of disk and, on the 2-core development VM, tens of minutes):

    .venv/bin/python bench/bench_tiny.py --counts 100000,300000,1000000 --again 10000 --record

``--again N`` also imports N new tiny mails into the largest archive: a second import's start reads every
archived key, the case where the memory grows with the catalog and not with the run.

``--record`` replaces the "## Tiny mails (K8)" section of bench/RESULTS.md.

    .venv/bin/python bench/bench_tiny.py [--counts 10000,20000,40000] [--record]
"""
from __future__ import annotations

import argparse
import base64
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import (  # noqa: E402
    RSS_LIMIT_MB,
    bench_env,
    init_archive,
    loadavg,
    machine,
    mailarchive_cmd,
    record,
    run_measured,
    summary_counts,
)

TITLE = "## Tiny mails (K8)"
TITLE_K3 = "## A large mbox (K3)"
WORDS = "invoice meeting ok thanks see you tomorrow call me later done fine yes no agenda lunch".split()


def write_mbox(path: Path, count: int, seed: int, body_kb: int = 0) -> int:
    """COUNT distinct tiny mails (headers + one short line) in one mbox; returns its size.

    With ``body_kb`` each mail also carries that many KB of base64 lines (incompressible, seeded):
    the K3 run (a large mbox) with the same script."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for i in range(count):
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
            if body_kb:
                blob = base64.encodebytes(rng.randbytes(body_kb * 768)).decode()
                body = f"{body}\n\n{blob}"
            f.write(
                (f"From tiny@example.com Mon Jan  7 09:15:00 2019\n"
                 f"From: t{i % 97}@example.com\nTo: archive@example.com\nSubject: tiny {i}\n"
                 f"Date: Mon, 7 Jan 2019 09:{(i // 60) % 60:02d}:{i % 60:02d} +0000\n"
                 f"Message-ID: <tiny-{seed}-{i}@example.com>\n\n{body}\n\n").encode()
            )
        return f.tell()


def home_bytes(home: Path) -> tuple[int, int, int]:
    """(catalog bytes: catalog.duckdb and its WAL, pack bytes on the home's media, number of packs)."""
    catalog = sum(p.stat().st_size for p in home.glob("catalog.duckdb*") if p.is_file())
    files = list(home.rglob("*.pack"))
    return catalog, sum(p.stat().st_size for p in files), len(files)


def run_one(work: Path, count: int, seed: int, env: dict, body_kb: int = 0, again: int = 0) -> dict:
    mbox = work / f"tiny-{count}.mbox"
    size = write_mbox(mbox, count, seed, body_kb)
    home = work / f"archive-{count}"
    init_archive(home, env)
    print(f"  import mbox of {count} tiny mails ({size / 1e6:.0f} MB) ...", flush=True)
    m = run_measured(f"import mbox, {count} tiny mails", mailarchive_cmd() + ["--archive", str(home), "--json", "import",
                                                                          "mbox", str(mbox)], env)
    if m.rc not in (0, 1):
        sys.exit(f"import failed (exit {m.rc}):\n{m.stderr[-3000:]}")
    try:
        m.extra["summary"] = json.loads(m.stdout)
    except ValueError:
        m.extra["summary"] = None
    catalog, packs, npacks = home_bytes(home)
    out = {"count": count, "mbox": size, "m": m, "catalog": catalog, "packs": packs, "npacks": npacks}
    mbox.unlink()
    if again:  # a second import, of new mails, into the archive just made: its start reads every key archived
        write_mbox(mbox, again, seed + 1, body_kb)
        print(f"  import mbox of {again} more tiny mails into it ...", flush=True)
        second = run_measured(f"import mbox, {again} more", mailarchive_cmd() + ["--archive", str(home), "--json",
                                                                            "import", "mbox", str(mbox)], env)
        if second.rc not in (0, 1):
            sys.exit(f"second import failed (exit {second.rc}):\n{second.stderr[-3000:]}")
        out["again"] = second
        mbox.unlink()
    shutil.rmtree(home, ignore_errors=True)
    return out


def report(rows: list[dict], args, load_before: str) -> str:
    what = (f"~250-byte mails plus {args.body_kb} KB of base64 each" if args.body_kb else "~250-byte mails")
    flags = f" --body-kb {args.body_kb}" if args.body_kb else ""
    lines = [
        TITLE_K3 if args.body_kb else TITLE,
        "",
        f"`bench/bench_tiny.py{flags} --counts {args.counts}` on {machine(load_before)}. Each count: one mbox of distinct "
        f"{what}, `import mbox` into a fresh archive (warm cache: the mbox was just written).",
        "",
        "| mails | mbox MB | seconds | mails/s | CPU s main + workers | peak RSS MB | VmHWM MB main / largest worker "
        "| catalog MB | catalog bytes / mail | catalog bytes per added mail (from the row above) | packs | packs MB "
        "| pack bytes / mail |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    prev = None
    for r in rows:
        m, n = r["m"], r["count"]
        marginal = f"{(r['catalog'] - prev['catalog']) / (n - prev['count']):.0f}" if prev else ""
        lines.append(
            f"| {n} | {r['mbox'] / 1e6:.1f} | {m.seconds:.1f} | {n / m.seconds:.0f} | "
            f"{m.cpu_main:.0f} + {m.cpu_workers:.0f} | {m.maxrss_mb:.0f} | "
            f"{m.main_hwm_mb:.0f} / {m.worker_hwm_mb:.0f} | {r['catalog'] / 1e6:.1f} | {r['catalog'] / n:.0f} | {marginal} | "
            f"{r['npacks']} | {r['packs'] / 1e6:.1f} | {r['packs'] / n:.0f} |"
        )
        prev = r
    lines.append("")
    for r in rows:
        counts = summary_counts(r["m"])
        if counts:
            lines.append(f"- {r['count']} mails: {counts}.")
    for r in rows:
        if "again" in r:
            a = r["again"]
            lines.append(f"- {args.again} more mails imported into the archive of {r['count']}: {a.seconds:.1f} s, "
                         f"peak RSS {a.maxrss_mb:.0f} MB (its start reads every archived key: docs/reliability.md K8).")
    first, last = rows[0], rows[-1]
    grow = last["count"] / first["count"]
    cat_ratio = (last["catalog"] / last["count"]) / (first["catalog"] / first["count"])
    rss_ratio = last["m"].maxrss_mb / first["m"].maxrss_mb
    peak = max(max(r["m"].maxrss_mb, r["again"].maxrss_mb if "again" in r else 0) for r in rows)
    per_mail_kb = (last["m"].maxrss_mb - first["m"].maxrss_mb) * 1024 / (last["count"] - first["count"])
    lines += [
        "",
        f"From {first['count']} to {last['count']} mails ({grow:.0f}× as many): catalog bytes per mail × {cat_ratio:.2f} "
        f"(falls while DuckDB's fixed part is spread over more mails; linear growth shows as a constant last column), peak RSS × {rss_ratio:.2f} (a bounded import keeps it near 1, far below "
        f"× {grow:.0f}); time per mail × {(last['m'].seconds / last['count']) / (first['m'].seconds / first['count']):.2f}. "
        f"Peak RSS of any run {peak:.0f} MB (limit < {RSS_LIMIT_MB} MB: {'met' if peak < RSS_LIMIT_MB else 'NOT met'}); "
        f"it grows by {per_mail_kb:.1f} KB per added mail between the smallest and the largest run"
        + (f", which would cross {RSS_LIMIT_MB} MB near {first['count'] + (RSS_LIMIT_MB - first['m'].maxrss_mb) * 1024 / per_mail_kb:.0f} "
           "mails in one run" if per_mail_kb > 0.5 else "") + ".",
        "",
        "The catalog's size includes DuckDB's fixed overhead (blocks allocated ahead), which weighs more at small "
        "counts. The K8 figure for one million mails: `.venv/bin/python bench/bench_tiny.py --counts "
        "100000,300000,1000000 --again 10000 --record` (about 2 minutes on an idle 2-core machine).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="10000,20000,40000", help="comma-separated mail counts (default 10000,20000,40000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--body-kb", type=int, default=0,
                    help="add this many KB of base64 to every mail: K3, a large mbox (e.g. --body-kb 40 --counts "
                         "12500,50000 for 0.5 and 2 GB); recorded under its own section")
    ap.add_argument("--again", type=int, default=0, metavar="N",
                    help="after the largest count, import N more (new) tiny mails into that archive and report that "
                         "second import's time and peak RSS")
    ap.add_argument("--dir", type=Path, default=None, help="parent of the work directory (default: the temp dir)")
    ap.add_argument("--record", action="store_true", help=f"replace the '{TITLE}' section of bench/RESULTS.md")
    args = ap.parse_args()
    counts = sorted(int(x) for x in args.counts.split(","))
    load_before = loadavg()
    env = bench_env()
    work = Path(tempfile.mkdtemp(prefix="bench-tiny-", dir=args.dir))
    try:
        rows = [run_one(work, n, args.seed, env, args.body_kb, args.again if n == counts[-1] else 0) for n in counts]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    section = report(rows, args, load_before)
    print()
    print(section)
    if args.record:
        record(section, TITLE if not args.body_kb else TITLE_K3)
        print("recorded in bench/RESULTS.md")


if __name__ == "__main__":
    main()
