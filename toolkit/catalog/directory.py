"""The directory's reads and writes (users, groups, local domains, revisor profiles) and the scopes
built from it (issue 19; tables in docs/formats.md, migration ``m0057_directory``).

A :class:`Scope` is what one person may see, as one SQL condition over ``messages m``
with its parameters, composed with the export filters (exporters/filters.py) inside
the catalog query. A user's scope is every mail with one of the user's addresses, or
an assigned address of a group the user is a member of, as sender (``from_addr``) or
as any recipient (``recipients``: To, Cc, Bcc and journal envelope recipients);
addresses of a local domain count under each of its aliases too. A revisor's scope
is every mail with an address of its domains (exactly, with the aliases of a local
domain) or seen in one of its folders (or their subfolders), or everything.

The directory version is the number of directory changes recorded in ``events``; a
scope carries the version it was built from.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb

from ..directory_file import Directory
from ..errors import UsageError
from .events import log_event

#: the event kinds that change the directory (each one is a new version)
CHANGE_KINDS = ("directory-imported", "directory-revisor-set", "directory-revisor-removed")
#: the tables a scoped ``sql`` session holds (only the rows in scope)
SCOPED_TABLES = ("messages", "recipients", "sightings", "envelopes")


@dataclass(frozen=True)
class Scope:
    kind: str                      # "user" or "revisor"
    name: str
    version: int                   # the directory version it was built from
    condition: str                 # SQL over messages m
    params: tuple = ()
    detail: dict = field(default_factory=dict, compare=False, hash=False)

    def describe(self) -> dict:
        return {f"as_{self.kind}": self.name, "directory_version": self.version, **self.detail}


# -- reads ------------------------------------------------------------------------------------------
def has_directory(con) -> bool:
    """Does the catalog hold the directory tables (a catalog not yet migrated by a writer does not)?"""
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'cat' AND table_name = 'revisor_scopes'"
    ).fetchone()[0])


def version(con) -> int:
    return con.execute("SELECT count(*) FROM events WHERE kind IN (SELECT unnest(?::VARCHAR[]))",
                       [list(CHANGE_KINDS)]).fetchone()[0]


def current(con) -> Directory:
    """The directory as stored (empty when the catalog has none)."""
    d = Directory()
    if not has_directory(con):
        return d
    d.domains = [r[0] for r in con.execute("SELECT domain FROM domains ORDER BY 1").fetchall()]
    d.aliases = dict(con.execute("SELECT alias, domain FROM domain_aliases ORDER BY 1").fetchall())
    for (name,) in con.execute("SELECT name FROM users ORDER BY 1").fetchall():
        d.users[name] = []
    for name, addr in con.execute("SELECT name, address FROM user_addresses ORDER BY 1, 2").fetchall():
        d.users.setdefault(name, []).append(addr)
    for (name,) in con.execute("SELECT name FROM groups ORDER BY 1").fetchall():
        d.groups[name] = {"members": [], "assigned": []}
    for table, key in (("group_members", "members"), ("group_assigned", "assigned")):
        for name, addr in con.execute(f"SELECT name, address FROM {table} ORDER BY 1, 2").fetchall():
            d.groups[name][key].append(addr)
    return d


def owned_sightings(con) -> dict[str, int]:
    """owner → how many sightings name that owner (a migration plan's owner column); empty before m0061."""
    has_owner = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = 'cat' AND table_name = 'sightings' "
        "AND column_name = 'owner'").fetchone()[0]
    if not has_owner:
        return {}
    return dict(con.execute(
        "SELECT owner, count(*) FROM sightings WHERE owner IS NOT NULL GROUP BY owner ORDER BY owner").fetchall())


def user_names(con) -> set[str]:
    """The names of the directory's users (empty when the catalog has no directory)."""
    if not has_directory(con):
        return set()
    return {r[0] for r in con.execute("SELECT name FROM users").fetchall()}


def revisors(con) -> dict[str, dict]:
    """name → {"all": bool, "domains": [...], "folders": [...]} of every revisor profile."""
    out: dict[str, dict] = {}
    if not has_directory(con):
        return out
    for name, kind, value in con.execute("SELECT name, kind, value FROM revisor_scopes ORDER BY 1, 2, 3").fetchall():
        p = out.setdefault(name, {"all": False, "domains": [], "folders": []})
        if kind == "all":
            p["all"] = True
        else:
            p[kind + "s"].append(value)
    return out


def changes(con) -> list[dict]:
    """Every directory change (event detail plus ``at``), oldest first."""
    rows = con.execute("SELECT at_time, kind, detail FROM events WHERE kind IN (SELECT unnest(?::VARCHAR[])) "
                       "ORDER BY event_id", [list(CHANGE_KINDS)]).fetchall()
    return [{"at": at, "kind": kind, **json.loads(detail)} for at, kind, detail in rows]


# -- writes -----------------------------------------------------------------------------------------
def _diff(old: dict, new: dict) -> dict:
    return {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(k for k in set(old) & set(new) if old[k] != new[k]),
    }


def _insert_many(con, sql: str, rows: list) -> None:
    """``executemany`` that accepts no rows (a directory without aliases or groups; DuckDB refuses [])."""
    if rows:
        con.executemany(sql, rows)


def replace_directory(con, new: Directory, actor: str, source: dict) -> dict:
    """Replace the directory by ``new`` inside the caller's transaction; an event records who, what and the
    version. Returns {"changed", "version", "what"}; an identical directory changes nothing (no event)."""
    old = current(con)
    what = {
        "domains": _diff(dict.fromkeys(old.domains), dict.fromkeys(new.domains)),
        "aliases": _diff(old.aliases, new.aliases),
        "users": _diff(old.users, new.users),
        "groups": _diff(old.groups, new.groups),
    }
    if not any(v for part in what.values() for v in part.values()):
        return {"changed": False, "version": version(con), "what": what}
    for table in ("domains", "domain_aliases", "users", "user_addresses", "groups", "group_members", "group_assigned"):
        con.execute(f"DELETE FROM {table}")
    _insert_many(con, "INSERT INTO domains VALUES (?)", [[d] for d in new.domains])
    _insert_many(con, "INSERT INTO domain_aliases VALUES (?, ?)", [[a, d] for a, d in new.aliases.items()])
    _insert_many(con, "INSERT INTO users VALUES (?)", [[n] for n in new.users])
    _insert_many(con, "INSERT INTO user_addresses VALUES (?, ?)", [[n, a] for n, addrs in new.users.items() for a in addrs])
    _insert_many(con, "INSERT INTO groups VALUES (?)", [[n] for n in new.groups])
    for table, key in (("group_members", "members"), ("group_assigned", "assigned")):
        _insert_many(con, f"INSERT INTO {table} VALUES (?, ?)",
                     [[n, a] for n, g in new.groups.items() for a in g[key]])
    v = version(con) + 1
    log_event(con, "directory-imported", {"version": v, "actor": actor, "source": source, "what": what,
                                          "counts": {"domains": len(new.domains), "aliases": len(new.aliases),
                                                     "users": len(new.users), "groups": len(new.groups)}})
    return {"changed": True, "version": v, "what": what}


def set_revisor(con, name: str, *, domains: list[str], folders: list[str], everything: bool, actor: str) -> dict:
    """Save (or replace) the revisor profile ``name``; returns {"version", "profile"}."""
    before = revisors(con).get(name)
    con.execute("DELETE FROM revisor_scopes WHERE name = ?", [name])
    rows = [[name, "all", None]] if everything else []
    rows += [[name, "domain", d] for d in sorted(set(domains))] + [[name, "folder", f] for f in sorted(set(folders))]
    con.executemany("INSERT INTO revisor_scopes VALUES (?, ?, ?)", rows)
    profile = {"all": everything, "domains": sorted(set(domains)), "folders": sorted(set(folders))}
    v = version(con) + 1
    log_event(con, "directory-revisor-set", {"version": v, "actor": actor, "revisor": name,
                                             "before": before, "profile": profile})
    return {"version": v, "profile": profile}


def remove_revisor(con, name: str, actor: str) -> dict:
    before = revisors(con).get(name)
    if before is None:
        raise UsageError(f"there is no revisor profile {name!r}")
    con.execute("DELETE FROM revisor_scopes WHERE name = ?", [name])
    v = version(con) + 1
    log_event(con, "directory-revisor-removed", {"version": v, "actor": actor, "revisor": name, "before": before})
    return {"version": v}


# -- scopes -----------------------------------------------------------------------------------------
def domain_family(d: Directory, domain: str) -> set[str]:
    """A domain and, for a local domain (or an alias of one), the local domain with all its aliases."""
    main = d.aliases.get(domain, domain)
    if main not in d.domains:
        return {domain}
    return {main} | {a for a, target in d.aliases.items() if target == main}


def expand(d: Directory, addresses) -> set[str]:
    """Each address under every alias of its domain."""
    out = set()
    for a in addresses:
        local, _, domain = a.rpartition("@")
        out |= {f"{local}@{x}" for x in domain_family(d, domain)}
    return out


_ADDRESS_CONDITION = (
    "(lower(m.from_addr) IN (SELECT unnest(?::VARCHAR[])) OR m.msg_id IN "
    "(SELECT r.msg_id FROM recipients r WHERE lower(r.address) IN (SELECT unnest(?::VARCHAR[]))))"
)
_DOMAIN_CONDITION = (
    "(split_part(lower(m.from_addr), '@', -1) IN (SELECT unnest(?::VARCHAR[])) OR m.msg_id IN "
    "(SELECT r.msg_id FROM recipients r WHERE split_part(lower(r.address), '@', -1) IN (SELECT unnest(?::VARCHAR[]))))"
)
_FOLDER_CONDITION = (
    "m.msg_id IN (SELECT s.msg_id FROM sightings s WHERE s.folder IN (SELECT unnest(?::VARCHAR[])) "
    "OR list_bool_or([starts_with(s.folder, f || '/') FOR f IN ?::VARCHAR[]]))"
)


def user_scope(con, name: str) -> Scope:
    """The scope of user ``name``: their addresses and the assigned addresses of their groups."""
    d = current(con)
    if name not in d.users:
        known = ", ".join(sorted(d.users)) or "none: import a directory first"
        raise UsageError(f"there is no user {name!r} in the directory (users: {known})")
    own = expand(d, d.users[name])
    groups = sorted(g for g, spec in d.groups.items() if own & expand(d, spec["members"]))
    assigned = set().union(*(expand(d, d.groups[g]["assigned"]) for g in groups)) if groups else set()
    addresses = sorted(own | assigned)
    return Scope("user", name, version(con), _ADDRESS_CONDITION, (addresses, addresses),
                 {"addresses": addresses, "groups": groups})


def revisor_scope(con, name: str) -> Scope:
    """The scope of revisor profile ``name``: its domains (with aliases) or folders, or everything."""
    profile = revisors(con).get(name)
    if profile is None:
        known = ", ".join(sorted(revisors(con))) or "none"
        raise UsageError(f"there is no revisor profile {name!r} (profiles: {known})")
    v = version(con)
    if profile["all"]:
        return Scope("revisor", name, v, "true", (), {"all": True})
    d = current(con)
    domains = sorted(set().union(*(domain_family(d, x) for x in profile["domains"]))) if profile["domains"] else []
    folders = profile["folders"]
    parts, params = [], []
    if domains:
        parts.append(_DOMAIN_CONDITION)
        params += [domains, domains]
    if folders:
        parts.append(_FOLDER_CONDITION)
        params += [folders, folders]
    return Scope("revisor", name, v, "(" + " OR ".join(parts) + ")", tuple(params),
                 {"domains": domains, "folders": folders})


_SENT_BY_USER = ("t.msg_id IN (SELECT msg_id FROM memory.main.messages "
                 "WHERE lower(from_addr) IN (SELECT unnest(?::VARCHAR[])))")
_BLIND_COPIES = {
    "recipients": f"(t.kind <> 'bcc' OR lower(t.address) IN (SELECT unnest(?::VARCHAR[])) OR {_SENT_BY_USER})",
    "envelopes": _SENT_BY_USER,
}


def restrict_session(con: duckdb.DuckDBPyConnection, scope: Scope) -> None:
    """Copy the rows in ``scope`` of :data:`SCOPED_TABLES` into the session's own memory and detach the
    catalog, so a query sees those rows and nothing else (not even through ``cat.``); called by
    :meth:`~toolkit.catalog.Catalog.querying` before it locks the session's configuration."""
    con.execute(f"CREATE TABLE memory.main.messages AS SELECT m.* FROM cat.main.messages m WHERE {scope.condition}",
                list(scope.params))
    own = scope.detail.get("addresses") if scope.kind == "user" else None
    for table in SCOPED_TABLES[1:]:
        where = "msg_id IN (SELECT msg_id FROM memory.main.messages)"
        params: list = []
        if own is not None and table in _BLIND_COPIES:
            # a user sees the Bcc recipients (and the journal envelope, which names them all) of the mail
            # they sent, and their own Bcc rows; not who else was blind-copied on mail sent to them
            where += " AND " + _BLIND_COPIES[table]
            params = [own] * _BLIND_COPIES[table].count("?")
        con.execute(f"CREATE TABLE memory.main.{table} AS SELECT * FROM cat.main.{table} t WHERE {where}", params)
    con.execute("USE memory")
    con.execute("DETACH cat")
