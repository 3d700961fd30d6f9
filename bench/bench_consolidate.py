"""Consolidation throughput against a plain copy of the same pack files (issue 7, acceptance 5).

Builds an archive with about ``--mb`` MB of packs on two local media (mails
with random base64 attachments, imported through the library), then times

* local → local, cold: page cache dropped before each contender (as in the
  import and verify benchmarks: a consolidation reads old media, not memory):
  ``media consolidate`` 1,2 → 3 (in-process) against ``cp -r`` of the same
  pack files followed by ``sync`` (the consolidation fsyncs every copy);
* local → local, warm: the same bytes read once before each contender:
  consolidation 3 → 4 against ``cp -r`` + ``sync`` and plain ``cp -r``;
* local → SMB, cold (when the throwaway Samba server can start):
  consolidation 4 → an smb:// medium against ``smbclient`` ``mput`` of the
  same files.

* floors: the BLAKE3 checksum of the same pack files on two threads with nothing else
  (warm cache) — the hash pass a verified copy cannot skip; and smbprotocol
  alone writing the files to the share, then reading them back, on three
  connections with no hashing — a verified copy onto SMB must do both.

Prints MB/s and the ratios; ``--record`` rewrites the "## Consolidation"
section of bench/RESULTS.md (other sections are kept).

    .venv/bin/python bench/bench_consolidate.py [--mb 200] [--record] [--no-smb]
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

from importers.eml import EmlImporter  # noqa: E402
from media_tools import registry  # noqa: E402
from media_tools.consolidate import consolidate  # noqa: E402
from toolkit.archive import Archive  # noqa: E402
from toolkit.ingest import Ingest  # noqa: E402
from toolkit.reporter import NullReporter  # noqa: E402

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


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        flags = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags"))
        sha = "with" if " sha_ni" in flags else "without"
        cpu += f" ({sha} SHA extensions)"
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, {cpu}, Python {platform.python_version()}, {platform.system()} {platform.release()}, "
        f"load average at the end {load}"
    )


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
    registry.add(archive, str(root / "m3"), activate=True)
    files = pack_files(root / "m1") + pack_files(root / "m2")
    return archive, total(files)


def _cp_sync(sources: list[Path], plain: Path) -> tuple[float, float]:
    plain.mkdir()
    t_cp = timed(lambda: [subprocess.run(["cp", "-r", str(p), str(plain / f"s{i}")], check=True)
                          for i, p in enumerate(sources)])
    t_sync = timed(lambda: subprocess.run(["sync"], check=True))
    shutil.rmtree(plain)
    subprocess.run(["sync"], check=True)
    return t_cp, t_cp + t_sync


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


def smb_floor(server, files: list[Path], connections: int = 3) -> tuple[float, float]:
    """(write seconds, read seconds) of smbprotocol alone moving the files, ``connections`` in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    from toolkit.storage import open_storage

    stores = [open_storage(server.url("floor"), password=server.password) for _ in range(connections)]
    try:
        def put(i: int) -> None:
            w = stores[i % connections].open_write(f"p{i}")
            with open(files[i], "rb") as f:
                while data := f.read(8 << 20):
                    w.write(data)
            w.commit()

        def get(i: int) -> None:
            with stores[i % connections].open_read(f"p{i}") as f:
                while f.read(8 << 20):
                    pass

        warm(files)
        with ThreadPoolExecutor(connections) as pool:
            t_write = timed(lambda: list(pool.map(put, range(len(files)))))
            t_read = timed(lambda: list(pool.map(get, range(len(files)))))
        return t_write, t_read
    finally:
        for st in stores:
            st.close()


def bench_local(root: Path, archive: Archive, nbytes: int) -> dict:
    out: dict = {"bytes": nbytes}
    # cold: media 1 and 2 -> 3
    cold = drop_caches()
    _, out["cold_cp_sync"] = _cp_sync([root / "m1" / "packs", root / "m2" / "packs"], root / "plain")
    drop_caches()
    result: dict = {}
    out["cold_consolidate"] = timed(lambda: result.update(consolidate(archive, [1, 2], 3)))
    assert result["summary"]["bytes_copied"] == nbytes, result["summary"]
    out["cold"] = cold
    # warm: medium 3 -> 4, its packs read once before each contender
    registry.add(archive, str(root / "m4"), activate=True)
    files = pack_files(root / "m3")
    warm(files)
    out["warm_cp"], out["warm_cp_sync"] = _cp_sync([root / "m3" / "packs"], root / "plain")
    warm(files)
    result = {}
    out["warm_consolidate"] = timed(lambda: result.update(consolidate(archive, [3], 4)))
    assert result["summary"]["bytes_copied"] == nbytes, result["summary"]
    out["hash_floor"] = hash_floor(pack_files(root / "m4"))
    return out


def bench_smb(root: Path, archive: Archive, nbytes: int) -> dict | None:
    try:
        from services.samba import start_samba

        server = start_samba(root / "samba")
    except Exception as exc:  # not root, smbd missing
        print(f"SMB part skipped: {exc}")
        return None
    try:
        os.environ["MAILARCHIVE_SMB_PASSWORD"] = server.password
        src = root / "m4" / "packs"
        # plain copy: smbclient mput of the very same files
        cmd = (
            f'mkdir plain; cd plain; lcd "{src}"; prompt off; recurse on; mput *'
        )
        smb = shutil.which("smbclient")
        if smb is None:
            print("SMB part skipped: smbclient missing (apt-get install -y smbclient)")
            return None
        drop_caches()
        t_put = timed(lambda: subprocess.run(
            [smb, f"//{server.host}/{server.share}", "-p", str(server.port), "-U", f"{server.user}%{server.password}",
             "-m", "SMB3", "-c", cmd], check=True, capture_output=True))
        copied = total(sorted((server.share_dir / "plain").rglob("*.pack")))
        assert copied == nbytes, (copied, nbytes)
        registry.add(archive, server.url("bench-medium"), smb_password=server.password, activate=True)
        target = archive.config.active_medium.id
        result: dict = {}
        drop_caches()
        t_cons = timed(lambda: result.update(consolidate(archive, [4], target)))
        assert result["summary"]["bytes_copied"] == nbytes, result["summary"]
        t_write, t_read = smb_floor(server, pack_files(root / "m4"))
        return {"bytes": nbytes, "smbclient": t_put, "consolidate": t_cons, "write": t_write, "read": t_read}
    finally:
        archive.close()
        server.stop()


def report(local: dict, smb: dict | None, mb: int) -> str:
    def rate(n, t):
        return n / 1e6 / t

    n = local["bytes"]
    cold = "cold (page cache dropped before each contender)" if local["cold"] else "NOT cold (dropping the cache was refused)"
    lines = [
        "## Consolidation",
        "",
        f"`bench/bench_consolidate.py --mb {mb}` on {machine()}; {n / 1e6:.0f} MB of packs on local media.",
        "",
        "| run | cache | seconds | MB/s | consolidation ÷ plain copy |",
        "|---|---|---|---|---|",
        f"| `cp -r` + `sync` local → local | cold | {local['cold_cp_sync']:.2f} | {rate(n, local['cold_cp_sync']):.0f} | "
        f"{local['cold_cp_sync'] / local['cold_consolidate']:.2f} |",
        f"| consolidation local → local | cold | {local['cold_consolidate']:.2f} | {rate(n, local['cold_consolidate']):.0f} | |",
        f"| `cp -r` local → local (no sync) | warm | {local['warm_cp']:.2f} | {rate(n, local['warm_cp']):.0f} | "
        f"{local['warm_cp'] / local['warm_consolidate']:.2f} |",
        f"| `cp -r` + `sync` local → local | warm | {local['warm_cp_sync']:.2f} | {rate(n, local['warm_cp_sync']):.0f} | "
        f"{local['warm_cp_sync'] / local['warm_consolidate']:.2f} |",
        f"| consolidation local → local | warm | {local['warm_consolidate']:.2f} | {rate(n, local['warm_consolidate']):.0f} | |",
        f"| floor: BLAKE3 checksum alone, 2 threads | warm | {local['hash_floor']:.2f} | {rate(n, local['hash_floor']):.0f} | "
        f"{local['cold_cp_sync'] / local['hash_floor']:.2f} (cp cold ÷ floor) |",
    ]
    if smb:
        m = smb["bytes"]
        lines += [
            f"| `smbclient` mput local → SMB | cold | {smb['smbclient']:.2f} | {rate(m, smb['smbclient']):.0f} | "
            f"{smb['smbclient'] / smb['consolidate']:.2f} |",
            f"| consolidation local → SMB | cold | {smb['consolidate']:.2f} | {rate(m, smb['consolidate']):.0f} | |",
            f"| floor: smbprotocol write only, 3 connections | warm | {smb['write']:.2f} | {rate(m, smb['write']):.0f} | "
            f"{smb['smbclient'] / smb['write']:.2f} |",
            f"| floor: smbprotocol read only, 3 connections | | {smb['read']:.2f} | {rate(m, smb['read']):.0f} | |",
            f"| floor: smbprotocol write + read back (no hash) | | {smb['write'] + smb['read']:.2f} | "
            f"{rate(m, smb['write'] + smb['read']):.0f} | {smb['smbclient'] / (smb['write'] + smb['read']):.2f} |",
        ]
    else:
        lines.append("| local → SMB | | skipped (no Samba) | | |")
    lines += [
        "",
        f"Cache: {cold} for the rows marked cold; warm rows read their input once first.",
        "What a consolidation does per byte beyond the plain copy: the copy is flushed to disk per pack",
        "(fsync), then read back and hashed (BLAKE3 against the catalog: the one hash pass); local → local",
        "the kernel copies (`copy_file_range`). Packs are copied by two threads when both media are local,",
        "by three (each with its own SMB connection) when one end is on SMB.",
        "SHA-256 without SHA extensions runs at 220–380 MB/s per core on this CPU, so two cores cap a",
        "consolidation near 450–700 MB/s whatever the disk; `cp -r` does no hashing and, without `sync`, no writing.",
        "SMB goes through smbprotocol (pure Python, SMB3 with signing/encryption, write + read-back over the wire).",
        "Floors: the BLAKE3 row is the hash pass alone on the same bytes (no copy, no disk); the smbprotocol",
        "rows are the library alone moving the same bytes (no hash, no catalog). A verified copy onto SMB",
        "must write every byte and read it back, so its throughput cannot exceed the write + read-back row;",
        "the ratio column of a floor row is the best a consolidation could reach against its plain copy.",
    ]
    return "\n".join(lines) + "\n"


def record(section: str) -> None:
    path = REPO / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    start = text.find("## Consolidation")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("" if end < 0 else text[end + 1:])
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200, help="approximate MB of packs to build (default 200)")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir, removed after)")
    ap.add_argument("--no-smb", action="store_true", help="skip the SMB part")
    ap.add_argument("--record", action="store_true", help="rewrite the '## Consolidation' section of bench/RESULTS.md")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-consolidate-", dir=args.dir))
    try:
        t0 = time.perf_counter()
        archive, nbytes = build(root, args.mb)
        print(f"built {nbytes / 1e6:.0f} MB of packs in {time.perf_counter() - t0:.0f} s")
        local = bench_local(root, archive, nbytes)
        smb = None if args.no_smb else bench_smb(root, archive, nbytes)
        archive.close()
        section = report(local, smb, args.mb)
        print(section)
        if args.record:
            record(section)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
