"""Samba configurations other than the tests' default share (docs/media.md, "Shares that differ").

One throwaway Samba with ``map to guest = bad user`` (common on file servers) and two more shares:
``[cs]`` with ``case sensitive = yes``, ``[veto]`` with ``veto files = /*.tmp/``, ``[ro]`` with
``read only = yes``, ``[lc]`` with ``preserve case = no`` (names stored in lower case) and ``[one]`` with
``max connections = 1``. Each test runs
the real command against it and checks that what the share refuses is an error naming the file and
the cause, never a skip, a traceback or exit 0.
"""
from __future__ import annotations

import secrets
import subprocess
import shutil
from pathlib import Path

import pytest
import smbclient

from services.process import served
from tests.cli import mailarchive

pytestmark = pytest.mark.samba


def _eml(n: int) -> bytes:
    return (f"From: a{n}@example.com\r\nTo: b@example.com\r\nSubject: variant {n}\r\n"
            f"Message-ID: <variant-{n}@example.com>\r\n\r\nbody {n}\r\n").encode()


def _share(name: str, path: Path, *lines: str) -> tuple[str, ...]:
    return ("", f"[{name}]", f"path = {path}", "read only = no", "valid users = mailarchive-test",
            "force user = mailarchive-test", *lines)


@pytest.fixture(scope="module")
def variant_samba():
    from services.samba import USER, start_samba

    def start(wd: Path):
        extra = []
        for name, lines in (("cs", ("case sensitive = yes",)), ("veto", ("veto files = /*.tmp/",)),
                            ("ro", ("read only = yes",)), ("lc", ("preserve case = no", "default case = lower")),
                            ("one", ("max connections = 1",))):
            (wd / name).mkdir(parents=True)
            extra += _share(name, wd / name, *lines)
        server = start_samba(wd, ("map to guest = bad user",), tuple(extra))
        for name in ("cs", "veto", "ro", "lc", "one"):
            shutil.chown(wd / name, user=USER)
        return server

    with served("samba-variants", start) as server:
        yield server


def _url(server, share: str, path: str = "") -> str:
    return f"smb://{server.user}@{server.host}:{server.port}/{share}{'/' + path if path else ''}"


@pytest.fixture
def home(tmp_path, variant_samba, monkeypatch):
    monkeypatch.setenv("MAILARCHIVE_SMB_PASSWORD", variant_samba.password)
    h = tmp_path / "home"
    mailarchive(h, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    return h


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_case_sensitive_share_unopenable_mangled_name_is_an_error_not_a_skip(home, variant_samba):
    """``case sensitive = yes``: Samba lists a name SMB cannot carry (``msg:2,S``) under a made-up 8.3 name
    that it then cannot open. That file is an error naming the cause (it was a skip "vanished during the
    scan" with exit 0: mail left out while the run said complete)."""
    sub = f"cs-{secrets.token_hex(4)}"
    root = variant_samba.share_dir.parent / "cs" / sub
    root.mkdir()
    (root / "plain.eml").write_bytes(_eml(1))
    (root / "msg:2,S").write_bytes(_eml(2))
    for p in (root, root / "plain.eml", root / "msg:2,S"):
        shutil.chown(p, user=variant_samba.user)
    p = mailarchive(home, "import", "share", _url(variant_samba, "cs", sub), json_out=True, check=1)
    r = p.result
    assert r["archived"] == 1 and r["errors"] == 1 and r["skipped"] == 0
    (problem,) = r["sources"][0]["problems"]
    assert problem["kind"] == "error" and "~" in problem["ref"]
    assert "case sensitive" in problem["message"] and "cannot open" in problem["message"]


def test_vetoed_temporary_names_are_named_when_a_medium_or_mirror_is_written(home, variant_samba):
    """``veto files = /*.tmp/``: every create of a temporary file is answered "not found". ``media add``
    and ``mirror`` say that the share forbids the name (they said "...tmp is missing")."""
    for args in (("media", "add", _url(variant_samba, "veto", f"m-{secrets.token_hex(4)}")),
                 ("mirror", _url(variant_samba, "veto", f"mirror-{secrets.token_hex(4)}"))):
        p = mailarchive(home, *args, check=None)
        err = _one_line(p.stderr)
        assert p.returncode == 3 and "Traceback" not in err, (args, p.returncode, err)
        assert "veto files" in err and ".tmp" in err, err


def test_unknown_user_mapped_to_guest_is_a_login_error(tmp_path, home, variant_samba):
    """``map to guest = bad user``: an unknown account gets a guest session, which cannot sign. That is a
    login error (exit 4) saying so; it was "cannot reach SMB server ... check that the server is up"
    (exit 3) after smbprotocol's traceback on stderr."""
    url = f"smb://no-such-user@{variant_samba.host}:{variant_samba.port}/{variant_samba.share}"
    for args in (("import", "share", url), ("media", "add", f"{url}/m-{secrets.token_hex(4)}")):
        p = mailarchive(home, *args, check=None)
        err = _one_line(p.stderr)
        assert p.returncode == 4 and "Traceback" not in p.stderr, (args, p.returncode, p.stderr)
        assert "only as a guest" in err and "no-such-user" in err, err


def test_file_held_open_by_another_client_is_an_error_saying_it_is_in_use(home, variant_samba):
    """A file another SMB client holds open without sharing (STATUS_SHARING_VIOLATION) is an error saying
    it is in use; the rest of the tree is imported (exit 1)."""
    sub = f"held-{secrets.token_hex(4)}"
    root = variant_samba.share_dir / sub
    root.mkdir()
    for n in (1, 2):
        (root / f"{n}.eml").write_bytes(_eml(10 + n))
    cache: dict = {}
    kw = dict(username=variant_samba.user, password=variant_samba.password, port=variant_samba.port,
              connection_cache=cache)
    held = smbclient.open_file(rf"\\{variant_samba.host}\{variant_samba.share}\{sub}\2.eml", mode="rb",
                               share_access=None, **kw)
    try:
        r = mailarchive(home, "import", "share", _url(variant_samba, variant_samba.share, sub),
                        json_out=True, check=1).result
    finally:
        held.close()
        smbclient.reset_connection_cache(connection_cache=cache)
    assert r["archived"] == 1 and r["errors"] == 1
    (problem,) = r["sources"][0]["problems"]
    assert problem["ref"] == "2.eml" and "in use by another program" in problem["message"]


def test_a_path_component_over_255_bytes_is_named_as_too_long(home, variant_samba):
    """A component of 400 bytes of UTF-8 (200 × 'ü': valid for Windows, too long for Linux): the error says
    the name is too long (it said "Unknown NtStatus error returned 'STATUS_OBJECT_NAME_INVALID'")."""
    long = "ü" * 200
    for args in (("import", "share", _url(variant_samba, variant_samba.share, long)),
                 ("media", "add", _url(variant_samba, variant_samba.share, f"{long}/m"))):
        p = mailarchive(home, *args, check=None)
        err = _one_line(p.stderr)
        assert p.returncode == 3 and "Traceback" not in err, (args, p.returncode, err)
        assert "too long" in err and "STATUS_OBJECT_NAME_INVALID" in err, err


def test_read_only_share_refuses_a_medium_and_a_mirror_saying_so_and_imports_from_it(home, variant_samba):
    """``read only = yes``: ``media add`` and ``mirror`` fail before writing, saying the share may be read-only
    (they named only the account's missing right); ``import share`` from it imports every mail."""
    sub = f"ro-{secrets.token_hex(4)}"
    root = variant_samba.share_dir.parent / "ro" / sub
    root.mkdir()
    for n in (1, 2):
        (root / f"{n}.eml").write_bytes(_eml(20 + n))
    for args in (("media", "add", _url(variant_samba, "ro", f"{sub}/medium")),
                 ("mirror", _url(variant_samba, "ro", f"{sub}/mirror"))):
        p = mailarchive(home, *args, check=None)
        err = _one_line(p.stderr)
        assert p.returncode == 3 and "Traceback" not in err, (args, p.returncode, err)
        assert "access denied" in err and "read-only" in err and "read only = yes" in err, err
    r = mailarchive(home, "import", "share", _url(variant_samba, "ro", sub), json_out=True).result
    assert r["archived"] == 2 and r["errors"] == r["skipped"] == 0
    assert sorted(p.name for p in root.iterdir()) == ["1.eml", "2.eml"]


def test_share_that_does_not_keep_the_case_of_names_is_refused_as_medium_and_mirror(home, variant_samba):
    """``preserve case = no``: the share stores ``MEDIUM.json`` as ``medium.json`` and a backup's
    ``…T154056Z`` as ``…t154056z``. Such a mirror could not be restored (the config snapshot's name is
    authenticated: "holds no config snapshot"), yet ``mirror`` said complete. The probe now writes a
    mixed-case name and finds it listed in lower case: ``media add`` and ``mirror`` fail, writing nothing."""
    sub = f"lc-{secrets.token_hex(4)}"
    for args in (("media", "add", _url(variant_samba, "lc", f"{sub}/medium")),
                 ("mirror", _url(variant_samba, "lc", f"{sub}/mirror"))):
        p = mailarchive(home, *args, check=None)
        err = _one_line(p.stderr)
        assert p.returncode == 3 and "Traceback" not in err, (args, p.returncode, err)
        assert "does not keep the case of file names" in err and "preserve case = yes" in err, err
    root = variant_samba.share_dir.parent / "lc" / sub
    assert not [p for p in root.rglob("*") if p.is_file()]


def test_free_space_is_that_of_the_medium_s_folder_not_of_the_share_root(tmp_path, home, variant_samba):
    """A folder of the share on a small volume of its own (a 4 MiB tmpfs mounted inside the share: a mount
    point or a folder quota on a real server). The import's free-space check asked the share's root (the
    big disk), let the import start and fail mid-pack with STATUS_DISK_FULL; it now asks the medium's own
    folder and refuses up front (E6), naming the medium and its free bytes, with nothing written."""
    vol = variant_samba.share_dir / f"vol-{secrets.token_hex(4)}"
    vol.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0777", "tmpfs", str(vol)], check=True)
    try:
        url = _url(variant_samba, variant_samba.share, f"{vol.name}/medium")
        mailarchive(home, "media", "add", url, "--activate")
        before = sorted(p.relative_to(vol).as_posix() for p in vol.rglob("*"))
        src = tmp_path / "src"
        src.mkdir()
        for n in range(3):
            (src / f"{n}.eml").write_bytes(_eml(30 + n))
        p = mailarchive(home, "import", "eml", str(src), check=None)
        err = _one_line(p.stderr)
        assert p.returncode == 3 and "Traceback" not in err, (p.returncode, err)
        assert "not enough free space on medium 2" in err and "nothing was written" in err, err
        free = int(err.split("): ", 1)[1].split(" bytes free", 1)[0])
        assert 0 < free <= 4 << 20
        assert sorted(p.relative_to(vol).as_posix() for p in vol.rglob("*")) == before
    finally:
        subprocess.run(["umount", "-l", str(vol)], check=False)


def test_server_requiring_encryption_without_smb3_is_named_as_such(home):
    """``server smb encrypt = required`` on a server that speaks SMB 2.1 at most: it answers the log-on with
    STATUS_ACCESS_DENIED. The error says that encryption needs SMB3 (it said the account "lacks the read
    right"), with or without ``--smb-no-encrypt``."""
    from services.samba import start_samba

    conf = ("server min protocol = SMB2_02", "server max protocol = SMB2_10", "server smb encrypt = required")
    with served("samba-enc-smb2", lambda wd: start_samba(wd, conf)) as server:
        for flags in ((), ("--smb-no-encrypt",)):
            p = mailarchive(home, *flags, "import", "share", server.url(), check=None,
                            env={"MAILARCHIVE_SMB_PASSWORD": server.password})
            err = _one_line(p.stderr)
            assert p.returncode == 3 and "Traceback" not in err, (flags, p.returncode, err)
            assert "SMB 2.1, which cannot encrypt" in err and "smb encrypt = required" in err, err


def test_a_folder_the_account_may_not_list_is_an_error_and_the_rest_is_imported(home, variant_samba):
    """Per-folder permissions: one sub-folder the account may not list (another user's, mode 0700). It is
    an error "directory not readable" naming it and the rest of the tree is imported, exit 1, as for a
    local tree (it ended the whole `import share` with exit 3 before anything was imported)."""
    sub = f"perm-{secrets.token_hex(4)}"
    root = variant_samba.share_dir / sub
    (root / "private").mkdir(parents=True)
    (root / "ok.eml").write_bytes(_eml(40))
    (root / "private" / "theirs.eml").write_bytes(_eml(41))
    (root / "private").chmod(0o700)  # owned by root: smbd's forced user may not enter it
    r = mailarchive(home, "import", "share", _url(variant_samba, variant_samba.share, sub), json_out=True,
                    check=1).result
    assert r["archived"] == 1 and r["errors"] == 1
    (problem,) = r["sources"][0]["problems"]
    assert problem["ref"] == "private" and problem["kind"] == "error"
    assert problem["message"].startswith("directory not readable: access denied")


def test_a_link_back_up_the_tree_followed_by_the_server_does_not_make_the_walk_endless(home, variant_samba):
    """Samba follows symbolic links itself (``follow symlinks = yes``, the default) and shows a link to a
    folder as a folder: ``loop -> .`` made the share's walk list the tree again at every level until the
    path grew too long (the import did not end within minutes). A folder whose file id was walked already is
    a skip naming it; every mail is imported once."""
    sub = f"loop-{secrets.token_hex(4)}"
    root = variant_samba.share_dir / sub
    (root / "dir").mkdir(parents=True)
    (root / "top.eml").write_bytes(_eml(50))
    (root / "dir" / "inner.eml").write_bytes(_eml(51))
    (root / "loop").symlink_to(".")
    (root / "dir" / "up").symlink_to("..")
    r = mailarchive(home, "import", "share", _url(variant_samba, variant_samba.share, sub), json_out=True,
                    timeout=120).result
    assert r["archived"] == 2 and r["duplicates"] == 0 and r["errors"] == 0
    skips = {p["ref"]: p["message"] for p in r["sources"][0]["problems"]}
    assert set(skips) == {"loop", "dir/up"}
    assert all("already walked" in m for m in skips.values())


def test_a_share_limiting_its_connections_is_named_as_the_cause(home, variant_samba):
    """``max connections = 1``: ``import share`` reads an mbox over a connection of its own besides the walk's,
    which the server refuses with STATUS_INSUFFICIENT_RESOURCES. The mbox is an error naming the limit (it
    was "Unknown NtStatus error returned 'STATUS_INSUFFICIENT_RESOURCES'"), the EML file is imported."""
    sub = f"one-{secrets.token_hex(4)}"
    root = variant_samba.share_dir.parent / "one" / sub
    root.mkdir()
    (root / "a.eml").write_bytes(_eml(60))
    (root / "b.mbox").write_bytes(b"From a@example.com Mon Jan  7 09:00:00 2019\n" + _eml(61).replace(b"\r\n", b"\n"))
    r = mailarchive(home, "import", "share", _url(variant_samba, "one", sub), json_out=True, check=1).result
    assert r["archived"] == 1 and r["errors"] == 1
    (problem,) = r["sources"][0]["problems"]
    assert problem["ref"] == "b.mbox" and problem["kind"] == "error"
    assert "limits its connections" in problem["message"] and "max connections" in problem["message"]


def _first_client(server):
    """The one storage a server with room for one client process admits: its start's readiness probe (a bare TCP
    connection) is served by a process of its own too, for a moment after the probe hung up."""
    import time

    from toolkit.errors import StorageError
    from toolkit.storage.location import open_storage

    deadline = time.monotonic() + 15
    while True:
        try:
            return open_storage(server.url(), server.password, timeout=20)
        except StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _wait_for_no_client(server) -> None:
    """Until the server's processes are its parent and two helpers again (the closed clients' processes gone)."""
    import time

    deadline = time.monotonic() + 15
    while len(server.processes().splitlines()) > 3:
        assert time.monotonic() < deadline, server.processes()
        time.sleep(0.1)


def test_a_server_limiting_its_processes_is_named_as_the_cause(home):
    """``max smbd processes = 3``: Samba's two helper processes and one client process. Each storage is a client
    of its own (C21), so ``import share`` reading an mbox over a second connection besides the walk's is refused:
    Samba takes the TCP connection and closes it unanswered. The mbox is an error saying the server closed the
    connection before answering and naming the setting (it was "cannot reach SMB server ... ([Errno 9] Bad file
    descriptor); check that the server is up"), the EML file is imported, exit 1."""
    from services.samba import start_samba
    from toolkit.cli.hints import with_hint
    from toolkit.errors import NextStep, StorageError
    from toolkit.storage.location import open_storage

    with served("samba-max-processes", lambda wd: start_samba(wd, ("max smbd processes = 3",))) as server:
        (server.share_dir / "a.eml").write_bytes(_eml(80))
        (server.share_dir / "b.mbox").write_bytes(b"From a@example.com Mon Jan  7 09:00:00 2019\n"
                                                  + _eml(81).replace(b"\r\n", b"\n"))
        first = _first_client(server)
        try:
            with pytest.raises(StorageError) as refused:
                open_storage(server.url(), server.password, timeout=20).close()
        finally:
            first.close()
        _wait_for_no_client(server)
        text = _one_line(with_hint(refused.value))  # as the command line prints it: the core's text, then the hint
        assert "closed it before answering" in text and "max smbd processes" in text, text
        assert refused.value.next_step is NextStep.FEWER_SMB_CONNECTIONS and "MAILARCHIVE_WORKERS=1" in text, text
        assert f"{server.host}:{server.port}" in text
        r = mailarchive(home, "import", "share", server.url(), json_out=True, check=1,
                        env={"MAILARCHIVE_SMB_PASSWORD": server.password, "MAILARCHIVE_WORKERS": "0"}).result
        assert r["archived"] == 1 and r["errors"] == 1, r
        (problem,) = r["sources"][0]["problems"]
        assert problem["ref"] == "b.mbox" and problem["kind"] == "error"
        assert "max smbd processes" in _one_line(problem["message"]), problem


def test_smb_no_encrypt_against_a_server_requiring_encryption_still_encrypts(home):
    """``server smb encrypt = required`` with ``--smb-no-encrypt``: not an error. The option only stops the
    toolkit from asking; the server asks, and the session encrypts (docs/media.md). Shown on the storage and
    on ``import share`` (every mail imported, exit 0)."""
    from services.samba import start_samba
    from toolkit.storage.location import parse_location
    from toolkit.storage.smb import SmbStorage

    with served("samba-enc-req", lambda wd: start_samba(wd, ("server smb encrypt = required",))) as server:
        (server.share_dir / "a.eml").write_bytes(_eml(70))
        warnings: list[str] = []
        st = SmbStorage(parse_location(server.url()), server.password, timeout=30, encrypt=False,
                        warn=warnings.append)
        try:
            assert st.encrypted and not warnings
            assert st.read("a.eml") == _eml(70)
        finally:
            st.close()
        r = mailarchive(home, "--smb-no-encrypt", "import", "share", server.url(), json_out=True,
                        env={"MAILARCHIVE_SMB_PASSWORD": server.password}).result
        assert r["archived"] == 1 and r["errors"] == 0
