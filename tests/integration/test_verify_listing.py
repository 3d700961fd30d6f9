"""The quick checks' media listing (verify/checks.py) takes any file name a medium holds: a file in packs/
whose name is not UTF-8 is an unknown file (Q03, a warning) with U+FFFD in its name, and every other check
runs; before, such a name stopped verify with a UnicodeEncodeError."""
from __future__ import annotations

import os

from tests.integration.verify_support import build_archive, run_verify


def test_a_file_name_that_is_not_utf8_is_listed_as_an_unknown_pack(tmp_path):
    home = build_archive(tmp_path, None, stamp=False)
    packs = tmp_path / "medium" / "packs" / "ab"
    packs.mkdir(parents=True, exist_ok=True)
    fd = os.open(os.fsencode(packs) + b"/stray-\xff.pack", os.O_CREAT | os.O_WRONLY)
    os.write(fd, b"not a pack")
    os.close(fd)
    r = run_verify(home, full=False)
    q03 = r.get("Q03")
    assert q03.status == "warning" and q03.count == 1
    assert q03.items[0]["name"] == "packs/ab/stray-\ufffd.pack"
    assert r.get("Q02").status == "ok" and r.exit_code == 0
