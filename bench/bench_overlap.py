"""Where the cores idle during an import (issue 15): a timeline of busy cores, from outside the process.

Runs ``mailarchive import KIND SOURCE`` into a fresh archive and samples, every 10 ms, the CPU ticks
(``/proc/<pid>/stat`` utime+stime) of the driver and of every process below it, and their RSS. Prints
per 100 ms how many cores the driver and the workers kept busy (``D`` driver, ``W`` workers: one
character per 0.1 core), then the phases: *start* (until the workers have burnt their first 0.1 CPU-s
of pack work, not counting their interpreter start), *middle*, and *end* (after the last moment both
workers were busy), each with its wall time and mean busy cores. No instrumentation in the toolkit: the
same script measures any checkout (``--tree``), so old and new code run alternately in one run.

    .venv/bin/python bench/bench_overlap.py [--kind eml] [--source /work/bench40k/eml] [--pairs 3]
        [--base /work/wt/pipeline-overlap-base] [--timeline] [--tail]

With ``--base`` each pair runs the base checkout and this one alternately; the median of wall, CPU-s
(the whole tree), peak RSS (the sum over the tree and the largest process, sampled) and the idle core-seconds
(per 100 ms the cores neither the driver nor a worker used, summed: over the run and in its middle phase) is
printed for each, with the worker-seconds the workers spent asleep (``S`` in ``/proc``: waiting
on a queue or pipe, such as a two-phase answer; a worker that waits for a core on a loaded machine is runnable,
not asleep, though a driver slowed by the load still makes its workers wait longer), and the cores the tree kept
busy over the run's last 0.5 s (``--tail`` prints them per 50 ms, driver + workers: the import's tail, the last
tasks, the final commit and the exit). The load average before and after is printed: compare within one run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bytecode import compile_checkout  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PASSWORD = "bench-password-123"
TAIL, TAIL_BIN = 0.5, 0.05  # the run's last half second, in 50 ms bins (--tail)


def _stat(pid: int) -> tuple[int, float, int, str] | None:
    """(parent pid, CPU seconds, RSS bytes, state: R running or runnable, S sleeping, D waiting for the disk, ...)
    of a process, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, int(fields[21]) * PAGE, fields[0].decode()


def _tree(root: int) -> dict[int, tuple[float, int]]:
    """pid -> (CPU seconds, RSS) of ``root`` and every process below it."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = _stat(int(name))
            if s is not None:
                stats[int(name)] = s
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out[pid] = stats[pid][1:]
            todo += [p for p, s in stats.items() if s[0] == pid]
    return out


def run(tree: Path, kind: str, source: str, extra: list[str]) -> dict:
    archive = Path(tempfile.mkdtemp(prefix="overlap-")) / "a"
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "PYTHONPATH": str(tree)}
    py = str(REPO / ".venv" / "bin" / "python")
    subprocess.run([py, "-m", "toolkit", "--archive", str(archive), "--quiet", "init"], env=env, check=True,
                   stdout=subprocess.DEVNULL, cwd=tree)
    t0 = time.monotonic()
    proc = subprocess.Popen([py, "-m", "toolkit", "--archive", str(archive), "--quiet", "--json", "import", kind,
                             *extra, source], env=env, stdout=subprocess.DEVNULL, cwd=tree)
    samples = []  # (t, {pid: (cpu, rss)})
    last: dict[int, tuple[float, int]] = {}
    while proc.poll() is None:
        snap = _tree(proc.pid)
        if snap:
            last.update(snap)
            samples.append((time.monotonic() - t0, snap))
        time.sleep(0.01)
    wall = time.monotonic() - t0
    shutil.rmtree(archive.parent, ignore_errors=True)
    return {"wall": wall, "samples": samples, "driver": proc.pid, "rc": proc.returncode}


def analyse(r: dict, bins: float = 0.1) -> dict:
    samples, driver = r["samples"], r["driver"]
    pids = sorted({p for _, s in samples for p in s})
    first_seen = {}
    for t, s in samples:
        for p in s:
            first_seen.setdefault(p, t)
    workers = [p for p in pids if p != driver]
    nb = int(r["wall"] / bins) + 1
    d_busy, w_busy = [0.0] * nb, [0.0] * nb
    prev: dict[int, float] = {}
    for t, s in samples:
        b = min(nb - 1, int(t / bins))
        for p, (cpu, _rss, _state) in s.items():
            delta = cpu - prev.get(p, cpu if p != driver else 0.0)  # a worker's first sample: its start is not work
            prev[p] = cpu
            (d_busy if p == driver else w_busy)[b] += delta / bins
    peak_rss = max((sum(rss for _c, rss, _s in s.values()) for _t, s in samples), default=0)
    peak_one = max((rss for _t, s in samples for _c, rss, _s in s.values()), default=0)  # the largest process
    cpu_end = {}
    for _t, s in samples:
        for p, (cpu, _rss, _state) in s.items():
            cpu_end[p] = cpu
    # phases: start = until the workers' CPU (beyond their first sample) reaches 0.1 s; end = after the last
    # bin where the workers kept more than 1.5 cores busy
    acc, start_end = 0.0, None
    for i, w in enumerate(w_busy):
        acc += w * bins
        if acc >= 0.1:
            start_end = i
            break
    start_end = start_end or 0
    full = [i for i, w in enumerate(w_busy) if w > 1.5]
    end_start = (full[-1] + 1) if full else nb
    phases = {}
    cores = os.cpu_count() or 1
    for name, lo, hi in (("start", 0, start_end), ("middle", start_end, end_start), ("end", end_start, nb)):
        span = max(hi - lo, 0)
        busy = sum(d_busy[lo:hi]) + sum(w_busy[lo:hi])
        phases[name] = (span * bins, busy / span if span else 0.0)
    # idle core-seconds: per bin the cores the import left unused (over the whole run, and in the middle phase,
    # where both workers should be busy: a worker waiting for the driver's answer shows here)
    idle = [max(0.0, cores - d - w) * bins for d, w in zip(d_busy, w_busy)]
    # worker-seconds asleep over the run (state S in /proc: blocked on a queue or pipe, e.g. waiting for the driver's
    # two-phase answer, or for a task at the end; the pool's helper processes, which do no work, are left out):
    # a worker that only waits for a core on a loaded machine is runnable (R), not asleep; but a driver slowed by
    # the load keeps its workers waiting longer, so this figure moves with the load too (less than idle cores)
    asleep = 0.0
    prev_t = None
    for t, s in samples:
        if prev_t is not None:
            asleep += (t - prev_t) * sum(1 for p, (_c, _r, state) in s.items()
                                         if p != driver and state == "S" and cpu_end.get(p, 0.0) > 0.2)
        prev_t = t
    # the tail: the cores the tree kept busy over the run's last TAIL seconds (each process's CPU carried forward
    # from its last sample), and per TAIL_BIN the driver's and the workers' share of them
    latest: dict[int, float] = {}
    totals = []  # (t, driver CPU so far, workers' CPU so far)
    for t, s in samples:
        for p, (cpu, _rss, _state) in s.items():
            latest[p] = cpu
        d = latest.get(driver, 0.0)
        totals.append((t, d, sum(latest.values()) - d))

    def at(when: float) -> tuple[float, float]:
        before = [(d, w) for t, d, w in totals if t <= when]
        return before[-1] if before else (0.0, 0.0)
    wall = r["wall"]
    edges = [wall - TAIL + i * TAIL_BIN for i in range(round(TAIL / TAIL_BIN) + 1)]
    tail = []
    for lo, hi in zip(edges, edges[1:]):
        (d0, w0), (d1, w1) = at(lo), at(hi) if hi < wall else (cpu_end.get(driver, 0.0),
                                                                 sum(cpu_end.values()) - cpu_end.get(driver, 0.0))
        tail.append((max(0.0, d1 - d0) / TAIL_BIN, max(0.0, w1 - w0) / TAIL_BIN))
    return {"wall": r["wall"], "cpu": sum(cpu_end.values()), "driver_cpu": cpu_end.get(driver, 0.0),
            "tail_busy": sum(d + w for d, w in tail) / len(tail), "tail": tail,
            "idle": sum(idle), "idle_middle": sum(idle[start_end:end_start]), "asleep": asleep,
            "peak_rss": peak_rss, "peak_one": peak_one, "d": d_busy, "w": w_busy, "phases": phases, "workers": len(workers)}


def show_tail(a: dict) -> None:
    bins = " ".join(f"{d:.1f}+{w:.1f}" for d, w in a["tail"])
    print(f"  last {TAIL:.1f} s, per {TAIL_BIN * 1000:.0f} ms (driver+workers cores): {bins}")


def show_timeline(a: dict) -> None:
    for i, (d, w) in enumerate(zip(a["d"], a["w"])):
        bar = "D" * round(d * 10) + "W" * round(w * 10)
        print(f"  {i / 10:5.1f}s {d + w:4.2f} {bar}")


def fmt(a: dict) -> str:
    ph = " ".join(f"{k} {s:.1f}s@{b:.2f}" for k, (s, b) in a["phases"].items())
    return (f"wall {a['wall']:.2f} s  CPU {a['cpu']:.2f} s (driver {a['driver_cpu']:.2f})  peak RSS "
            f"{a['peak_rss'] / 2**20:.0f} MB (largest process {a['peak_one'] / 2**20:.0f})  processes {a['workers'] + 1}  "
            f"idle {a['idle']:.2f} core-s (middle {a['idle_middle']:.2f}; workers asleep {a['asleep']:.2f} s)  "
            f"last {TAIL:.1f} s {a['tail_busy']:.2f} cores  [{ph}]")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", default="eml")
    ap.add_argument("--source", default="/work/bench40k/eml")
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--base", type=Path, help="a checkout of the old code, run alternately with this one")
    ap.add_argument("--timeline", action="store_true", help="print the busy cores per 100 ms")
    ap.add_argument("--tail", action="store_true", help="print the busy cores of the run's last 0.5 s per 50 ms")
    ap.add_argument("extra", nargs="*", help="more arguments for the import command")
    args = ap.parse_args()
    compile_checkout(Path(__file__).resolve().parent.parent, args.base)  # bench/bytecode.py
    load_before = os.getloadavg()[0]
    trees = [("new", REPO)] + ([("base", args.base)] if args.base else [])
    results: dict[str, list[dict]] = {name: [] for name, _ in trees}
    for i in range(args.pairs):
        order = trees if i % 2 == 0 else trees[::-1]
        for name, tree in order:
            a = analyse(run(tree, args.kind, args.source, args.extra))
            results[name].append(a)
            print(f"{name:4} {fmt(a)}", flush=True)
            if args.timeline:
                show_timeline(a)
            if args.tail:
                show_tail(a)
    print(f"load average {load_before:.2f} (1 min) before, {os.getloadavg()[0]:.2f} after")
    for name, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs)
               for k in ("wall", "cpu", "driver_cpu", "peak_rss", "peak_one", "idle", "idle_middle", "asleep",
                         "tail_busy")}
        print(f"median {name:4} {args.kind}: wall {med['wall']:.2f} s  CPU {med['cpu']:.2f} s (driver "
              f"{med['driver_cpu']:.2f})  peak RSS {med['peak_rss'] / 2**20:.0f} MB (tree; largest process {med['peak_one'] / 2**20:.0f})  "
              f"idle {med['idle']:.2f} core-s (middle {med['idle_middle']:.2f}; workers asleep {med['asleep']:.2f} s)  "
              f"last {TAIL:.1f} s {med['tail_busy']:.2f} cores  over {len(rs)} runs")


if __name__ == "__main__":
    sys.exit(main())
