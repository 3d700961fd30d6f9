"""What a PST/OST conversion costs, bounded in work (calls), not in seconds; and that the cheaper
paths write the same bytes as the slow ones (a converted mail's bytes may change only with the
converter's version, docs/formats.md)."""
from __future__ import annotations

import pytest

from tests.corpora import corpora_dir

OST = corpora_dir() / "d-pst-msg" / "aspose-email" / "SampleOstFile.ost"
PST = corpora_dir() / "d-pst-msg" / "aspose-email" / "Outlook.pst"
RTF_UNCOMPRESSED = corpora_dir() / "d-pst-msg" / "aspose-email" / "passwordprotectedPST.pst"


def _scan(store) -> list:
    """The store's items read in this process (``scan_store`` without importers/pst_guard.py's child
    process), so that the counting patches of these tests see the calls."""
    import os

    from importers.pst import scan_store
    from toolkit.reporter import NullReporter

    return list(scan_store(os.fsencode(store), str(store), os.fsencode(store.name), None, NullReporter()))


def _raw(items) -> list:
    return [(i.ref, getattr(i, "raw", None)) for i in items]


def test_rtf_bodies_are_decompressed_by_libpff_not_in_python(monkeypatch):
    """The OST's 69 compressed RTF bodies go through libpff's decompressor; the pure-Python one is
    left for the bodies libpff rejects (uncompressed "MELA" RTF, 8 in passwordprotectedPST.pst)."""
    import compressed_rtf

    calls = []
    real = compressed_rtf.decompress
    monkeypatch.setattr(compressed_rtf, "decompress", lambda data: calls.append(data[8:12]) or real(data))
    assert len([i for i in _scan(OST) if getattr(i, "raw", None)]) == 88
    assert calls == []
    _scan(RTF_UNCOMPRESSED)
    assert calls and set(calls) == {b"MELA"}


def test_libpff_rtf_gives_the_same_bytes_as_the_python_decompressor(monkeypatch):
    import importers.pst as pst

    fast = _scan(OST)
    monkeypatch.setattr(pst, "_rtf_from_reader", lambda m, msg: None)
    assert _raw(_scan(OST)) == _raw(fast)


@pytest.mark.parametrize("store,passes", [(PST, 0), (OST, 1)])
def test_the_address_pass_runs_only_for_a_store_with_x500_addresses(monkeypatch, store, passes):
    """The X.500 → SMTP map needs a first pass over the whole store; a store whose items have no
    X.500 address (Outlook.pst) is read once, the OST (Exchange addresses) twice."""
    import importers.pst as pst

    calls = []
    real = pst._directory
    monkeypatch.setattr(pst, "_directory", lambda *a: calls.append(a) or real(*a))
    _scan(store)
    assert len(calls) == passes


def test_the_address_pass_reads_no_bodies_and_the_map_is_the_same(monkeypatch):
    """The first pass decodes only the sender and transport-header properties (and the recipient
    table), never a body; the map it makes is the one a full read gives."""
    import pypff

    import importers.pst as pst
    from toolkit import mapi

    f = pypff.file()
    f.open(str(OST))
    try:
        decoded = []
        real = pst._value
        monkeypatch.setattr(pst, "_value", lambda vtype, data: decoded.append(len(data or b"")) or real(vtype, data))
        cheap = pst._directory(f.root_folder, None, None)
        assert cheap and max(decoded) < 16 * 1024  # the OST's RTF bodies are far larger
        full: dict = {}
        for folder, _, _ in pst._folders(f.root_folder, None)[0]:
            for i in range(folder.number_of_sub_messages):
                m = folder.get_sub_message(i)
                if isinstance(m, pypff.message):
                    mapi.learn_addresses(pst.to_mapi(m, None), full)
        assert cheap == full
    finally:
        f.close()


def test_readpst_output_is_parsed_only_where_it_holds_an_embedded_message(monkeypatch):
    import importers.pst_embedded as pe

    calls = []
    real = pe.embedded_parts
    monkeypatch.setattr(pe, "embedded_parts", lambda raw: calls.append(1) or real(raw))
    rec = pe.recover(str(OST).encode())
    assert rec.error is None and sum(len(v) for v in rec.by_key.values()) >= 1
    assert 0 < len(calls) < 10  # readpst writes 87 .eml files for this store
