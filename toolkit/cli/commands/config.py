"""``mailarchive config set|get|list|unset``: archive settings kept in archive.toml (secrets sealed).

Keys and where they live in the ``[settings]`` table of archive.toml:

==========================  =========================================  ===================================
key                         stored as                                  used by
==========================  =========================================  ===================================
``mirror.dest``             ``mirror.dest``                            ``mirror`` without DEST, ``schedule``
``mirror.password``         ``mirror.password_sealed`` (sealed)        ``mirror`` to the configured dest
``timestamp.tsa_url``       ``timestamp.tsa_url``                      ``timestamp run``
``log_file``                ``log_file`` (absolute path)               every command (the run log)
``source.NAME``             ``sources[] = {name, kind, uri}``          ``import source NAME``, ``schedule``
``source.NAME.password``    ``sources[].password_sealed`` (sealed)     ``import source NAME``
``source.NAME.ca_file``     ``sources[].ca_file``                      ``import source NAME`` (imap, pop3)
``import.min_free``         ``import.min_free`` (bytes)                every import (toolkit/space.py, E6)
==========================  =========================================  ===================================

A source's value is ``KIND URI`` with KIND one of eml, mbox, maildir, share, imap, pop3.
Secrets are sealed with the archive's config key (AES-GCM, the key setting's name as the
associated data): archive.toml never holds them in clear text, and only a home with the
archive's key opens them. A secret's value is never taken from the command line: it comes
from ``--value-file FILE``, ``$MAILARCHIVE_CONFIG_VALUE`` or a prompt; ``get`` and ``list``
show ``(sealed)`` for it.
"""
from __future__ import annotations

import re
from pathlib import Path

import click

from ...errors import UsageError
from ..main import cli, command, pass_ctx, subgroup
from ..passwords import read_secret

SOURCE_KINDS = ("eml", "mbox", "maildir", "share", "imap", "pop3")
PLAIN_KEYS = {"mirror.dest": ("mirror", "dest"), "timestamp.tsa_url": ("timestamp", "tsa_url"), "log_file": (None, "log_file"),
              "import.min_free": ("import", "min_free")}
SECRET_KEYS = {"mirror.password": ("mirror", "password_sealed")}
_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(?:i?b)?")
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SOURCE = re.compile(r"source\.([A-Za-z0-9_-]+)(?:\.(password|ca_file))?")
SEALED = "(sealed)"


def _purpose(key: str) -> str:
    return f"setting:{key}"


def _check_key(key: str) -> None:
    if key in PLAIN_KEYS or key in SECRET_KEYS or _SOURCE.fullmatch(key):
        return
    names = ", ".join([*PLAIN_KEYS, *SECRET_KEYS, "source.NAME", "source.NAME.password", "source.NAME.ca_file"])
    raise UsageError(f"unknown setting {key!r}; the settings are: {names}")


def parse_size(key: str, text: str) -> int:
    """Bytes of ``512M``, ``2G``, ``1048576`` (K, M, G, T: powers of 1024)."""
    m = _SIZE.fullmatch(text.strip().lower())
    if m is None:
        raise UsageError(f"{key} takes a size in bytes, optionally with K, M, G or T (e.g. 512M or 0), not {text!r}")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2)]


def find_source(settings: dict, name: str) -> dict | None:
    return next((s for s in settings.get("sources") or [] if isinstance(s, dict) and s.get("name") == name), None)


def _get(archive, key: str, reveal: bool = False):
    s = archive.config.settings
    if key in PLAIN_KEYS:
        table, name = PLAIN_KEYS[key]
        return (s if table is None else s.get(table) or {}).get(name)
    if key in SECRET_KEYS:
        table, name = SECRET_KEYS[key]
        sealed = (s.get(table) or {}).get(name)
        return None if sealed is None else (archive.open_secret(_purpose(key), sealed) if reveal else SEALED)
    m = _SOURCE.fullmatch(key)
    src = find_source(s, m.group(1))
    if src is None:
        return None
    if m.group(2) is None:
        return f"{src['kind']} {src['uri']}"
    if m.group(2) == "password":
        sealed = src.get("password_sealed")
        return None if sealed is None else (archive.open_secret(_purpose(key), sealed) if reveal else SEALED)
    return src.get("ca_file")


def secret_setting(archive, key: str) -> str | None:
    """The opened secret of a sealed setting (``mirror.password``, ``source.NAME.password``), or None."""
    return _get(archive, key, reveal=True)


def _set(archive, key: str, value: str | None) -> None:
    s = archive.config.settings
    if key in PLAIN_KEYS or key in SECRET_KEYS:
        table, name = PLAIN_KEYS.get(key) or SECRET_KEYS[key]
        t = s if table is None else s.setdefault(table, {})
        if value is None:
            t.pop(name, None)
        else:
            t[name] = archive.seal_secret(_purpose(key), value) if key in SECRET_KEYS else value
        return
    m = _SOURCE.fullmatch(key)
    name, sub = m.group(1), m.group(2)
    sources = [x for x in s.get("sources") or [] if isinstance(x, dict)]
    src = find_source(s, name)
    if sub is None:
        if value is None:
            s["sources"] = [x for x in sources if x.get("name") != name]
            return
        kind, _, uri = value.strip().partition(" ")
        if kind not in SOURCE_KINDS or not uri.strip():
            raise UsageError(f"{key}: the value is KIND URI with KIND one of {', '.join(SOURCE_KINDS)} (e.g. 'share smb://user@host/mail')")
        uri = _absolute_if_local(uri.strip())  # a scheduled run (cron) starts elsewhere than this shell
        if src is None:
            sources.append({"name": name, "kind": kind, "uri": uri.strip()})
        else:
            src.update(kind=kind, uri=uri.strip())
        s["sources"] = sources
        return
    if src is None:
        raise UsageError(f"there is no source {name!r}: set it first with `mailarchive config set source.{name} 'KIND URI'`")
    field = "password_sealed" if sub == "password" else "ca_file"
    if value is None:
        src.pop(field, None)
    else:
        src[field] = archive.seal_secret(_purpose(key), value) if sub == "password" else value
    s["sources"] = sources


def _is_secret(key: str) -> bool:
    return key in SECRET_KEYS or key.endswith(".password")


def _all_keys(settings: dict) -> list[str]:
    keys = [*PLAIN_KEYS, *SECRET_KEYS]
    for src in settings.get("sources") or []:
        if isinstance(src, dict) and src.get("name"):
            keys += [f"source.{src['name']}", f"source.{src['name']}.password", f"source.{src['name']}.ca_file"]
    return keys


config_group = subgroup(cli, "config", "Archive settings in archive.toml: mirror destination, TSA, log file, scheduled sources.")


@command(config_group, "set")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--value-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Read a secret's value from this file (else $MAILARCHIVE_CONFIG_VALUE, else a prompt).")
@pass_ctx
def set_cmd(ctx, key, value, value_file):
    """Store KEY = VALUE (a secret is sealed and never taken from the command line).

    \b
    Keys: mirror.dest, mirror.password (secret), timestamp.tsa_url, log_file,
          source.NAME ('KIND URI'), source.NAME.password (secret), source.NAME.ca_file,
          import.min_free (free space an import needs on the active medium, e.g. 512M; 0: no check)
    """
    _check_key(key)
    if _is_secret(key):
        if value is not None:
            raise UsageError(f"{key} is a secret: give it with --value-file FILE, $MAILARCHIVE_CONFIG_VALUE or at the prompt, not on the command line")
        value = read_secret(value_file, "MAILARCHIVE_CONFIG_VALUE", f"Value of {key}")
    elif value is None:
        raise UsageError(f"config set {key} needs a VALUE")
    if key in ("log_file",) or key.endswith(".ca_file"):
        value = str(Path(value).expanduser().absolute())
    if key == "mirror.dest" or key.startswith("source."):
        value = value.strip()
    if key == "import.min_free":
        value = parse_size(key, value)
    if key == "mirror.dest":  # a typo is refused here, not at the next scheduled mirror
        from toolkit.storage.location import parse_location

        value = _absolute_if_local(value)  # the scheduled mirror (cron) starts elsewhere than this shell
        parse_location(value)
    if key == "timestamp.tsa_url":
        from verify.tsa_client import check_tsa_url

        check_tsa_url(value)
    with ctx.open(writer=True, repointing=True) as archive:
        if key == "mirror.dest":  # never in or around the home or a medium: no second copy (docs/media.md)
            from toolkit.places import refuse_overlap

            refuse_overlap(archive, value, "config set mirror.dest", around=True, skip=("the configured mirror",))
        _set(archive, key, value)
        archive.save_config()
        shown = _get(archive, key)
    ctx.ui.emit({"key": key, "value": shown}, lambda r: ctx.ui.say(f"{r['key']} = {r['value']}"))


def _absolute_if_local(value: str) -> str:
    """A local path made absolute (``~`` expanded); a URL (``smb://``, ``imaps://`` ...) as it is."""
    value = value.strip()
    if "://" in value:
        return value
    return str(Path(value).expanduser().absolute())


@command(config_group, "unset")
@click.argument("key")
@pass_ctx
def unset_cmd(ctx, key):
    """Remove KEY (``source.NAME`` removes the whole source)."""
    _check_key(key)
    with ctx.open(writer=True, repointing=True) as archive:
        if _get(archive, key) is None:
            raise UsageError(f"{key} is not set")
        _set(archive, key, None)
        archive.save_config()
    ctx.ui.emit({"key": key, "value": None}, lambda r: ctx.ui.say(f"{r['key']} removed"))


@command(config_group, "get")
@click.argument("key")
@pass_ctx
def get_cmd(ctx, key):
    """Print KEY's value (a secret shows as "(sealed)"); exit 1 when it is not set."""
    _check_key(key)
    with ctx.open() as archive:
        value = _get(archive, key)
    ctx.ui.emit({"key": key, "value": value}, lambda r: click.echo(r["value"]) if r["value"] is not None else None)
    if value is None:
        ctx.ui.say(f"{key} is not set")
        click.get_current_context().exit(1)


@command(config_group, "list")
@pass_ctx
def list_cmd(ctx):
    """Every setting that is set, one ``KEY = VALUE`` a line (secrets show as "(sealed)")."""
    with ctx.open() as archive:
        values = {k: _get(archive, k) for k in _all_keys(archive.config.settings)}
    values = {k: v for k, v in values.items() if v is not None}
    ctx.ui.emit({"settings": values}, lambda r: click.echo("\n".join(f"{k} = {v}" for k, v in r["settings"].items()))
                if r["settings"] else ctx.ui.say("no settings (`mailarchive config set --help` lists the keys)"))


# ------------------------------------------------------------------------------ import source NAME

def _importer(kind: str, uri: str, password: str | None, ca_file: str | None):
    if kind == "eml":
        from importers.eml import EmlImporter

        return EmlImporter(uri, smb_password=password)
    if kind == "mbox":
        from importers.mbox import MboxImporter

        return MboxImporter(uri, smb_password=password)
    if kind == "maildir":
        from importers.maildir import MaildirImporter

        return MaildirImporter(uri, smb_password=password)
    if kind == "share":
        from importers.share import ShareImporter

        return ShareImporter(uri, smb_password=password)
    if kind == "imap":
        from importers.imap import ImapImporter

        return ImapImporter(uri, password, ca_file=ca_file)
    from importers.pop3 import Pop3Importer

    return Pop3Importer(uri, password, ca_file=ca_file)


def _register_import_source() -> None:
    from .import_eml import dry_run_option, import_group, run_imports

    @command(import_group, "source")
    @click.argument("name")
    @dry_run_option
    @click.pass_context
    def source_cmd(click_ctx, name):
        """Import the configured source NAME (`mailarchive config set source.NAME 'KIND URI'`).

        Its password is the sealed source.NAME.password setting: nothing to
        type and no password file, so the line runs from cron as printed by
        `mailarchive schedule --print`.
        """
        ctx = click_ctx.obj
        with ctx.open() as archive:
            src = find_source(archive.config.settings, name)
            if src is None:
                raise UsageError(f"there is no configured source {name!r}; `mailarchive config list` shows them")
            password = secret_setting(archive, f"source.{name}.password")
        if password is None and (src["uri"].startswith(("smb://", "imap", "pop3"))):
            raise UsageError(f"source {name} needs a password: `mailarchive config set source.{name}.password`")
        click_ctx.exit(run_imports(ctx, [_importer(src["kind"], src["uri"], password, src.get("ca_file"))]))


_register_import_source()
