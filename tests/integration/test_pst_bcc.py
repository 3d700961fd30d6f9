"""Every Bcc recipient in a PST/OST item's recipient table is in the converted mail's Bcc header.
A received item's transport headers may name Bcc or not; a sent item has no transport headers at
all. The corpus's one item with Bcc recipients (passwordprotectedPST.pst) happens to carry Bcc in
its transport headers too, so it is also converted without them, as a sent item is stored."""
from __future__ import annotations

import email
import email.policy
import email.utils

from tests.corpora import corpora_dir


def _bcc(raw: bytes) -> set[str]:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    return {a.lower() for _, a in email.utils.getaddresses(msg.get_all("Bcc", []))}


def _bcc_in_tables(store) -> dict[int, set[str]]:
    """NID → the Bcc addresses (lower case) of each mail item that has Bcc recipients; each such item
    is also converted without its transport headers, and must keep them."""
    from toolkit import mapi

    import pypff

    from importers.pst import _folders, to_mapi

    out = {}
    f = pypff.file()
    f.open(str(store))
    try:
        for folder, _, _ in _folders(f.root_folder, None)[0]:
            for i in range(folder.number_of_sub_messages):
                m = folder.get_sub_message(i)
                if not isinstance(m, pypff.message):
                    continue
                msg = to_mapi(m, None)
                bcc = {(r.smtp or r.address or "").lower() for r in msg.recipients if r.kind == 3}
                if bcc:
                    out[m.identifier] = bcc
                    msg.props.pop(mapi.PR_TRANSPORT_MESSAGE_HEADERS, None)
                    assert bcc <= _bcc(mapi.build(msg).raw)
    finally:
        f.close()
    return out


def test_bcc_recipients_of_every_store_reach_the_bcc_header():
    from importers.pst import PstImporter
    from toolkit.reporter import NullReporter
    from toolkit.source import SourceMail

    checked = 0
    for store in sorted((corpora_dir() / "d-pst-msg").rglob("*.[po]st")):
        want = _bcc_in_tables(store)
        for item in PstImporter(str(store)).scan(None, NullReporter()):
            if not isinstance(item, SourceMail) or item.parent_ref is not None:
                continue
            nid = int(item.ref.rsplit("nid=", 1)[1])
            if nid not in want:
                continue
            assert want[nid] <= _bcc(item.raw), item.ref
            checked += 1
    assert checked >= 1
