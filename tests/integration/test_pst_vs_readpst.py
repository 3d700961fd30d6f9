"""The PST import against Debian's readpst on the messages both export (issue 17): every attachment
readpst writes is in the imported mail byte for byte, and every Bcc readpst finds is in it too.

readpst (``readpst -e -D -8``) runs as a separate program. Messages are matched by folder name,
Message-ID and subject, in store order. Left out on readpst's side: the ``rtf-body.rtf`` it attaches
for every RTF body and the ``text/calendar`` part it generates for meeting requests (neither is an
attachment of the item). Names are not compared (readpst decodes some non-ASCII names wrongly and
names no OLE object); the bytes are."""
from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import os
import subprocess

from tests.corpora import corpora_dir

STORES = ["aspose-email/Outlook.pst", "aspose-email/passwordprotectedPST.pst", "aspose-email/SampleOstFile.ost",
          "pstsdk/sample1.pst", "pstsdk/sample2.pst"]


def _attachments(msg) -> list[str]:
    """SHA-256 of each attachment's decoded bytes (leaves with a file name; message/* parts excluded)."""
    out = []
    for p in msg.walk():
        if p.is_multipart() or p.get_content_type().startswith("message/") or not p.get_filename():
            continue
        if p.get_filename() == "rtf-body.rtf" or p.get_content_type() == "text/calendar":
            continue
        out.append(hashlib.sha256(p.get_payload(decode=True) or b"").hexdigest())
    return out


def _key(msg, folder_leaf: str) -> tuple[str, str, str]:
    return folder_leaf, (msg["Message-ID"] or "").strip(), " ".join(str(msg["Subject"] or "").split())


def _bcc(msg) -> set[str]:
    return {a.lower() for _, a in email.utils.getaddresses(msg.get_all("Bcc", []))}


def _readpst(store, out) -> dict:
    out.mkdir()
    subprocess.run(["readpst", "-e", "-D", "-8", "-q", "-j", "0", "-o", str(out), str(store)], check=True)
    theirs: dict = {}
    for dirpath, _, files in sorted(os.walk(out)):
        for f in sorted(files, key=lambda n: (len(n), n)):
            if f.endswith(".eml"):
                with open(os.path.join(dirpath, f), "rb") as fh:
                    m = email.message_from_bytes(fh.read(), policy=email.policy.compat32)
                theirs.setdefault(_key(m, os.path.basename(dirpath)), []).append(m)
    return theirs


def test_attachments_and_bcc_match_readpst_for_the_messages_both_export(tmp_path):
    from importers.pst import PstImporter
    from toolkit.reporter import NullReporter
    from toolkit.source import SourceMail

    matched = compared = bcc_checked = 0
    for n, rel in enumerate(STORES):
        store = corpora_dir() / "d-pst-msg" / rel
        theirs = _readpst(store, tmp_path / str(n))
        for item in PstImporter(str(store)).scan(None, NullReporter()):
            if not isinstance(item, SourceMail) or item.parent_ref is not None:
                continue
            ours = email.message_from_bytes(item.raw, policy=email.policy.compat32)
            queue = theirs.get(_key(ours, (item.folder or "").rsplit("/", 1)[-1]))
            if not queue:
                continue
            other = queue.pop(0)
            matched += 1
            mine = _attachments(ours)
            for digest in _attachments(other):
                assert digest in mine, f"{item.ref}: an attachment readpst extracts is not in the mail"
                compared += 1
            if other["Bcc"]:
                assert _bcc(other) <= _bcc(ours) and _bcc(other), item.ref
                bcc_checked += 1
    assert matched == 14 + 18 + 87 + 1 + 1
    assert compared >= 60 and bcc_checked >= 1
