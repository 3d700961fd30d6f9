"""Each shared export filter selects exactly the expected messages.

The catalog is built for the test: a few crafted messages imported from
folders, plus the two journal reports of sample_data, whose Bcc recipients
(legal@example.net, bcc-only) are learned by the pipeline.
"""
from __future__ import annotations

import shutil

import pytest

from exporters.filters import Filters, dry_run, parse_when, select
from importers.eml import EmlImporter
from tests.corpora import REPO
from toolkit.archive import Archive
from toolkit.errors import UsageError
from toolkit.ingest import Ingest

MAILS = {
    # folder, name: (message id, headers)
    ("INBOX", "a.eml"): ("a@t", "From: A <a@x.example>\nTo: b@y.example\nDate: Tue, 15 Jan 2019 10:00:00 +0000\n"),
    ("Archive/2020", "b.eml"): ("b@t", "From: c@sub.y.example\nTo: d@z.example\nCc: E <E@X.example>\n"
                                       "Date: Mon, 1 Jun 2020 12:00:00 +0200\n"),
    ("Junk", "c.eml"): ("c@t", "From: spam@junk.example\nTo: b@y.example\nX-Spam-Flag: YES\n"
                               "Date: Mon, 1 Mar 2021 08:00:00 +0000\n"),
    ("Archive", "d.eml"): ("d@t", "From: nodate@x.example\nTo: f@w.example\n"),
    ("Archivist", "e.eml"): ("e@t", "From: g@v.example\nTo: h@v.example\nDate: Wed, 16 Jan 2019 00:30:00 +0100\n"),
}
JOURNALED = {"vertrag.nordlicht.20210315101500@example.com",
             "AM0PR01MB1234.preise2021@AM0PR01MB1234.eurprd01.prod.example.com"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    base = tmp_path_factory.mktemp("filters")
    src = base / "src"
    for (folder, name), (mid, headers) in MAILS.items():
        d = src / folder
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(f"{headers}Message-ID: <{mid}>\nSubject: {name}\n\nbody of {name}\n".encode())
    journal = base / "journal"
    shutil.copytree(REPO / "sample_data" / "journal", journal)
    Archive.create(base / "home", str(base / "medium")).close()
    a = Archive.open(base / "home", writer=True)
    for imp in (EmlImporter(str(src)), EmlImporter(str(journal))):
        assert Ingest(a, workers=0).run(imp).status == "complete"
    yield a
    a.close()


def ids(archive, **kw) -> set[str]:
    return {sm.message_id for sm in select(archive, Filters(**kw))}


def test_no_filter_selects_everything(archive):
    assert ids(archive) == {"a@t", "b@t", "c@t", "d@t", "e@t"} | JOURNALED


def test_since_until_sent_date_whole_days(archive):
    assert ids(archive, since="2019-01-15", until="2019-01-15") == {"a@t", "e@t"}  # e is 2019-01-15 23:30 UTC
    assert ids(archive, since="2019-01-15T10:00:01") == {"b@t", "c@t", "e@t"} | JOURNALED
    assert ids(archive, until="2019-01-15T10:00:00+00:00") == {"a@t"}
    assert ids(archive, since="2020-01-01", until="2020-12-31") == {"b@t"}
    # undated mail has no date to compare: never selected by a date filter
    assert "d@t" not in ids(archive, since="1900-01-01")


def test_address_sender_recipient_and_bcc_only_from_journal(archive):
    assert ids(archive, addresses=("b@y.example",)) == {"a@t", "c@t"}
    assert ids(archive, addresses=("<E@x.EXAMPLE>",)) == {"b@t"}  # cc, case-insensitive
    assert ids(archive, addresses=("spam@junk.example",)) == {"c@t"}  # sender
    # legal@example.net is only ever a Bcc recipient, learned from the journal reports
    assert ids(archive, addresses=("legal@example.net",)) == JOURNALED
    assert ids(archive, addresses=("bernd.schaefer@example.com",)) >= {
        "AM0PR01MB1234.preise2021@AM0PR01MB1234.eurprd01.prod.example.com"}
    assert ids(archive, addresses=("b@y.example", "nodate@x.example")) == {"a@t", "c@t", "d@t"}
    assert ids(archive, addresses=("nobody@nowhere.example",)) == set()


def test_domain_matches_subdomains_not_suffixes(archive):
    assert ids(archive, domains=("y.example",)) == {"a@t", "b@t", "c@t"}  # b: sender c@sub.y.example
    assert ids(archive, domains=("x.example",)) == {"a@t", "b@t", "d@t"}
    assert ids(archive, domains=("example",)) == {"a@t", "b@t", "c@t", "d@t", "e@t"}
    assert ids(archive, domains=("ample",)) == set()
    assert ids(archive, domains=("example.net",)) >= JOURNALED


def test_folder_and_subfolders_only(archive):
    assert ids(archive, folders=("Archive",)) == {"b@t", "d@t"}  # not "Archivist"
    assert ids(archive, folders=("Archive/2020",)) == {"b@t"}
    assert ids(archive, folders=("INBOX", "Junk")) == {"a@t", "c@t"}
    assert ids(archive, folders=("Arch",)) == set()
    f = Filters(folders=("Archive",))
    assert f.folder_wanted("Archive/2020") and f.folder_wanted("Archive")
    assert not f.folder_wanted("Archivist") and not f.folder_wanted(None)


def test_spam_where_and_combinations(archive):
    assert ids(archive, spam=True) == {"c@t"}
    assert "c@t" not in ids(archive, spam=False) and len(ids(archive, spam=False)) == 6
    assert ids(archive, where="m.subject = 'd.eml'") == {"d@t"}
    assert ids(archive, domains=("y.example",), spam=False, since="2019-06-01") == {"b@t"}
    assert ids(archive, folders=("Archive",), addresses=("b@y.example",)) == set()


def test_dry_run_counts_and_bytes(archive):
    r = dry_run(archive, Filters(spam=True))
    (sm,) = select(archive, Filters(spam=True))
    assert r == {"count": 1, "bytes": sm.size, "dry_run": True}


@pytest.mark.parametrize("kw", [{"since": "15.01.2019"}, {"addresses": ("no-at-sign",)}, {"domains": ("a@b",)},
                                {"folders": ("/",)}, {"where": "no such column"}])
def test_bad_values_are_usage_errors(archive, kw):
    with pytest.raises(UsageError):
        select(archive, Filters(**kw))


def test_parse_when():
    value, bare = parse_when("2019-01-31")
    assert bare and value.isoformat() == "2019-01-31T00:00:00+00:00"
    value, bare = parse_when("2019-01-31T10:00+02:00")
    assert not bare and value.utcoffset().total_seconds() == 7200


@pytest.mark.parametrize("filters", [Filters(), Filters(spam=False), Filters(spam=True), Filters(where="m.size > 600"),
                                     Filters(where="false")])
def test_dry_run_counts_in_the_catalog_what_the_selection_holds(archive, filters):
    """K8: --dry-run counts and sums in DuckDB (no object per message); the figures are the selection's."""
    selection = select(archive, filters)
    assert dry_run(archive, filters) == {"count": len(selection), "bytes": sum(sm.size for sm in selection),
                                         "dry_run": True}


def test_an_empty_selection_is_named_by_the_options_that_made_it():
    from toolkit.catalog.directory import Scope
    from toolkit.cli.export_filters import as_options

    f = Filters(since="2030-01-01", domains=("a.example", "b example"), spam=False, where="m.size > 1",
                scope=Scope("user", "anna", 3, "TRUE"))
    assert as_options(f) == ("--since 2030-01-01 --where 'm.size > 1' --domain a.example --domain 'b example' "
                             "--no-spam --as-user anna")
    assert as_options(Filters()) == ""
