"""The directory file of ``mailarchive directory import`` (TOML), read and checked (docs/formats.md).

::

    domains = ["example.com", "example.net"]        # the local domains
    aliases = { "gmbh.example" = "example.com" }    # alias domain = local domain

    [[user]]
    name = "anna"
    addresses = ["anna.mueller@example.com"]

    [[group]]
    name = "nordlicht"
    members = ["anna.mueller@example.com"]          # addresses
    assigned = ["projekt-nordlicht@example.com"]    # distribution lists, shared mailboxes

Addresses and domains are lowercased. A mistake (an unknown key, an address
without ``@``, an address of two users, an alias of a domain that is not local,
a name used twice) is a UsageError naming it; nothing is half read.
"""
from __future__ import annotations

import contextlib

import tomllib
from dataclasses import dataclass, field

from .errors import UsageError


@dataclass
class Directory:
    domains: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)          # alias → local domain
    users: dict[str, list[str]] = field(default_factory=dict)      # name → addresses
    groups: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # name → {members, assigned}

    def as_dict(self) -> dict:
        return {"domains": self.domains, "aliases": self.aliases, "users": self.users, "groups": self.groups}


def norm_domain(text: object, what: str) -> str:
    d = str(text).strip().lower().lstrip("@").rstrip(".") if isinstance(text, str) else ""
    if not d or "@" in d or any(c.isspace() for c in d) or "." not in d:
        raise UsageError(f"{what}: {text!r} is not a mail domain (e.g. example.com)")
    return d


def norm_address(text: object, what: str) -> str:
    a = text.strip().lower() if isinstance(text, str) else ""
    if a.startswith("<") and a.endswith(">"):
        a = a[1:-1]
    local, _, domain = a.rpartition("@")
    if not local or not domain or any(c.isspace() for c in a):
        raise UsageError(f"{what}: {text!r} is not a mail address (e.g. anna@example.com)")
    return f"{local}@{norm_domain(domain, what)}"


def _strings(value: object, what: str) -> list:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{what} must be a list of strings")
    return value


def _name(table: dict, what: str) -> str:
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{what} needs a name")
    return name.strip()


def _only(table: dict, keys: set[str], what: str) -> None:
    unknown = sorted(set(table) - keys)
    if unknown:
        raise UsageError(f"{what}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(keys))})")


def parse_directory(data: bytes, source: str = "the directory file") -> Directory:
    """The checked :class:`Directory` of a TOML text."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{source} is not valid TOML: {exc}") from None
    _only(doc, {"domains", "aliases", "user", "group"}, source)
    d = Directory()
    problems: list[str] = []  # every problem of the file in one run, as a migration plan's (docs/formats.md)
    with _noted(problems):
        d.domains = sorted({norm_domain(x, "domains") for x in _strings(doc.get("domains", []), "domains")})
    with _noted(problems):
        _read_aliases(doc.get("aliases", {}), d, problems)
    with _noted(problems):
        _read_users(doc.get("user", []), d, problems)
    with _noted(problems):
        _read_groups(doc.get("group", []), d, problems)
    if len(problems) == 1:
        raise UsageError(problems[0])
    if problems:
        raise UsageError(f"{source}: {len(problems)} problems, nothing changed:\n  " + "\n  ".join(problems))
    return d


@contextlib.contextmanager
def _noted(problems: list[str]):
    """A UsageError inside is added to ``problems`` and the reading goes on."""
    try:
        yield
    except UsageError as exc:
        problems.append(str(exc))


def _read_aliases(aliases: object, d: Directory, problems: list[str]) -> None:
    if not isinstance(aliases, dict):
        raise UsageError("aliases must be a table: aliases = { \"alias.example\" = \"example.com\" }")
    for alias, target in aliases.items():
        with _noted(problems):
            a, t = norm_domain(alias, "aliases"), norm_domain(target, f"aliases.{alias}")
            if t not in d.domains:
                raise UsageError(f"aliases: {alias} points to {target}, which is not one of the local domains")
            if a in d.domains or a in d.aliases:
                raise UsageError(f"aliases: {alias} is already a local domain or an alias")
            d.aliases[a] = t


def _tables(value: object, what: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise UsageError(f"{what} must be written as [[{what}]] tables")
    return value


def _read_users(tables: object, d: Directory, problems: list[str]) -> None:
    owner: dict[str, str] = {}
    for i, t in enumerate(_tables(tables, "user"), 1):
        with _noted(problems):
            name = _name(t, f"user {i}")
            _only(t, {"name", "addresses"}, f"user {name}")
            if name in d.users:
                raise UsageError(f"user {name} is given twice")
            addrs = sorted({norm_address(a, f"user {name}") for a in _strings(t.get("addresses", []), f"user {name}: addresses")})
            if not addrs:
                raise UsageError(f"user {name} has no addresses")
            taken = [a for a in addrs if a in owner]
            if taken:
                raise UsageError("; ".join(f"{a} is an address of both user {owner[a]} and user {name}" for a in taken))
            owner.update((a, name) for a in addrs)
            d.users[name] = addrs


def _read_groups(tables: object, d: Directory, problems: list[str]) -> None:
    for i, t in enumerate(_tables(tables, "group"), 1):
        with _noted(problems):
            name = _name(t, f"group {i}")
            _only(t, {"name", "members", "assigned"}, f"group {name}")
            if name in d.groups:
                raise UsageError(f"group {name} is given twice")
            d.groups[name] = {
                key: sorted({norm_address(a, f"group {name}") for a in _strings(t.get(key, []), f"group {name}: {key}")})
                for key in ("members", "assigned")
            }
