"""Import throughput against restic on the same corpus (issue 3, acceptance 6).

In one run, on one seeded corpus (bench/make_corpus.py: an EML tree, the
same messages as one mboxrd file and as a Maildir), times

* ``mailarchive import eml``     of the EML tree,
* ``mailarchive import mbox --variant mboxrd`` of corpus.mbox,
* ``mailarchive import maildir`` of the Maildir (or "not available"),
* ``restic backup``              of the same EML tree,

each into a fresh archive / repository (``init`` is not timed). Before each
contender the page cache is dropped (``sync; echo 3 > /proc/sys/vm/drop_caches``,
root only); where that is refused, the contender's input is read once
instead, so every contender starts warm, and the report says which.

Per contender: wall time, messages/s and MB/s of the source, CPU seconds
(user + system, the main process and its workers together), and peak RSS:
the largest single process (``wait4`` ru_maxrss over the process tree) and,
from sampling ``/proc/<pid>/status`` VmHWM of the tree every 50 ms, the main
process and the largest worker separately. Then one 300 MB message is
imported alone (K1: mails above 32 MiB are streamed) with its peak RSS.

``--base DIR`` adds the imports of another checkout (a clean ``git worktree add --detach DIR main``, run
with this environment's interpreter and ``PYTHONPATH=DIR``; copy its compiled modules in first) as
contenders "import eml (base)" etc., in the same alternating rounds.

``--record`` replaces the "## Import (issue 3)" section of bench/RESULTS.md
(other sections are kept). ``--keep DIR`` leaves the EML archive and the
restic repository in DIR for ``bench/bench_verify.py --reuse DIR``.

    .venv/bin/python bench/bench_import.py [--corpus /tmp/corpus20k] [--count 20000] [--record] [--keep DIR] [--base DIR]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bytecode import compile_checkout  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
PASSWORD = "bench-password-not-secret"
RSS_LIMIT_MB = 400


# -- environment ---------------------------------------------------------------------------------
def mailarchive_cmd() -> list[str]:
    exe = REPO / ".venv" / "bin" / "mailarchive"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "toolkit"]


def restic_exe() -> str:
    exe = shutil.which("restic")
    if exe is None:
        sys.exit("restic is missing: apt-get install -y restic (Debian package)")
    return exe


def bench_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["MAILARCHIVE_PASSWORD"] = PASSWORD
    env["RESTIC_PASSWORD"] = PASSWORD
    env.pop("MAILARCHIVE_HOME", None)
    env.update(extra)
    return env


#: OpenSSL's capability mask that hides the SHA extensions (CPUID leaf 7 EBX bit 29) from OpenSSL, and so
#: from Python's hashlib: a CPU with them then runs our SHA-256 as one without. restic 0.14 (Go 1.19)
#: does not use them either way (measured: same CPU-seconds with GODEBUG=cpu.sha=off).
SHA_MASK = ":~0x20000000"


def mask_sha_and_reexec() -> None:
    """Run this bench again with SHA_MASK in the environment (OpenSSL reads it when it loads, so the bench
    process itself, which measures the floor, needs it from its start)."""
    if os.environ.get("OPENSSL_ia32cap") != SHA_MASK:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "OPENSSL_ia32cap": SHA_MASK})


def cpu_model() -> str:
    cpu = "unknown CPU"
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        flags = next((l for l in text.splitlines() if l.startswith("flags")), "")
        cpu += " (with SHA extensions)" if " sha_ni" in flags else " (without SHA extensions)"
        if os.environ.get("OPENSSL_ia32cap") == SHA_MASK and " sha_ni" in flags:
            cpu += ", masked for OpenSSL (OPENSSL_ia32cap): our SHA-256 runs as on a CPU without them"
    except OSError:
        pass
    return cpu


def loadavg() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def machine(load_before: str) -> str:
    mem = ""
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return (
        f"nproc {os.cpu_count()}, {cpu_model()}{mem}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, load average before the run {load_before}, after {loadavg()}"
    )


def drop_caches() -> bool:
    """Drop the page cache (root); False where the kernel refuses."""
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def warm(paths: list[Path]) -> None:
    """Read every file below PATHS once, so the contender starts from a warm page cache."""
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for p in files:
            with open(p, "rb") as f:
                while f.read(1 << 20):
                    pass


def prepare_cache(paths: list[Path], mode: str) -> str:
    """'cold' drops the cache (falls back to warm when refused); returns what was done."""
    if mode == "cold" and drop_caches():
        return "cold"
    warm(paths)
    return "warm"


# -- measuring a process tree --------------------------------------------------------------------
def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def _tree(pid: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _status_kb(pid: int, key: bytes) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _cpu_io_s(pid: int) -> tuple[float, float]:
    """(user + system CPU seconds, seconds waited for block I/O) of one process, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rfind(b")") + 2:].split()
        tck = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / tck, int(fields[39]) / tck
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0


class DelayAccounting:
    """Switch on the kernel's per-task delay accounting (block I/O wait in /proc/PID/stat) while measuring."""

    PATH = "/proc/sys/kernel/task_delayacct"

    def __enter__(self):
        self.before = None
        try:
            self.before = Path(self.PATH).read_text().strip()
            if self.before != "1":
                Path(self.PATH).write_text("1\n")
            self.on = True
        except OSError:
            self.on = self.before == "1"
        return self

    def __exit__(self, *exc):
        if self.before not in (None, "1"):
            try:
                Path(self.PATH).write_text(self.before + "\n")
            except OSError:
                pass


@dataclass
class Measure:
    name: str
    seconds: float = 0.0
    rc: int = 0
    maxrss_mb: float = 0.0          # wait4: the largest single process of the tree
    main_hwm_mb: float = 0.0        # sampled VmHWM of the main process
    worker_hwm_mb: float = 0.0      # sampled VmHWM of the largest descendant
    cpu_user: float = 0.0           # the whole tree (wait4)
    cpu_sys: float = 0.0
    cpu_main: float = 0.0           # sampled per process
    cpu_workers: float = 0.0
    io_main: float = 0.0            # block I/O wait, sampled (needs delay accounting)
    io_workers: float = 0.0
    nproc_seen: int = 1
    stdout: str = ""
    stderr: str = ""
    extra: dict = field(default_factory=dict)


def run_measured(name: str, cmd: list[str], env: dict, cwd: Path | None = None, interval: float = 0.05) -> Measure:
    """Run CMD, sampling VmHWM and CPU of it and its descendants; wall time and wait4 rusage."""
    m = Measure(name)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
        hwm: dict[int, int] = {}
        cpu: dict[int, float] = {}
        iow: dict[int, float] = {}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                for pid in _tree(proc.pid):
                    kb = _status_kb(pid, b"VmHWM:")
                    if kb:
                        hwm[pid] = max(hwm.get(pid, 0), kb)
                        c, w = _cpu_io_s(pid)
                        cpu[pid] = max(cpu.get(pid, 0.0), c)
                        iow[pid] = max(iow.get(pid, 0.0), w)
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, ru = os.wait4(proc.pid, 0)
        m.seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        m.rc = proc.returncode
        m.maxrss_mb = ru.ru_maxrss / 1024
        m.cpu_user, m.cpu_sys = ru.ru_utime, ru.ru_stime
        m.main_hwm_mb = hwm.get(proc.pid, 0) / 1024
        others = [v for p, v in hwm.items() if p != proc.pid]
        m.worker_hwm_mb = max(others, default=0) / 1024
        m.cpu_main = cpu.get(proc.pid, 0.0)
        m.cpu_workers = sum(v for p, v in cpu.items() if p != proc.pid)
        m.io_main = iow.get(proc.pid, 0.0)
        m.io_workers = sum(v for p, v in iow.items() if p != proc.pid)
        m.nproc_seen = len(hwm)
        # Workers of a forkserver/spawn pool may be reaped by a helper process, not by the main one, and
        # then escape wait4's rusage: take the sampled figures where they are larger.
        m.maxrss_mb = max(m.maxrss_mb, m.main_hwm_mb, m.worker_hwm_mb)
        sampled_cpu = m.cpu_main + m.cpu_workers
        if sampled_cpu > m.cpu_user + m.cpu_sys:
            m.cpu_user, m.cpu_sys = sampled_cpu - m.cpu_sys, m.cpu_sys
        out.seek(0)
        err.seek(0)
        m.stdout = out.read().decode("utf-8", "replace")
        m.stderr = err.read().decode("utf-8", "replace")
    return m


# -- the corpus ----------------------------------------------------------------------------------
@dataclass
class Corpus:
    root: Path
    messages: int
    eml_bytes: int
    mbox_bytes: int
    maildir_bytes: int

    @property
    def eml(self) -> Path:
        return self.root / "eml"

    @property
    def mbox(self) -> Path:
        return self.root / "corpus.mbox"

    @property
    def maildir(self) -> Path:
        return self.root / "maildir"


def _tree_bytes(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def ensure_corpus(path: Path | None, count: int, seed: int, work: Path, mean_size: str | None = None) -> Corpus:
    """Use the corpus at PATH when it holds COUNT messages in all three forms, else generate one."""
    root = path
    if root is None or not (root / "eml").is_dir() or not (root / "corpus.mbox").is_file() or not (root / "maildir").is_dir():
        root = root or work / "corpus"
        print(f"generating a {count}-message corpus (seed {seed}) into {root} ...", flush=True)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, str(BENCH / "make_corpus.py"), str(root), "--count", str(count), "--seed", str(seed), "--mbox",
             "--maildir", *(["--mean-size", mean_size] if mean_size else [])],
            check=True,
        )
        print(f"  generated in {time.perf_counter() - t0:.0f} s", flush=True)
    n_eml, b_eml = _tree_bytes(root / "eml")
    n_md, b_md = _tree_bytes(root / "maildir")
    if n_eml != count:
        sys.exit(f"{root} holds {n_eml} messages, not --count {count}: pass --count {n_eml}, or another --corpus")
    if n_md != n_eml:
        sys.exit(f"{root}/maildir holds {n_md} files, the EML tree {n_eml}: regenerate the corpus")
    return Corpus(root, n_eml, b_eml, (root / "corpus.mbox").stat().st_size, b_md)


def write_big_message(path: Path, mb: int) -> int:
    """One mail of about MB megabytes (a base64 attachment of random bytes), written in pieces."""
    raw_chunk = 57 * 1024 * 16  # base64 lines of 76 characters
    head = (
        "From: Big Sender <big@example.com>\nTo: archive@example.com\nSubject: one big mail\n"
        "Date: Mon, 7 Jan 2019 09:15:00 +0000\nMessage-ID: <big-mail-1@example.com>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="bigb"\n\n--bigb\nContent-Type: text/plain\n\nsee attachment\n'
        '--bigb\nContent-Type: application/octet-stream; name="big.bin"\nContent-Transfer-Encoding: base64\n\n'
    ).encode()
    target = mb * 1_000_000
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(head)
        while f.tell() < target:
            f.write(base64.encodebytes(os.urandom(raw_chunk)))
        f.write(b"--bigb--\n")
        return f.tell()


# -- contenders ----------------------------------------------------------------------------------
def init_archive(home: Path, env: dict) -> None:
    subprocess.run(mailarchive_cmd() + ["--archive", str(home), "--quiet", "init"], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def run_import(kind: str, home: Path, source: list[str], env: dict, cache_mode: str, warm_paths: list[Path],
               base: Path | None = None) -> Measure:
    """``base``: the import runs that checkout's code (``PYTHONPATH``), named "import KIND (base)"."""
    init_archive(home, env)
    cache = prepare_cache(warm_paths, cache_mode)
    # -P: the base's toolkit from PYTHONPATH, never the one in the bench's working directory (`python -m` puts the
    # working directory first on sys.path; run from a checkout, the "base" imported that checkout's code)
    cmd = mailarchive_cmd() if base is None else [sys.executable, "-P", "-m", "toolkit"]
    cmd = cmd + ["--archive", str(home), "--json", "import", kind, *source]
    name = f"import {kind}" + (" (base)" if base is not None else "")
    print(f"  {name} ({cache} cache) ...", flush=True)
    m = run_measured(name, cmd, env if base is None else dict(env, PYTHONPATH=str(base)))
    m.extra["cache"] = cache
    try:
        m.extra["summary"] = json.loads(m.stdout)
    except ValueError:
        m.extra["summary"] = None
    if m.rc not in (0, 1):
        print(f"  import {kind} failed with exit {m.rc}:\n{m.stderr[-2000:]}", flush=True)
    m.extra["stored"] = stored_counts(home, env)
    return m


def stored_counts(home: Path, env: dict) -> tuple[int, int] | None:
    """(message rows, distinct blob ids) in the catalog: a mail stored twice means dedup failed."""
    r = subprocess.run(mailarchive_cmd() + ["--archive", str(home), "--json", "sql",
                                            "SELECT count(*) AS n, count(DISTINCT blob_id) AS b FROM messages"],
                       env=env, capture_output=True, text=True)
    try:
        row = json.loads(r.stdout)[0]
        return int(row["n"]), int(row["b"])
    except (ValueError, LookupError, TypeError):
        return None


def run_restic_backup(repo: Path, source: Path, env: dict, cache_mode: str) -> Measure:
    rc = restic_exe()
    env = dict(env, RESTIC_REPOSITORY=str(repo), RESTIC_CACHE_DIR=str(repo.parent / "restic-cache"))
    subprocess.run([rc, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    cache = prepare_cache([source], cache_mode)
    print(f"  restic backup ({cache} cache) ...", flush=True)
    m = run_measured("restic backup", [rc, "backup", "--json", "--quiet", str(source)], env)
    m.extra["cache"] = cache
    if m.rc != 0:
        print(f"  restic backup failed with exit {m.rc}:\n{m.stderr[-2000:]}", flush=True)
    return m


def maildir_available(env: dict) -> bool:
    r = subprocess.run(mailarchive_cmd() + ["import", "maildir", "--help"], env=env, capture_output=True)
    return r.returncode == 0


def summary_counts(m: Measure) -> str:
    s = m.extra.get("summary")
    if not isinstance(s, dict):
        return ""
    runs = s.get("runs") if isinstance(s.get("runs"), list) else [s]
    keys = ("seen", "archived", "duplicates", "errors")
    tot = {k: sum(int(r.get(k) or 0) for r in runs if isinstance(r, dict)) for k in keys}
    return ", ".join(f"{k} {v}" for k, v in tot.items())


# -- the report ----------------------------------------------------------------------------------
def fmt_io(m: Measure) -> str:
    """Block I/O wait of the main process / the workers; '?' where the kernel's figure is implausible."""
    main = f"{m.io_main:.0f}" if m.io_main <= m.seconds * 1.05 else "?"
    workers = f"{m.io_workers:.0f}" if m.io_workers <= m.seconds * max(1, m.nproc_seen - 1) * 1.05 else "?"
    return f"{main} / {workers}"


def fmt_row(m: Measure, messages: int, nbytes: int, restic: Measure | None) -> str:
    if m.extra.get("unavailable"):
        return f"| {m.name} | not available | | | | | | | |"
    rate = messages / m.seconds
    mbs = nbytes / 1e6 / m.seconds
    ratio = ""
    if restic is not None and m is not restic and restic.rc == 0 and m.rc in (0, 1):
        ratio = f"{restic.seconds / m.seconds:.2f}×"
    status = "" if m.rc in (0, 1) else f" (exit {m.rc})"
    return (
        f"| {m.name}{status} | {m.seconds:.1f} | {rate:.0f} | {mbs:.1f} | "
        f"{m.cpu_user + m.cpu_sys:.0f} ({m.cpu_main:.0f} main + {m.cpu_workers:.0f} workers) | "
        f"{fmt_io(m)} | {m.maxrss_mb:.0f} | {m.main_hwm_mb:.0f} / {m.worker_hwm_mb:.0f} | {ratio} |"
    )


def measure_floor(eml_root: Path, cache_mode: str) -> dict:
    """Read every EML file (cache as for the contenders) and do only the per-mail work the format fixes.

    In this process, one thread: SHA-256 of the mail (blob id; in batches of 8 MiB by the engine an import
    chooses on this machine, toolkit/blob_ids.py: hashlib or the multi-buffer one), the body normalised and
    hashed (dedup key), zstd level 1 + AES-256-GCM (the sealed record), BLAKE3 of the record (the pack file
    checksum, format v2). No import of this tree on these cores can take less wall time than the larger of
    the reading time and (reading CPU + work CPU) ÷ cores.
    """
    import uuid

    sys.path.insert(0, str(REPO))
    from format_floor import BATCH_BYTES, work_cpu as format_work
    from toolkit import blob_ids

    prepare_cache([eml_root], cache_mode)
    key, archive_uuid = os.urandom(32), uuid.uuid4()
    read_wall = read_cpu = work_cpu = 0.0
    mails = 0
    batch: list[bytes] = []

    def work() -> float:
        spent = format_work(batch, key, archive_uuid)
        batch.clear()
        return spent

    size = 0
    for dirpath, _dirs, files in os.walk(eml_root):
        for fn in sorted(files):
            t0, c0 = time.perf_counter(), time.process_time()
            with open(os.path.join(dirpath, fn), "rb") as f:
                raw = f.read()
            read_wall += time.perf_counter() - t0
            read_cpu += time.process_time() - c0
            batch.append(raw)
            size += len(raw)
            mails += 1
            if size >= BATCH_BYTES:
                work_cpu += work()
                size = 0
    work_cpu += work()
    cores = os.cpu_count() or 1
    return {"mails": mails, "read_wall": read_wall, "read_cpu": read_cpu, "work_cpu": work_cpu, "cores": cores,
            "floor": max(read_wall, (read_cpu + work_cpu) / cores), "sha_engine": blob_ids.choose()}


def floor_lines(low: dict, restic: Measure | None, imports: list[Measure]) -> list[str]:
    text = (
        f"Floor ({low['cores']} cores, same tree, same cache): reading the {low['mails']} files took "
        f"{low['read_wall']:.1f} s ({low['read_cpu']:.1f} CPU-s); the per-mail work the format fixes (SHA-256 of the mail "
        f"by {low.get('sha_engine', 'hashlib')}, "
        f"normalised body + BLAKE3, zstd 1 + AES-GCM, BLAKE3 of the record) {low['work_cpu']:.1f} CPU-s in one process: "
        f"no import can take less than **{low['floor']:.1f} s**"
    )
    if restic is not None and restic.rc == 0:
        budget = restic.seconds / TARGET
        text += f"; {TARGET}× restic means {budget:.1f} s" + (
            " — below the floor: not reachable on this machine at its speed of the moment." if low["floor"] > budget
            else f", which leaves {budget - low['floor']:.1f} s for everything else (parsing, hand-off, packs, catalog)."
        )
    else:
        text += "."
    gaps = [f"`{m.name}` {m.seconds - low['floor']:.1f} s ({m.seconds / low['floor']:.2f}× the floor)"
            for m in imports if m.seconds and not m.extra.get("unavailable")]
    if gaps:
        text += " Gap between the floor and each import: " + ", ".join(gaps) + "."
    text += (" The floor runs in the same round as the contenders of the table (in the alternating order); "
             "this VM's CPU speed drifts by up to 2× within minutes, so even within a round it is an estimate, "
             "not an exact bound.")
    return [text, ""]


TARGET = 1.5   # each import ≥ 1.5× restic backup's messages/s


def _table(results: list[Measure], corpus: Corpus, big: Measure | None = None) -> list[str]:
    restic = next((m for m in results if m.name == "restic backup"), None)
    lines = [
        "| contender | seconds | messages/s | MB/s | CPU s (tree) | I/O wait s main / workers | peak RSS MB (largest process) "
        "| VmHWM MB main / largest worker | × restic (msg/s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in results:
        src_bytes = {"import mbox": corpus.mbox_bytes, "import maildir": corpus.maildir_bytes}.get(
            m.name.removesuffix(" (base)"), corpus.eml_bytes)
        lines.append(fmt_row(m, corpus.messages, src_bytes, restic))
    if big is not None:
        lines.append(
            f"| import eml of one {big.extra['bytes'] / 1e6:.0f} MB mail (K1) | {big.seconds:.1f} | | "
            f"{big.extra['bytes'] / 1e6 / big.seconds:.1f} | {big.cpu_user + big.cpu_sys:.0f} | "
            f"{fmt_io(big)} | {big.maxrss_mb:.0f} | "
            f"{big.main_hwm_mb:.0f} / {big.worker_hwm_mb:.0f} | |"
        )
    return lines


def _verdict(results: list[Measure], big: Measure | None, mode: str) -> str:
    restic = next((m for m in results if m.name == "restic backup"), None)
    byname = {m.name: m for m in results}
    verdict = []
    if restic is not None and restic.rc == 0:
        for kind in ("eml", "mbox", "maildir"):
            m = byname.get(f"import {kind}")
            if m is not None and not m.extra.get("unavailable"):
                r = restic.seconds / m.seconds
                verdict.append(f"`import {kind}` {r:.2f}× (target ≥ {TARGET}×: {'met' if r >= TARGET else 'NOT met'})")
    peak = max([m.maxrss_mb for m in results if m.name != "restic backup" and not m.extra.get("unavailable")]
               + ([big.maxrss_mb] if big else []), default=0)
    verdict.append(f"peak RSS of any mailarchive process {peak:.0f} MB (target < {RSS_LIMIT_MB} MB: "
                   f"{'met' if peak < RSS_LIMIT_MB else 'NOT met'})")
    return f"Targets ({mode} cache, the median round): × restic's messages/s: " + "; ".join(verdict) + "."


def report(parts: list, big: Measure | None, corpus: Corpus, args, load_before: str) -> str:
    """PARTS: (cache mode, results of the median round, floor dict or None, rounds line, cache note) per mode."""
    size = f" --mean-size {args.mean_size}" if args.mean_size else ""
    lines = [
        section_title(args),
        "",
        f"`bench/bench_import.py --count {corpus.messages}{size} --repeat {args.repeat} --cache {args.cache}"
        f"{' --mask-sha' if args.mask_sha else ''}{f' --base {args.base}' if args.base else ''}` on {machine(load_before)}.",
        f"Corpus: `bench/make_corpus.py --count {corpus.messages} --seed {args.seed}{size}`: {corpus.messages} messages "
        f"(mean {corpus.eml_bytes / corpus.messages / 1e3:.0f} KB), "
        f"EML tree {corpus.eml_bytes / 1e6:.0f} MB, mbox {corpus.mbox_bytes / 1e6:.0f} MB, Maildir {corpus.maildir_bytes / 1e6:.0f} MB.",
    ]
    for i, (mode, results, low, rounds, note) in enumerate(parts):
        lines += ["", f"**{mode.capitalize()} cache.** {note}", ""]
        lines += _table(results, corpus, big if i == 0 else None)
        lines.append("")
        for m in results:
            counts = summary_counts(m)
            if counts:
                lines.append(f"- {m.name}: {counts}.")
        for m in results:
            st = m.extra.get("stored")
            if st and st[0] != st[1]:
                lines.append(f"- **{m.name}: DEDUP FAILED**: {st[0]} message rows but {st[1]} distinct blob ids "
                             f"({st[0] - st[1]} byte-identical mails stored twice); the figures above are not valid.")
        lines += ["", _verdict(results, big if i == 0 else None, mode)]
        if rounds:
            lines += ["", rounds]
        if low is not None:
            restic = next((m for m in results if m.name == "restic backup"), None)
            lines += [""] + floor_lines(low, restic, [m for m in results if m.name.startswith("import ")])
    lines += [
        "",
        "Peak RSS is per process (the limit applies per process): ru_maxrss from wait4 is the largest single "
        "process of the tree; VmHWM is sampled every 50 ms for the main process and each worker. CPU seconds are "
        "user + system of the whole tree; the main/worker split and the block I/O wait (kernel delay accounting, "
        "switched on for the run) are sampled from /proc/<pid>/stat. "
        "restic (Debian) backs up into a fresh local repository (repository format 2, zstd auto).",
    ]
    return "\n".join(lines) + "\n"


def record(section: str, title: str) -> None:
    """Replace the section starting with TITLE in bench/RESULTS.md (append when absent); keep the others."""
    path = BENCH / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    start = text.find(title + "\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("" if end < 0 else "\n" + text[end + 1:])
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


# -- main ----------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=None,
                    help="corpus directory (eml/, corpus.mbox, maildir/); generated there when missing (default: in the work dir)")
    ap.add_argument("--count", type=int, default=20_000, help="messages in the corpus (default 20000)")
    ap.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    ap.add_argument("--dir", type=Path, default=None, help="parent of the work directory (default: the system temp dir)")
    ap.add_argument("--cache", choices=("cold", "warm", "both"), default="both",
                    help="cold: drop the page cache before each contender (falls back to warm); warm: read the input "
                         "once first; both (default): the rounds cold, then the rounds warm, one table each")
    ap.add_argument("--mean-size", default=None,
                    help="mean mail size of a generated corpus (make_corpus.py --mean-size, e.g. 40k; default ~116 KB)")
    ap.add_argument("--only", default="eml,mbox,maildir,restic,big,floor",
                    help="comma-separated subset of eml,mbox,maildir,restic,big,floor (default: all)")
    ap.add_argument("--big-mb", type=int, default=300, help="size of the single big mail (default 300 MB)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds of eml/mbox/maildir/restic, order alternating; the table shows the median round (default 1)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep the EML archive and the restic repository in this directory (for bench_verify.py --reuse)")
    ap.add_argument("--record", action="store_true", help="replace the '## Import (issue 3)' section of bench/RESULTS.md")
    ap.add_argument("--base", type=Path, default=None,
                    help="also run the imports of this checkout (PYTHONPATH), as contenders 'import KIND (base)'")
    ap.add_argument("--mask-sha", action="store_true",
                    help="hide the CPU's SHA extensions from OpenSSL (OPENSSL_ia32cap) for every contender and the "
                         "floor: the figures of a CPU without them, on this one")
    args = ap.parse_args()
    compile_checkout(Path(__file__).resolve().parent.parent, args.base)  # bench/bytecode.py
    if args.mask_sha:
        mask_sha_and_reexec()
    only = set(args.only.split(","))

    load_before = loadavg()
    env = bench_env()
    work = Path(tempfile.mkdtemp(prefix="bench-import-", dir=args.dir))
    with DelayAccounting():
        try:
            _run(args, only, env, work, load_before)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _contender(kind: str, corpus: Corpus, args, env: dict, work: Path, keep: Path | None, cache: str) -> Measure | dict:
    """One timed run of one contender into a fresh archive or repository (the floor: its dict)."""
    if kind.endswith("-base"):
        kind = kind.removesuffix("-base")
        source = {"eml": [str(corpus.eml)], "mbox": ["--variant", "mboxrd", str(corpus.mbox)],
                  "maildir": [str(corpus.maildir)]}[kind]
        home = work / f"archive-{kind}-base"
        m = run_import(kind, home, source, env, cache, [Path(source[-1])], base=args.base.resolve())
        shutil.rmtree(home, ignore_errors=True)
        return m
    if kind == "floor":
        print(f"  floor ({cache} cache) ...", flush=True)
        return measure_floor(corpus.eml, cache)
    if kind == "eml":
        home = (keep or work) / "archive-eml"
        shutil.rmtree(home, ignore_errors=True)
        return run_import("eml", home, [str(corpus.eml)], env, cache, [corpus.eml])
    if kind == "mbox":
        m = run_import("mbox", work / "archive-mbox", ["--variant", "mboxrd", str(corpus.mbox)], env,
                       cache, [corpus.mbox])
        shutil.rmtree(work / "archive-mbox", ignore_errors=True)
        return m
    if kind == "maildir":
        if not maildir_available(env):
            return Measure("import maildir", extra={"unavailable": True})
        m = run_import("maildir", work / "archive-maildir", [str(corpus.maildir)], env, cache, [corpus.maildir])
        shutil.rmtree(work / "archive-maildir", ignore_errors=True)
        return m
    repo = (keep or work) / "restic-repo"
    shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(repo.parent / "restic-cache", ignore_errors=True)
    return run_restic_backup(repo, corpus.eml, env, cache)


def _ratio(rnd: dict[str, Measure], kind: str) -> float | None:
    m, restic = rnd.get(kind), rnd.get("restic")
    if m is None or restic is None or restic.rc != 0 or not m.seconds or m.extra.get("unavailable"):
        return None
    return restic.seconds / m.seconds


def _median_round(rounds: list[dict[str, Measure]]) -> dict[str, Measure]:
    """The round whose eml ÷ restic ratio is the median (the first round without that ratio)."""
    ranked = [r for r in rounds if _ratio(r, "eml") is not None]
    if not ranked:
        return rounds[0]
    ranked.sort(key=lambda r: _ratio(r, "eml"))
    return ranked[(len(ranked) - 1) // 2]


def rounds_line(rounds: list[dict[str, Measure]]) -> str | None:
    if len(rounds) < 2:
        return None
    parts = []
    for kind in ("eml", "eml-base", "mbox", "mbox-base", "maildir", "maildir-base"):
        ratios = [_ratio(r, kind) for r in rounds]
        if all(x is not None for x in ratios):
            ordered = sorted(ratios)
            parts.append(f"import {kind.replace('-base', ' (base)')} {', '.join(f'{x:.2f}×' for x in ratios)} "
                         f"(median {ordered[(len(ordered) - 1) // 2]:.2f}×)")
    seconds = []
    for kind in ("eml", "eml-base", "mbox", "mbox-base", "maildir", "maildir-base", "restic"):
        times = [r[kind].seconds if kind in r and r[kind].seconds else None for r in rounds]
        if all(t is not None for t in times):
            seconds.append(f"{'restic backup' if kind == 'restic' else 'import ' + kind.replace('-base', ' (base)')} "
                           f"{', '.join(f'{t:.2f}' for t in times)} s")
    return (f"{len(rounds)} rounds, the order of the contenders alternating (this VM's speed drifts by up to 2× "
            f"within minutes); × restic per round: " + "; ".join(parts)
            + (f"; seconds per round: {'; '.join(seconds)}" if seconds else "")
            + ". The table shows the round with the median `import eml` ratio.")


def section_title(args) -> str:
    return "## Import (issue 3)" if not args.mean_size else f"## Import (issue 3), mean mail size {args.mean_size}"


def _cache_note(mode: str, got: set) -> str:
    if got == {"cold"}:
        return "Page cache dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) before every contender: cold reads."
    if got == {"warm"}:
        return ("Page cache warm for every contender (its input read once before it"
                + (", dropping the cache was refused)." if mode == "cold" else ")."))
    return f"Page cache: {', '.join(sorted(got))}."


def _run(args, only: set, env: dict, work: Path, load_before: str) -> None:
    corpus = ensure_corpus(args.corpus, args.count, args.seed, work, args.mean_size)
    print(f"corpus {corpus.root}: {corpus.messages} messages, {corpus.eml_bytes / 1e6:.0f} MB; load {load_before}", flush=True)
    keep = args.keep.resolve() if args.keep else None
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        for sub in ("archive-eml", "restic-repo", "restic-cache"):
            shutil.rmtree(keep / sub, ignore_errors=True)
    modes = ["cold", "warm"] if args.cache == "both" else [args.cache]
    parts = []
    for mode in modes:
        rounds: list[dict[str, Measure]] = []
        for r in range(args.repeat):
            kinds = [k for k in ("eml", "mbox", "maildir", "restic", "floor") if k in only]
            if args.base:  # each import of the base checkout right after the same import of this one
                kinds = [x for k in kinds for x in ([k, k + "-base"] if k in ("eml", "mbox", "maildir") else [k])]
            if r % 2:
                kinds.reverse()  # alternate the order: the VM's speed drifts within minutes
            print(f"{mode} cache, round {r + 1} of {args.repeat}: {', '.join(kinds)}", flush=True)
            rounds.append({k: _contender(k, corpus, args, env, work, keep, mode) for k in kinds})
        chosen = _median_round(rounds)
        results = [chosen[k] for k in ("eml", "eml-base", "mbox", "mbox-base", "maildir", "maildir-base", "restic")
                   if k in chosen]
        got = {m.extra.get("cache") for m in results if m.extra.get("cache")}
        parts.append((mode, results, chosen.get("floor"), rounds_line(rounds), _cache_note(mode, got)))
    big = None
    if "big" in only:
        src = work / "big" / "big.eml"
        size = write_big_message(src, args.big_mb)
        big = run_import("eml", work / "archive-big", [str(src.parent)], env, modes[0], [src.parent])
        big.name = "import eml (one big mail)"
        big.extra["bytes"] = size
        shutil.rmtree(work / "big", ignore_errors=True)
    section = report(parts, big, corpus, args, load_before)
    print()
    print(section)
    if keep and "eml" in only:
        (keep / "bench-state.json").write_text(json.dumps({
            "corpus": str(corpus.root), "messages": corpus.messages, "eml_bytes": corpus.eml_bytes,
            "archive": str(keep / "archive-eml"), "restic_repo": str(keep / "restic-repo") if "restic" in only else None,
        }, indent=1))
        print(f"kept the EML archive and the restic repository in {keep}")
    if args.record:
        record(section, section_title(args))
        print("recorded in bench/RESULTS.md")


if __name__ == "__main__":
    main()
