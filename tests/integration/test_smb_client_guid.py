"""docs/reliability.md C21: each SMB connection the toolkit makes has a client GUID of its own.

Samba hands a new connection whose client GUID it already knows to the server process of the first
connection with that GUID, as one more channel of the same client. smbclient takes the GUID from one
setting per process (inherited by forked workers), so without a GUID per connection every connection of
a run, and of its workers, is served by one smbd process, one request at a time, and a new connection
waits on whatever that process is stuck on. These tests stop the server process of one storage and
open another: it must be served by another process and answer at once.
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from toolkit.errors import StorageError
from toolkit.storage.location import open_storage

pytestmark = pytest.mark.samba


def _client_port(storage) -> int:
    (conn,) = storage._cache.values()  # one connection per storage (its own connection cache)
    return conn.transport._sock.getsockname()[1]


def _client_guid(storage):
    (conn,) = storage._cache.values()
    return conn.client_guid


def test_a_stuck_server_process_does_not_hold_up_the_next_connection(samba, smb_location):
    first = open_storage(smb_location, samba.password, timeout=30)
    first.put("first", b"1")
    stuck = samba.server_process_of(_client_port(first))
    os.kill(stuck, signal.SIGSTOP)  # that server process answers nothing any more
    try:
        started = time.monotonic()
        try:
            second = open_storage(smb_location, samba.password, timeout=8)
        except StorageError as exc:  # before: the negotiation was handed to the stopped process
            pytest.fail(f"the second connection waited on the first one's server process: {exc}\n{samba.processes()}")
        try:
            second.put("second", b"2")
            assert sorted(e.name for e in second.list()) == ["first", "second"]
            assert samba.server_process_of(_client_port(second)) != stuck
            assert time.monotonic() - started < 8
        finally:
            second.close()
    finally:
        os.kill(stuck, signal.SIGCONT)
    first.put("again", b"3")  # the first connection is still served once its process runs again
    assert sorted(e.name for e in first.list()) == ["again", "first", "second"]
    first.close()


def test_connections_of_one_process_and_of_a_forked_worker_are_served_apart(samba, smb_location):
    """Two storages of one process, and one opened in a forked child (a worker), are three clients to the
    server, each with its own GUID and server process."""
    a = open_storage(smb_location, samba.password)
    b = open_storage(smb_location, samba.password)
    try:
        assert _client_guid(a) != _client_guid(b)
        pids = {samba.server_process_of(_client_port(s)) for s in (a, b)}
        assert len(pids) == 2
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the worker: open its own storage, report its server process and GUID, and leave
            code = 1
            signal.alarm(60)  # a child stuck on a lock another thread held at the fork dies instead of hanging the test
            try:
                os.close(read)
                c = open_storage(smb_location, samba.password)
                c.put("from-the-worker", b"w")
                report = f"{samba.server_process_of(_client_port(c))} {_client_guid(c)}"
                os.write(write, report.encode())
                c.close()
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        with os.fdopen(read) as f:
            pid, guid = f.read().split()
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert int(pid) not in pids
        assert guid not in {str(_client_guid(a)), str(_client_guid(b))}
        assert "from-the-worker" in [e.name for e in a.list()]
    finally:
        a.close()
        b.close()


def test_the_extra_connections_of_a_medium_are_channels_of_its_client(tmp_path, samba, smb_location):
    """A consolidation's copy threads each open an extra connection of the SMB medium (``Archive.extra_connection``):
    those are channels of the medium's own client, with its GUID, served by its server process, as they were before
    each storage had a GUID of its own (so the copy's speed onto a share is unchanged); another storage of the same
    share is a client of its own."""
    from toolkit.archive import Archive

    archive = Archive.create(tmp_path / "home", smb_location, smb_password=samba.password)
    try:
        medium = archive.storage(archive.active_medium_id())
        extras = [archive.extra_connection(archive.active_medium_id(), sealed_only=True) for _ in range(2)]
        other = open_storage(smb_location, samba.password)
        try:
            guid = _client_guid(medium)
            assert [_client_guid(e) for e in extras] == [guid, guid]
            assert _client_guid(other) != guid
            served = {samba.server_process_of(_client_port(s)) for s in (medium, *extras)}
            assert len(served) == 1
            assert samba.server_process_of(_client_port(other)) not in served
        finally:
            for s in (*extras, other):
                s.close()
    finally:
        archive.close()
