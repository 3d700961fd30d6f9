"""``export maildir DEST``: one Maildir++ with a subfolder per source folder, flags in the file names.

Layout
------
``INBOX`` (and messages without a source folder) go into DEST's own
``cur/``; folder ``A/B`` into ``DEST/.A.B/cur/`` (with ``new/``, ``tmp/`` and
the ``maildirfolder`` marker), every part in modified UTF-7 as Dovecot and
Courier write it. A part's characters that would be unsafe or ambiguous in
a directory name — ``.`` (the Maildir++ separator), ``\\ : * ? " < > |``,
a trailing space, and everything outside printable ASCII (control and
bidi characters included) — are written in the base64 form, which a
modified-UTF-7 reader decodes back to the same folder name; so ``..``,
``/abs`` or ``C:\\x`` never become path components (docs/reliability.md N3, N4, N8).
Directory names that would clash on a case-insensitive file system get a
``~2`` suffix (N5).

Files
-----
``<internal date as Unix time>.M<msg id>_<blob id prefix>.mailarchive,S=<size>:2,<flags>``
in ``cur/``; flags are the letters of the IMAP flags of the latest sighting
in that folder (``\\Seen`` S, ``\\Answered`` R, ``\\Flagged`` F,
``\\Deleted`` T, ``\\Draft`` D, ``$Passed`` P; ``$maildir-keyword-x`` x),
in ASCII order; other keywords have no letter and are left out. Each file
is written in ``tmp/`` and linked into ``cur/`` (the Maildir delivery
rule; never replacing anything). A rerun recognises a message already in
its folder by the name before ``:2,`` and does not write it again.

Dovecot 2.3 (``mail_location = maildir:DEST``), Python's ``mailbox.Maildir``
and mutt 2.2 read DEST as it is: the same folders (nested, non-ASCII), the
flags and the archived bytes (checked by hand: tests/README.md, "Servers
other than Dovecot"). The manifest files in DEST are not folders to them.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from toolkit import faults
from toolkit.archive import Archive
from toolkit.errors import IntegrityError, StorageError, UsageError
from toolkit.reporter import NullReporter, Reporter
from toolkit.retrieval import StoredMessage, select_paged, stream_message

from .earlier_files import EarlierFiles
from .eml import ExportSummary, readable
from .filters import Filters
from .layout import PartFile, Publishing, open_export_dir, placements, sha256_file
from .naming import DEFAULT_FILE_MODE, UniqueNamer, dir_mode, make_dirs, open_exclusive, safe_join
from .target_space import stops_when_full

LETTERS = {"\\Seen": "S", "\\Answered": "R", "\\Flagged": "F", "\\Deleted": "T", "\\Draft": "D", "$Passed": "P"}
_KEYWORD_LETTER = re.compile(r"\$maildir-(?:keyword-[a-z]|flag-[A-Z])")
#: Printable ASCII kept as itself in a folder part; everything else is base64-encoded.
_UNSAFE = set('.\\:*?"<>|/')
_MAX_DIR_BYTES = 240


def flag_letters(flags: tuple[str, ...] | list[str]) -> str:
    """Maildir info letters for IMAP flags, in ASCII order (unknown keywords are dropped)."""
    out = set()
    for f in flags:
        if f in LETTERS:
            out.add(LETTERS[f])
        elif _KEYWORD_LETTER.fullmatch(f):
            out.add(f[-1])
    return "".join(sorted(out))


def _b64(text: str) -> str:
    import base64

    data = base64.b64encode(text.encode("utf-16-be")).decode("ascii")
    return "&" + data.rstrip("=").replace("/", ",") + "-"


def encode_part(part: str) -> str:
    """One folder name part as a modified UTF-7 string that is safe in a directory name."""
    out: list[str] = []
    run: list[str] = []
    for i, ch in enumerate(part):
        plain = 0x20 <= ord(ch) <= 0x7E and ch not in _UNSAFE and not (ch == " " and i == len(part) - 1)
        if plain:
            if run:
                out.append(_b64("".join(run)))
                run = []
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    if run:
        out.append(_b64("".join(run)))
    return "".join(out)


def folder_dir_name(folder: str | None) -> str:
    """``""`` for INBOX / no folder, else ``.A.B`` (each part encoded by :func:`encode_part`)."""
    parts = [p for p in (folder or "").split("/") if p != ""]
    if not parts or parts == ["INBOX"]:
        return ""
    return "." + ".".join(encode_part(p) or "&-" for p in parts)


def file_stem(sm: StoredMessage, when: dt.datetime | None) -> str:
    ts = int(when.timestamp()) if when is not None else 0
    return f"{ts}.M{sm.msg_id}_{sm.blob_id[:12]}.mailarchive,S={sm.size}"


@stops_when_full
def export_maildir(
    archive: Archive, dest: Path, filters: Filters | None = None, *, reporter: Reporter | None = None,
    mode: int = DEFAULT_FILE_MODE,
) -> ExportSummary:
    """Export the selected messages into a Maildir++ at DEST (see the module docstring).

    Files get ``mode`` (0600 unless asked), new directories the matching directory mode;
    no symlink in DEST is followed.
    """
    from toolkit.places import refuse_overlap

    refuse_overlap(archive, dest, "export maildir", around=False)  # never plaintext into a medium or the home
    reporter = reporter or NullReporter()
    dest, manifest = open_export_dir(dest, "maildir", mode)
    selection = select_paged(archive, *(filters or Filters()).sql())
    summary = ExportSummary(dest=str(dest), selected=len(selection))
    places: dict = {}

    def on_page(page) -> None:  # the placements of one page of the selection at a time (K8)
        places.clear()
        places.update(placements(archive, [sm.msg_id for sm in page], filters))

    namer = UniqueNamer(max_bytes=_MAX_DIR_BYTES)
    dirs: dict[str, str] = {}                   # wanted dir name → claimed (unique) dir name
    # claimed dir name → the files an earlier run left in its cur/, 20 bytes each (this run's own are not kept:
    # it places a message in a folder once, K8)
    existing: dict[str, EarlierFiles] = {}

    def folder_dir(folder: str | None) -> str:
        want = folder_dir_name(folder)
        if want not in dirs:
            got = "" if want == "" else namer.claim(want)
            dirs[want] = got
            _make_maildir(dest, got, mode)
            cur = safe_join(dest, got, "cur") if got else safe_join(dest, "cur")
            existing[got] = EarlierFiles(cur)
        return dirs[want]

    folder_dir(None)  # the Maildir++ root (INBOX) always exists
    reporter.start("export", len(selection), "mails")
    publishing = Publishing(after=lambda: faults.hit("export_after_file"))
    try:
        mails = selection.mails(on_page, gone=lambda msg_id: summary.gone(msg_id, reporter))
        for sm, data in readable(archive, mails, summary, reporter):
            ok = present = False
            for p in places[sm.msg_id]:
                d = folder_dir(p.folder)
                stem = file_stem(sm, p.internal_date or sm.internal_date or sm.sent_date)
                name = f"{stem}:2,{flag_letters(p.flags)}"
                parts = (d,) if d else ()
                rel = "/".join(parts + ("cur", name))
                have = existing[d].name_of(sm.msg_id, stem)
                if have is not None:
                    path = safe_join(dest, *parts, "cur") / have
                    if path.is_symlink() or not path.is_file() or path.stat().st_size != sm.size \
                            or sha256_file(path) != sm.blob_id:
                        summary.error(sm, UsageError(f"{path} exists with other content (or is a symlink); not replaced"), reporter)
                        continue
                    summary.already_present += 1
                    present = True
                    rel = "/".join(parts + ("cur", have))
                else:
                    try:
                        _deliver(archive, dest, parts, name, sm, data, publishing, mode)
                    except (IntegrityError, StorageError) as exc:
                        summary.error(sm, exc, reporter)
                        continue
                    summary.bytes += sm.size
                ok = True
                manifest.add(msg_id=sm.msg_id, message_id=sm.message_id, blob_id=sm.blob_id, sha256=sm.blob_id,
                             size=sm.size, folder=p.folder, path=rel)
            if ok and not present:
                summary.written += 1
        publishing.flush()  # counted and in the manifest when written; a batch that fails fails the export
    except BaseException:
        publishing.close_after_error()
        manifest.close()
        raise
    finally:
        reporter.finish("export")
    manifest.write(errors=summary.errors, extra={"filters": (filters or Filters()).describe(),
                                                 "folders": {k or "INBOX": v or "." for k, v in sorted(dirs.items())}})
    return summary


def _make_maildir(dest: Path, dirname: str, mode: int = DEFAULT_FILE_MODE) -> None:
    base = safe_join(dest, dirname) if dirname else dest
    for sub in ("cur", "new", "tmp"):
        path = safe_join(base, sub)
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            raise UsageError(f"refusing to write into {str(path)!r}: a symlink or not a directory")
        make_dirs(dest, path, dmode=dir_mode(mode))
    if dirname:
        marker = safe_join(base, "maildirfolder")
        if not os.path.lexists(marker):
            open_exclusive(dest, marker, mode=mode).close()


def _deliver(archive: Archive, dest: Path, parts: tuple[str, ...], name: str, sm: StoredMessage, data,
             publishing: Publishing, mode: int = DEFAULT_FILE_MODE) -> None:
    """Write into tmp/; ``publishing`` fsyncs it and links it into cur/ (create-only) with its batch."""
    tmp = safe_join(dest, *parts, "tmp", name.replace(":", "_"))
    final = safe_join(dest, *parts, "cur") / name  # our own name: ':2,' must stay
    part = PartFile(dest, tmp, mode)
    part.final = final  # linked straight into cur/ from tmp/
    publishing.write(part, [data] if data is not None else stream_message(archive, sm))
