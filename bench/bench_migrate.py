"""``migrate run`` of many IMAP accounts: ``--parallel N`` against ``--parallel 1`` on one Dovecot.

Starts a throwaway Dovecot (tests/services/dovecot.py) with ``--accounts`` users, fills each INBOX
with ``--count`` corpus mails (bench/make_corpus.py, written straight into the Maildir and indexed
before any timing), writes a plan of IMAP lines (imaps, the test CA) and times ``--pairs``
alternating pairs (sequential first, then parallel first, ...) of ``migrate run`` of that plan,
each into a fresh archive: ``--parallel 1`` (the default ``--per-server 4``) and ``--parallel N --per-server N`` (all accounts live
on one server here, so the per-server limit would otherwise cap the readers). With ``--rtt-ms``
(default 20) the plan points at tests/services/latency_proxy.py in front of Dovecot (half the RTT
each way, bandwidth not limited): mail servers are remote, and on loopback the one committer's
CPU dominates, so parallel reading cannot help there.

Prints the machine (CPU model, SHA extensions), the median wall times, their ratio, the CPU
seconds and peak RSS of every run (the ``mailarchive`` process, from wait4), and the floor: one
``import eml`` of the same mails from local disk (the committer's work without any link), which
no parallel run can beat. ``--record`` rewrites the "## Migration plans" section of
bench/RESULTS.md (other sections kept). Keep runs short on a shared machine.

    .venv/bin/python bench/bench_migrate.py [--accounts 20] [--count 500] [--parallel 8] [--rtt-ms 20] [--pairs 2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_imap import PASSWORD_ENV, fill, machine  # noqa: E402
from services.dovecot import start_dovecot  # noqa: E402
from services.latency_proxy import LatencyProxy  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bytecode import compile_checkout  # noqa: E402


def run_cli(work: Path, home: Path, *args: str) -> tuple[float, float, float, dict]:
    """One ``mailarchive`` process: (wall seconds, CPU seconds, peak RSS MB, its JSON output)."""
    out, err = work / "cli.out", work / "cli.err"
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD_ENV}
    t0 = time.perf_counter()
    with out.open("wb") as o, err.open("wb") as e:
        p = subprocess.Popen([sys.executable, "-m", "toolkit", "--archive", str(home), "--json", *args],
                             stdout=o, stderr=e, env=env, cwd=REPO)
        _pid, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"mailarchive {' '.join(args)} exited {p.returncode}:\n{err.read_text()[-3000:]}\n"
                         f"{out.read_text()[-3000:]}")
    text = out.read_text()
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, json.loads(text) if text.strip() else {}


def fresh_run(work: Path, label: str, *args: str) -> tuple[float, float, float, dict]:
    """``args`` into a fresh archive (removed afterwards)."""
    home, medium = work / f"home-{label}", work / f"medium-{label}"
    run_cli(work, home, "init", "--medium", str(medium), "--key-backup", str(work / f"kb-{label}.txt"))
    try:
        return run_cli(work, home, *args)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(medium, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=20)
    ap.add_argument("--count", type=int, default=500, help="mails per account")
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--rtt-ms", type=float, default=20.0, help="round-trip time of the latency proxy (0: no proxy)")
    ap.add_argument("--pairs", type=int, default=2, help="alternating sequential/parallel pairs (medians reported)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--record", action="store_true", help="rewrite the '## Migration plans' section of bench/RESULTS.md")
    a = ap.parse_args()
    compile_checkout(Path(__file__).resolve().parent.parent)  # bench/bytecode.py
    started = machine()
    runs: dict[str, list[tuple[float, float, float]]] = {"seq": [], "par": []}
    work = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    users = tuple(f"b{i:03d}" for i in range(a.accounts))
    server = start_dovecot(work / "dovecot", users=users)
    proxy = None
    try:
        nbytes = 0
        for i, user in enumerate(users):
            nbytes += fill(server.maildir(user), a.count, a.seed + i)[1]
            server.doveadm("mailbox", "status", "-u", user, "messages vsize", "INBOX")  # index before timing
            (work / f"{user}.pw").write_text(server.users[user])
        port = server.imaps_port
        if a.rtt_ms > 0:
            proxy = LatencyProxy("127.0.0.1", server.imaps_port, delay=a.rtt_ms / 2000)
            port = proxy.port
        lines = ["kind,location,user,password_file,owner,folders"]
        lines += [f"imap,imaps://127.0.0.1:{port},{u},{u}.pw,{u}," for u in users]
        plan = work / "plan.csv"
        plan.write_text("\n".join(lines) + "\n")
        ca = str(server.ca_cert_path)
        seen = None
        for k in range(a.pairs):
            for who in (("seq", "par") if k % 2 == 0 else ("par", "seq")):
                n = 1 if who == "seq" else a.parallel
                # the sequential run: --parallel 1 as typed (--per-server 4, the default: its pack tasks' workers
                # fetch on connections of their own; with --per-server 1 the reader would fetch, docs/cli.md)
                limit = ["--per-server", str(n)] if who == "par" else []
                wall, cpu, rss, res = fresh_run(work, f"{who}{k}", "migrate", "run", str(plan), "--parallel", str(n),
                                                *limit, "--ca-file", ca)
                archived = res["archived"]
                assert res["status"] == "complete" and res["seen"] == a.accounts * a.count, res
                assert seen is None or archived == seen, (archived, seen)
                seen = archived
                runs[who].append((wall, cpu, rss))
                print(f"  pair {k + 1}: --parallel {n}: {wall:.1f} s, {cpu:.1f} CPU-s, peak RSS {rss:.0f} MB", flush=True)
        sources = [str(server.maildir(u) / "cur") for u in users]
        fwall, fcpu, frss, fres = fresh_run(work, "floor", "import", "eml", *sources)
        print(f"  floor: import eml from local disk: {fwall:.1f} s, {fcpu:.1f} CPU-s, peak RSS {frss:.0f} MB", flush=True)
    finally:
        if proxy is not None:
            proxy.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(a, started, nbytes, runs, (fwall, fcpu, frss))


def report(a, started: str, nbytes: int, runs: dict, floor: tuple[float, float, float]) -> None:
    total = a.accounts * a.count
    med = {who: [statistics.median(r[i] for r in rs) for i in range(3)] for who, rs in runs.items()}
    seq, par = med["seq"][0], med["par"][0]
    link = f"{a.rtt_ms:g} ms RTT (tests/services/latency_proxy.py)" if a.rtt_ms > 0 else "loopback, no proxy"
    cmd = " ".join(["bench/bench_migrate.py", *sys.argv[1:]]).replace(" --record", "")
    fmt = lambda rs: ", ".join(f"{r[0]:.1f}" for r in rs)  # noqa: E731
    text = "\n".join([
        "## Migration plans",
        "",
        f"`.venv/bin/python {cmd}` on {started}; one Dovecot 2.3 with {a.accounts} accounts × {a.count} mails "
        f"({total} mails, {nbytes / 1e6:.0f} MB, bench/make_corpus.py messages, indexed before timing), plan of imaps "
        f"lines over {link}; {a.pairs} alternating pairs, every run into a fresh archive; times include process start. "
        "The machine is shared by 8 engineers: the ratios of one run are the figure, not the absolute times.",
        "",
        "| run | wall s (median; runs) | mails/s | CPU s (median) | peak RSS MB (median) |",
        "|---|---|---|---|---|",
        f"| `migrate run --parallel 1` | {seq:.1f} ({fmt(runs['seq'])}) | {total / seq:.0f} | {med['seq'][1]:.1f} | {med['seq'][2]:.0f} |",
        f"| `migrate run --parallel {a.parallel} --per-server {a.parallel}` | {par:.1f} ({fmt(runs['par'])}) | "
        f"{total / par:.0f} | {med['par'][1]:.1f} | {med['par'][2]:.0f} |",
        f"| floor: `import eml` of the same files from local disk | {floor[0]:.1f} | {total / floor[0]:.0f} | "
        f"{floor[1]:.1f} | {floor[2]:.0f} |",
        "",
        f"parallel ÷ sequential time = **{par / seq:.2f}** (target: ≤ 0.25 for 20 accounts × 500 mails at "
        f"--parallel 8 over 20 ms RTT); the floor (one committer, no link) ÷ sequential = {floor[0] / seq:.2f}: "
        "no parallel run can take less than the floor.",
        "",
    ])
    print(text)
    if a.record:
        path = REPO / "bench" / "RESULTS.md"
        old = path.read_text() if path.exists() else "# Benchmark results\n"
        start = old.find("## Migration plans")
        if start < 0:
            new = old.rstrip("\n") + "\n\n" + text
        else:
            end = old.find("\n## ", start + 1)
            new = old[:start] + text.rstrip("\n") + "\n" + (old[end:] if end >= 0 else "")
        path.write_text(new.rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
