"""Exports never follow a symlink planted in DEST, and write plaintext for the owner only (0600/0700) unless --mode asks.

For every export kind, a reference run into an empty directory lists every
name the export writes (mail files, directories, manifests) plus the fixed
temporary names (``manifest.json.tmp``, ``.evidence-index.json.tmp`` ...).
Then, one name at a time, a fresh DEST gets a symlink at that name pointing
outside DEST: the export must end non-zero naming the path, and the target
outside must be unchanged (same SHA-256, or for a directory the same files).
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from tests.cli import mailarchive
from toolkit.home import Home
from tests.integration.verify_support import build_archive

from fixtures_tsa import tsa  # noqa: F401

pytestmark = pytest.mark.security

WHERE = "m.msg_id IN (1, 3, 25)"
WIDE = {"COLUMNS": "10000"}  # error lines unwrapped


@pytest.fixture(scope="module")
def home(tmp_path_factory, tsa):  # noqa: F811
    """An archive with stamped sample mail (evidence needs stamps), built in-process."""
    root = tmp_path_factory.mktemp("nofollow")
    build_archive(root, tsa)
    return root / "home"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _tree(root: Path) -> dict[str, str]:
    """Relative path → sha256 (files) or "dir", without following symlinks."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            p = Path(dirpath) / f
            out[os.path.relpath(p, root)] = "link" if p.is_symlink() else _sha(p)
    return out


KINDS = {
    "eml": (["export", "eml", "{dest}", "--where", WHERE], True),
    "eml-date": (["export", "eml", "{dest}", "--layout", "date", "--where", WHERE], True),
    "mbox": (["export", "mbox", "{dest}", "--where", WHERE], True),
    "mbox-per-folder": (["export", "mbox", "{dest}", "--per-folder", "--where", WHERE], True),
    "maildir": (["export", "maildir", "{dest}", "--where", WHERE], True),
    "evidence": (["export", "evidence", "{dest}", "--where", WHERE], True),
}
TMP_NAMES = {
    "eml": ["manifest.csv.tmp", "manifest.json.tmp"],
    "mbox": ["manifest.csv.tmp", "manifest.json.tmp"],
    "maildir": ["manifest.csv.tmp", "manifest.json.tmp"],
    "evidence": [".evidence-index.json.tmp"],
}


def _run(home: Path, kind: str, dest: Path, *extra: str, check=None):
    args = [a.format(dest=dest) for a in KINDS[kind][0]] + list(extra)
    return mailarchive(home, *args, env=WIDE, check=check)


def _written_names(home: Path, kind: str, tmp_path: Path) -> list[tuple[str, bool]]:
    """(relative name, is a directory) of everything the export writes, from a reference run."""
    ref = tmp_path / f"ref-{kind}"
    _run(home, kind, ref, check=0)
    names = []
    for rel, what in sorted(_tree(ref).items()):
        if kind == "evidence" and os.sep in rel:
            continue  # files inside a bundle are written in its temp directory, then the directory is renamed
        names.append((rel, what == "dir"))
        if kind == "evidence" and what == "dir":
            names.append((f".{rel}.tmp", True))  # the bundle's temp directory
    names += [(n, False) for n in TMP_NAMES[kind.split("-")[0]]]
    return names


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_export_follows_a_symlink_at_any_name_it_writes(home, kind, tmp_path):
    names = _written_names(home, kind, tmp_path)
    assert len(names) >= 4, names
    outside = tmp_path / "outside"
    for i, (rel, is_dir) in enumerate(names):
        target = outside / f"t{i}"
        if is_dir:
            target.mkdir(parents=True)
            (target / "precious.txt").write_text("do not touch\n")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("precious outside file\n")
        before = _tree(outside)
        dest = tmp_path / f"dest-{i}"
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, dest / rel)
        p = _run(home, kind, dest)
        assert _tree(outside) == before, f"{kind}: a symlink at {rel} was followed"
        assert p.returncode != 0, f"{kind}: a symlink at {rel} went unreported\n{p.stdout}\n{p.stderr}"
        assert str(dest / rel) in p.stdout + p.stderr, f"{kind}: {rel} not named\n{p.stdout}\n{p.stderr}"
        assert os.path.islink(dest / rel)


def test_metadata_export_does_not_follow_a_symlink_at_dest(home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kept.csv").write_text("precious\n")
    before = _tree(outside)
    for i, target in enumerate([outside / "kept.csv", outside / "new.csv"]):  # existing and dangling
        dest = tmp_path / f"meta-{i}.csv"
        os.symlink(target, dest)
        p = mailarchive(home, "export", "metadata", str(dest), "--where", WHERE, env=WIDE, check=2)
        assert str(dest) in p.stderr and "symlink" in p.stderr
        assert _tree(outside) == before


def _modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(os.lstat(root).st_mode)}
    for rel, _ in _tree(root).items():
        out[rel] = stat.S_IMODE(os.lstat(root / rel).st_mode)
    return out


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_exported_files_are_0600_and_directories_0700_by_default(home, kind, tmp_path):
    dest = tmp_path / "new-dest"
    _run(home, kind, dest, check=0)
    modes = _modes(dest)
    assert len(modes) > 3
    for rel, mode in modes.items():
        want = 0o700 if (dest / rel).is_dir() else 0o600
        assert mode == want, f"{rel}: {oct(mode)}"


@pytest.mark.parametrize("kind", ["eml-date", "maildir", "evidence", "mbox-per-folder"])
def test_mode_option_asks_for_more(home, kind, tmp_path):
    dest = tmp_path / "shared-dest"
    old = os.umask(0o077)  # --mode wins over a strict umask
    try:
        _run(home, kind, dest, "--mode", "0640", check=0)
    finally:
        os.umask(old)
    for rel, mode in _modes(dest).items():
        want = 0o750 if (dest / rel).is_dir() else 0o640
        assert mode == want, f"{rel}: {oct(mode)}"


def test_metadata_mode(home, tmp_path):
    mailarchive(home, "export", "metadata", str(tmp_path / "a.parquet"), check=0)
    assert stat.S_IMODE(os.stat(tmp_path / "a.parquet").st_mode) == 0o600
    mailarchive(home, "export", "metadata", str(tmp_path / "b.csv"), "--mode", "0644", check=0)
    assert stat.S_IMODE(os.stat(tmp_path / "b.csv").st_mode) == 0o644


@pytest.mark.parametrize("bad", ["0400", "rw-r--r--", "1777", "0060"])
def test_bad_mode_is_a_usage_error(home, tmp_path, bad):
    p = mailarchive(home, "export", "eml", str(tmp_path / "d"), "--mode", bad, check=2)
    assert "--mode" in p.stderr
    assert not (tmp_path / "d").exists()


def test_imap_export_follows_no_symlink_at_its_manifest_or_state_log(home, tmp_path):
    """Checked before any connection: the server port here is closed."""
    from exporters.imap import ImapTarget, default_state_dir
    from importers.netutil import parse_mail_url
    from services.process import free_port

    url = f"imap://someone@127.0.0.1:{free_port()}"
    env = {"MAILARCHIVE_IMAP_PASSWORD": "not used", **WIDE}
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    sha = _sha(outside)
    for i, name in enumerate(["manifest.csv", "manifest.csv.tmp", "manifest.json", "manifest.json.tmp"]):
        mdir = tmp_path / f"m{i}"
        mdir.mkdir()
        os.symlink(outside, mdir / name)
        p = mailarchive(home, "export", "imap", url, "--manifest-dir", str(mdir), "--allow-plaintext",
                        "--where", WHERE, env=env, check=2)
        assert str(mdir / name) in p.stderr
        assert _sha(outside) == sha
    u = parse_mail_url(url, {"imap": (143, False), "imaps": (993, True)})
    target = ImapTarget(u.host, u.port, u.user, u.implicit_tls, u.path)
    state = default_state_dir(type("A", (), {"home_files": Home(home)})()) / f"imap-{target.key}.jsonl"
    state.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, state)
    try:
        p = mailarchive(home, "export", "imap", url, "--manifest-dir", str(tmp_path / "m-ok"), "--allow-plaintext",
                        "--where", WHERE, env=env, check=2)
        assert str(state) in p.stderr
        assert _sha(outside) == sha
    finally:
        state.unlink()
