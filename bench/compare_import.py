#!/usr/bin/env python3
"""Exactness of an import between this checkout and another (the code before): each imports the same source
into a fresh archive; then the catalogs (messages and sightings, without pack ids, offsets, times and run
ids: pack ids and nonces are random) must be equal, every record must open to the same mail (``export eml``
of everything, compared file by file, the manifests' lines as sets), the sizes of the records on disk (``length``, ``csize``) must match,
and ``verify --full`` must pass on both.

    MAILARCHIVE_PASSWORD=bench-password-123 .venv/bin/python bench/compare_import.py \\
        --base /work/wt/wcopy-base [--kind eml] SOURCE [SOURCE ...]
"""
from __future__ import annotations

import argparse
import filecmp
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MESSAGES = ("SELECT blob_id, dedup_key, length, size, csize, message_id, subject, from_addr, from_name, sent_date, "
            "internal_date, spam, defects, id_conflict FROM messages ORDER BY blob_id")
SIGHTINGS = ("SELECT s.source_uri, s.folder, s.source_ref, s.via, s.decision, s.flags, s.internal_date, s.owner, "
             "m.blob_id FROM sightings s LEFT JOIN messages m USING (msg_id) ORDER BY ALL")


def toolkit(checkout: Path, archive: Path, *args: str, ok=(0,)) -> str:
    p = subprocess.run([sys.executable, "-m", "toolkit", "--archive", str(archive), "--quiet", *args], cwd=checkout,
                       capture_output=True, text=True)
    if p.returncode not in ok:
        raise SystemExit(f"{checkout}: {' '.join(args)}: exit {p.returncode}\n{p.stderr[-2000:]}")
    return p.stdout


def tree_digest(root: Path) -> dict[str, str]:
    """File name -> SHA-256; the manifests' lines sorted first (they list the mails in the order read, pack by
    pack, and pack ids are random)."""
    def content(p: Path) -> bytes:
        data = p.read_bytes()
        return b"\n".join(sorted(data.splitlines())) if p.name.startswith("manifest.") else data
    return {str(p.relative_to(root)): hashlib.sha256(content(p)).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--new", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--kind", default="eml")
    ap.add_argument("sources", nargs="+")
    args = ap.parse_args()
    if not os.environ.get("MAILARCHIVE_PASSWORD"):
        raise SystemExit("set MAILARCHIVE_PASSWORD")
    sources = [str(Path(s).resolve()) for s in args.sources]  # the same source URIs on both sides
    got = {}
    with tempfile.TemporaryDirectory(prefix="compare-import-") as tmp:
        for name, checkout in (("base", Path(args.base)), ("new", Path(args.new))):
            a = Path(tmp) / name
            toolkit(checkout, a, "init")
            toolkit(checkout, a, "--json", "import", args.kind, *sources, ok=(0, 1))
            out = Path(tmp) / f"{name}-export"
            toolkit(checkout, a, "export", "eml", str(out), ok=(0, 1))
            toolkit(checkout, a, "verify", "--full")
            got[name] = (toolkit(checkout, a, "sql", "--format", "csv", MESSAGES),
                         toolkit(checkout, a, "sql", "--format", "csv", SIGHTINGS), tree_digest(out))
        base, new = got["base"], got["new"]
        rows = base[0].count("\n") - 1
        print(f"messages: {rows} rows, equal: {base[0] == new[0]}")
        print(f"sightings: {base[1].count(chr(10)) - 1} rows, equal: {base[1] == new[1]}")
        print(f"exported files: {len(base[2])}, equal: {base[2] == new[2]}")
        for k in sorted(set(base[2]) | set(new[2])):
            if base[2].get(k) != new[2].get(k):
                print(f"  differs: {k}")
                if k.startswith("manifest."):
                    a, b = ((Path(tmp) / f"{n}-export" / k).read_text().splitlines() for n in ("base", "new"))
                    diff = [(x, y) for x, y in zip(a, b) if x != y]
                    print(f"    {len(diff)} lines differ, first: {diff[0] if diff else (len(a), len(b))}")
        if not (base[0] == new[0] and base[1] == new[1] and base[2] == new[2] and rows > 0):
            raise SystemExit("DIFFERENT")
        print("SAME")


if __name__ == "__main__":
    main()
