"""``mailarchive config set|get|list``: archive settings kept in archive.toml (secrets sealed)."""
from __future__ import annotations

import tomllib
from pathlib import Path


def setting_without_key(home: Path, key: str):
    """A plain (unsealed) top-level setting read from archive.toml without opening the archive, or None."""
    try:
        data = tomllib.loads((Path(home) / "archive.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    value = (data.get("settings") or {}).get(key)
    return value if isinstance(value, str) and value else None
