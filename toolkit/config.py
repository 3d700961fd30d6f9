"""archive.toml: identity, the media registry, and settings (secrets sealed)."""
from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tomli_w

from .errors import CatalogError

#: v2 (issue 15): body hashes and pack/backup checksums are BLAKE3 (toolkit/hashes.py); v1 used SHA-256.
FORMAT_VERSION = 2


@dataclass
class MediumEntry:
    id: int
    location: str
    state: str = "standby"         # active | standby (readable) | deactivated | retired | removed
    alias_of: int | None = None    # set when retired by consolidation
    secret: str | None = None      # SMB password sealed under the config key (base64)
    created: str = ""

    def to_toml(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class ArchiveConfig:
    uuid: str
    name: str
    created: str
    key_check: str                 # MAC proving the key file belongs to this archive
    format: int = FORMAT_VERSION
    next_medium_id: int = 1        # high-water mark: IDs are never handed out twice
    kdf_profile: str = "strong"    # key-backup KDF profile chosen at init (toolkit.keybackup.KDF_PROFILES)
    media: list[MediumEntry] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "ArchiveConfig":
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CatalogError(f"{path}: cannot read the archive configuration: {exc}") from None
        if data.get("format", 0) > FORMAT_VERSION:
            raise CatalogError(
                f"{path}: archive format v{data['format']} needs a newer mailarchive-toolkit (this one reads v{FORMAT_VERSION})"
            )
        if data.get("format", 0) < FORMAT_VERSION:
            raise CatalogError(
                f"{path}: archive format v{data.get('format', 0)} is older than this toolkit reads (v{FORMAT_VERSION}: "
                "BLAKE3 body hashes and pack checksums instead of SHA-256); use the mailarchive-toolkit that wrote it"
            )
        media = [MediumEntry(**m) for m in data.pop("media", [])]
        known = {f for f in cls.__dataclass_fields__}
        return cls(media=media, **{k: v for k, v in data.items() if k in known and k != "media"})

    def dumps(self) -> str:
        data = {k: v for k, v in asdict(self).items() if k not in ("media", "settings")}
        if data["kdf_profile"] == "strong":
            del data["kdf_profile"]  # the default is not written: configurations stay as they were
        data["settings"] = self.settings
        data["media"] = [m.to_toml() for m in self.media]
        return tomli_w.dumps(data)

    def save(self, path: Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.dumps())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def medium(self, medium_id: int) -> MediumEntry | None:
        return next((m for m in self.media if m.id == medium_id), None)

    @property
    def active_medium(self) -> MediumEntry | None:
        return next((m for m in self.media if m.state == "active"), None)
