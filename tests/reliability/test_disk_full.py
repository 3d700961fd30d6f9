"""Disk full (docs/reliability.md E1, E2, E4, E5, E6, E7) on small tmpfs volumes mounted by the test (it runs as root).

E1/E5: the medium's volume fills (ENOSPC, or the user's quota: EDQUOT) in the middle of a pack.
E2: the home's volume fills while the catalog commits. E7: the temp volume is full, and the output
(stdout, where summaries and logs go) cannot be written. Each time the run stops with exit 3 and a
clear message, leaves no temp file and no catalog row without its pack, and once space is freed a
rerun completes to the same content as a clean run. E6: an import onto a medium with less free space
than it needs is refused before it writes anything. E4: an export whose target fills stops the same
way, without its completion manifest.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import PASSWORD, mailarchive, run_cli

N_MAILS = 150


def _make_source(root: Path, n: int = N_MAILS, seed: int = 7) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for i in range(n):
        # random letters compress poorly, so the packs really take space
        body = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz \n") for _ in range(rng.randint(6000, 14000)))
        (root / f"{i:04d}.eml").write_text(
            f"From: a{i}@example.com\nTo: b@example.org\nSubject: disk full {i}\nMessage-ID: <df-{i}@x>\n\n{body}\n")


class Tmpfs:
    """A tmpfs of a given size at ``path``; ``resize`` grows it in place (space freed)."""

    def __init__(self, path: Path, size: str, extra: str = ""):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        opts = f"size={size}" + (f",{extra}" if extra else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True)

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def umount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def tmpfs(tmp_path):
    mounts: list[Tmpfs] = []

    def make(name: str, size: str, extra: str = "") -> Tmpfs:
        m = Tmpfs(tmp_path / name, size, extra)
        mounts.append(m)
        return m

    yield make
    for m in reversed(mounts):
        m.umount()


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    _make_source(root / "src")
    home = root / "home"
    mailarchive(home, "init", "--medium", str(root / "m1"))
    p = _import(home, root / "src")
    assert p.returncode == 0, p.stderr
    return root / "src", set(_blobs(home))


def _import(home: Path, source: Path, env: dict | None = None, user: str | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, "MAILARCHIVE_PACK_TARGET": str(256 * 1024), **(env or {})}
    full.pop("MAILARCHIVE_FAULT", None)
    cmd = [sys.executable, "-m", "toolkit", "--archive", str(home), "--json", "import", "eml", str(source)]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return run_cli(cmd, env=full, timeout=300)


def _blobs(home: Path) -> list[str]:
    out = mailarchive(home, "sql", "SELECT blob_id FROM messages", "--format", "json").stdout
    return [r["blob_id"] for r in json.loads(out)]


def _packs(home: Path) -> dict[str, int]:
    out = mailarchive(home, "sql", "SELECT name, bytes FROM packs", "--format", "json").stdout
    return {r["name"]: r["bytes"] for r in json.loads(out)}


def _assert_consistent(home: Path, medium: Path) -> None:
    """No row without its pack (at its recorded size), no temp file left on the medium."""
    for name, size in _packs(home).items():
        assert (medium / name).stat().st_size == size, name
    assert not list(medium.rglob("*.tmp")), list(medium.rglob("*.tmp"))
    blobs = _blobs(home)
    assert len(blobs) == len(set(blobs))


def _assert_full_error(p: subprocess.CompletedProcess) -> None:
    assert p.returncode == 3, (p.returncode, p.stdout[-500:], p.stderr[-6000:])
    assert "Traceback" not in p.stderr, p.stderr
    err = " ".join(p.stderr.split()).lower()
    assert "full" in err or "no space" in err or "quota" in err, err


def _finish_and_compare(home: Path, source: Path, medium: Path, clean_blobs: set[str]) -> None:
    p = _import(home, source)
    assert p.returncode == 0, p.stderr
    _assert_consistent(home, medium)
    assert set(_blobs(home)) == clean_blobs
    v = mailarchive(home, "--json", "verify", "--full", check=None)
    assert json.loads(v.stdout)["totals"]["findings"] == 0, v.stdout[-2000:]


# ---------------------------------------------------------------------------------- E1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_e1_media_volume_fills_mid_pack(tmp_path, tmpfs, clean, seed):
    """The medium's volume fills at a seeded point within the second to sixth pack."""
    source, clean_blobs = clean
    size_kib = random.Random(seed).randint(300, 1500)
    vol = tmpfs("media", f"{size_kib}k")
    home, medium = tmp_path / "home", vol.path / "m1"
    mailarchive(home, "init", "--medium", str(medium))
    mailarchive(home, "config", "set", "import.min_free", "0")  # no E6 refusal: the volume fills mid-pack
    p = _import(home, source)
    _assert_full_error(p)
    _assert_consistent(home, medium)      # the temp file of the failed pack is gone, no row without pack
    assert set(_blobs(home)) < clean_blobs  # stopped part-way: not everything fitted
    vol.resize("64m")                      # space freed
    _finish_and_compare(home, source, medium, clean_blobs)


# ---------------------------------------------------------------------------------- E5


def test_e5_quota_exceeded_is_handled_like_a_full_volume(tmp_path, clean, monkeypatch):
    """EDQUOT from the medium's file system (the user's quota), injected into the local storage's
    writes after 600 KiB (this machine's tmpfs has no quota support, so a real quota cannot be set
    up here): the run stops with the disk-full error, the temp file is removed, no row is left
    without its pack, and once the quota allows it the rerun completes."""
    import errno

    from importers.eml import EmlImporter
    from toolkit.archive import Archive
    from toolkit.errors import StorageFullError
    from toolkit.ingest import Ingest
    from toolkit.storage import local

    source, clean_blobs = clean
    home, medium = tmp_path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(medium))
    written = [0]
    real_write = local._LocalWriter.write

    def over_quota(self, data):
        written[0] += len(data)
        if written[0] > 600 * 1024:
            self._f.write = _raise_edquot
        return real_write(self, data)

    def _raise_edquot(_data):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(local._LocalWriter, "write", over_quota)
    archive = Archive.open(home, writer=True)
    try:
        with pytest.raises(StorageFullError) as info:
            Ingest(archive, workers=0, pack_target=256 * 1024).run(EmlImporter(str(source)))
        assert "no space left" in str(info.value) and "Disk quota exceeded" in str(info.value)
    finally:
        archive.close()
    monkeypatch.setattr(local._LocalWriter, "write", real_write)
    _assert_consistent(home, medium)
    assert set(_blobs(home)) < clean_blobs
    _finish_and_compare(home, source, medium, clean_blobs)


# ---------------------------------------------------------------------------------- E6


def test_e6_import_refused_up_front_when_the_medium_lacks_free_space(tmp_path, tmpfs, clean):
    """The active medium's volume has less free space than an import needs (two packs plus the margin):
    the import is refused before it reads or writes, naming the medium, its free bytes and the next
    step, exit 3; nothing is on the medium and the catalog has no mail. With room the same import runs."""
    source, clean_blobs = clean
    vol = tmpfs("media", "4m")
    home, medium = tmp_path / "home", vol.path / "m1"
    mailarchive(home, "init", "--medium", str(medium))
    before = sorted(p.relative_to(medium).as_posix() for p in medium.rglob("*"))
    p = _import(home, source)
    assert p.returncode == 3, (p.returncode, p.stdout[-500:], p.stderr[-3000:])
    err = " ".join(p.stderr.split())
    assert "Traceback" not in err
    assert f"not enough free space on medium 1 ({medium})" in err, err
    free = int(err.split("): ", 1)[1].split(" bytes free", 1)[0])
    assert 0 < free <= 4 << 20
    assert "media add LOCATION --activate" in err and "import.min_free" in err and "nothing was written" in err
    assert sorted(p.relative_to(medium).as_posix() for p in medium.rglob("*")) == before  # no pack, no temp file
    assert _blobs(home) == []
    runs = mailarchive(home, "sql", "SELECT count(*) AS n FROM runs", "--format", "json").stdout
    assert json.loads(runs)[0]["n"] == 0  # refused before the run began
    # the minimum is a setting (a size); with room above it the same import runs to the clean content
    assert mailarchive(home, "config", "set", "import.min_free", "8M", json_out=True).result["value"] == 8 << 20
    vol.resize("32m")
    p = _import(home, source)
    assert p.returncode == 0, p.stderr
    _assert_consistent(home, medium)
    assert set(_blobs(home)) == clean_blobs


def test_e6_library_takes_the_minimum_as_an_argument(tmp_path):
    """The API's ``min_free`` overrides the setting: above the volume's free space the run is refused with
    StorageFullError before any pack or run row; 0 switches the check off."""
    from importers.eml import EmlImporter
    from toolkit.api import import_mail
    from toolkit.archive import Archive
    from toolkit.errors import NextStep, StorageFullError

    home, medium = tmp_path / "home", tmp_path / "m1"
    Archive.create(home, str(medium)).close()
    source = Path(__file__).resolve().parents[2] / "sample_data" / "eml" / "2019"
    with Archive.open(home, writer=True) as archive:
        with pytest.raises(StorageFullError) as info:
            import_mail(archive, EmlImporter(str(source)), workers=0, min_free=1 << 62)
        assert info.value.next_step is NextStep.ADD_MEDIUM_OR_FREE_SPACE
        assert f"medium 1 ({medium})" in str(info.value) and "mailarchive" not in str(info.value)
        assert not list(medium.rglob("*.pack"))
        with archive.catalog.reading() as con:
            assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
        assert import_mail(archive, EmlImporter(str(source)), workers=0, min_free=0).status == "complete"


# ---------------------------------------------------------------------------------- E4


def _assert_export_full_error(p: subprocess.CompletedProcess, dest: Path) -> None:
    assert p.returncode == 3, (p.returncode, p.stdout[-500:], p.stderr[-3000:])
    err = " ".join(p.stderr.split())
    assert "Traceback" not in err, err
    assert f"export to {dest} stopped: its volume is full" in err, err
    assert "bytes free there" in err and "no completion manifest" in err, err


def test_e4_export_onto_a_full_target_stops_without_manifest_and_reruns(tmp_path, tmpfs, clean):
    """A mail export (eml into a directory) and an auditor export (a zip) onto a small tmpfs that fills:
    exit 3 naming the target and its free space, no completion manifest, no temporary file left;
    the rerun with room (the grown volume, or a larger target for the zip) completes."""
    source, clean_blobs = clean
    home = source.parent / "home"
    vol = tmpfs("export", "512k")
    out = vol.path / "out"
    p = mailarchive(home, "export", "eml", str(out), check=None)
    _assert_export_full_error(p, out)
    assert not (out / "manifest.json").exists() and not (out / "manifest.csv").exists()
    assert not list(out.rglob("*.part")) and not list(out.rglob(".*.part"))
    kept = {f.name for f in out.iterdir()}
    assert kept  # some files were finished before the volume filled
    vol.resize("32m")
    r = json.loads(mailarchive(home, "--json", "export", "eml", str(out)).stdout)
    assert r["errors"] == [] and r["already_present"] == len(kept) and r["written"] == N_MAILS - len(kept)
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["complete"] and doc["count"] == N_MAILS

    zvol = tmpfs("zip", "256k")
    dest = zvol.path / "audit.zip"
    p = mailarchive(home, "export", "eml", "--zip", str(dest), check=None)
    _assert_export_full_error(p, dest)
    assert list(zvol.path.iterdir()) == []  # no zip, no temporary file
    bigger = tmp_path / "audit.zip"
    mailarchive(home, "export", "eml", "--zip", str(bigger))
    import zipfile

    with zipfile.ZipFile(bigger) as z:
        doc = json.loads(z.read("manifest.json"))
    assert doc["complete"] and doc["count"] == N_MAILS


# ---------------------------------------------------------------------------------- E2


def test_e2_catalog_volume_fills_during_a_commit(tmp_path, tmpfs, clean):
    """The home (catalog) volume fills while the catalog grows: exit 3, the catalog reopens at its
    last commit, the pack written before the failed commit is listed as an orphan (never deleted),
    and after space is freed the rerun completes to the clean content."""
    source, clean_blobs = clean
    home_vol = tmpfs("home", "64m")
    home, medium = home_vol.path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(medium))
    used = sum(p.stat().st_size for p in home.rglob("*") if p.is_file())
    home_vol.resize(f"{(used >> 10) + 300}k")  # about 300 KiB left for the catalog to grow
    p = _import(home, source)
    _assert_full_error(p)
    home_vol.resize("64m")
    _assert_consistent(home, medium)
    v = json.loads(mailarchive(home, "--json", "verify", check=None).stdout)
    orphans = next(c for c in v["checks"] if c["id"] == "Q03")
    on_medium = {p.relative_to(medium).as_posix() for p in medium.rglob("*.pack")}
    assert orphans["count"] == len(on_medium - set(_packs(home)))
    _finish_and_compare(home, source, medium, clean_blobs)


# ---------------------------------------------------------------------------------- E7


def test_e7_full_temp_volume_does_not_stop_an_import(tmp_path, tmpfs, clean):
    """The toolkit needs no space in TMPDIR for an import: a full temp volume changes nothing."""
    source, clean_blobs = clean
    tmp_vol = tmpfs("tmp", "64k")
    (tmp_vol.path / "filler").write_bytes(b"\0" * (60 << 10))
    with pytest.raises(OSError):  # the temp volume really is full
        (tmp_vol.path / "more").write_bytes(b"\0" * (64 << 10))
    home, medium = tmp_path / "home", tmp_path / "m1"
    mailarchive(home, "init", "--medium", str(medium))
    p = _import(home, source, env={"TMPDIR": str(tmp_vol.path)})
    assert p.returncode == 0, p.stderr
    assert set(_blobs(home)) == clean_blobs


def test_e7_output_on_a_full_volume_is_reported_on_stderr(tmp_path, clean):
    """The result cannot be written (--json on stdout, redirected to a full device): exit 3 with the
    cause on stderr, no traceback, and the import itself committed."""
    source, clean_blobs = clean
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"))
    env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD}
    env.pop("MAILARCHIVE_FAULT", None)
    cmd = [sys.executable, "-m", "toolkit", "--archive", str(home), "--json"]
    with open("/dev/full", "w") as full:
        p = subprocess.run(cmd + ["import", "eml", str(source)], stdout=full, stderr=subprocess.PIPE,
                           text=True, env=env, timeout=300)
    assert p.returncode == 3, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert "No space left on device" in " ".join(p.stderr.split())
    assert set(_blobs(home)) == clean_blobs
