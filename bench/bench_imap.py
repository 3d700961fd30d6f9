"""IMAP import throughput against mbsync on the same Dovecot mailbox, over a long link and on loopback.

Starts a throwaway Dovecot (tests/services/dovecot.py), fills one INBOX with
``--count`` mails from bench/make_corpus.py (2-20 KB text, ~10 % with a
50 KB-2 MB attachment; written straight into the Maildir and indexed before
any timing), then times ``--pairs`` alternating pairs (import first, then
mbsync first, ...) of, each into a fresh target and over STARTTLS with the
test CA:

* ``mailarchive import imap`` into a fresh archive;
* ``mbsync`` (isync) pulling the same mailbox into a fresh Maildir (its
  default FSync yes; our archive fsyncs its packs too);

first through tests/services/latency_proxy.py with ``--rtt-ms`` (20 ms:
10 ms each way, bandwidth not limited), then straight to Dovecot. Prints the
median seconds, the import ÷ mbsync time ratio per link and the CPU seconds of
each contender (more stable than wall time on a shared machine). ``--pop3``
also times ``import pop3``; ``--floor`` measures the floor of an IMAP import
on this machine (the reader alone, plus the CPU of the per-mail work the
format fixes (bench/format_floor.py: SHA-256 of the mail, its normalised body + BLAKE3, zstd 1 + AES-256-GCM,
BLAKE3 of the record); also counted by process, the reader's and Dovecot's own
CPU, which a busy machine does not inflate). ``--base DIR`` also times the
import of another checkout (the code before a change) in the same rotated
runs, through the same proxy and Dovecot. ``--record`` rewrites the "## IMAP and POP3" section
of bench/RESULTS.md (other sections kept). mbsync: ``apt-get install -y
--no-install-recommends isync``.

    .venv/bin/python bench/bench_imap.py [--count 5000] [--pairs 3] [--rtt-ms 20] [--floor] [--base DIR] [--record]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from make_corpus import make_message  # noqa: E402
from services.dovecot import MAIL_UID, start_dovecot  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bytecode import compile_checkout  # noqa: E402

USER = "bench"
PASSWORD_ENV = "correct horse battery staple"


def fill(maildir: Path, count: int, seed: int) -> tuple[int, int]:
    """Write ``count`` corpus mails into maildir/cur; returns (count, bytes)."""
    cur = maildir / "cur"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    when = datetime(2019, 1, 1, 8, 0, tzinfo=timezone.utc)
    total = 0
    for i in range(count):
        when += timedelta(minutes=rng.randint(1, 90))
        raw = make_message(rng, i, when)
        total += len(raw)
        p = cur / f"{1_546_300_800 + i}.M{i}P1.bench,S={len(raw)}:2,S"
        p.write_bytes(raw)
    for root, dirs, files in os.walk(maildir.parent):
        for name in dirs + files:
            os.chown(os.path.join(root, name), MAIL_UID, MAIL_UID)
    os.chown(maildir.parent, MAIL_UID, MAIL_UID)
    return count, total


#: The checkout whose code runs ``mailarchive`` (--base: an older checkout, timed in the same pairs).
CODE = {"imap": REPO}


def cli(home: Path, *args: str, env: dict, code: Path = REPO) -> dict:
    p = subprocess.run(
        [sys.executable, "-m", "toolkit", "--archive", str(home), "--json", *args],
        capture_output=True, text=True, env={**os.environ, **env, "PYTHONPATH": str(code)}, cwd=code,
    )
    if p.returncode != 0:
        raise SystemExit(f"mailarchive {' '.join(args)} exited {p.returncode}:\n{p.stderr[-3000:]}\n{p.stdout[-3000:]}")
    return json.loads(p.stdout) if p.stdout.strip() else {}


def timed_import(work: Path, name: str, url: str, ca: Path, password: str, *extra: str, label: str = "",
                 code: Path = REPO) -> tuple[float, dict]:
    label = label or name
    home = work / f"home-{label}"
    env = {"MAILARCHIVE_PASSWORD": PASSWORD_ENV, "MAILARCHIVE_IMAP_PASSWORD": password, "MAILARCHIVE_POP3_PASSWORD": password}
    cli(home, "init", "--medium", str(work / f"medium-{label}"), "--key-backup", str(work / f"kb-{label}.txt"), env=env,
        code=code)
    t0, c0, s0, d0 = time.perf_counter(), child_cpu(), own_cpu(), dovecot_cpu()
    result = cli(home, "import", name, url, "--ca-file", str(ca), *extra, env=env, code=code)
    elapsed = time.perf_counter() - t0
    CPU[label] = child_cpu() - c0
    CPU[f"{label}-proxy"] = own_cpu() - s0
    time.sleep(0.5)  # its connections' Dovecot processes exit and are reaped
    CPU[f"{label}-dovecot"] = dovecot_cpu() - d0
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(work / f"medium-{label}", ignore_errors=True)
    return elapsed, result


def timed_mbsync(work: Path, port: int, ca: Path, password: str) -> tuple[float, int]:
    local = work / "mbsync-maildir"
    shutil.rmtree(local, ignore_errors=True)
    local.mkdir()
    pwfile = work / "mbsync.pw"
    pwfile.write_text(password)
    rc = work / "mbsyncrc"
    rc.write_text(f"""\
IMAPAccount bench
Host localhost
Port {port}
User {USER}
PassCmd "cat {pwfile}"
SSLType STARTTLS
CertificateFile {ca}

IMAPStore remote
Account bench

MaildirStore local
Path {local}/
Inbox {local}/INBOX

Channel bench
Far :remote:
Near :local:
Patterns *
Create Near
Sync Pull
SyncState *
""")
    t0, c0, s0, d0 = time.perf_counter(), child_cpu(), own_cpu(), dovecot_cpu()
    p = subprocess.run(["mbsync", "-c", str(rc), "-a", "-q"], capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    CPU["mbsync"] = child_cpu() - c0
    CPU["mbsync-proxy"] = own_cpu() - s0
    time.sleep(0.5)
    CPU["mbsync-dovecot"] = dovecot_cpu() - d0
    if p.returncode != 0:
        raise SystemExit(f"mbsync exited {p.returncode}:\n{p.stderr[-3000:]}")
    n = sum(1 for _ in (local / "INBOX" / "cur").iterdir()) + sum(1 for _ in (local / "INBOX" / "new").iterdir())
    shutil.rmtree(local, ignore_errors=True)
    return elapsed, n


#: Seconds of the --base checkout's import per link tag ("rtt", "direct").
BASE: dict[str, list[float]] = {}

#: CPU seconds (user + system) of the last run of each contender, its child processes included.
CPU: dict[str, float] = {}


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def own_cpu() -> float:
    """CPU seconds of this process: while a contender runs, the latency proxy's threads (the rest waits)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


#: The Dovecot master's pid (its service processes, one per connection, are its children).
DOVECOT: list[int] = []


def dovecot_cpu() -> float:
    """CPU seconds of Dovecot so far: the master and its reaped children (imap, imap-login: TLS, auth).

    A connection's processes exit after its LOGOUT and are counted once reaped: measure after a pause."""
    if not DOVECOT:
        return 0.0
    fields = Path(f"/proc/{DOVECOT[0]}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (all processes, all cores; /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def floor(url: str, ca: Path, password: str, count: int) -> dict:
    """The reader alone (machine CPU and wall) and the CPU of the per-mail work the format fixes."""
    sys.path.insert(0, str(REPO))
    from importers.imap import ImapImporter
    from toolkit.reporter import NullReporter
    from toolkit.source import SourceMail

    raws = []
    cpu0, own0, t0, d0 = machine_cpu_seconds(), time.process_time(), time.perf_counter(), dovecot_cpu()
    for item in ImapImporter(url, password, ca_file=str(ca), fetch_in_tasks=False).scan(None, NullReporter()):
        if isinstance(item, SourceMail):
            raws.append(item.raw)
    reader_wall, reader_cpu = time.perf_counter() - t0, machine_cpu_seconds() - cpu0
    own_reader = time.process_time() - own0
    server_cpu = max(0.0, reader_cpu - own_reader)  # Dovecot, the kernel's TCP, and whatever else ran meanwhile
    time.sleep(0.5)  # the connection's Dovecot processes exit and are reaped
    dovecot = dovecot_cpu() - d0
    assert len(raws) == count, (len(raws), count)
    from format_floor import work_cpu_batched

    work_cpu = work_cpu_batched(raws)
    cores = os.cpu_count() or 1
    return {"reader_wall": reader_wall, "reader_cpu": reader_cpu, "server_cpu": server_cpu, "work_cpu": work_cpu,
            "floor": (reader_cpu + work_cpu) / cores, "floor_free_reader": (server_cpu + work_cpu) / cores,
            "own_reader": own_reader, "dovecot": dovecot, "floor_own": (own_reader + dovecot + work_cpu) / cores}


def reader_alone(url: str, ca: Path, password: str, count: int, **options) -> float:
    """Seconds for the IMAP reader alone to fetch every mail (nothing kept, no archive)."""
    sys.path.insert(0, str(REPO))
    from importers.imap import ImapImporter
    from toolkit.reporter import NullReporter
    from toolkit.source import SourceMail

    t0, n = time.perf_counter(), 0
    for item in ImapImporter(url, password, ca_file=str(ca), fetch_in_tasks=False, **options).scan(None, NullReporter()):
        n += isinstance(item, SourceMail)
    assert n == count, (n, count)
    return time.perf_counter() - t0


def machine() -> str:
    cpu = platform.processor() or "?"
    sha = False
    try:
        info = Path("/proc/cpuinfo").read_text()
        sha = " sha_ni" in info
        for line in info.splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs, {cpu} ({'with' if sha else 'without'} SHA extensions), Python "
            f"{platform.python_version()}, Linux {platform.release()}, load average {load}")


def pairs(work: Path, port: int, ca: Path, password: str, count: int, n: int, extra: list[str], tag: str,
          cpu: dict[str, list[float]]) -> tuple[list[float], list[float]]:
    """``n`` alternating pairs (import imap, mbsync; then mbsync first) against ``port``: the two lists of seconds
    (their CPU seconds appended to ``cpu["imap"]`` and ``cpu["mbsync"]``)."""
    ours, theirs = [], []
    contenders = [*CODE, "mbsync"]  # "imap", ["base",] "mbsync": rotated, so each runs first in turn
    for k in range(n):
        order = contenders[k % len(contenders):] + contenders[:k % len(contenders)]
        for who in order:
            if who != "mbsync":
                secs, res = timed_import(work, "imap", f"imap://{USER}@127.0.0.1:{port}", ca, password, *extra,
                                         label=f"{who}-{tag}-{k}", code=CODE[who])
                assert res["seen"] == count, res
                (ours if who == "imap" else BASE.setdefault(tag, [])).append(secs)
                cpu.setdefault(who, []).append(CPU[f"{who}-{tag}-{k}"])
                cpu.setdefault(f"proxy-{who}-{tag}", []).append(CPU[f"{who}-{tag}-{k}-proxy"])
                cpu.setdefault(f"dovecot-{who}", []).append(CPU[f"{who}-{tag}-{k}-dovecot"])
            else:
                secs, got = timed_mbsync(work, port, ca, password)
                assert got == count, got
                theirs.append(secs)
                cpu.setdefault("mbsync", []).append(CPU["mbsync"])
                cpu.setdefault(f"proxy-mbsync-{tag}", []).append(CPU["mbsync-proxy"])
                cpu.setdefault("dovecot-mbsync", []).append(CPU["mbsync-dovecot"])
            print(f"  {tag} pair {k + 1}: {who} {secs:.1f} s ({cpu[who][-1]:.1f} CPU-s; load {os.getloadavg()[0]:.1f}"
                  + (f"; proxy {cpu[f'proxy-{who}-{tag}'][-1]:.1f} CPU-s)" if tag == "rtt" else ")"), flush=True)
    return ours, theirs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pairs", type=int, default=3, help="alternating import/mbsync pairs per link (medians are reported)")
    ap.add_argument("--rtt-ms", type=float, default=20.0, help="round-trip time of the latency proxy (0: no proxy runs)")
    ap.add_argument("--connections", type=int, default=None, help="pass --connections N to import imap")
    ap.add_argument("--base", type=Path, default=None,
                    help="also time the import of this checkout (older code) in the same rotated runs")
    ap.add_argument("--pop3", action="store_true", help="also time import pop3 (direct)")
    ap.add_argument("--reader", action="store_true",
                    help="also time the IMAP reader alone through the proxy: one FETCH at a time vs pipelined")
    ap.add_argument("--floor", action="store_true", help="also measure the floor (reader alone + fixed per-mail work)")
    ap.add_argument("--record", action="store_true", help="rewrite the '## IMAP and POP3' section of bench/RESULTS.md")
    args = ap.parse_args()
    compile_checkout(Path(__file__).resolve().parent.parent, args.base)  # bench/bytecode.py
    if shutil.which("mbsync") is None:
        raise SystemExit("mbsync missing: apt-get install -y --no-install-recommends isync")
    from services.latency_proxy import LatencyProxy

    extra = [] if args.connections is None else ["--connections", str(args.connections)]
    if args.base is not None:
        CODE["base"] = args.base.resolve()
    work = Path(tempfile.mkdtemp(prefix="mailarchive-bench-imap-"))
    server = start_dovecot(work / "dovecot", users=(USER,))
    DOVECOT[:] = [server.proc.pid]
    started = machine()
    links: list[tuple[str, list[float], list[float]]] = []
    pop3 = low = None
    cpu: dict[str, list[float]] = {}
    reader: dict[int, list[float]] = {}
    try:
        password = server.users[USER]
        t0 = time.perf_counter()
        count, nbytes = fill(server.maildir(USER), args.count, args.seed)
        print(f"corpus: {count} mails, {nbytes / 1e6:.0f} MB written in {time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        server.doveadm("mailbox", "status", "-u", USER, "messages vsize", "INBOX")  # index before any timing
        print(f"dovecot indexed in {time.perf_counter() - t0:.0f} s")
        ca = server.ca_cert_path
        if args.rtt_ms > 0:
            with LatencyProxy("127.0.0.1", server.imap_port, delay=args.rtt_ms / 2000) as proxy:
                if args.reader:
                    purl = f"imap://{USER}@127.0.0.1:{proxy.port}"
                    for k in range(args.pairs):
                        for depth in ((1, 4) if k % 2 == 0 else (4, 1)):
                            secs = reader_alone(purl, ca, password, count, pipeline=depth)
                            reader.setdefault(depth, []).append(secs)
                            print(f"  reader alone, pipeline {depth}: {secs:.1f} s", flush=True)
                links.append((f"{args.rtt_ms:g} ms RTT (tests/services/latency_proxy.py)",
                              *pairs(work, proxy.port, ca, password, count, args.pairs, extra, "rtt", cpu)))
        links.append(("loopback, no proxy", *pairs(work, server.imap_port, ca, password, count, args.pairs, extra, "direct", cpu)))
        if args.pop3:
            secs_p, res = timed_import(work, "pop3", f"pop3://{USER}@127.0.0.1:{server.pop3_port}", ca, password)
            assert res["seen"] == count, res
            pop3 = secs_p
        if args.floor:
            low = floor(f"imap://{USER}@127.0.0.1:{server.imap_port}", ca, password, count)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    cmd = " ".join(["bench/bench_imap.py", *sys.argv[1:]]).replace(" --record", "")
    lines = [
        "## IMAP and POP3",
        "",
        f"`.venv/bin/python {cmd}` on {started} (load at the end: "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}); one Dovecot 2.3 INBOX with {count} mails, "
        f"{nbytes / 1e6:.0f} MB (bench/make_corpus.py messages), indexed before timing; STARTTLS with the test CA; "
        f"{args.pairs} alternating pairs per link, every run into a fresh target (a fresh archive; a fresh Maildir for "
        "mbsync, its default FSync yes); times include process start. The machine is shared by 8 engineers: "
        "short runs, so the ratios of one run are the figure, not the absolute times.",
        "",
        "| link | import imap s (median; runs) | mbsync s (median; runs) | import ÷ mbsync time | mails/s import | mails/s mbsync |",
        "|---|---|---|---|---|---|",
    ]
    for link, ours, theirs in links:
        mo, mt = statistics.median(ours), statistics.median(theirs)
        lines.append(f"| {link} | {mo:.1f} ({', '.join(f'{x:.1f}' for x in ours)}) | {mt:.1f} "
                     f"({', '.join(f'{x:.1f}' for x in theirs)}) | **{mo / mt:.2f}** | {count / mo:.0f} | {count / mt:.0f} |")
    if BASE:
        lines += ["", f"The same runs, rotated with them, of the import of `{args.base}` (the code before this "
                  "branch; its own copy of nothing else: the proxy and mbsync are this run's):", "",
                  "| link | base import s (median; runs) | this import s (median) | this ÷ base | base ÷ mbsync |",
                  "|---|---|---|---|---|"]
        for (link, ours, theirs), tag in zip(links, ("rtt", "direct") if args.rtt_ms > 0 else ("direct",)):
            b = BASE.get(tag)
            if b:
                mb, mo, mt = statistics.median(b), statistics.median(ours), statistics.median(theirs)
                lines.append(f"| {link} | {mb:.1f} ({', '.join(f'{x:.1f}' for x in b)}) | {mo:.1f} | "
                             f"**{mo / mb:.2f}** | {mb / mt:.2f} |")
        lines += ["", f"CPU seconds of the base import (median): {statistics.median(cpu['base']):.1f}."]
    if cpu:
        lines += ["", f"CPU seconds (user + system of the contender's processes, Dovecot not included), median of all "
                  f"runs: import imap {statistics.median(cpu['imap']):.1f}, mbsync {statistics.median(cpu['mbsync']):.1f}; "
                  f"Dovecot's own for them: {statistics.median(cpu['dovecot-imap']):.1f} and "
                  f"{statistics.median(cpu['dovecot-mbsync']):.1f}."]
        if "proxy-imap-rtt" in cpu:
            lines += ["", f"The latency proxy runs in the bench process (one Python thread) and competes for the cores: it took "
                      f"{statistics.median(cpu['proxy-imap-rtt']):.1f} CPU-s during an import, "
                      f"{statistics.median(cpu['proxy-mbsync-rtt']):.1f} during an mbsync run (median; not counted above)."]
    lines += ["", "Targets: over 20 ms RTT the import takes ≤ 0.5× mbsync's time; on loopback ≥ 1× mbsync's speed "
              "(time ratio ≤ 1.0).", ""]
    if reader:
        r1, r4 = statistics.median(reader[1]), statistics.median(reader[4])
        lines += [f"The IMAP reader alone (no archive) over {args.rtt_ms:g} ms RTT, median of {len(reader[1])}: one "
                  f"FETCH at a time (the importer before pipelining) {r1:.1f} s, four in flight {r4:.1f} s "
                  f"(**{r1 / r4:.2f}×**).", ""]
    if pop3 is not None:
        lines += [f"`mailarchive import pop3` (STLS, loopback): {pop3:.1f} s, {count / pop3:.0f} mails/s.", ""]
    if low is not None:
        lines += [
            f"Floor on this machine ({os.cpu_count()} cores): the IMAP reader alone took {low['reader_wall']:.1f} s and "
            f"{low['reader_cpu']:.1f} CPU-s of the whole machine (Dovecot {low['server_cpu']:.1f}); the per-mail work "
            f"the format fixes (SHA-256 of the mail, normalised body + BLAKE3, zstd 1 + AES-GCM, BLAKE3 of the record) took "
            f"{low['work_cpu']:.1f} CPU-s: no import on these cores takes less than **{low['floor']:.1f} s**. "
            f"Counted by process instead (load-proof: the machine's CPU includes whatever else runs): the reader "
            f"{low['own_reader']:.1f} CPU-s, Dovecot {low['dovecot']:.1f} (its master and reaped children: imap, "
            f"imap-login's TLS), the format {low['work_cpu']:.1f}: a floor of **{low['floor_own']:.1f} s**.",
            "",
        ]
        lines += _rtt_floor(links, cpu, low)
    text = "\n".join(lines)
    print(text)
    if args.record:
        record(text)


def _rtt_floor(links, cpu: dict, low: dict) -> list[str]:
    """The floor over the latency proxy: the floor of these cores plus the proxy's own CPU during an import (it runs
    on the same cores; a real link's latency costs no CPU), against the target (half of mbsync's median time)."""
    if "proxy-imap-rtt" not in cpu or not links or not links[0][0].endswith("(tests/services/latency_proxy.py)"):
        return []
    cores = os.cpu_count() or 1
    proxy = statistics.median(cpu["proxy-imap-rtt"])
    base = min(low["floor"], low["floor_own"])
    over = base + proxy / cores
    target = 0.5 * statistics.median(links[0][2])
    verdict = ("below the target: the link's target can be met on these cores" if over < target else
               "at or above the target: no import through this proxy on these cores meets it")
    return [f"Floor over the proxy: the lower floor above ({base:.1f} s) plus the proxy's "
            f"{proxy:.1f} CPU-s ÷ {cores} cores = **{over:.1f} s**, against 0.5× mbsync's median "
            f"({target:.1f} s): {verdict}.", ""]


def record(section: str) -> None:
    path = REPO / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    start = text.find("## IMAP and POP3")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section.rstrip("\n") + "\n" + (text[end:] if end >= 0 else "")
    path.write_text(text.rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
