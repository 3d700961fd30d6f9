"""Full verification throughput against restic on the same corpus (issue 5, acceptance 5).

Times ``mailarchive verify --full`` over the bench archive (the EML tree of
the bench corpus imported once) against ``restic check --read-data`` over a
restic repository of the same EML tree, in one run. Building the archive and
the repository is not timed; ``--reuse DIR`` takes both from
``bench/bench_import.py --keep DIR`` instead of building them.

Before each contender the page cache is dropped (root only; where refused,
the contender's stored data is read once first, and the report says so).
Reported per contender: wall time, messages/s, MB/s of the corpus (the same
numerator for both, so the ratio is the ratio of the times), MB/s of the
data each one stores and reads (packs / restic data files), CPU seconds and
peak RSS. ``--record`` replaces the "## Verify (issue 5)" section of
bench/RESULTS.md (other sections are kept).

``--base DIR`` (or ``--baseline DIR``) runs the ``verify --full`` of another checkout (earlier code) as a third
contender in every pair, the order alternating. With ``--reuse DIR`` the runs write nothing into DIR: verify runs
on a copy of the archive's home (its media are read where they are), restic without a lock and with its cache
in the work directory.

    .venv/bin/python bench/bench_verify.py [--reuse DIR | --corpus /tmp/corpus20k --count 20000] [--base DIR] [--record]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import (  # noqa: E402
    DelayAccounting,
    mask_sha_and_reexec,
    Measure,
    bench_env,
    ensure_corpus,
    fmt_io,
    init_archive,
    loadavg,
    machine,
    mailarchive_cmd,
    prepare_cache,
    record,
    restic_exe,
    run_measured,
)

TITLE = "## Verify (issue 5)"


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def build(work: Path, args, env: dict) -> dict:
    """Import the corpus' EML tree into a fresh archive and back it up with restic (neither timed)."""
    corpus = ensure_corpus(args.corpus, args.count, args.seed, work)
    home = work / "archive-eml"
    init_archive(home, env)
    print(f"building the bench archive from {corpus.eml} (not timed) ...", flush=True)
    subprocess.run(mailarchive_cmd() + ["--archive", str(home), "--quiet", "import", "eml", str(corpus.eml)],
                   env=env, check=True)
    repo = work / "restic-repo"
    renv = dict(env, RESTIC_REPOSITORY=str(repo), RESTIC_CACHE_DIR=str(work / "restic-cache"))
    print("building the restic repository of the same tree (not timed) ...", flush=True)
    subprocess.run([restic_exe(), "init"], env=renv, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([restic_exe(), "backup", "--quiet", str(corpus.eml)], env=renv, check=True)
    return {"corpus": str(corpus.root), "messages": corpus.messages, "eml_bytes": corpus.eml_bytes,
            "archive": str(home), "restic_repo": str(repo)}


def archive_facts(home: Path, env: dict) -> tuple[int, int]:
    """(messages in the catalog, bytes of packs on the media)."""
    r = subprocess.run(mailarchive_cmd() + ["--archive", str(home), "--json", "sql",
                                            "SELECT count(*) AS n, coalesce(sum(bytes), 0) AS b FROM packs"],
                       env=env, capture_output=True, text=True)
    packs_bytes = 0
    try:
        rows = json.loads(r.stdout)
        rows = rows.get("rows", rows) if isinstance(rows, dict) else rows
        first = rows[0]
        packs_bytes = int(first["b"] if isinstance(first, dict) else first[1])
    except (ValueError, LookupError, TypeError):
        packs_bytes = sum(p.stat().st_size for p in home.rglob("*.pack"))
    r = subprocess.run(mailarchive_cmd() + ["--archive", str(home), "--json", "sql", "SELECT count(*) AS n FROM messages"],
                       env=env, capture_output=True, text=True)
    try:
        rows = json.loads(r.stdout)
        rows = rows.get("rows", rows) if isinstance(rows, dict) else rows
        first = rows[0]
        messages = int(first["n"] if isinstance(first, dict) else first[0])
    except (ValueError, LookupError, TypeError):
        messages = 0
    return messages, packs_bytes


def medium_dirs(home: Path) -> list[Path]:
    """The media's directories (from archive.toml: a home copied by :func:`private_home` keeps the originals')."""
    import tomllib

    cfg = tomllib.loads((home / "archive.toml").read_text())
    return sorted(Path(m["location"]) for m in cfg.get("media", []) if not str(m["location"]).startswith("smb://"))


def private_home(home: Path, work: Path) -> Path:
    """A copy of the home of a ``--reuse`` archive (config, key, catalog; not its media, which archive.toml still
    names and verify only reads), so that the runs write nothing into the kept directory (verify records the
    packs it read in the home's verify-state.json)."""
    dest = work / "home"
    shutil.copytree(home, dest, ignore=lambda d, names: [n for n in names if Path(d) == home and n.startswith("medium-")])
    return dest


def baseline_name(code: Path) -> str:
    marker = code / "COMMIT"
    return marker.read_text().strip()[:7] if marker.exists() else code.name


def run_verify(home: Path, env: dict, cache_mode: str, workers: int | None, code: Path | None = None) -> Measure:
    """``code``: a checkout of other code to run instead (``--baseline``), as ``python -m toolkit`` from there."""
    cache = prepare_cache(medium_dirs(home), cache_mode)
    cmd = ([sys.executable, "-m", "toolkit"] if code else mailarchive_cmd()) + ["--archive", str(home), "--json", "verify",
                                                                                "--full"]
    if workers:
        cmd += ["--workers", str(workers)]
    name = f"verify --full, baseline code ({baseline_name(code)})" if code else "mailarchive verify --full"
    print(f"  {name} ({cache} cache) ...", flush=True)
    m = run_measured(name, cmd, dict(env, PYTHONPATH=str(code)) if code else env, cwd=code)
    m.extra["cache"] = cache
    try:
        m.extra["report"] = json.loads(m.stdout)
    except ValueError:
        m.extra["report"] = None
        print(f"  verify printed no JSON (exit {m.rc}):\n{m.stderr[-2000:]}", flush=True)
    return m


def measure_floor(home: Path, cache_mode: str) -> dict:
    """The work `verify --full` cannot skip, in this process on one thread, cache as for the contenders:
    every pack read once with its file BLAKE3, every record authenticated (AES-GCM), decompressed and its
    mail hashed against its blob id (``PackReader.check_all`` with the footer's entries: verify's own pass,
    which reads a local pack in blocks; ``verify_all``, which the floor used before, reads record by record);
    no catalog, no other checks. No verify of
    these packs on these cores can take less than the larger of its wall time spread over the cores and
    its CPU time ÷ cores."""
    import os
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from toolkit.archive import Archive
    from toolkit.pack import PackReader

    cache = prepare_cache(medium_dirs(home), cache_mode)
    t0, c0 = time.perf_counter(), time.process_time()
    records = bad = 0
    with Archive.open(home) as a:
        for m in a.config.media:
            if m.state == "removed":
                continue
            st = a.storage(m.id)
            for e in st.list("packs"):
                reader = PackReader(st, e.name, a.key, a.uuid)
                for _entry, exc in reader.check_all(reader.index()):   # verify's pass (blocks on a local file)
                    records += 1
                    bad += exc is not None
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cores = os.cpu_count() or 1
    return {"wall": wall, "cpu": cpu, "records": records, "bad": bad, "cores": cores, "cache": cache,
            "floor": max(wall / cores, cpu / cores)}


def floor_line(low: dict, v: Measure, r: Measure) -> str:
    budget = r.seconds / 2
    text = (f"Floor (same run, {low['cache']} cache): every pack read once, file BLAKE3, every one of the {low['records']} "
            f"records authenticated, decompressed and its mail hashed (`PackReader.check_all` over the footer's entries, in one process, no catalog) "
            f"took {low['wall']:.1f} s and {low['cpu']:.1f} CPU-s: spread over {low['cores']} cores no verify can take "
            f"less than **{low['floor']:.1f} s**; 2× restic means {budget:.1f} s")
    text += (" — below the floor: not reachable on this machine at its speed of the moment." if low["floor"] > budget
             else f", {budget - low['floor']:.1f} s above the floor.")
    text += (f" `verify --full` takes {v.seconds - low['floor']:.1f} s more than the floor "
             f"({v.seconds / low['floor']:.1f}× it).")
    return text


def run_restic_check(repo: Path, env: dict, cache_mode: str, cache_dir: Path) -> Measure:
    renv = dict(env, RESTIC_REPOSITORY=str(repo), RESTIC_CACHE_DIR=str(cache_dir))
    cache = prepare_cache([repo], cache_mode)
    print(f"  restic check --read-data ({cache} cache) ...", flush=True)
    # --no-lock: a kept repository is read, never written (check takes a lock file in it otherwise)
    m = run_measured("restic check --read-data", [restic_exe(), "--no-lock", "check", "--read-data"], renv)
    m.extra["cache"] = cache
    if m.rc != 0:
        print(f"  restic check failed with exit {m.rc}:\n{m.stderr[-2000:]}", flush=True)
    return m


def verify_findings(m: Measure) -> str:
    rep = m.extra.get("report")
    if not isinstance(rep, dict):
        return "no JSON report"
    t = rep.get("totals", {})
    bad = [f"{c['id']} {c['status']} ({c['count']})" for c in rep.get("checks", []) if c.get("status") in ("finding", "warning")]
    text = f"{t.get('findings', '?')} findings, {t.get('warnings', '?')} warnings"
    return text + (": " + ", ".join(bad) if bad else "")


def report(v: Measure, r: Measure, st: dict, messages: int, packs_bytes: int, restic_bytes: int,
           load_before: str, cache_note: str, args, ratios: list[float], low: dict | None = None,
           base: Measure | None = None, base_ratios: list[float] | None = None,
           cpu_pairs: list[tuple[float, float]] | None = None, cpu_all: dict | None = None,
           wall_all: dict | None = None) -> str:
    src = st["eml_bytes"]

    def row(m: Measure, stored: int, ratio: str) -> str:
        status = "" if m.rc in (0, 1) else f" (exit {m.rc})"
        return (
            f"| {m.name}{status} | {m.seconds:.1f} | {messages / m.seconds:.0f} | {src / 1e6 / m.seconds:.1f} | "
            f"{stored / 1e6:.0f} MB at {stored / 1e6 / m.seconds:.1f} | "
            f"{m.cpu_user + m.cpu_sys:.1f} ({m.cpu_main:.1f} main + {m.cpu_workers:.1f} workers) | "
            f"{fmt_io(m)} | {m.maxrss_mb:.0f} | {ratio} |"
        )

    ratio = r.seconds / v.seconds   # the median pair's
    stored_ratio = (packs_bytes / v.seconds) / (restic_bytes / r.seconds)
    how = "--reuse DIR (archive from bench_import.py --keep DIR)" if args.reuse else f"--count {st['messages']}"
    how += f" --cache {args.cache} --repeat {args.repeat}" + (f" --workers {args.workers}" if args.workers else "")
    how += " --baseline BASE" if args.baseline else ""
    lines = [
        TITLE,
        "",
        f"`bench/bench_verify.py {how}` on {machine(load_before)}.",
        f"Corpus: the bench EML tree, {st['messages']} files, {src / 1e6:.0f} MB; {messages} message rows in the archive. "
        f"{cache_note}",
        "",
        "| contender | seconds | messages/s | MB/s of the corpus | stored data read, MB/s | CPU s (tree) "
        "| I/O wait s main / workers | peak RSS MB | × restic |",
        "|---|---|---|---|---|---|---|---|---|",
        row(v, packs_bytes, f"{ratio:.2f}×"),
        *([row(base, packs_bytes, f"{r.seconds / base.seconds:.2f}×")] if base else []),
        row(r, restic_bytes, ""),
        "",

        f"{len(ratios)} pairs (each contender once per pair, the order alternating; the table shows the median pair): "
        + ", ".join(f"{x:.2f}×" for x in ratios) + f"; median {ratio:.2f}×, lowest {min(ratios):.2f}×. "
        "This machine's speed drifts by up to 2× within minutes (shared VM), so only pairs run back to back compare.",
        "",
        *([f"Baseline code ({baseline_name(args.baseline)}), in the same pairs: × restic "
           + ", ".join(f"{x:.2f}×" for x in base_ratios) + f" (median {statistics.median(base_ratios):.2f}×); "
           f"CPU-s of verify --full per pair, this code / baseline: "
           + ", ".join(f"{a:.1f} / {b:.1f}" for a, b in cpu_pairs) + "; its row is from the median pair.", ""]
          if base else []),
        f"CPU-s of the process tree, median of the {len(ratios)} runs each: verify --full "
        f"{statistics.median(cpu_all['verify']):.2f}"
        + (f", baseline code {statistics.median(cpu_all['baseline']):.2f}" if cpu_all.get("baseline") else "")
        + f", restic {statistics.median(cpu_all['restic']):.2f}; wall s, median: verify --full "
        f"{statistics.median(wall_all['verify']):.2f}"
        + (f", baseline code {statistics.median(wall_all['baseline']):.2f}" if wall_all.get("baseline") else "")
        + f", restic {statistics.median(wall_all['restic']):.2f}.",
        "",
        f"- verify --full: {verify_findings(v)}; exit {v.rc}.",
        f"- restic check --read-data: exit {r.rc}.",
        "",
        f"Target: `verify --full` runs at {ratio:.2f}× (median of {len(ratios)} pairs) the MB/s of `restic check --read-data` over the same corpus "
        f"(target ≥ 2×: {'met' if ratio >= 2 else 'NOT met'}); counted in bytes each tool stores and reads "
        f"(packs {packs_bytes / 1e6:.0f} MB, restic data {restic_bytes / 1e6:.0f} MB) the ratio is {stored_ratio:.2f}×.",
        "",
        *([floor_line(low, v, r), ""] if low else []),
        "`verify --full` reads every pack once (BLAKE3 of the file, every record authenticated and decompressed, "
        "SHA-256 of every mail against its blob id, header fields against the catalog) plus the quick checks; "
        "`restic check --read-data` reads and hashes every pack file of the repository (restic 0.14, Debian).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reuse", type=Path, default=None, help="directory written by bench_import.py --keep DIR")
    ap.add_argument("--corpus", type=Path, default=None, help="corpus directory (generated when missing)")
    ap.add_argument("--count", type=int, default=20_000, help="messages in the corpus (default 20000)")
    ap.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    ap.add_argument("--dir", type=Path, default=None, help="parent of the work directory (default: the system temp dir)")
    ap.add_argument("--cache", choices=("cold", "warm"), default="cold",
                    help="cold: drop the page cache before each contender (falls back to warm); warm: read the data once first")
    ap.add_argument("--workers", type=int, default=None, help="verify --workers (default: the toolkit's default)")
    ap.add_argument("--repeat", type=int, default=3, help="pairs of runs (default 3); the median pair is reported")
    ap.add_argument("--baseline", "--base", dest="baseline", type=Path, default=None,
                    help="a checkout of other code (e.g. `git archive main | tar -x -C DIR`) whose verify --full runs "
                         "as a third contender in every pair")
    ap.add_argument("--record", action="store_true", help="replace the '## Verify (issue 5)' section of bench/RESULTS.md")
    ap.add_argument("--mask-sha", action="store_true",
                    help="hide the CPU's SHA extensions from OpenSSL (OPENSSL_ia32cap) for both contenders: the "
                         "figures of a CPU without them, on this one (restic 0.14 does not use them either way)")
    args = ap.parse_args()
    if args.mask_sha:
        mask_sha_and_reexec()

    load_before = loadavg()
    env = bench_env()
    # as installed (pip compiles the modules; an editable checkout writes __pycache__ on first use): with
    # PYTHONDONTWRITEBYTECODE every run of every contender compiled the toolkit's modules again (~0.1 CPU-s)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for code in [Path(__file__).resolve().parent.parent] + ([args.baseline] if args.baseline else []):
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-x", r"[/\\]\.venv[/\\]", str(code)], env=env,
                       stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="bench-verify-", dir=args.dir))
    try:
        if args.reuse:
            st = json.loads((args.reuse / "bench-state.json").read_text())
            if not st.get("restic_repo"):
                sys.exit(f"{args.reuse} holds no restic repository: rerun bench_import.py with restic")
        else:
            st = build(work, args, env)
        home, repo = Path(st["archive"]), Path(st["restic_repo"])
        if args.reuse:
            home = private_home(home, work)
        messages, packs_bytes = archive_facts(home, env)
        restic_bytes = dir_bytes(repo / "data")
        print(f"archive {home}: {messages} messages, {packs_bytes / 1e6:.0f} MB of packs; restic data "
              f"{restic_bytes / 1e6:.0f} MB; load {loadavg()}", flush=True)
        pairs = []
        low = None
        with DelayAccounting():
            for i in range(max(1, args.repeat)):
                b = None
                if i % 2 == 0:
                    v = run_verify(home, env, args.cache, args.workers)
                    r = run_restic_check(repo, env, args.cache, work / "restic-cache")
                    if args.baseline:
                        b = run_verify(home, env, args.cache, args.workers, args.baseline)
                else:
                    if args.baseline:
                        b = run_verify(home, env, args.cache, args.workers, args.baseline)
                    r = run_restic_check(repo, env, args.cache, work / "restic-cache")
                    v = run_verify(home, env, args.cache, args.workers)
                pairs.append((r.seconds / v.seconds, v, r, b))
                if i == max(1, args.repeat) // 2:  # the floor once, in the middle pair
                    low = measure_floor(home, args.cache)
                print(f"pair {i + 1}: verify {v.seconds:.1f} s ({v.cpu_user + v.cpu_sys:.1f} CPU-s), restic {r.seconds:.1f} s "
                      f"({r.cpu_user + r.cpu_sys:.1f} CPU-s), {pairs[-1][0]:.2f}x"
                      + (f"; baseline {b.seconds:.1f} s ({b.cpu_user + b.cpu_sys:.1f} CPU-s), {r.seconds / b.seconds:.2f}x"
                         if b else ""), flush=True)
        ratios = [p[0] for p in pairs]
        base_ratios = [p[2].seconds / p[3].seconds for p in pairs if p[3] is not None]
        _, v, r, b = sorted(pairs, key=lambda p: p[0])[len(pairs) // 2]
        caches = {v.extra["cache"], r.extra["cache"]}
        if caches == {"cold"}:
            cache_note = "Page cache dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) before each contender: cold reads."
        else:
            cache_note = "Page cache warm for each contender (its stored data read once before it" + (
                ", dropping the cache was refused)." if args.cache == "cold" else ").")
        cpu_pairs = [(p[1].cpu_user + p[1].cpu_sys, p[3].cpu_user + p[3].cpu_sys) for p in pairs if p[3] is not None]
        def cpu(m: Measure) -> float:
            return m.cpu_user + m.cpu_sys

        cpu_all = {"verify": [cpu(p[1]) for p in pairs], "restic": [cpu(p[2]) for p in pairs],
                   "baseline": [cpu(p[3]) for p in pairs if p[3] is not None]}
        wall_all = {"verify": [p[1].seconds for p in pairs], "restic": [p[2].seconds for p in pairs],
                    "baseline": [p[3].seconds for p in pairs if p[3] is not None]}
        section = report(v, r, st, messages, packs_bytes, restic_bytes, load_before, cache_note, args, ratios, low,
                         b, base_ratios, cpu_pairs, cpu_all, wall_all)
        print()
        print(section)
        if args.record:
            record(section, TITLE)
            print("recorded in bench/RESULTS.md")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
