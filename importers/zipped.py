"""Mail inside zip files met by ``import share`` and ``import eml`` (RELIABILITY K7; docs/reliability.md).

A zip is read where it lies, with the standard library's ``zipfile`` and streamed member reads:
nothing is ever extracted to disk. Each member is detected by its content, like a file of
``import share`` (``importers.share.detect``): an EML message, an mbox (split in memory), or a nested
zip (read the same way, up to ``MAX_DEPTH`` levels); anything else is a skip with its reason.

Member names are only labels: they go into the catalog's ``ref`` (``archive.zip!dir/member.eml``,
control characters escaped) and never become a path, so a zip-slip name (``../../etc/x``, ``/abs``)
is harmless and still listed under its own name. Folders take only the plain directory parts of a
member's name (no ``..``, ``.``, empty or control-character parts).

Bounds, counted on the bytes actually decompressed (the sizes a zip declares can lie):

* one member is held whole in memory only up to ``max_member`` bytes; a larger one is a problem
  naming it ("extract it, then import the file");
* a member that expands past ``max_ratio_after`` bytes and ``max_ratio`` times its compressed size
  stops at once and is reported as a problem naming it (a zip bomb), as is a container whose
  members together pass ``max_total`` bytes; the rest of that container is then not read;
* damaged, encrypted or unsupported members are problems naming the member; the other members are
  still read.
"""
from __future__ import annotations

import dataclasses
import io
import re
import zipfile
from typing import BinaryIO, Callable, Iterator

from toolkit.source import SourceItem, SourceMail, SourceProblem, SourceSkip

from .content import ZIP_MAGIC, is_zip  # noqa: F401 - importers.zipped names them too

MAX_MEMBER = 256 << 20
MAX_TOTAL = 4 << 30
MAX_RATIO = 100
MAX_RATIO_AFTER = 16 << 20
MAX_DEPTH = 3
_CHUNK = 1 << 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclasses.dataclass
class ZipLimits:
    max_member: int = MAX_MEMBER
    max_total: int = MAX_TOTAL
    max_ratio: float = MAX_RATIO
    max_ratio_after: int = MAX_RATIO_AFTER
    max_depth: int = MAX_DEPTH


class _Stop(Exception):
    """The rest of the container is not read (a bomb, or the total cap)."""


class _TooLarge(Exception):
    pass


def label(name: str) -> str:
    """A member name as a printable label (control characters as ``\\xNN``); never used as a path."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", name)


def folder_parts(name: str) -> list[str]:
    """The directory parts of a member name that may name a folder (no ``..``, ``.``, empty or control parts)."""
    parts = name.replace("\\", "/").split("/")[:-1]
    return [p for p in parts if p not in ("", ".", "..") and not _CONTROL.search(p)]


class _Budget:
    def __init__(self, limits: ZipLimits):
        self.limits = limits
        self.total = 0


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> bytes:
    """The member's bytes, read in chunks; raises _TooLarge, or _Stop for a bomb or the total cap."""
    lim = budget.limits
    parts, got = [], 0
    with zf.open(info) as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            got += len(chunk)
            budget.total += len(chunk)
            if got > lim.max_ratio_after and got > lim.max_ratio * max(info.compress_size, 1):
                raise _Stop(f"zip bomb: expands past {got} bytes from {info.compress_size} compressed "
                            f"(over {lim.max_ratio:g} times); the rest of this zip is not read")
            if budget.total > lim.max_total:
                raise _Stop(f"the members of this zip expand past {lim.max_total} bytes; the rest is not read")
            if got > lim.max_member:
                raise _TooLarge(f"member larger than {lim.max_member} bytes: extract it, then import the file")
            parts.append(chunk)
    return b"".join(parts)


def scan_zip(f: BinaryIO, ref: str, folder: str, cursor, limits: ZipLimits,
             mail_items: Callable[[bytes, str, str, str], Iterator[SourceItem]],
             depth: int = 0, budget: _Budget | None = None) -> Iterator[SourceItem]:
    """The items of the zip ``f`` (seekable). ``mail_items(data, member_name, ref, folder)`` turns one
    member's bytes into items (EML, mbox, or a skip); nested zips come back here."""
    budget = budget or _Budget(limits)
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        yield SourceProblem(ref, f"zip file not readable: {exc}", cursor)
        return
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            mref = f"{ref}!{label(info.filename)}"
            mfolder = "/".join([folder, *folder_parts(info.filename)])
            if info.flag_bits & 0x1:
                yield SourceProblem(mref, "encrypted zip member: not imported (decrypt the zip, then rerun)", cursor)
                continue
            try:
                data = _read_member(zf, info, budget)
            except _Stop as exc:
                yield SourceProblem(mref, str(exc), cursor)
                return
            except _TooLarge as exc:
                yield SourceProblem(mref, str(exc), cursor)
                continue
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError, ValueError) as exc:
                yield SourceProblem(mref, f"zip member not readable: {exc}", cursor)
                continue
            if not data:
                yield SourceSkip(mref, "empty file", cursor)
            elif is_zip(data[:4]):
                if depth + 1 >= limits.max_depth:
                    yield SourceProblem(mref, f"zip nested more than {limits.max_depth} deep: not read", cursor)
                    continue
                yield from scan_zip(io.BytesIO(data), mref, mfolder, cursor, limits, mail_items, depth + 1, budget)
            else:
                yield from (_with_cursor(item, cursor) for item in mail_items(data, info.filename, mref, mfolder))


def _with_cursor(item: SourceItem, cursor) -> SourceItem:
    return dataclasses.replace(item, cursor=cursor)
