"""A scan run ahead in a thread (toolkit/scan_ahead.py, ``import mbox`` of a plain local mbox) hands over what the
scan run inline gives: the same items in the same order, the reporter's calls in the same places among them, the
scan's error after the items before it; and a consumer that stops early stops the thread, whose scan is closed
before the consumer goes on (the mbox file is closed after it)."""
from __future__ import annotations

import dataclasses
import gzip
import threading
from pathlib import Path

import pytest

from importers.mbox import MboxImporter
from toolkit.errors import SourceError
from toolkit.file_region import FileRegion
from toolkit.scan_ahead import scan_ahead
from toolkit.source import SourceMail
from tests.unit.test_mbox_fast import _corpus_files


class EventReporter:
    """Every reporter call, as an event among the items."""

    def __init__(self, events: list):
        self.events = events

    def __getattr__(self, name):
        if name not in ("start", "advance", "finish", "warn", "error", "info"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.events.append((name, args, kwargs))


def _item_key(item) -> tuple:
    fields = dataclasses.asdict(item) if dataclasses.is_dataclass(item) else dict(vars(item))
    fields.pop("on_read_error", None)  # a closure made per item (compared by what it gives below)
    return (type(item).__name__, repr(sorted(fields.items(), key=lambda kv: kv[0])))


def _events(scan, threaded: bool) -> list:
    events: list = []
    reporter = EventReporter(events)
    gen = scan_ahead(scan, reporter, batch=3, depth=2) if threaded else scan(reporter)
    for item in gen:
        events.append(("item", _item_key(item)))
        if isinstance(item, SourceMail) and item.on_read_error is not None:
            events.append(("on_read_error", repr(item.on_read_error(OSError(5, "gone")))))
    return events


def test_the_items_and_reporter_calls_of_every_corpus_mbox_come_as_inline():
    files = _corpus_files()
    assert files
    for path in files:
        for variant in ("auto", "mboxrd"):
            importer = MboxImporter(str(path), variant=variant)

            def inline(rep, importer=importer):
                raw_f, size, mtime = importer._open_raw()
                try:
                    yield from importer._scan(raw_f, size, mtime, None, rep)
                finally:
                    importer._close(raw_f)

            expected = _events(inline, threaded=False)
            assert _events(lambda rep: importer.scan(None, rep), threaded=False) == expected, path
            assert _events(inline, threaded=True) == expected, path


def test_a_plain_mbox_is_scanned_in_the_thread(tmp_path):
    """The importer runs the scan of a plain local mbox in the scan-ahead thread (its regions are read by the workers)."""
    path = tmp_path / "m.mbox"
    path.write_bytes(b"".join(b"From a@b Mon Jan  7 09:15:00 2019\nSubject: %d\n\nbody\n\n" % i for i in range(50)))
    seen = set()
    importer = MboxImporter(str(path))
    scan = importer._scan

    def spy(*args):
        seen.add(threading.current_thread().name)
        yield from scan(*args)

    importer._scan = spy
    items = list(importer.scan(None, EventReporter([])))
    assert len(items) == 50 and all(isinstance(i.job, FileRegion) for i in items)
    assert seen == {"scan-ahead"}


def test_a_compressed_mbox_is_scanned_inline(tmp_path):
    plain = next(p for p in _corpus_files() if p.is_file() and p.suffix not in (".gz", ".bz2", ".xz", ".zst", ".lz"))
    packed = tmp_path / (plain.name + ".gz")
    packed.write_bytes(gzip.compress(plain.read_bytes()))  # made here: no skip when the corpora hold no gzip mbox
    importer = MboxImporter(str(packed))
    scan, seen = importer._scan, set()

    def spy(*args):
        seen.add(threading.current_thread().name)
        yield from scan(*args)

    importer._scan = spy
    list(importer.scan(None, EventReporter([])))
    assert seen == {threading.current_thread().name}


def test_an_error_of_the_scan_comes_after_the_items_before_it():
    def scan(rep):
        for i in range(10):
            rep.warn(f"w{i}")
            yield i
        raise SourceError("broken at 10")

    got: list = []
    with pytest.raises(SourceError, match="broken at 10"):
        for item in scan_ahead(scan, EventReporter(got), batch=4, depth=1):
            got.append(item)
    assert got == [x for i in range(10) for x in (("warn", (f"w{i}",), {}), i)]


def test_a_consumer_that_stops_stops_the_thread_and_closes_the_scan():
    closed, produced = [], []

    def scan(rep):
        try:
            for i in range(100_000):
                produced.append(i)
                yield i
        finally:
            closed.append(threading.current_thread().name)

    gen = scan_ahead(scan, EventReporter([]), batch=8, depth=2)
    assert [next(gen) for _ in range(5)] == [0, 1, 2, 3, 4]
    gen.close()
    assert closed == ["scan-ahead"]  # closed in its thread, before close() returned
    assert len(produced) <= 8 * (2 + 2)  # never more than the batches the queue holds ahead (and one in hand)
    assert not any(t.name == "scan-ahead" for t in threading.enumerate())


def test_a_region_changed_after_a_scan_ahead_is_still_caught(tmp_path):
    """A5 with the scan ahead: the scan's CRC-32 travels with each region; bytes changed after the scan are a
    read failure naming the change, never different mail."""
    path = tmp_path / "m.mbox"
    path.write_bytes(b"".join(b"From a@b Mon Jan  7 09:15:00 2019\nSubject: %d\n\nbody\n\n" % i for i in range(20)))
    items = list(MboxImporter(str(path)).scan(None, EventReporter([])))
    data = bytearray(path.read_bytes())
    at = items[7].job.offset + items[7].job.length - 3
    data[at] ^= 1
    Path(path).write_bytes(bytes(data))
    got = items[7].job.read()
    assert not isinstance(got, bytes) and "differ from what the scan read" in got.message
    assert isinstance(items[6].job.read(), bytes) and isinstance(items[8].job.read(), bytes)


def test_the_recorder_takes_every_call_of_the_reporter_protocol():
    """A scan run ahead calls its recorder where it would call the reporter: a method of the protocol the recorder
    lacks would fail the import in the thread (AttributeError), so the two name the same methods."""
    import inspect

    from toolkit import reporter, scan_ahead as ahead

    def methods(cls) -> set[str]:
        return {n for n, f in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}

    assert methods(ahead._Recorder) == methods(reporter.Reporter)
