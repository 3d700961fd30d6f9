"""``migrate run`` of many IMAP accounts: ``--parallel N`` against ``--parallel 1`` on one Dovecot.

Starts a throwaway Dovecot (tests/services/dovecot.py) with ``--accounts`` users, fills each INBOX
with ``--count`` corpus mails (bench/make_corpus.py, written straight into the Maildir and indexed
before any timing), writes a plan of IMAP lines (imaps, the test CA), then times ``migrate run``
into a fresh archive sequentially and with ``--parallel``. Prints both wall times, messages/s and
the ratio. Keep runs short on a shared machine.

    .venv/bin/python bench/bench_migrate.py [--accounts 20] [--count 500] [--parallel 8]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_imap import PASSWORD_ENV, cli, fill  # noqa: E402
from services.dovecot import start_dovecot  # noqa: E402


def timed_run(work: Path, name: str, plan: Path, ca: Path, parallel: int) -> tuple[float, dict]:
    home = work / f"home-{name}"
    env = {"MAILARCHIVE_PASSWORD": PASSWORD_ENV}
    cli(home, "init", "--medium", str(work / f"medium-{name}"), "--key-backup", str(work / f"kb-{name}.txt"), env=env)
    t0 = time.perf_counter()
    result = cli(home, "migrate", "run", str(plan), "--parallel", str(parallel), "--ca-file", str(ca), env=env)
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=20)
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-migrate-") as tmp:
        work = Path(tmp)
        users = tuple(f"b{i:03d}" for i in range(a.accounts))
        server = start_dovecot(work / "dovecot", users=users)
        try:
            lines = ["kind,location,user,password_file,owner,folders"]
            for i, user in enumerate(users):
                fill(server.maildir(user), a.count, a.seed + i)
                server.doveadm("mailbox", "status", "-u", user, "messages vsize", "INBOX")  # index before timing
                (work / f"{user}.pw").write_text(server.users[user])
                lines.append(f"imap,imaps://127.0.0.1:{server.imaps_port},{user},{user}.pw,{user},")
            plan = work / "plan.csv"
            plan.write_text("\n".join(lines) + "\n")
            seq, r1 = timed_run(work, "seq", plan, server.ca_cert_path, 1)
            par, r2 = timed_run(work, "par", plan, server.ca_cert_path, a.parallel)
        finally:
            server.stop()
    assert r1["archived"] == r2["archived"], (r1["archived"], r2["archived"])
    n, mb = r1["seen"], r1["bytes"] / 1e6
    print(f"{a.accounts} accounts x {a.count} mails ({n} mails, {mb:.1f} MB), {os.cpu_count()} CPUs")
    print(f"  --parallel 1: {seq:.1f} s ({n / seq:.0f} mails/s, {mb / seq:.1f} MB/s)")
    print(f"  --parallel {a.parallel}: {par:.1f} s ({n / par:.0f} mails/s, {mb / par:.1f} MB/s)")
    print(f"  parallel / sequential = {par / seq:.2f}")


if __name__ == "__main__":
    main()
