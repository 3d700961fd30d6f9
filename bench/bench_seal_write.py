#!/usr/bin/env python3
"""The per-record pieces of a pack task that are not the format's own work, this checkout against another
one (``--base``), alternating, each side in its own process; best of the rounds, µs per mail (thread CPU):

* ``seal``: :func:`toolkit.pack.seal_record` of the mail (zstd level 1 + AES-GCM + the Python around them),
  with the nonce source a pack task uses (a ``NoncePool`` where the checkout has one, else ``os.urandom``);
* ``write``: :meth:`PackWriter.add_sealed` of the sealed records into a pack on local disk (BLAKE3 of the
  pack, the writes), the pack aborted at the end (no fsync);
* ``pickle`` / ``unpickle``: the task's prepared mails as the two-phase question carries them
  (``PreparedBatch`` where the checkout has one, else a plain list), pickled by ``ForkingPickler``.

    .venv/bin/python bench/bench_seal_write.py --base /work/wt/worker-py-base [--tree /work/bench40k/eml]
        [--mails 1600] [--rounds 7] [--pairs 3]

The mails are read into memory first; the same 1,600 mails (one 64 MiB task) on both sides.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ab_children import parser, run_pairs  # noqa: E402

_CHILD = r"""
import hashlib, json, os, pickle, sys, tempfile, time, uuid
from multiprocessing.reduction import ForkingPickler
from toolkit import pack, prepare as P
from toolkit.storage.local import LocalStorage

paths, rounds = json.loads(sys.argv[1]), int(sys.argv[2])
mails = [open(p, "rb").read() for p in paths]
u, key = uuid.UUID(int=5), bytes(range(32))
pid = bytes(16)
pk = pack.pack_key(key, u, pid)
unique = list({hashlib.sha256(m).digest(): m for m in mails}.items())
prepared = [P.prepare(m, None, u, None, None, None) for m in mails]
for p in prepared:
    p.data = None
batch = getattr(P, "PreparedBatch", list)
best = {"seal": 1e9, "write": 1e9, "pickle": 1e9, "unpickle": 1e9}
with tempfile.TemporaryDirectory() as tmp:
    storage = LocalStorage(tmp)
    for _ in range(rounds):
        nonces = pack.NoncePool() if hasattr(pack, "NoncePool") else os.urandom
        t = time.thread_time()
        records = [(b, *pack.seal_record(pk, u, b, m, nonces, check=False), len(m)) for b, m in unique]
        best["seal"] = min(best["seal"], time.thread_time() - t)
        w = pack.PackWriter(storage, key, u, pack_id=os.urandom(16))
        t = time.thread_time()
        for b, r, c, s in records:
            w.add_sealed(b, r, s, c)
        best["write"] = min(best["write"], time.thread_time() - t)
        w.abort()
        t = time.thread_time()
        q = bytes(ForkingPickler.dumps((pid, 0, batch(prepared), {})))
        best["pickle"] = min(best["pickle"], time.thread_time() - t)
        t = time.thread_time()
        pickle.loads(q)
        best["unpickle"] = min(best["unpickle"], time.thread_time() - t)
print(json.dumps({k: v / len(mails) * 1e6 for k, v in best.items()}))
"""


def main() -> None:
    args = parser(__doc__.splitlines()[0], rounds=7).parse_args()
    paths, got = run_pairs(_CHILD, args)
    print(f"{len(paths)} mails, load average {os.getloadavg()[0]:.2f}; µs per mail, best of {args.pairs} × {args.rounds}")
    for name, rs in got.items():
        print(f"{name:4}: " + "  ".join(f"{k} {min(r[k] for r in rs):6.2f}" for k in ("seal", "write", "pickle", "unpickle")))


if __name__ == "__main__":
    main()
