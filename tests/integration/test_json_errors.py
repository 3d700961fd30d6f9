"""``--json`` gives a script exactly one JSON object on stdout, also when the command ends in an error before its
result (docs/cli.md "Output"): ``{"status": "error", "exit_code": N, "error": "..."}``, with the exit status and the
message that stderr shows. A command that printed its result and then exits non-zero prints no second object."""
from __future__ import annotations

import json

from tests.cli import mailarchive


def _one_object(p) -> dict:
    lines = [line for line in p.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, p.stdout
    return json.loads(lines[0])


def test_an_error_is_one_json_object_and_a_result_is_never_followed_by_one(tmp_path):
    home = tmp_path / "home"
    mailarchive(home, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / "kb.txt"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.eml").write_bytes(b"From: a@example.org\r\nSubject: one\r\nDate: Tue, 1 Oct 2024 10:00:00 +0000\r\n\r\nb\r\n")
    assert mailarchive(home, "import", "eml", str(src), json_out=True).result["archived"] == 1

    # a source that is not there: exit 2 and its message, as an object
    p = mailarchive(home, "import", "eml", str(tmp_path / "gone"), json_out=True, check=2)
    got = _one_object(p)
    assert got["status"] == "error" and got["exit_code"] == 2 and "does not exist" in got["error"]
    assert got["error"] in " ".join(p.stderr.split())

    # an export that selects nothing: exit 1, the options named
    p = mailarchive(home, "export", "eml", str(tmp_path / "out"), "--since", "2099-01-01", json_out=True, check=1)
    got = _one_object(p)
    assert got == {"status": "error", "exit_code": 1,
                   "error": "the selection matches no message (--since 2099-01-01): nothing exported"}

    # an option the command does not have (click's usage error)
    got = _one_object(mailarchive(home, "import", "eml", "--bogus", str(src), json_out=True, check=2))
    assert got["exit_code"] == 2 and "--bogus" in got["error"]

    # a run that found no mail exits 1 with its result: that object only, no error object after it
    (tmp_path / "empty").mkdir()
    p = mailarchive(home, "import", "eml", str(tmp_path / "empty"), json_out=True, check=1)
    got = _one_object(p)
    assert got["seen"] == 0 and got["errors"] == 1 and "status" in got and got["status"] != "error"


def test_an_export_into_a_file_says_what_the_export_writes(tmp_path):
    home = tmp_path / "home"
    mailarchive(home, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / "kb.txt"))
    (tmp_path / "a.eml").write_bytes(b"From: a@example.org\r\nSubject: one\r\n\r\nb\r\n")
    mailarchive(home, "import", "eml", str(tmp_path / "a.eml"))
    target = tmp_path / "old.mbox"
    target.write_bytes(b"From a@b Tue Oct  1 10:00:00 2024\n\nkept\n")
    for kind, says in (("mbox", "export mbox writes into a directory: DEST/messages.mbox"),
                       ("maildir", "export maildir writes a Maildir++ directory"),
                       ("eml", "export eml writes into a directory")):
        got = _one_object(mailarchive(home, "export", kind, str(target), json_out=True, check=2))
        assert f"{target} is a file; " in got["error"] and says in got["error"], kind
    assert target.read_bytes() == b"From a@b Tue Oct  1 10:00:00 2024\n\nkept\n"


def test_a_retention_policy_or_hold_that_covers_no_mail_warns(tmp_path):
    home = tmp_path / "home"
    mailarchive(home, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / "kb.txt"))
    (tmp_path / "INBOX").mkdir()
    (tmp_path / "INBOX" / "a.eml").write_bytes(b"From: a@example.org\r\nTo: b@example.org\r\nSubject: r\r\n\r\nb\r\n")
    mailarchive(home, "import", "eml", str(tmp_path))
    r = mailarchive(home, "retention", "set", "--years", "7", "--domain", "exmaple.org", "--actor", "admin",
                    json_out=True).result
    assert r["value"] == "exmaple.org" and "no archived mail falls under domain 'exmaple.org' yet" in r["warnings"][0]
    for args in (("set", "--years", "7", "--domain", "example.org"), ("set", "--years", "7", "--folder", "INBOX"),
                 ("hold", "add", "--address", "b@example.org", "--reason", "case 1")):
        p = mailarchive(home, "retention", *args, "--actor", "admin")
        assert "warning" not in p.stderr, args
    p = mailarchive(home, "retention", "set", "--years", "7", "--folder", "INBX", "--actor", "admin")
    assert "no archived mail falls under folder 'INBX' yet: a typo?" in " ".join(p.stderr.split())
    p = mailarchive(home, "retention", "hold", "add", "--address", "bb@example.org", "--reason", "case 2",
                    "--actor", "legal")
    assert "falls under address 'bb@example.org' yet" in " ".join(p.stderr.split()) and "covers mail archived later" \
        in " ".join(p.stderr.split())


def test_an_option_of_mailarchive_itself_after_the_command_says_where_it_goes(tmp_path):
    """``mailarchive verify --json`` (as most tools take it): click said "No such option '--json'. Did you mean
    '--json-report'?", which writes a file instead. The usage error (exit 2) now says where the option goes."""
    home = tmp_path / "home"
    for args, said in (
        (("verify", "--json"), "--json is an option of mailarchive itself, not of this command: put it before the "
                               "command, as in `mailarchive --json verify ...`"),
        (("media", "list", "--archive", str(home)), "as in `mailarchive --archive HOME media list ...`"),
        (("stats", "--quiet"), "as in `mailarchive --quiet stats ...`"),
    ):
        p = mailarchive(home, *args, check=2)
        text = " ".join(p.stderr.split())
        assert said in text and "Did you mean" not in text, (args, text)
    # an option a command has of its own is no global one's business
    p = mailarchive(home, "verify", "--jsn", check=2)
    assert "No such option" in p.stderr
