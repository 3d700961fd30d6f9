#!/usr/bin/env python3
"""Seeded generator of a realistic mail corpus for the benchmarks.

Sizes: mostly 2–20 KB text mails, about 10 % with a 50 KB–2 MB base64
attachment, about 8 % duplicates (half byte-identical copies, half copies
with other Received headers, as a gateway and a mailbox copy differ).
Writes an EML tree (100 files per directory), and optionally one mbox and a
Maildir of the same messages.

``--mean-size 40k`` scales the attachments (same share of mails, same shape:
sizes uniform between 5 % and 195 % of their mean) so that the mean mail size
is about the size given; without it the attachments are 50 KB–2 MB of base64
(mean mail ~116 KB) exactly as before, so a seed gives the same corpus.

    python bench/make_corpus.py OUT [--count 20000] [--seed 1] [--mean-size 40k] [--mbox] [--maildir]
"""
from __future__ import annotations

import argparse
import base64
import random
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from pathlib import Path

WORDS = (
    "the of and to in is that for it as with was on be by this are from or have an not they which "
    "Angebot Rechnung Projekt Termin Besprechung Vertrag Lieferung bitte danke Grüße Woche Monat "
    "invoice contract meeting schedule report quarterly budget review draft final approved pending "
    "server migration archive backup share mailbox journal timestamp verification customer order"
).split()
PEOPLE = [f"{n}@{d}" for n in ("anna", "bernd", "clara", "dieter", "eva", "frank", "gisela", "hans", "ines", "jan")
          for d in ("example.com", "example.org", "example.net")]


def _text(rng: random.Random, size: int) -> str:
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))
        out.append(line)
        n += len(line) + 1
    return "\n".join(out) + "\n"


#: base64 bytes of an attachment: uniform in this range (the default: 50 KB to 2 MB)
DEFAULT_ATTACHMENT = (50_000, 2_000_000)
#: mean size of a mail without attachment (headers + 1.5-18 KB of text) and the share with one
TEXT_MEAN, ATTACHMENT_SHARE = 10_300, 0.10


def parse_size(text: str) -> int:
    """'40k', '40K', '1.5m', '40000' -> bytes (k = 1000)."""
    t = text.strip().lower()
    mult = {"k": 1000, "m": 1000 ** 2}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def attachment_range(mean_size: int | None) -> tuple[int, int] | None:
    """The base64 size range of attachments for a corpus of mean mail size MEAN_SIZE (None: no attachments)."""
    if mean_size is None:
        return DEFAULT_ATTACHMENT
    mean_b64 = (mean_size - TEXT_MEAN) / ATTACHMENT_SHARE
    if mean_b64 < 2_000:
        return None
    return int(mean_b64 * 0.05), int(mean_b64 * 1.95)


def make_message(rng: random.Random, i: int, when: datetime,
                 attachment: tuple[int, int] | None = DEFAULT_ATTACHMENT) -> bytes:
    sender, to = rng.sample(PEOPLE, 2)
    cc = rng.sample(PEOPLE, rng.randint(0, 3))
    hdr = [
        f"Received: from mx{rng.randint(1, 9)}.example.net (mx.example.net [192.0.2.{rng.randint(1, 254)}]) by gw.example.com; {format_datetime(when)}",
        f"From: {sender.split('@')[0].title()} <{sender}>",
        f"To: {to}",
    ]
    if cc:
        hdr.append("Cc: " + ", ".join(cc))
    hdr += [
        f"Subject: {rng.choice(WORDS).title()} {rng.choice(WORDS)} #{i}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: <bench-{i}-{rng.getrandbits(40):x}@example.com>",
        "MIME-Version: 1.0",
    ]
    body = _text(rng, rng.randint(1500, 18000))
    if rng.random() < ATTACHMENT_SHARE and attachment is not None:
        att = rng.randbytes(rng.randint(*attachment) * 3 // 4)
        b64 = base64.encodebytes(att).decode()
        boundary = f"b{rng.getrandbits(48):x}"
        hdr.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
        body = (
            f"--{boundary}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{body}\n"
            f"--{boundary}\nContent-Type: application/octet-stream; name=\"data{i}.bin\"\n"
            f"Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"data{i}.bin\"\n\n{b64}"
            f"--{boundary}--\n"
        )
    else:
        hdr += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
    return ("\n".join(hdr) + "\n\n" + body).encode("utf-8")


def generate(count: int, seed: int, mean_size: int | None = None) -> list[bytes]:
    attachment = attachment_range(mean_size)
    rng = random.Random(seed)
    when = datetime(2019, 1, 1, 8, 0, tzinfo=timezone.utc)
    msgs: list[bytes] = []
    while len(msgs) < count:
        when += timedelta(minutes=rng.randint(1, 90))
        if msgs and rng.random() < 0.08:
            orig = rng.choice(msgs)
            if rng.random() < 0.5:
                msgs.append(orig)  # byte-identical copy
            else:
                msgs.append(b"Received: from relay.example.org by mx2.example.com; " +
                            format_datetime(when).encode() + b"\n" + orig)  # same mail, other transport header
            continue
        msgs.append(make_message(rng, len(msgs), when, attachment))
    return msgs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mean-size", type=parse_size, default=None,
                    help="mean mail size, e.g. 40k (default: the original mix, ~116 KB)")
    ap.add_argument("--mbox", action="store_true")
    ap.add_argument("--maildir", action="store_true")
    a = ap.parse_args()
    msgs = generate(a.count, a.seed, a.mean_size)
    eml = a.out / "eml"
    for i, m in enumerate(msgs):
        d = eml / f"{i // 100:04d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:06d}.eml").write_bytes(m)
    if a.mbox:
        with open(a.out / "corpus.mbox", "wb") as f:
            for m in msgs:
                f.write(b"From bench@example.com Mon Jan  7 09:15:00 2019\n")
                # mboxrd quoting of body From_ lines
                f.write(b"\n".join((b">" + l if l.lstrip(b">").startswith(b"From ") else l) for l in m.split(b"\n")))
                f.write(b"\n" if m.endswith(b"\n") else b"\n\n")
    if a.maildir:
        md = a.out / "maildir"
        for sub in ("cur", "new", "tmp"):
            (md / sub).mkdir(parents=True, exist_ok=True)
        for i, m in enumerate(msgs):
            (md / "cur" / f"{1546300800 + i}.{i}.bench:2,S").write_bytes(m)
    total = sum(len(m) for m in msgs)
    print(f"{len(msgs)} messages, {total / 1e6:.1f} MB (mean {total / max(1, len(msgs)) / 1e3:.0f} KB) into {a.out}")


if __name__ == "__main__":
    main()
