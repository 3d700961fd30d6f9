"""The careless user's mistakes with the mail servers, against the real Dovecot: an account with no mail at its
first import is a finding (exit 1), a --folder naming no folder a usage error (2), a rejected login 4."""
from __future__ import annotations

from tests.cli import mailarchive


def test_empty_account_wrong_folder_and_wrong_password(dovecot, mail_user, tmp_path):
    user, pw = mail_user  # a fresh, empty mailbox
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "medium"), "--key-backup", str(tmp_path / "kb.txt"))
    ca = ("--ca-file", str(dovecot.ca_cert_path))
    imap = f"imap://{user}@127.0.0.1:{dovecot.imap_port}"
    pop3 = f"pop3://{user}@127.0.0.1:{dovecot.pop3_port}"

    r = mailarchive(home, "import", "imap", imap, *ca, env={"MAILARCHIVE_IMAP_PASSWORD": pw}, json_out=True, check=1).result
    assert r["seen"] == 0 and "no mail found" in r["sources"][0]["problems"][0]["message"]
    r = mailarchive(home, "import", "pop3", pop3, *ca, env={"MAILARCHIVE_POP3_PASSWORD": pw}, json_out=True, check=1).result
    assert r["seen"] == 0 and "no mail found" in r["sources"][0]["problems"][0]["message"]

    p = mailarchive(home, "import", "imap", imap, "--folder", "Archiv", *ca, env={"MAILARCHIVE_IMAP_PASSWORD": pw}, check=2)
    assert "no selectable folder 'Archiv'" in p.stderr

    for kind, url, var in (("imap", imap, "MAILARCHIVE_IMAP_PASSWORD"), ("pop3", pop3, "MAILARCHIVE_POP3_PASSWORD")):
        mailarchive(home, "import", kind, url, *ca, env={var: pw + "-wrong"}, check=4)
