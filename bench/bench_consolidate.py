"""Consolidation throughput against a plain copy of the same pack files (issue 7; issue 15 targets).

Builds an archive with about ``--mb`` MB of packs on two local media (mails
with random base64 attachments, imported through the library, not timed),
then, with the page cache dropped before every contender (root; else warm,
and the report says so), in ``--repeat`` pairs whose order alternates:

* local → local: ``mailarchive media consolidate`` (the CLI, a child
  process: its wall time and peak RSS) of the current packs onto a fresh
  local medium against ``cp -r`` of the same pack files followed by
  ``sync`` (the consolidation fsyncs every copy). The media form a chain:
  1,2 → 3, 3 → 4, ...
* local → SMB (a throwaway Samba on 127.0.0.1): consolidation onto a fresh
  smb:// medium against rclone's verified copy of the same packs to the same
  share (``rclone copy`` then ``rclone check --download``; the Debian
  ``rclone`` package has the SMB backend). Between pairs the packs come back
  to a fresh local medium (SMB → local, timed and shown, not compared).

Floors in the same run: the BLAKE3 checksum of the same packs on two
threads, nothing else (warm cache: the hash pass a verified copy cannot
skip); the CLI's fixed cost, ``media consolidate --dry-run`` (process start,
imports, archive and catalog open, the plan; no copy), warm, and what
``cp -r`` + ``sync`` would reach with that cost added; smbprotocol through
our SMB storage alone writing the packs to the share and reading them back
on three signed, unencrypted connections (no hash, no catalog), and writing
them once more without the FLUSH before each rename (what durability costs
against ``rclone copy``, which sends none): a verified
copy onto SMB must do both, plus the fixed cost and the share lock's recheck
wait (toolkit/shared_lock.py). CPU-seconds: the whole process tree (wait4)
for the CLI, the children's ``os.times`` for ``cp``/``sync`` and rclone.

``--baseline DIR`` (a checkout of earlier code, run as ``python -m toolkit`` from there) adds that code's
local → local consolidation to every pair as a third contender and its ``--dry-run`` to the fixed-cost
floor, alternating with this code's, so the two codes' seconds and CPU-seconds come from the same minutes.

``--resident`` adds, to every pair, the same consolidation forked from a process that has Python, DuckDB and the
toolkit imported already (the test suite's fork server, tests/cli_server.py; started before the pairs and kept
across the page-cache drops, as a resident process would be): a floor for the design change named for the 200 MB
case, not a command of the toolkit. Its time is the client's, from the request to the exit status.

Prints the section; ``--record`` replaces the "## Consolidation" section of
bench/RESULTS.md (other sections are kept).

    .venv/bin/python bench/bench_consolidate.py [--mb 200] [--repeat 3] [--baseline DIR] [--resident] [--record] [--no-smb]
"""
from __future__ import annotations

import argparse
import base64
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from importers.eml import EmlImporter  # noqa: E402
from media_tools import registry  # noqa: E402
from toolkit.archive import Archive  # noqa: E402
from toolkit.ingest import Ingest  # noqa: E402
from toolkit.reporter import NullReporter  # noqa: E402

from bench_import import cpu_model, loadavg, mailarchive_cmd, record as record_section, run_measured  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bytecode import compile_checkout  # noqa: E402

MAIL_RAW = 768 * 1024  # random bytes per mail (base64: ~1 MB of mail, ~0.78 MB packed)


def write_mails(d: Path, tag: str, count: int) -> None:
    d.mkdir(parents=True)
    for i in range(count):
        att = base64.encodebytes(os.urandom(MAIL_RAW)).replace(b"\n", b"\r\n")
        head = (
            f"From: bench@example.com\r\nTo: archive@example.com\r\nSubject: {tag} {i}\r\n"
            f"Message-ID: <{tag}.{i}@bench>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
            f"mail {i} of {tag}\r\n--b\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        (d / f"{i:05d}.eml").write_bytes(head + att + b"--b--\r\n")


def pack_files(medium: Path) -> list[Path]:
    return sorted((medium / "packs").rglob("*.pack"))


def drop_caches() -> bool:
    """Cold reads for the next contender (root only); False when the kernel refuses."""
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def warm(paths: list[Path]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            while f.read(8 << 20):
                pass


def total(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def children_cpu() -> float:
    """CPU-seconds (user + system) of the child processes waited for so far."""
    t = os.times()
    return t.children_user + t.children_system


def build(root: Path, mb: int) -> tuple[Archive, int]:
    per_medium = max(1, int(mb * 1e6 / (MAIL_RAW * 4 / 3 * 0.76) / 2))
    archive = Archive.create(root / "home", str(root / "m1"))
    archive.close()
    archive = Archive.open(root / "home", writer=True)
    for mid in (1, 2):
        if mid > 1:
            registry.add(archive, str(root / f"m{mid}"), activate=True)
        src = root / f"mails{mid}"
        write_mails(src, f"m{mid}", per_medium)
        Ingest(archive, NullReporter()).run(EmlImporter(str(src)))
        shutil.rmtree(src)
    files = pack_files(root / "m1") + pack_files(root / "m2")
    return archive, total(files)


def hash_floor(files: list[Path], threads: int = 2) -> float:
    """Seconds to checksum (BLAKE3, the pack checksum of format v2) the files on ``threads`` threads, warm cache."""
    from concurrent.futures import ThreadPoolExecutor

    from toolkit.hashes import stream_checksum

    warm(files)

    def one(p: Path) -> None:
        with open(p, "rb", buffering=0) as f:
            stream_checksum(f, 1 << 20)

    with ThreadPoolExecutor(threads) as pool:
        return timed(lambda: list(pool.map(one, files)))


def smb_floor(server, files: list[Path], tag: str, connections: int = 3) -> tuple[float, float, float]:
    """(write seconds, read-back seconds, write seconds without the FLUSH) of our SMB storage alone moving the files
    on ``connections`` signed, unencrypted connections in parallel (as a consolidation's pack threads): create-only
    pipelined writes, then the pipelined read-back with BLAKE3; no catalog, no comparison. The third figure writes
    the same files again without the SMB2 FLUSH a commit sends before its rename (the server's fsync: every copy of
    an archive is on disk before it is published, docs/media.md), as ``rclone copy`` writes: what durability costs."""
    from concurrent.futures import ThreadPoolExecutor

    from toolkit.storage import open_storage

    stores = [open_storage(server.url(f"floor-{tag}"), password=server.password, encrypt=False)
              for _ in range(connections)]
    try:
        def put(i: int) -> None:
            w = stores[i % connections].open_write(f"p{i}")
            with open(files[i], "rb") as f:
                while data := f.read(8 << 20):
                    w.write(data)
            w.commit()

        def get(i: int) -> None:
            stores[i % connections].blake3(f"p{i}")

        def put_unflushed(i: int) -> None:  # the commit's steps without its FLUSH (bench only: no such commit exists)
            w = stores[i % connections].open_write(f"q{i}")
            with open(files[i], "rb") as f:
                while data := f.read(8 << 20):
                    w.write(data)
            w._w.drain()
            w._f.close()
            w._rename()
            w._done = True

        warm(files)
        with ThreadPoolExecutor(connections) as pool:
            t_write = timed(lambda: list(pool.map(put, range(len(files)))))
            t_read = timed(lambda: list(pool.map(get, range(len(files)))))
            os.sync()
            t_unflushed = timed(lambda: list(pool.map(put_unflushed, range(len(files)))))
        return t_write, t_read, t_unflushed
    finally:
        for st in stores:
            st.close()
        shutil.rmtree(server.share_dir / f"floor-{tag}", ignore_errors=True)


# -- contenders ---------------------------------------------------------------------------------
def env_for(server=None) -> dict:
    env = dict(os.environ)
    env.pop("MAILARCHIVE_HOME", None)
    if server is not None:
        env["MAILARCHIVE_SMB_PASSWORD"] = server.password
    return env


def add_medium(home: Path, location: str, smb_password: str | None = None) -> int:
    """Register LOCATION as the new active medium (the previous one becomes standby); its ID."""
    with Archive.open(home, writer=True, smb_password=smb_password) as archive:
        registry.add(archive, location, smb_password=smb_password if location.startswith("smb://") else None,
                     activate=True)
        return archive.config.active_medium.id


def code_cmd(code: Path | None) -> list[str]:
    """This code's ``mailarchive``, or ``python -m toolkit`` of the checkout ``code`` (``--baseline``)."""
    return [sys.executable, "-m", "toolkit"] if code else mailarchive_cmd()


def code_env(env: dict, code: Path | None) -> dict:
    return dict(env, PYTHONPATH=str(code)) if code else env


def baseline_name(code: Path) -> str:
    marker = code / "COMMIT"
    return marker.read_text().strip()[:7] if marker.exists() else code.name


def run_consolidate(home: Path, sources: list[int], target: int, nbytes: int, env: dict, label: str,
                    code: Path | None = None):
    """``mailarchive media consolidate`` as a child process, cold cache; its Measure. ``code``: run that checkout's."""
    cold = drop_caches()
    cmd = code_cmd(code) + ["--archive", str(home), "--json", "media", "consolidate",
                            "--from", ",".join(map(str, sources)), "--into", str(target)]
    m = run_measured(label, cmd, code_env(env, code), cwd=code)
    if m.rc != 0:
        sys.exit(f"{label} failed (exit {m.rc}):\n{m.stderr[-3000:]}")
    import json
    summary = json.loads(m.stdout)["summary"]
    assert summary["bytes_copied"] == nbytes, (summary["bytes_copied"], nbytes)
    m.extra["inner"] = summary["seconds"]  # the consolidation itself, without process start and archive open
    m.extra["cold"] = cold
    return m


def run_resident(home: Path, sources: list[int], target: int, nbytes: int, env: dict) -> tuple[float, float]:
    """The consolidation forked from the test suite's fork server (imports done), cold page cache otherwise:
    (seconds from the request to the exit status, the consolidation's own JSON ``seconds``)."""
    import json

    from cli import run_cli  # tests/cli.py: starts tests/cli_server.py on first use

    cold = drop_caches()
    cmd = [sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "media", "consolidate",
           "--from", ",".join(map(str, sources)), "--into", str(target)]
    t0 = time.perf_counter()
    p = run_cli(cmd, env=env)
    t = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"the consolidation forked from the resident process failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    summary = json.loads(p.stdout)["summary"]
    assert summary["bytes_copied"] == nbytes and cold, (summary["bytes_copied"], nbytes, cold)
    return t, summary["seconds"]


def start_resident(env: dict) -> None:
    """Start the fork server and let it finish its imports (its first command), before any timed run."""
    from cli import run_cli

    p = run_cli([sys.executable, "-m", "toolkit", "--version"], env=env)
    assert p.returncode == 0, p.stderr


def cp_sync(src_packs: Path, plain: Path) -> tuple[float, float]:
    """(seconds, CPU-seconds) of ``cp -r`` of a medium's packs/ then ``sync``, cold; the copy is removed
    afterwards (not timed)."""
    drop_caches()
    c0 = children_cpu()
    t = timed(lambda: (subprocess.run(["cp", "-r", str(src_packs), str(plain)], check=True),
                       subprocess.run(["sync"], check=True)))
    cpu = children_cpu() - c0
    shutil.rmtree(plain)
    subprocess.run(["sync"], check=True)
    return t, cpu


def rclone_verified(src_packs: Path, server, sub: str) -> tuple[float, float, float]:
    """(copy seconds, check seconds, CPU-seconds of both) of ``rclone copy`` + ``rclone check --download``
    onto the share, cold."""
    ob = subprocess.run(["rclone", "obscure", server.password], capture_output=True, text=True, check=True).stdout.strip()
    remote = f":smb,host={server.host},port={server.port},user={server.user},pass={ob}:{server.share}/{sub}"
    env = dict(os.environ, RCLONE_CONFIG="/dev/null")
    drop_caches()
    c0 = children_cpu()
    t_copy = timed(lambda: subprocess.run(["rclone", "copy", str(src_packs), remote], check=True, env=env,
                                          capture_output=True))
    t_check = timed(lambda: subprocess.run(["rclone", "check", "--download", str(src_packs), remote], check=True,
                                           env=env, capture_output=True))
    cpu = children_cpu() - c0
    shutil.rmtree(server.share_dir / sub, ignore_errors=True)
    return t_copy, t_check, cpu


def rclone_version() -> str | None:
    exe = shutil.which("rclone")
    if exe is None:
        return None
    out = subprocess.run([exe, "version"], capture_output=True, text=True).stdout.splitlines()
    return out[0] if out else "rclone"


def bench_local(root: Path, home: Path, nbytes: int, repeat: int, baseline: Path | None = None,
                resident: bool = False) -> dict:
    """``repeat`` alternating pairs: consolidation of the current medium onto a fresh local one, cp -r + sync
    (and the ``baseline`` code's consolidation, chained after or before this code's)."""
    env = env_for()
    if resident:
        start_resident(env)
    pairs = []
    state = {"sources": [1, 2], "n": 3}
    for r in range(repeat):
        src_dirs = [root / f"m{s}" / "packs" for s in state["sources"]]
        consolidated: list[int] = []

        def do_cp():
            runs = [cp_sync(d, root / f"plain-{i}") for i, d in enumerate(src_dirs)]
            return sum(r[0] for r in runs), sum(r[1] for r in runs)

        def do_cons(code: Path | None = None):
            target = add_medium(home, str(root / f"m{state['n']}"))
            label = f"baseline ({baseline_name(code)}) local → local" if code else "consolidation local → local"
            m = run_consolidate(home, state["sources"], target, nbytes, env, label, code)
            consolidated.extend(state["sources"])
            state["sources"], state["n"] = [state["n"]], state["n"] + 1
            return m

        def do_resident():
            target = add_medium(home, str(root / f"m{state['n']}"))
            t, inner = run_resident(home, state["sources"], target, nbytes, env)
            consolidated.extend(state["sources"])
            state["sources"], state["n"] = [state["n"]], state["n"] + 1
            return t, inner

        pair: dict = {}
        order = ["cp", "cons", "base", "resident"] if r % 2 == 0 else ["resident", "base", "cons", "cp"]
        for who in order:
            if who == "cp":
                pair["cp"], pair["cp_cpu"] = do_cp()
            elif who == "cons":
                pair["cons"] = do_cons()
            elif who == "base" and baseline is not None:
                pair["base"] = do_cons(baseline)
            elif who == "resident" and resident:
                pair["resident"] = do_resident()
        pairs.append(pair)
        m, t_cp = pair["cons"], pair["cp"]
        line = (f"  local pair {r + 1}: consolidation {m.seconds:.2f} s ({m.cpu_user + m.cpu_sys:.2f} CPU-s), "
                f"cp -r + sync {t_cp:.2f} s, {t_cp / m.seconds:.2f}x, peak RSS {m.maxrss_mb:.0f} MB")
        if "base" in pair:
            b = pair["base"]
            line += f"; baseline {b.seconds:.2f} s ({b.cpu_user + b.cpu_sys:.2f} CPU-s), {t_cp / b.seconds:.2f}x"
        if "resident" in pair:
            t_res, inner = pair["resident"]
            line += f"; forked from a resident process {t_res:.2f} s (itself {inner:.2f} s), {t_cp / t_res:.2f}x"
        print(line, flush=True)
        for s in consolidated:
            shutil.rmtree(root / f"m{s}" / "packs", ignore_errors=True)  # retired: keep the disk small
    sources, n = state["sources"], state["n"]
    warm_files = pack_files(root / f"m{sources[0]}")
    fixed, fixed_base, n = fixed_floor(home, sources[0], n, env, baseline)
    return {"pairs": pairs, "hash_floor": hash_floor(warm_files), "fixed": fixed, "fixed_base": fixed_base,
            "next": (sources[0], n)}


def fixed_floor(home: Path, source: int, n: int, env: dict, baseline: Path | None = None):
    """The CLI's fixed cost, warm: process start, imports, the archive and catalog open and the plan with its
    free-space check, as ``media consolidate --dry-run`` runs them (no probe, no copy); (its median Measure,
    the baseline code's or None, the next medium number). The two codes alternate."""
    target = add_medium(home, str(home.parent / f"m{n}"))
    codes = [None] + ([baseline] if baseline is not None else [])
    runs: dict = {c: [] for c in codes}
    for i in range(3):
        for code in (codes if i % 2 == 0 else codes[::-1]):
            cmd = code_cmd(code) + ["--archive", str(home), "--json", "media", "consolidate", "--dry-run",
                                    "--from", str(source), "--into", str(target)]
            m = run_measured("dry run", cmd, code_env(env, code), cwd=code)
            if m.rc != 0:
                sys.exit(f"the dry run failed (exit {m.rc}):\n{m.stderr[-3000:]}")
            runs[code].append(m)
    med = {c: sorted(ms, key=lambda m: m.seconds)[1] for c, ms in runs.items()}
    return med[None], med.get(baseline) if baseline is not None else None, n + 1


def ensure_rclone() -> None:
    """Install the Debian rclone package (it has the SMB backend) when it is missing and we are root."""
    if shutil.which("rclone") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing rclone (apt-get install -y rclone) ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "rclone"], capture_output=True)


def bench_smb(root: Path, home: Path, nbytes: int, repeat: int, start: tuple[int, int]) -> dict | None:
    ensure_rclone()
    if shutil.which("rclone") is None:
        print("SMB part skipped: rclone missing (apt-get install -y rclone)")
        return None
    try:
        from services.samba import start_samba

        server = start_samba(root / "samba")
    except Exception as exc:  # not root, smbd missing
        print(f"SMB part skipped: {exc}")
        return None
    env = env_for(server)
    pairs, back = [], []
    source, n = start
    src_dir = root / f"m{source}"
    try:
        for r in range(repeat):
            src_packs = src_dir / "packs"
            def do_rclone():
                return rclone_verified(src_packs, server, f"rclone-{r}")
            def do_cons():
                target = add_medium(home, server.url(f"medium-{r}"), smb_password=server.password)
                return target, run_consolidate(home, [source], target, nbytes, env, "consolidation local → SMB")
            if r % 2 == 0:
                rc, (target, m) = do_rclone(), do_cons()
            else:
                (target, m), rc = do_cons(), do_rclone()
            pairs.append({"rclone": rc, "cons": m})
            print(f"  SMB pair {r + 1}: consolidation {m.seconds:.2f} s, rclone copy + check {rc[0] + rc[1]:.2f} s, "
                  f"{(rc[0] + rc[1]) / m.seconds:.2f}x, peak RSS {m.maxrss_mb:.0f} MB", flush=True)
            shutil.rmtree(src_packs, ignore_errors=True)
            if r + 1 < repeat:  # bring the packs back to a fresh local medium for the next pair
                src_dir = root / f"back-{r}"
                local = add_medium(home, str(src_dir), smb_password=server.password)
                back.append(run_consolidate(home, [target], local, nbytes, env, "consolidation SMB → local"))
                shutil.rmtree(server.share_dir / f"medium-{r}" / "packs", ignore_errors=True)
                source = local
        files = sorted((server.share_dir / f"medium-{repeat - 1}" / "packs").rglob("*.pack"))
        t_write, t_read, t_unflushed = smb_floor(server, files, "a")
        return {"pairs": pairs, "back": back, "write": t_write, "read": t_read, "unflushed": t_unflushed}
    finally:
        server.stop()


# -- the report ----------------------------------------------------------------------------------
#: toolkit.shared_lock.SETTINGS["recheck"]: a writer on a share waits this long after creating the lock
from toolkit.shared_lock import SETTINGS as _LOCK_SETTINGS  # noqa: E402

SHARED_LOCK_RECHECK = _LOCK_SETTINGS["recheck"]


def section_title(mb: int) -> str:
    """The RESULTS.md section of a run: the default size has the plain title, others name their size."""
    return "## Consolidation" if mb == 200 else f"## Consolidation, {mb} MB of packs"

def _median(pairs: list[dict], ratio) -> dict:
    return sorted(pairs, key=ratio)[(len(pairs) - 1) // 2]


def report(local: dict, smb: dict | None, args, nbytes: int, load_before: str) -> str:
    def rate(t):
        return nbytes / 1e6 / t

    lr = lambda p: p["cp"] / p["cons"].seconds  # noqa: E731
    cpu = lambda m: m.cpu_user + m.cpu_sys  # noqa: E731
    lm = _median(local["pairs"], lr)
    cold = all(p["cons"].extra["cold"] for p in local["pairs"])
    lines = [
        section_title(args.mb),
        "",
        f"`bench/bench_consolidate.py --mb {args.mb} --repeat {args.repeat}{' --baseline BASE' if args.baseline else ''}{' --resident' if args.resident else ''}{' --no-smb' if args.no_smb else ''}` on {os.cpu_count()} CPUs, {cpu_model()}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}, load average before "
        f"{load_before}, after {loadavg()}; {nbytes / 1e6:.0f} MB of packs "
        f"({'page cache dropped before every contender: cold' if cold else 'warm: dropping the page cache was refused'}).",
        "",
        "| run (median pair) | seconds | MB/s | CPU-s | peak RSS MB | consolidation ÷ peer (speed) |",
        "|---|---|---|---|---|---|",
        f"| consolidation local → local (CLI) | {lm['cons'].seconds:.2f} | {rate(lm['cons'].seconds):.0f} | "
        f"{cpu(lm['cons']):.2f} | {lm['cons'].maxrss_mb:.0f} | **{lr(lm):.2f}×** |",
        f"| … of which the consolidation itself (its JSON `seconds`: plan, copy, read-back, remap, retire) | "
        f"{lm['cons'].extra['inner']:.2f} | {rate(lm['cons'].extra['inner']):.0f} | | | "
        f"{lm['cp'] / lm['cons'].extra['inner']:.2f}× |",
        f"| `cp -r` + `sync` local → local | {lm['cp']:.2f} | {rate(lm['cp']):.0f} | {lm['cp_cpu']:.2f} | | |",
        f"| floor: BLAKE3 of the packs alone, 2 threads, warm | {local['hash_floor']:.2f} | "
        f"{rate(local['hash_floor']):.0f} | | | |",
        f"| floor: the CLI's fixed cost (`media consolidate --dry-run`: start, imports, archive + catalog open, "
        f"plan; warm, median of 3) | {local['fixed'].seconds:.2f} | | {cpu(local['fixed']):.2f} | "
        f"{local['fixed'].maxrss_mb:.0f} | |",
        f"| floor: `cp -r` + `sync` time + that fixed cost, against `cp -r` + `sync` | "
        f"{lm['cp'] + local['fixed'].seconds:.2f} | | | | {lm['cp'] / (lm['cp'] + local['fixed'].seconds):.2f}× |",
    ]
    if args.baseline is not None:
        name = baseline_name(args.baseline)
        bm = lm["base"]
        fb = local["fixed_base"]
        lines += [
            f"| baseline code ({name}): consolidation local → local (CLI), same pair | {bm.seconds:.2f} | "
            f"{rate(bm.seconds):.0f} | {cpu(bm):.2f} | {bm.maxrss_mb:.0f} | {lm['cp'] / bm.seconds:.2f}× |",
            f"| baseline code ({name}): its fixed cost (`--dry-run`, warm, median of 3, alternating with this code's) | "
            f"{fb.seconds:.2f} | | {cpu(fb):.2f} | {fb.maxrss_mb:.0f} | |",
        ]
    if args.resident:
        rr = lambda p: p["cp"] / p["resident"][0]  # noqa: E731
        rm = _median(local["pairs"], rr)
        lines += [
            f"| floor of a resident process: the same consolidation forked from a process with its imports done "
            f"(tests/cli_server.py; median of its own ratios) | {rm['resident'][0]:.2f} | {rate(rm['resident'][0]):.0f} | | | "
            f"{rr(rm):.2f}× (pairs: " + ", ".join(f"{rr(p):.2f}×" for p in local["pairs"]) + ") |",
            f"| … of which the consolidation itself | {rm['resident'][1]:.2f} | {rate(rm['resident'][1]):.0f} | | | "
            f"{rm['cp'] / rm['resident'][1]:.2f}× |",
        ]
    verdict = [f"local → local {lr(lm):.2f}× `cp -r` + `sync` (median of {len(local['pairs'])} pairs: "
               + ", ".join(f"{lr(p):.2f}×" for p in local["pairs"]) + f"; target ≥ 0.8×: {'met' if lr(lm) >= 0.8 else 'NOT met'})"]
    if args.baseline is not None:
        verdict.append(f"the baseline code ({baseline_name(args.baseline)}) in the same pairs: "
                       + ", ".join(f"{p['cp'] / p['base'].seconds:.2f}×" for p in local["pairs"])
                       + "; CPU-s per pair, this code / baseline: "
                       + ", ".join(f"{cpu(p['cons']):.2f} / {cpu(p['base']):.2f}" for p in local["pairs"]))
    peaks = [p["cons"].maxrss_mb for p in local["pairs"]]
    if smb:
        sr = lambda p: (p["rclone"][0] + p["rclone"][1]) / p["cons"].seconds  # noqa: E731
        sm = _median(smb["pairs"], sr)
        rc_copy, rc_check, rc_cpu = sm["rclone"]
        lines += [
            f"| consolidation local → SMB (CLI) | {sm['cons'].seconds:.2f} | {rate(sm['cons'].seconds):.0f} | "
            f"{cpu(sm['cons']):.2f} | {sm['cons'].maxrss_mb:.0f} | **{sr(sm):.2f}×** |",
            f"| … of which the consolidation itself | {sm['cons'].extra['inner']:.2f} | "
            f"{rate(sm['cons'].extra['inner']):.0f} | | | {(rc_copy + rc_check) / sm['cons'].extra['inner']:.2f}× |",
            f"| `rclone copy` + `rclone check --download` local → SMB | {rc_copy + rc_check:.2f} | "
            f"{rate(rc_copy + rc_check):.0f} | {rc_cpu:.2f} | | |",
            f"| … of which `rclone copy` | {rc_copy:.2f} | {rate(rc_copy):.0f} | | | |",
            f"| … of which `rclone check --download` | {rc_check:.2f} | {rate(rc_check):.0f} | | | |",
        ]
        for m in smb["back"][:1]:
            lines.append(f"| consolidation SMB → local (CLI, between pairs) | {m.seconds:.2f} | {rate(m.seconds):.0f} | "
                         f"{cpu(m):.2f} | {m.maxrss_mb:.0f} | |")
        lines += [
            f"| floor: our SMB storage alone, write, 3 connections | {smb['write']:.2f} | {rate(smb['write']):.0f} | | | |",
            f"| … the same writes without the FLUSH before each rename (as `rclone copy`: not durable) | "
            f"{smb['unflushed']:.2f} | {rate(smb['unflushed']):.0f} | | | {rc_copy / smb['unflushed']:.2f}× (`rclone copy` ÷ it) |",
            f"| floor: … read back + BLAKE3, 3 connections | {smb['read']:.2f} | {rate(smb['read']):.0f} | | | |",
            f"| floor: write + read back | {smb['write'] + smb['read']:.2f} | {rate(smb['write'] + smb['read']):.0f} | | | "
            f"{(rc_copy + rc_check) / (smb['write'] + smb['read']):.2f}× (rclone ÷ floor) |",
            f"| floor: write + read back + the CLI's fixed cost + the share lock's recheck wait "
            f"({SHARED_LOCK_RECHECK:g} s) | {smb['write'] + smb['read'] + local['fixed'].seconds + SHARED_LOCK_RECHECK:.2f} | "
            f"| | | {(rc_copy + rc_check) / (smb['write'] + smb['read'] + local['fixed'].seconds + SHARED_LOCK_RECHECK):.2f}× |",
        ]
        verdict.append(f"local → SMB {sr(sm):.2f}× rclone's verified copy (pairs: "
                       + ", ".join(f"{sr(p):.2f}×" for p in smb["pairs"]) + f"; target ≥ 1×: {'met' if sr(sm) >= 1 else 'NOT met'})")
        peaks += [p["cons"].maxrss_mb for p in smb["pairs"]] + [m.maxrss_mb for m in smb["back"]]
    else:
        lines.append("| local → SMB | skipped (no Samba or no rclone) | | | |")
    verdict.append(f"peak RSS of every consolidation {max(peaks):.0f} MB (target < 400 MB: "
                   f"{'met' if max(peaks) < 400 else 'NOT met'})")
    rv = rclone_version()
    lines += [
        "",
        "Targets: " + "; ".join(verdict) + ".",
        "",
        f"{len(local['pairs'])} pairs per comparison, each contender once per pair, the order alternating (this shared VM's "
        "speed drifts within minutes); the table shows the median pair. Consolidation times are the CLI's whole "
        "run (process start, catalog, plan with free-space check and write probe, copy, read-back, remap, retire); "
        "peak RSS is the largest process (wait4 and sampled VmHWM).",
        "What a consolidation does per byte beyond the plain copy: every copy is flushed to disk (fsync; SMB2 FLUSH), "
        "then read back and its BLAKE3 compared with the catalog (the one hash pass); local → local the kernel "
        "copies (`copy_file_range`), four threads; onto SMB three threads, each with its own signed, unencrypted "
        "connection (packs are sealed) and several WRITE/READ requests in flight (toolkit/storage/smb_pipeline.py). "
        f"rclone ({rv or 'not installed'}, Debian) copies with its SMB backend (signed, not encrypted) and "
        "`check --download` reads both sides again and compares them byte for byte.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200, help="approximate MB of packs to build (default 200)")
    ap.add_argument("--repeat", type=int, default=3, help="pairs per comparison (default 3); the median pair is shown")
    ap.add_argument("--dir", type=Path, default=None, help="parent of the work directory (default: the temp dir)")
    ap.add_argument("--no-smb", action="store_true", help="skip the SMB part")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a checkout of other (earlier) code: its local → local consolidation joins every pair, its "
                         "dry run the fixed-cost floor (a COMMIT file in it names the commit)")
    ap.add_argument("--resident", action="store_true",
                    help="also time the consolidation forked from a process with its imports done (tests/cli_server.py): "
                         "the floor of a resident process")
    ap.add_argument("--record", action="store_true",
                    help="replace the '## Consolidation' section of bench/RESULTS.md ('## Consolidation, N MB of packs' "
                         "for another --mb)")
    args = ap.parse_args()
    compile_checkout(Path(__file__).resolve().parent.parent, args.baseline)  # bench/bytecode.py
    load_before = loadavg()
    root = Path(tempfile.mkdtemp(prefix="bench-consolidate-", dir=args.dir))
    try:
        t0 = time.perf_counter()
        archive, nbytes = build(root, args.mb)
        archive.close()
        print(f"built {nbytes / 1e6:.0f} MB of packs in {time.perf_counter() - t0:.0f} s", flush=True)
        local = bench_local(root, root / "home", nbytes, args.repeat, args.baseline, args.resident)
        smb = None if args.no_smb else bench_smb(root, root / "home", nbytes, args.repeat, local["next"])
        section = report(local, smb, args, nbytes, load_before)
        print()
        print(section)
        if args.record:
            record_section(section, section_title(args.mb))
            print("recorded in bench/RESULTS.md")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
