"""The archive's people (issue 19): local domains and their aliases, users with their addresses, groups
with member and assigned addresses, and the saved scopes of revisors.

``mailarchive directory import`` replaces ``domains``, ``domain_aliases``, ``users``,
``user_addresses``, ``groups``, ``group_members`` and ``group_assigned`` as a whole;
``revisor_scopes`` holds one row per domain or folder of a revisor profile (kind
``domain``/``folder``, or one row of kind ``all``). Addresses and domains are
stored lowercased. Every change is an event (``directory-imported``,
``directory-revisor-set``, ``directory-revisor-removed``) whose detail carries the
actor, what changed and the directory version it made.
"""

SQL = """
CREATE TABLE cat.domains (domain VARCHAR PRIMARY KEY);
CREATE TABLE cat.domain_aliases (alias VARCHAR PRIMARY KEY, domain VARCHAR NOT NULL);
CREATE TABLE cat.users (name VARCHAR PRIMARY KEY);
CREATE TABLE cat.user_addresses (name VARCHAR NOT NULL, address VARCHAR NOT NULL);
CREATE TABLE cat.groups (name VARCHAR PRIMARY KEY);
CREATE TABLE cat.group_members (name VARCHAR NOT NULL, address VARCHAR NOT NULL);
CREATE TABLE cat.group_assigned (name VARCHAR NOT NULL, address VARCHAR NOT NULL);
CREATE TABLE cat.revisor_scopes (name VARCHAR NOT NULL, kind VARCHAR NOT NULL, value VARCHAR);
"""
