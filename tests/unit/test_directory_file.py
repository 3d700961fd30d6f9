"""The directory file (docs/formats.md, "The directory") and the address expansion a user's scope uses."""
from __future__ import annotations

import pytest

from toolkit.catalog.directory import domain_family, expand
from toolkit.directory_file import parse_directory
from toolkit.errors import UsageError

GOOD = b"""
domains = ["Example.com", "example.net"]
aliases = { "gmbh.example" = "example.com", "ag.example" = "example.com" }
[[user]]
name = "anna"
addresses = ["<Anna@Example.com>", "anna@ag.example"]
[[group]]
name = "team"
members = ["anna@example.com"]
assigned = ["team@example.com"]
"""


def test_a_good_file_is_read_and_lowercased():
    d = parse_directory(GOOD)
    assert d.domains == ["example.com", "example.net"]
    assert d.aliases == {"gmbh.example": "example.com", "ag.example": "example.com"}
    assert d.users == {"anna": ["anna@ag.example", "anna@example.com"]}
    assert d.groups == {"team": {"members": ["anna@example.com"], "assigned": ["team@example.com"]}}


def test_addresses_count_under_every_alias_of_a_local_domain_only():
    d = parse_directory(GOOD)
    assert domain_family(d, "gmbh.example") == {"example.com", "gmbh.example", "ag.example"}
    assert domain_family(d, "example.net") == {"example.net"}
    assert domain_family(d, "example.org") == {"example.org"}  # not local: no aliases
    assert expand(d, ["x@ag.example", "y@example.org"]) == {
        "x@example.com", "x@gmbh.example", "x@ag.example", "y@example.org"}


@pytest.mark.parametrize("text, named", [
    (b'domains = ["example.com"]\naliases = { "a.example" = "example.net" }', "not one of the local domains"),
    (b'domains = ["example.com"]\naliases = { "example.com" = "example.com" }', "already a local domain"),
    (b'[[user]]\nname = "a"\naddresses = ["x@example.com"]\n[[user]]\nname = "b"\naddresses = ["X@example.com"]',
     "both user a and user b"),
    (b'[[user]]\nname = "a"\naddresses = ["x@example.com"]\n[[user]]\nname = "a"\naddresses = ["y@example.com"]',
     "given twice"),
    (b'[[user]]\nname = "a"\naddresses = ["nobody"]', "not a mail address"),
    (b'[[user]]\nname = "a"\naddresses = []', "has no addresses"),
    (b'[[user]]\naddresses = ["a@example.com"]', "needs a name"),
    (b'[[group]]\nname = "g"\nmember = ["a@example.com"]', "unknown key(s) member"),
    (b'owners = 1', "unknown key(s) owners"),
    (b'domains = "example.com"', "list of strings"),
    (b'domains = [', "not valid TOML"),
    (b'\xff\xfe', "not valid TOML"),
])
def test_a_mistake_is_refused_naming_it(text, named):
    with pytest.raises(UsageError) as err:
        parse_directory(text)
    assert named in str(err.value)


def test_every_problem_of_the_file_is_named_in_one_run():
    text = (b'domains = ["example.org"]\naliases = { "old.example" = "elsewhere.example" }\n'
            b'[[user]]\nname = "anna"\naddresses = ["anna@example.org"]\n'
            b'[[user]]\nname = "anna"\naddresses = ["bert@example.org"]\n'
            b'[[user]]\nname = "carl"\naddresses = ["ANNA@example.org"]\n'
            b'[[group]]\nname = "g"\nmembers = ["nobody"]\n')
    with pytest.raises(UsageError) as info:
        parse_directory(text, "people.toml")
    lines = str(info.value).splitlines()
    assert lines[0] == "people.toml: 4 problems, nothing changed:"
    assert [ln.strip() for ln in lines[1:]] == [
        "aliases: old.example points to elsewhere.example, which is not one of the local domains",
        "user anna is given twice",
        "anna@example.org is an address of both user anna and user carl",
        "group g: 'nobody' is not a mail address (e.g. anna@example.com)",
    ]
