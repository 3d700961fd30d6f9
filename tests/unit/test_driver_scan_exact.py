"""The cheaper tree scans of ``import eml`` and ``import maildir`` give exactly what the code they replaced
gave (issue 15, driver scan).

The former code is kept here as the reference: ``walk_local`` (each entry stat'ed by its whole path, now
relative to its directory), ``entry_cursor`` (``base64.b64encode``), the eml scan's hidden-part test, folder
and zip-name test (now a substring test and a folder remembered per directory), and the Maildir scan's
``classify``, ``folder_name`` and flag parsing (now remembered per directory and per info suffix). Each is
compared with the new code on a generated tree of odd entries (names that are not UTF-8, hidden parts,
symlinks to files and directories, a FIFO, zips, empty and unreadable files, Apple Mail and Maildir++
layouts), on the test corpora and on random paths; and whole scans of those trees are compared item by
item with scans that run the former code.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import functools
import os
import re
import stat
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import importers.eml as eml
import importers.maildir as maildir
import importers.walk as walk
from importers.walk import FileEntry
from tests.corpora import corpora_dir
from toolkit.reporter import NullReporter

REPO = Path(__file__).resolve().parents[2]


# -- the former code --------------------------------------------------------------------------------------
def old_walk_local(root: bytes) -> list[FileEntry]:
    st_ = os.lstat(root)
    if stat.S_ISREG(st_.st_mode):
        return [FileEntry(os.path.basename(root), st_.st_size, st_.st_mtime)]
    out: list[FileEntry] = []
    stack = [b""]
    while stack:
        rel_dir = stack.pop()
        full_dir = os.path.join(root, rel_dir) if rel_dir else root
        try:
            with os.scandir(full_dir) as it:
                entries = list(it)
        except OSError as exc:
            out.append(FileEntry(rel_dir or b".", 0, 0.0, f"directory not readable: {exc.strerror}"))
            continue
        for e in entries:
            rel = rel_dir + b"/" + e.name if rel_dir else e.name
            try:
                est = e.stat(follow_symlinks=False)
            except OSError as exc:
                out.append(FileEntry(rel, 0, 0.0, f"vanished or unreadable during the scan: {exc.strerror}"))
                continue
            mode = est.st_mode
            if stat.S_ISLNK(mode):
                out.append(FileEntry(rel, 0, est.st_mtime, "symbolic link (never followed)"))
            elif stat.S_ISDIR(mode):
                stack.append(rel)
            elif stat.S_ISREG(mode):
                out.append(FileEntry(rel, est.st_size, est.st_mtime))
            else:
                kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
                out.append(FileEntry(rel, 0, est.st_mtime, f"{kind} (never opened)"))
    out.sort(key=lambda f: f.rel)
    return out


def old_entry_cursor(entry: FileEntry) -> dict:
    return {"path_b64": base64.b64encode(entry.rel).decode("ascii"), "size": entry.size, "mtime": entry.mtime}


def old_hidden(rel: bytes) -> bool:
    return any(part.startswith(b".") for part in rel.split(b"/"))


def old_eml_folder(rel: bytes) -> str | None:
    head = rel.rpartition(b"/")[0]
    if rel.lower().endswith(b".emlx") and b".mbox/" in head + b"/":
        names = [part[:-5] for part in head.split(b"/") if part.lower().endswith(b".mbox") and len(part) > 5]
        return walk.ref_text(b"/".join(names))
    return walk.ref_text(head) if head else None


def old_zip_named(entry: FileEntry) -> bool:
    return (not entry.skip_reason and entry.size > 0 and entry.rel.lower().endswith(b".zip")
            and not any(part.startswith(b".") for part in entry.rel.split(b"/")))


def old_classify(rel: bytes) -> tuple[str, bytes | None]:
    parts = rel.split(b"/")
    if any(p.startswith(maildir._METADATA_DIR_PREFIX) for p in parts[:-1]):
        return maildir.METADATA, None
    if len(parts) >= 2:
        if parts[-2] in maildir.MESSAGE_DIRS:
            return maildir.MESSAGE, b"/".join(parts[:-2])
        if parts[-2] == b"tmp":
            return maildir.TMP, b"/".join(parts[:-2])
    if maildir.is_metadata_name(parts[-1]):
        return maildir.METADATA, None
    return maildir.STRAY, None


def old_name_time(name: bytes) -> float | None:
    m = re.match(rb"(\d{9,11})[._]", name)
    if not m:
        return None
    ts = float(m.group(1))
    return ts if 631152000.0 <= ts <= dt.datetime.now(dt.timezone.utc).timestamp() + 86400 else None


def old_flag_field(self, name: str, folder_dir: bytes) -> tuple[str, ...]:
    return maildir.flag_field(maildir.parse_flags(name, self._folder_keywords(folder_dir)))


@pytest.fixture
def former_code(monkeypatch):
    """Puts the former code in place of the new (for the reference scan of a test)."""
    def use() -> None:
        for module in (eml, maildir):
            monkeypatch.setattr(module, "walk_local", old_walk_local)
            monkeypatch.setattr(module, "entry_cursor", old_entry_cursor)
        monkeypatch.setattr(eml, "_hidden", old_hidden)
        monkeypatch.setattr(eml, "_folder", old_eml_folder)
        monkeypatch.setattr(eml.EmlImporter, "_zip_named", lambda self, entry: old_zip_named(entry))
        monkeypatch.setattr(maildir, "classify", old_classify)
        monkeypatch.setattr(maildir, "_folder_name", maildir.folder_name)
        monkeypatch.setattr(maildir, "_name_time", old_name_time)
        monkeypatch.setattr(maildir.MaildirImporter, "_flag_field", old_flag_field)
    return use


# -- the odd tree -------------------------------------------------------------------------------------------
_MAIL = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\nMessage-ID: <%d@x>\r\n\r\nbody %d\r\n"


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_odd_tree(root: Path) -> Path:
    """A tree with every kind of entry a scan meets (see the module docstring)."""
    r = os.fsencode(root)
    n = iter(range(1000))

    def put(rel: bytes, data: bytes | None = None) -> None:
        path = os.path.join(r, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            i = next(n)
            f.write(_MAIL % (i, i) if data is None else data)

    for rel in (b"a.eml", b"b c.eml", b"d\xffe.eml", b"sub/x.eml", b"sub/deeper/y.EML", b"\xe9t\xe9/z.eml",
                b"sub/.hidden.eml", b".hid/w.eml", b"sub/.hd/v.eml", b"line\nbreak.eml", b"sp ace/dir/q.eml",
                b"Mail/V3/acc/INBOX.mbox/store/Data/Messages/1.emlx", b"Mail/V3/acc/Work.mbox/Pro.MBOX/d/Messages/2.EMLX",
                b"Mail/x.mbox/3.eml", b".mbox/4.emlx", b"notes.txt", b"Info.plist", b"folder.msf", b"dovecot-uidlist",
                b"dovecot.index.log", b"sub/maildirfolder"):
        put(rel)
    put(b"empty.eml", b"")
    put(b"big.eml", b"X" * 3000)
    put(b"pics/a.ZIP", _zip_bytes({"m1.eml": _MAIL % (901, 901), "d/m2.eml": _MAIL % (902, 902), "x.bin": b"\x00\x01"}))
    put(b"pics/not-a-zip.zip", _MAIL % (903, 903))
    put(b".hzip/h.zip", _zip_bytes({"m.eml": _MAIL % (904, 904)}))
    put(b"unreadable.eml")
    os.chmod(os.path.join(r, b"unreadable.eml"), 0)
    os.symlink(os.path.join(r, b"a.eml"), os.path.join(r, b"link-to-file.eml"))
    os.symlink(os.path.join(r, b"sub"), os.path.join(r, b"link-to-dir"))
    os.symlink(b"loop", os.path.join(r, b"loop"))
    os.symlink(b"nowhere", os.path.join(r, b"sub/dangling.eml"))
    os.mkfifo(os.path.join(r, b"fifo.eml"))
    os.makedirs(os.path.join(r, b"emptydir/inner"))
    # a Maildir++ below it: INBOX, subfolders (modified UTF-7), keywords, tmp, metadata, Courier dirs
    for rel in (b"md/cur/1546300800.1.host:2,S", b"md/cur/1546300801.2.host:2,FRS", b"md/cur/1546300802.3.host:2,ab",
                b"md/new/1546300803.4.host", b"md/new/99.5.host!2,T", b"md/cur/1546300804_0.6.host,U=1:2,Dz",
                b"md/.Sub/cur/1546300805.7.host:2,S", b"md/.Entw&APw-rfe.Deep/new/1546300806.8.host:2,P",
                b"md/.Sub/cur/.hidden:2,S", b"md/tmp/1546300807.9.host", b"md/courierimapkeywords/x",
                b"md/foo/bar/cur/1546300808.10.host:2,Sa", b"md/stray.txt", b"md/maildirfolder",
                b"md/storage/m.1", b"md/cur/9999999999.11.host:2,S", b"md/cur/\xff\xfe.12.host:2,S"):
        put(rel)
    put(b"md/cur/1546300809.13.host:2,S", b"")
    put(b"md/dovecot-keywords", b"0 Work\n1 $Junk\nnot a line\n2 bad keyword\n")
    put(b"md/.Sub/dovecot-keywords", b"0 Other\n")
    return root


def _trees(tmp_path: Path) -> list[Path]:
    trees = [make_odd_tree(tmp_path / "odd"), REPO / "sample_data" / "eml", REPO / "sample_data" / "maildir"]
    try:
        corpora = corpora_dir()
    except pytest.skip.Exception:
        return trees
    return trees + [p for p in (corpora / "a-mime-edge", corpora / "b-mbox-maildir", corpora / "e-real-corpus") if p.is_dir()]


def _fields(item) -> tuple:
    """An item's fields as plain values (its callables compared by what they are, not by identity)."""
    out = []
    for f in dataclasses.fields(item):
        v = getattr(item, f.name)
        if f.name == "on_read_error" and v is not None:
            v = _fields(v(PermissionError(13, "Permission denied")))
        elif f.name == "opener" and v is not None:
            v = "opener"
        elif isinstance(v, functools.partial):
            v = (v.func, v.args, v.keywords)
        out.append((f.name, v))
    return (type(item).__name__, tuple(out))


def _scan(importer) -> list[tuple]:
    return [_fields(item) for item in importer.scan(None, NullReporter())]


# -- the tests ----------------------------------------------------------------------------------------------
def test_walk_gives_what_the_former_walk_gave(tmp_path):
    for tree in _trees(tmp_path):
        root = os.fsencode(tree)
        assert walk.walk_local(root) == old_walk_local(root), tree
    single = os.fsencode(tmp_path / "odd" / "a.eml")
    assert walk.walk_local(single) == old_walk_local(single)


def _walks_compared(root: bytes) -> str:
    """'' when the new walk gives what the former gave and reports both unreadable places; else what differs."""
    new = walk.walk_local(root)
    if new != old_walk_local(root):
        return f"new {new!r}\nformer {old_walk_local(root)!r}"
    if not any(e.skip_reason and e.skip_reason.startswith("directory not readable") for e in new):
        return "no directory reported as not readable"
    if not any(e.skip_reason and e.skip_reason.startswith("vanished or unreadable") for e in new):
        return "no entry reported as unreadable"
    return ""


def _as_nobody(run, *args) -> str:
    """``run(*args)`` in a forked child that dropped root for uid/gid 65534 (root reads a directory without
    permissions, and CI runs as root): its return text, or the error it met."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(w, run(*args).encode("utf-8", "replace"))
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(w, f"child failed: {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        said = f.read().decode()
    _, status = os.waitpid(pid, 0)
    return said if os.waitstatus_to_exitcode(status) == 0 else said or "child failed"


def test_walk_reports_an_unreadable_directory_as_before(tmp_path):
    import tempfile

    # under a directory of its own that others may traverse (pytest's tmp_path is root's own, 0700)
    base = Path(tempfile.mkdtemp(prefix="mailarchive-unreadable-"))
    try:
        base.chmod(0o755)
        tree = make_odd_tree(base / "odd")
        for d, dirs, files in os.walk(tree):  # readable by everyone, but for the two places below
            os.chmod(d, 0o755)
            for f in files:
                if not os.path.islink(os.path.join(d, f)):
                    os.chmod(os.path.join(d, f), 0o644)
        os.chmod(tree / "sub", 0)
        os.chmod(tree / "pics", 0o644)  # listable, but its entries cannot be looked at
        root = os.fsencode(tree)
        said = _as_nobody(_walks_compared, root) if os.geteuid() == 0 else _walks_compared(root)
        assert said == "", said
    finally:
        for d, dirs, _files in os.walk(base):
            for x in dirs:
                os.chmod(os.path.join(d, x), 0o755)
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def test_eml_scan_gives_what_the_former_scan_gave(tmp_path, former_code):
    trees = _trees(tmp_path)
    new = [_scan(eml.EmlImporter(str(t), force_raw=force_raw)) for t in trees for force_raw in (False, True)]
    kinds = {item[0] for item in new[0]}
    assert kinds == {"SourceMail", "SourceSkip", "SourceProblem"} and len(new[0]) > 40
    former_code()
    assert [_scan(eml.EmlImporter(str(t), force_raw=force_raw)) for t in trees for force_raw in (False, True)] == new


def test_maildir_scan_gives_what_the_former_scan_gave(tmp_path, former_code):
    trees = [tmp_path / "odd" / "md", REPO / "sample_data" / "maildir"]
    make_odd_tree(tmp_path / "odd")
    try:
        corpora = corpora_dir()
        trees += sorted(p.parent for p in (corpora / "b-mbox-maildir").rglob("cur") if p.is_dir())
    except pytest.skip.Exception:
        pass
    new = [_scan(maildir.MaildirImporter(str(t), strays=strays)) for t in trees for strays in (True, False)]
    flags = {dict(item[1])["flags"] for item in new[0] if item[0] == "SourceMail"}
    assert {("$Junk Work",), ("$maildir-keyword-z \\Draft",), ("\\Seen",), ()} <= flags
    former_code()
    assert [_scan(maildir.MaildirImporter(str(t), strays=strays)) for t in trees for strays in (True, False)] == new


_PART = st.sampled_from([b"cur", b"new", b"tmp", b".Sub", b".A.B", b"courierimapkeywords", b"courierimap", b"x.mbox",
                         b"INBOX.MBOX", b".mbox", b"Messages", b"dovecot-uidlist", b"maildirfolder", b"dovecot.index.x",
                         b"1.emlx", b"2.EMLX", b"a.zip", b"B.ZIP", b".h", b"", b".", b"..", b"\xff", b"a.eml"])
_REL = st.lists(st.one_of(_PART, st.binary(min_size=1, max_size=6).filter(lambda b: b"/" not in b)),
                min_size=1, max_size=6).map(b"/".join).filter(bool)


@settings(max_examples=500, deadline=None)
@given(rel=_REL, size=st.sampled_from([0, 1, 40000]), skip=st.sampled_from([None, "symbolic link (never followed)"]))
def test_the_per_entry_steps_give_what_the_former_gave(rel, size, skip):
    entry = FileEntry(rel, size, 1.5, skip)
    assert walk.entry_cursor(entry) == old_entry_cursor(entry)
    assert eml._hidden(rel) == old_hidden(rel)
    assert eml._folder(rel) == old_eml_folder(rel)
    assert eml.EmlImporter(".")._zip_named(entry) == old_zip_named(entry)
    assert maildir.classify(rel) == old_classify(rel)
    name = rel.rpartition(b"/")[2]
    assert maildir._name_time(name) == old_name_time(name)


@settings(max_examples=300, deadline=None)
@given(stem=st.text(max_size=8).filter(lambda s: "/" not in s),
       sep=st.sampled_from([":", "!", ";", "\uf03a", ",", ""]), info=st.sampled_from(["2,", "1,", "2"]),
       letters=st.text(alphabet="SRFTDPabcz,xA0:", max_size=6), folder=st.sampled_from([b"", b".Sub", b".None"]))
def test_maildir_flags_per_info_suffix_are_the_former_flags(stem, sep, info, letters, folder):
    importer = maildir.MaildirImporter(".")
    importer._read_small = (lambda table: lambda rel: table.get(rel, b""))(
        {b"dovecot-keywords": b"0 Work\n2 Later\n", b".Sub/dovecot-keywords": b"1 Other\n"})
    name = stem + sep + info + letters
    for _ in range(2):  # the second time from what the first remembered
        assert importer._flag_field(name, folder) == old_flag_field(importer, name, folder)



def test_the_remembered_flag_fields_stay_bounded(monkeypatch):
    """A Maildir whose names carry countless distinct info suffixes: the flag fields remembered per (folder,
    suffix) never exceed their bound, and each name still gets the former flags."""
    monkeypatch.setattr(maildir, "_FLAG_FIELDS_KEPT", 8)
    importer = maildir.MaildirImporter(".")
    importer._read_small = lambda rel: b""
    for i in range(50):
        name = f"1600000000.M{i}P1.host:2,{'FRS'[i % 3]}x{i}"
        assert importer._flag_field(name, b"") == old_flag_field(importer, name, b"")
        assert len(importer._flags) <= 8


def test_a_directory_swapped_for_a_symlink_after_its_parent_was_listed_is_not_followed(tmp_path, monkeypatch):
    """N1 during the walk: the former walk listed such a directory by its path, following the link out of the
    tree; now it is opened without following it, and listed as not readable."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.eml").write_bytes(_MAIL % (1, 1))
    outside.mkdir()
    (outside / "secret.eml").write_bytes(_MAIL % (2, 2))
    real_open, swapped = os.open, []

    def open_after_a_swap(path, flags, *args, **kwargs):
        if path == os.fsencode(root / "sub") and not swapped:
            swapped.append(path)
            os.rename(root / "sub", tmp_path / "moved")
            os.symlink(outside, root / "sub")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_after_a_swap)
    entries = walk.walk_local(os.fsencode(root))
    assert swapped
    assert [(e.rel, e.skip_reason.split(":")[0]) for e in entries] == [(b"sub", "directory not readable")]


def test_import_eml_loads_the_share_importer_only_for_a_zip(tmp_path):
    """``import eml``'s start-up without ``import share``'s modules (Outlook, mbox, TNEF: about 40 ms of
    imports): they are loaded when the scan meets a zip, whose members it reads the same way."""
    import subprocess
    import sys

    make_odd_tree(tmp_path / "odd")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.eml").write_bytes(_MAIL % (1, 1))
    code = (
        "import sys\n"
        "from importers.eml import EmlImporter\n"
        "from toolkit.reporter import NullReporter\n"
        "loaded = lambda: sorted(m for m in ('importers.share', 'importers.mbox', 'importers.msg', 'toolkit.share_file',"
        " 'importers.keywords') if m in sys.modules)\n"
        "print(len(list(EmlImporter(sys.argv[1]).scan(None, NullReporter()))), loaded())\n"
        "refs = [i.ref for i in EmlImporter(sys.argv[2]).scan(None, NullReporter())]\n"
        "print([r for r in refs if '!' in r], loaded())\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "plain"), str(tmp_path / "odd")], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "1 []"
    assert out[1] == ("['md/new/99.5.host!2,T', 'pics/a.ZIP!m1.eml', 'pics/a.ZIP!d/m2.eml', 'pics/a.ZIP!x.bin'] "
                      "['importers.keywords', 'importers.mbox', 'importers.msg', 'importers.share', 'toolkit.share_file']")
