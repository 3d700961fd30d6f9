"""A conversion of an Outlook item that runs too long never holds up the import (issue 17): the
watchdog around the MAPI → MIME conversion (toolkit.mapi.build_guarded) stops RTF de-encapsulation
and converts the item again with the RTF kept as body.rtf; a conversion that stays stuck is reported."""
from __future__ import annotations

import email
import email.policy

from tests.corpora import corpora_dir

#: about 1 s of RTF de-encapsulation (HTML wrapped in a 2 MB item's RTF), far over the limit below
SLOW = "msg-extractor/unicode.msg"


def _parts(raw: bytes) -> list[str]:
    return [p.get_content_type() for p in email.message_from_bytes(raw, policy=email.policy.default).walk()]


def test_a_conversion_past_its_limit_keeps_the_rtf_and_says_so():
    from importers.msg import item_from_msg
    from toolkit.source import SourceMail

    data = (corpora_dir() / "d-pst-msg" / SLOW).read_bytes()
    normal = item_from_msg(data, "slow.msg", None, None)
    assert isinstance(normal, SourceMail) and "text/html" in _parts(normal.raw)
    assert "application/rtf" not in _parts(normal.raw)

    import toolkit.mapi

    toolkit.mapi._RTF_MEMO.clear()  # the RTF body de-encapsulated above is memoised: run it again, under the limit
    warnings: list[str] = []
    cut = item_from_msg(data, "slow.msg", None, None, warn=warnings.append, limits=(0.02, 60.0))
    assert isinstance(cut, SourceMail)
    assert "application/rtf" in _parts(cut.raw)  # the RTF body itself, not lost
    assert [w for w in warnings if "conversion ran past 0.02 s" in w]
    # the fallback is deterministic too: the same item cut again gives the same bytes
    toolkit.mapi._RTF_MEMO.clear()
    assert item_from_msg(data, "slow.msg", None, None, limits=(0.02, 60.0)).raw == cut.raw


def test_a_stuck_pst_conversion_is_reported_and_the_scan_goes_on(tmp_path):
    from importers.pst import PstImporter
    from toolkit.reporter import ListReporter
    from toolkit.source import SourceMail, SourceProblem

    store = corpora_dir() / "d-pst-msg" / "aspose-email" / "passwordprotectedPST.pst"
    imp = PstImporter(str(store))
    imp.convert_limit = 1e-4  # no conversion finishes in 0.1 ms, not even without RTF de-encapsulation
    items = list(imp.scan(None, ListReporter()))
    # every mail item is reported by name (an error of the run), none is lost, the scan goes on to the end
    problems = [i for i in items if isinstance(i, SourceProblem)]
    assert not [i for i in items if isinstance(i, SourceMail)]
    assert len(problems) == 18 and len({p.ref for p in problems}) == 18
    assert all(p.message == "item not converted: conversion did not finish within 0.0001 s" for p in problems)
    assert problems[-1].cursor is not None  # the cursor moves on past a reported item
