"""The SMB connection settings of a run reach every process and thread that opens a share itself
(docs/architecture.md "Security consequence", docs/media.md "SMB connections").

``--smb-no-encrypt`` is the one SMB connection option the command line takes besides what the
location names (user, host, port, share) and the password. The workers of an import or of a
migration's shared pool write packs to an ``smb://`` medium over connections of their own, the
workers of ``verify --full`` read them so, and a pack task reads the files of an ``smb://`` source
over its own connection too; none of these processes parses the command line, so the setting travels
in the task (never through the environment).

What the server gets is seen on the wire: the medium and the source are reached through the fault
proxy (tests/services/faultproxy.py), which counts, per TCP connection, the SMB messages the client
sent as plain (signed) SMB2 messages and as SMB3 transform headers (encrypted messages). A session
asked for encryption sends everything after its SESSION_SETUP encrypted; one not asked sends no
transform header. Before the setting travelled with the tasks, every worker asked for encryption
whatever the command line said (the driver's connections alone followed it).
"""
from __future__ import annotations

import pytest

from tests.cli import mailarchive

pytestmark = pytest.mark.samba

PLAIN, SEALED = b"\xfeSMB", b"\xfdSMB"


def _mails(root, tag: str, n: int) -> None:
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"{i:03d}.eml").write_bytes(
            b"From: a%d@example.com\r\nTo: b@example.com\r\nSubject: %s %d\r\nMessage-ID: <%s-%d@example.com>\r\n"
            b"Date: Mon, 2 Mar 2020 10:00:00 +0000\r\n\r\n" % (i, tag.encode(), i, tag.encode(), i)
            + b"body line of some length\r\n" * 60)


def _maildir(root, n: int) -> None:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        (root / "cur" / f"16000000{i:02d}.M{i}P7.host:2,S").write_bytes(
            b"From: m%d@example.com\nSubject: share %d\nMessage-ID: <share-%d@example.com>\n\n" % (i, i, i)
            + b"maildir body\n" * 80)


def _sessions(proxy, since: int) -> list[dict]:
    """The connections opened since the ``since``-th, each as {protocol id: messages the client sent}."""
    return [dict(c) for c in proxy.client_smb[since:] if c]


def _used(sessions: list[dict]) -> list[dict]:
    """Connections that got past the session set-up (more than NEGOTIATE and SESSION_SETUP)."""
    return [s for s in sessions if sum(s.values()) > 4]


@pytest.fixture
def proxied(tmp_path, samba, smb_location):
    from tests.services.faultproxy import FaultProxy

    with FaultProxy(samba.host, samba.port) as proxy:
        yield proxy, (lambda url: url.replace(f"{samba.host}:{samba.port}", f"{proxy.host}:{proxy.port}"))


def test_smb_no_encrypt_reaches_the_workers_of_import_migrate_and_share_sources(tmp_path, samba, smb_location,
                                                                                 proxied):
    proxy, via = proxied
    medium = via(smb_location)
    home = tmp_path / "home"
    env = {"MAILARCHIVE_PACK_TARGET": "12000", "MAILARCHIVE_WORKERS": "2"}  # ~8 packs: the pool starts
    mailarchive(home, "--smb-no-encrypt", "init", "--medium", medium, "--key-backup", str(tmp_path / "kb.txt"))

    # import eml: the pack tasks write to the smb:// medium from the worker processes
    _mails(tmp_path / "src", "imp", 40)
    before = proxy.connections
    r = mailarchive(home, "--smb-no-encrypt", "import", "eml", str(tmp_path / "src"), env=env, json_out=True).result
    assert r["archived"] == 40 and r["errors"] == 0
    imported = _used(_sessions(proxy, before))
    assert len(imported) >= 3, imported  # the driver's connection and at least one per worker (2)
    assert not [s for s in imported if SEALED in s], imported

    # migrate run: the sources' pack tasks go to one pool shared by the plan
    _mails(tmp_path / "m1", "mig1", 20)
    _mails(tmp_path / "m2", "mig2", 20)
    plan = tmp_path / "plan.csv"
    plan.write_text("kind,location,user,password_file,owner,folders\neml,m1,,,,\neml,m2,,,,\n")
    before = proxy.connections
    mailarchive(home, "--smb-no-encrypt", "migrate", "run", str(plan), env=env)
    migrated = _used(_sessions(proxy, before))
    assert len(migrated) >= 3, migrated
    assert not [s for s in migrated if SEALED in s], migrated

    # import maildir smb://: the workers read the source's files over connections of their own (ShareFile)
    _maildir(samba.share_dir / "t-opts-src" / "Mail", 30)
    before = proxy.connections
    r = mailarchive(home, "--smb-no-encrypt", "import", "maildir", via(samba.url("t-opts-src/Mail")), env=env,
                    json_out=True).result
    assert r["archived"] == 30 and r["errors"] == 0
    shared = _used(_sessions(proxy, before))
    assert len(shared) >= 4, shared  # the medium and the source, in the driver and in the workers
    assert not [s for s in shared if SEALED in s], shared

    assert mailarchive(home, "stats", json_out=True).result["messages"] == 110


def test_without_the_option_every_connection_of_the_workers_is_encrypted(tmp_path, samba, smb_location, proxied):
    """The counterpart: without ``--smb-no-encrypt`` each connection of the run, the workers' too, sends
    everything after its session set-up encrypted (which also shows that the proxy tells them apart)."""
    proxy, via = proxied
    home = tmp_path / "home"
    env = {"MAILARCHIVE_PACK_TARGET": "12000", "MAILARCHIVE_WORKERS": "2"}
    mailarchive(home, "init", "--medium", via(smb_location), "--key-backup", str(tmp_path / "kb.txt"))
    _mails(tmp_path / "src", "enc", 40)
    before = proxy.connections
    r = mailarchive(home, "import", "eml", str(tmp_path / "src"), env=env, json_out=True).result
    assert r["archived"] == 40
    used = _used(_sessions(proxy, before))
    assert len(used) >= 3, used
    assert all(s.get(SEALED, 0) > 0 and s.get(PLAIN, 0) <= 4 for s in used), used


def test_verify_full_workers_read_packs_with_the_run_s_setting(tmp_path, samba, smb_location, proxied, monkeypatch):
    """``verify --full`` reads packs in forkserver workers, which open the medium themselves. The pool
    starts only past 32 MiB of packs from the command line, so the library runs it with ``pool_min_bytes=0``;
    the setting is this process's, as ``--smb-no-encrypt`` makes it (toolkit.storage.configure_smb)."""
    from toolkit.archive import Archive
    from toolkit.ingest import Ingest
    from importers.eml import EmlImporter
    from toolkit.storage.location import SMB_DEFAULTS
    from verify.checks import verify_archive

    proxy, via = proxied
    monkeypatch.setitem(SMB_DEFAULTS, "encrypt", False)
    _mails(tmp_path / "src", "ver", 30)
    archive = Archive.create(tmp_path / "home", via(smb_location), smb_password=samba.password)
    try:
        run = Ingest(archive, workers=0, pack_target=12000).run(EmlImporter(str(tmp_path / "src")))
        assert run.archived == 30
        with archive.catalog.reading() as con:
            assert con.execute("SELECT count(*) FROM packs").fetchone()[0] >= 4
    finally:
        archive.close()
    archive = Archive.open(tmp_path / "home", smb_password=samba.password)
    try:
        before = proxy.connections
        report = verify_archive(archive, full=True, workers=2, pool_min_bytes=0)
    finally:
        archive.close()
    assert report.exit_code == 0, [c for c in report.checks if c.status == "finding"]
    used = _used(_sessions(proxy, before))
    assert len(used) >= 2, used  # the workers' own connections (and the parent's)
    assert not [s for s in used if SEALED in s], used
