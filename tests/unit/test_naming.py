"""Safe export names (docs/reliability.md N3-N8): exporters/naming.py."""
from __future__ import annotations

import datetime as dt
import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

from exporters.naming import (UniqueNamer, message_filename, open_exclusive, safe_component,
                              safe_join)
from toolkit.errors import UsageError

HOSTILE = [
    "../../etc/passwd", "/abs", "C:\\x", "..\\..\\x", "..", ".", "", "a/../../b",
    "CON", "aux.txt", "a.txt:stream", "name. ", "\u202Eexe.txt",
    "x" * 1000, "\u00e4" * 300, "\u6f22" * 300,
    "a\x00b", "\x00", "\x01\x02\x1f\x7f", "tab\there\nnewline\r",
    # borg's rejected_dotdot_paths style entries
    "../", "..\\", "/..", "../etc", "..\\etc", "a/..", "a/../b/..", "./../x",
    "...", " ", "\u2066\u2069", "nul", "LPT9.log", "com1.tar.gz", "CONOUT$",
]


def _inside(root: Path, p: Path) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(p)]) == real_root


# ------------------------------------------------------------------ safe_component

@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_stay_inside_root(tmp_path, name):
    p = safe_join(tmp_path, name)
    assert _inside(tmp_path, p)
    assert p.parent == tmp_path          # exactly one component, never the root itself
    comp = p.name
    assert comp not in ("", ".", "..")
    assert not set(comp) & set('/\\\x00<>:"|?*')
    assert len(comp.encode("utf-8")) <= 200
    with open_exclusive(tmp_path, p) as fh:    # it can really be created
        fh.write(b"x")
    assert p.read_bytes() == b"x"


@pytest.mark.parametrize("name, expected", [
    ("CON", "_CON"), ("aux.txt", "_aux.txt"), ("nul", "_nul"), ("LPT9.log", "_LPT9.log"),
    ("com1.tar.gz", "_com1.tar.gz"), ("CON .txt", "_CON .txt"), ("console", "console"),
    ("a.txt:stream", "a.txt_stream"), ("name. ", "name"), ("trail...", "trail"),
    ("..", "unnamed"), (".", "unnamed"), ("", "unnamed"), ("...", "unnamed"),
    ("\u202Eexe.txt", "exe.txt"), ("a\u2066b\u2069c", "abc"),
    ("a\x00b", "a_b"), ("a/b\\c", "a_b_c"), ('q<>:"|?*', "q_______"),
    ("../../etc/passwd", ".._.._etc_passwd"), (".hidden", ".hidden"),
    ("Grüße.pdf", "Grüße.pdf"),
])
def test_safe_component_mapping(name, expected):
    assert safe_component(name) == expected


def test_fallback_is_configurable():
    assert safe_component("..", fallback="attachment") == "attachment"


def test_nfc_normalised():
    nfd = unicodedata.normalize("NFD", "Müller.pdf")
    out = safe_component(nfd)
    assert out == unicodedata.normalize("NFC", "Müller.pdf")
    assert len(out) == len("Müller.pdf")


def test_truncation_keeps_characters_whole_and_extension():
    name = "\u00fc" * 300 + ".pdf"               # 2 bytes each
    out = safe_component(name, max_bytes=101)
    assert len(out.encode("utf-8")) <= 101
    assert out.endswith(".pdf")
    assert set(out[:-4]) == {"\u00fc"}
    cjk = safe_component("\u6f22" * 300, max_bytes=100)   # 3 bytes each, no extension
    assert cjk == "\u6f22" * 33


def test_truncation_never_splits_a_four_byte_character():
    out = safe_component("\U0001F600" * 100, max_bytes=203)
    assert out == "\U0001F600" * 50


def test_truncation_cannot_reexpose_a_reserved_name():
    # "CONsole" is harmless, but cut to 3 bytes it would become the device "CON"
    assert safe_component("CONsole", max_bytes=3, fallback="x") == "_CO"
    assert safe_component("aux.txt", max_bytes=4, fallback="x") == "_aux"


def test_lone_surrogates_are_replaced():
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    out = safe_component(name)
    out.encode("utf-8")                          # must not raise
    assert out == "caf_.txt"


def test_too_small_max_bytes_rejected():
    with pytest.raises(ValueError):
        safe_component("x", max_bytes=3)         # shorter than the fallback


# ------------------------------------------------------------------ UniqueNamer

def test_unique_namer_case_clash():
    n = UniqueNamer()
    assert n.claim("a.eml") == "a.eml"
    assert n.claim("A.eml") == "A~2.eml"
    assert n.claim("a.EML") == "a~3.EML"
    assert n.claim("A~2.eml") == "A~2~2.eml"


def test_unique_namer_nfc_nfd_clash():
    n = UniqueNamer()
    nfc = unicodedata.normalize("NFC", "Bericht Müller.pdf")
    nfd = unicodedata.normalize("NFD", "Bericht Müller.pdf")
    assert nfc != nfd
    first = n.claim(nfc)
    second = n.claim(nfd)
    assert first == nfc
    assert second == unicodedata.normalize("NFC", "Bericht Müller~2.pdf")
    assert n.claim(nfd.upper()) == unicodedata.normalize("NFC", "BERICHT MÜLLER~3.PDF")


def test_unique_namer_casefold_beyond_lower():
    n = UniqueNamer()
    assert n.claim("straße.txt") == "straße.txt"
    assert n.claim("STRASSE.txt") == "STRASSE~2.txt"


def test_unique_namer_respects_existing_and_sanitises():
    n = UniqueNamer(existing=["report.pdf", "unnamed"])
    assert n.claim("REPORT.pdf") == "REPORT~2.pdf"
    assert n.claim("..") == "unnamed~2"
    assert n.claim("CON") == "_CON"
    assert n.claim("con") == "_con~2"


def test_unique_namer_suffix_fits_max_bytes():
    n = UniqueNamer(max_bytes=50)
    long = "y" * 80 + ".pdf"
    names = [n.claim(long) for _ in range(12)]
    assert len({x.casefold() for x in names}) == 12
    assert all(len(x.encode()) <= 50 and x.endswith(".pdf") for x in names)
    assert names[11].endswith("~12.pdf")


# ------------------------------------------------------------------ safe_join

def test_safe_join_multiple_components(tmp_path):
    p = safe_join(tmp_path, "INBOX/../..", "..", "a.txt:stream")
    assert p == tmp_path / "INBOX_.._" / "unnamed" / "a.txt_stream"   # trailing dots stripped
    assert _inside(tmp_path, p)


def test_safe_join_refuses_symlink_out_of_root(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "export"
    root.mkdir()
    (root / "evil").symlink_to(outside)
    with pytest.raises(UsageError):
        safe_join(root, "evil", "x.eml")
    assert safe_join(root, "good", "x.eml") == root / "good" / "x.eml"


def test_safe_join_accepts_symlinked_root(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert safe_join(link, "a") == link / "a"


def _old_safe_join_refuses(root: Path, path: Path) -> bool:
    """The check as it was before the lstat walk: both real paths resolved from ``/``."""
    return not _inside(root, path)


@pytest.mark.parametrize("layout", [
    {"evil": "OUT"},                          # a link straight out
    {"a": None, "a/evil": "OUT"},             # a link out one level down
    {"a": None, "a/in": "ROOT/b", "b": None},  # a link that stays inside
    {"a": None, "a/loop": "ROOT/a/loop"},     # a link to itself
    {"a": None, "a/dangling": "ROOT/nowhere"},  # a dangling link, inside
    {"a": None, "a/dangling": "OUT/nowhere"},   # a dangling link, out
    {"f": "FILE"},                            # a file where a directory would be
    {},
])
@pytest.mark.parametrize("names", [("evil", "x.eml"), ("a", "evil", "x.eml"), ("a", "in", "x"), ("a", "loop", "x"),
                                   ("a", "dangling", "x"), ("f", "x"), ("a", "new", "x"), ("a",)])
def test_safe_join_refuses_exactly_what_the_full_real_path_check_refused(tmp_path, layout, names):
    """The few lstat calls below the root decide as resolving both real paths from ``/`` did, for links out, links
    that stay inside, loops, dangling links, files in the way and names that do not exist yet."""
    outside, root = tmp_path / "outside", tmp_path / "export"
    outside.mkdir()
    root.mkdir()
    for name, what in layout.items():
        where = root / name
        if what is None:
            where.mkdir()
        elif what == "FILE":
            where.write_bytes(b"x")
        else:
            where.symlink_to(what.replace("ROOT", str(root)).replace("OUT", str(outside)))
    expected = _old_safe_join_refuses(root, root.joinpath(*names))
    if expected:
        with pytest.raises(UsageError, match="leads outside the export root"):
            safe_join(root, *names)
    else:
        assert safe_join(root, *names) == root.joinpath(*names)


# ------------------------------------------------------------------ open_exclusive

def test_open_exclusive_creates_parents_and_writes(tmp_path):
    p = tmp_path / "2019" / "INBOX" / "a.eml"
    with open_exclusive(tmp_path, p) as fh:
        fh.write(b"mail")
    assert p.read_bytes() == b"mail"
    assert (p.stat().st_mode & 0o777) == 0o600


def test_open_exclusive_refuses_existing_file(tmp_path):
    p = tmp_path / "a.eml"
    p.write_bytes(b"original")
    with pytest.raises(UsageError, match="already exists"):
        open_exclusive(tmp_path, p)
    assert p.read_bytes() == b"original"


def test_open_exclusive_refuses_symlink_at_target(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    root = tmp_path / "export"
    root.mkdir()
    (root / "a.eml").symlink_to(victim)
    with pytest.raises(UsageError):
        open_exclusive(root, root / "a.eml")
    assert victim.read_bytes() == b"keep"


def test_open_exclusive_refuses_dangling_symlink_at_target(tmp_path):
    root = tmp_path / "export"
    root.mkdir()
    (root / "a.eml").symlink_to(tmp_path / "would-be-created")
    with pytest.raises(UsageError):
        open_exclusive(root, root / "a.eml")
    assert not (tmp_path / "would-be-created").exists()


def test_open_exclusive_refuses_symlinked_parent(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "export"
    root.mkdir()
    (root / "INBOX").symlink_to(outside)
    with pytest.raises(UsageError, match="symlink"):
        open_exclusive(root, root / "INBOX" / "a.eml")
    with pytest.raises(UsageError, match="symlink"):
        open_exclusive(root, root / "INBOX" / "deeper" / "a.eml")
    assert list(outside.iterdir()) == []


def test_open_exclusive_refuses_file_as_parent(tmp_path):
    (tmp_path / "plain").write_bytes(b"")
    with pytest.raises(UsageError):
        open_exclusive(tmp_path, tmp_path / "plain" / "a.eml")


@pytest.mark.parametrize("rel", ["../x.eml", "/etc/x.eml", "a/../../x.eml", "."])
def test_open_exclusive_refuses_paths_outside_root(tmp_path, rel):
    root = tmp_path / "export"
    root.mkdir()
    with pytest.raises(UsageError):
        open_exclusive(root, root / rel)
    assert not (tmp_path / "x.eml").exists()


# ------------------------------------------------------------------ message_filename

def test_message_filename_example():
    sent = dt.datetime(2019, 1, 7, 9, 15, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert message_filename(123, "Quarterly report", sent) == \
        "2019-01-07_000123_Quarterly-report.eml"


@pytest.mark.parametrize("subject, expected", [
    (None, "nodate_000007.eml"),
    ("", "nodate_000007.eml"),
    ("!!!", "nodate_000007.eml"),
    ("Re: AW: Grüße aus München!", "nodate_000007_Re-AW-Grüße-aus-München.eml"),
    ("../../etc/passwd", "nodate_000007_etc-passwd.eml"),
    ("\u202Egpj.exe", "nodate_000007_gpj-exe.eml"),
    ("snake_case  and\ttabs", "nodate_000007_snake-case-and-tabs.eml"),
])
def test_message_filename_slugs(subject, expected):
    assert message_filename(7, subject, None) == expected


def test_message_filename_long_subjects_are_bounded():
    out = message_filename(1, "word " * 100, None)
    slug = out[len("nodate_000001_"):-len(".eml")]
    assert len(slug) <= 60 and not slug.endswith("-")
    cjk = message_filename(1, "\u56db" * 200, dt.datetime(2021, 3, 1))
    assert len(cjk.encode("utf-8")) <= 200
    assert cjk.startswith("2021-03-01_000001_")


def test_message_filename_unique_by_id():
    names = {message_filename(i, "same subject", None) for i in range(1, 2000)}
    assert len(names) == 1999
    assert message_filename(1234567, "x", None) == "nodate_1234567_x.eml"
    with pytest.raises(ValueError):
        message_filename(-1, "x", None)


# ------------------------------------------------------------------ properties

ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=()), max_size=400)


@given(ANY_TEXT)
def test_property_safe_component(name):
    out = safe_component(name)
    assert out
    assert not set(out) & {"/", "\\", "\x00"}
    assert out not in (".", "..")
    assert len(out.encode("utf-8")) <= 200        # also proves it is valid UTF-8
    assert safe_component(out) == out             # idempotent


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(st.lists(ANY_TEXT, min_size=1, max_size=4))
def test_property_safe_join_stays_in_root(tmp_path, components):
    p = safe_join(tmp_path, *components)
    assert _inside(tmp_path, p)
    assert len(p.relative_to(tmp_path).parts) == len(components)


@given(st.lists(st.text(max_size=30), max_size=30))
def test_property_unique_namer_never_repeats(names):
    n = UniqueNamer()
    out = [n.claim(x) for x in names]
    folded = {unicodedata.normalize("NFD", unicodedata.normalize("NFD", x).casefold())
              for x in out}
    assert len(folded) == len(out)
