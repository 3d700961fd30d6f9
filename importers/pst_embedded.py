"""Embedded messages of a PST/OST (attach method 5), recovered with Debian's ``readpst``.

pypff cannot reach an embedded message (it has no binding for the attachment's item). ``readpst``
(libpst, GPL-2+, package ``pst-utils``) can: it is run here as a separate program, never linked,
once per store that holds such an attachment: ``readpst -e -D -8 -q -j 0 -o TMPDIR STORE``. Its
output is one ``.eml`` per item in a folder tree; the ``message/rfc822`` parts of an item are its
embedded messages, in attachment order.

Each recovered message is matched back to its parent by the parent's folder name and Message-ID
(else its subject), in store order, and archived as its own mail. Two things readpst adds are undone
so that the same store always gives the same bytes: the mbox ``>From …`` line it writes before an
embedded message, and the random numbers in its MIME boundaries (``iamunique-<n>_``), which become a
number derived from the message's content.

A store readpst cannot convert (missing program, exit code, timeout) recovers nothing: the caller
reports every embedded message as not recovered.
"""
from __future__ import annotations

import email.parser
import email.policy
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

READPST_TIMEOUT = 600.0  # seconds one store's conversion may take before it is abandoned
_BOUNDARY_TOKEN = re.compile(rb"iamunique-(\d+)_")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass
class Recovered:
    """The embedded messages readpst wrote for a store, by (folder name, key) in store order."""

    by_key: dict[tuple[str, str], list[list[bytes]]] = field(default_factory=dict)
    error: str | None = None   # why nothing was recovered
    used: set[int] = field(default_factory=set)

    def take(self, folder_leaf: str, message_id: str | None, subject: str | None) -> list[bytes] | None:
        """The embedded messages of the next unmatched item with this Message-ID (else subject) in
        this folder; None when readpst wrote no such item."""
        keys = ([(folder_leaf, f"id:{message_id}")] if message_id else []) + [(folder_leaf, f"subject:{subject or ''}")]
        for key in keys:
            for entry in self.by_key.get(key, ()):
                if id(entry) not in self.used:
                    self.used.add(id(entry))
                    return list(entry)
        return None


def readpst_version(program: str | None = None) -> str | None:
    """``readpst``'s version (``0.6.76``), or None when it is not installed."""
    program = program or shutil.which("readpst")
    if not program:
        return None
    try:
        out = subprocess.run([program, "-V"], capture_output=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(rb"v(\d[\w.]*)", out)
    return m.group(1).decode("ascii") if m else "unknown"


def recover(store: bytes, timeout: float = READPST_TIMEOUT) -> Recovered:
    """Run readpst over one store and index the embedded messages of its items."""
    program = shutil.which("readpst")
    if not program:
        return Recovered(error="readpst (Debian package pst-utils) is not installed")
    with tempfile.TemporaryDirectory(prefix="mailarchive-readpst-") as out:
        try:
            done = subprocess.run([program, "-e", "-D", "-8", "-q", "-j", "0", "-o", out, os.fsdecode(store)],
                                  capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return Recovered(error=f"readpst did not finish within {timeout:.0f} s")
        except OSError as exc:
            return Recovered(error=f"readpst could not run: {exc.strerror or exc}")
        if done.returncode != 0:
            why = done.stderr.decode("utf-8", "replace").strip().splitlines()
            return Recovered(error=f"readpst exited {done.returncode}: {why[0] if why else 'no message'}")
        return _index(out)


def _index(out: str) -> Recovered:
    rec = Recovered()
    for dirpath, dirnames, filenames in os.walk(out):
        dirnames.sort()
        leaf = os.path.basename(dirpath)
        for name in sorted(filenames, key=lambda n: (len(n), n)):
            if not name.endswith(".eml"):
                continue
            with open(os.path.join(dirpath, name), "rb") as f:
                raw = f.read()
            if b"message/rfc822" not in raw.lower():
                continue  # no embedded message: not parsed (most items)
            children = [normalise(c) for c in embedded_parts(raw)]
            if not children:
                continue
            head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
            entry = children
            mid = (head.get("Message-ID") or "").strip()
            subject = " ".join(str(head.get("Subject") or "").split())
            if mid:
                rec.by_key.setdefault((leaf, f"id:{mid}"), []).append(entry)
            rec.by_key.setdefault((leaf, f"subject:{subject}"), []).append(entry)
    return rec


def embedded_parts(raw: bytes) -> list[bytes]:
    """The bodies of the ``message/rfc822`` parts of a MIME entity, in order, nested multiparts
    included (the raw bytes, as written)."""
    m = _HEADER_END.search(raw)
    if not m:
        return []
    head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw[:m.start()] + b"\n\n")
    body = raw[m.end():]
    ctype = head.get_content_type()
    if ctype == "message/rfc822":
        return [body]
    boundary = head.get_param("boundary") if head.get_content_maintype() == "multipart" else None
    if not boundary:
        return []
    delim = re.compile(rb"(?:^|\r?\n)--" + re.escape(boundary.encode("utf-8", "surrogateescape")) + rb"(--)?[ \t]*(?=\r?\n|$)")
    out: list[bytes] = []
    pos, parts = 0, []
    for d in delim.finditer(body):
        parts.append(body[pos:d.start()])
        pos = d.end()
        if d.group(1):
            break
    for part in parts[1:]:  # parts[0] is the preamble
        out.extend(embedded_parts(part.lstrip(b"\r\n") if part.startswith((b"\r\n", b"\n")) else part))
    return out


def normalise(child: bytes) -> bytes:
    """An embedded message as readpst wrote it, without its mbox ``>From`` line and with its
    boundaries' random numbers replaced by one derived from the content."""
    if child.startswith(b">From ") or child.startswith(b"From "):
        nl = child.find(b"\n")
        child = child[nl + 1:] if nl >= 0 else b""
    blank = _BOUNDARY_TOKEN.sub(b"iamunique-0_", child)
    digest = int.from_bytes(hashlib.sha256(blank).digest()[:4], "big")
    numbers: dict[bytes, bytes] = {}

    def fixed(m: re.Match) -> bytes:
        if m.group(1) not in numbers:
            numbers[m.group(1)] = str(digest + len(numbers)).encode("ascii")
        return b"iamunique-" + numbers[m.group(1)] + b"_"

    return _BOUNDARY_TOKEN.sub(fixed, child)
