"""`config set|get|list`, secrets sealed in archive.toml, and `schedule --print` lines that run as printed.

Every job line printed by `schedule --print` is executed through /bin/sh as cron
would (time fields cut, ``\\%`` unescaped), with no password in the environment,
against the real Samba (source share and mirror) and the real TSA.
"""
from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.cli import mailarchive


def _cron_command(line: str) -> str:
    return line.split(None, 5)[5].replace("\\%", "%")


@pytest.mark.samba
def test_config_and_schedule_lines_run_as_printed(tmp_path, samba, smb_location, tsa_ok):
    sub = smb_location.rstrip("/").rpartition("/")[2]
    src = samba.share_dir / f"{sub}-src"   # made here, read over SMB; the mirror goes to smb_location
    src.mkdir()
    for i in range(12):
        (src / f"m{i}.eml").write_text(f"From: a@example.com\nSubject: s{i}\nMessage-ID: <cfg{i}@x>\n\nbody {i}\n")
    home = tmp_path / "home"
    mailarchive(home, "init", "--medium", str(tmp_path / "m1"), "--key-backup", str(tmp_path / "kb.txt"))
    pw_file = tmp_path / "smbpw"
    pw_file.write_text(samba.password + "\n")
    log = tmp_path / "logs" / "archive.log"

    mailarchive(home, "config", "set", "mirror.dest", smb_location)
    mailarchive(home, "config", "set", "mirror.password", "--value-file", str(pw_file))
    mailarchive(home, "config", "set", "source.nas", f"share {samba.url(sub + '-src')}")
    mailarchive(home, "config", "set", "source.nas.password", env={"MAILARCHIVE_CONFIG_VALUE": samba.password})
    mailarchive(home, "config", "set", "log_file", str(log))
    mailarchive(home, "timestamp", "configure", "--tsa-url", tsa_ok.url, "--ca-cert", str(tsa_ok.ca_cert_path))
    # a secret on the command line is refused (argv is visible to every user of the host)
    bad = mailarchive(home, "config", "set", "mirror.password", "hunter2", check=2)
    assert "not on the command line" in bad.stderr
    mailarchive(home, "config", "set", "nosuch.key", "x", check=2)

    toml_text = (home / "archive.toml").read_text()
    assert samba.password not in toml_text
    settings = tomllib.loads(toml_text)["settings"]
    assert settings["mirror"]["dest"] == smb_location and settings["mirror"]["password_sealed"]
    assert mailarchive(home, "config", "get", "mirror.password").stdout.strip() == "(sealed)"
    assert mailarchive(home, "config", "get", "mirror.dest").stdout.strip() == smb_location
    assert mailarchive(home, "config", "get", "source.nas.ca_file", check=1).stdout == ""
    listed = mailarchive(home, "config", "list", json_out=True).result["settings"]
    assert listed == {
        "mirror.dest": smb_location, "mirror.password": "(sealed)",
        "timestamp.tsa_url": tsa_ok.url, "log_file": str(log),
        "source.nas": f"share {samba.url(sub + '-src')}", "source.nas.password": "(sealed)",
    }

    # the log_file setting: every command logs there without --log-file
    mailarchive(home, "stats")
    assert re.search(r'event=start command="[^"]*stats"', log.read_text()) and " event=end exit=0 " in log.read_text()

    lines = mailarchive(home, "schedule", "--print").stdout.splitlines()
    jobs = [ln for ln in lines if ln and not ln.startswith("#")]
    assert len(jobs) == 6, lines
    assert all(f"--log-file {log}" in j for j in jobs)
    imports = [j for j in jobs if " import source nas" in j]
    assert len(imports) == 1
    # run them as cron would: no password anywhere in the environment, imports first
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILARCHIVE_")}
    for job in imports + [j for j in jobs if j not in imports]:
        p = subprocess.run(["/bin/sh", "-c", _cron_command(job)], env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, (job, p.stdout, p.stderr)

    stats = mailarchive(home, "sql", "SELECT count(*) AS n FROM messages", "--format", "json").stdout
    assert '"n": 12' in stats.replace(":12", ": 12")
    assert list((samba.share_dir / sub / "medium-1").rglob("*.pack"))
    assert list((samba.share_dir / sub / "medium-1" / "db-backups").iterdir())
    text = log.read_text()
    for cmd in ("import source nas", "timestamp run --all", "db backup --full", "mirror", "purge --actor"):
        assert re.search(rf"event=start command=\".*{cmd}", text), (cmd, text)
    assert text.count(" event=end exit=0 ") >= 7


def test_help_names_only_settings_that_config_can_set(tmp_path):
    """Every setting a --help text names (`the X setting`, `settings X`) is a key `config set` takes."""
    helps = []
    for cmd in (["mirror"], ["schedule"], ["restore"], ["timestamp", "run"], ["import", "source"], []):
        helps.append(mailarchive(tmp_path / "none", *cmd, "--help").stdout)
    text = " ".join(" ".join(h.split()) for h in helps)
    named = set(re.findall(r"the ([a-z_]+(?:\.[a-z_]+)?) setting", text)) | set(re.findall(r"settings ([a-z_]+\.[a-z_]+)", text))
    assert {"mirror.dest", "log_file"} <= named, named
    keys = " ".join(mailarchive(tmp_path / "none", "config", "set", "--help").stdout.split())
    for key in named:
        assert key in keys, key


def test_local_places_in_the_config_are_absolute_and_a_mirror_in_the_archive_is_refused(tmp_path, monkeypatch):
    home = tmp_path / "home"
    mailarchive(home, "init", "--kdf-profile", "test", "--key-backup", str(tmp_path / "kb.txt"))
    monkeypatch.chdir(tmp_path)  # where the user's shell is; a cron line runs elsewhere
    mailarchive(home, "config", "set", "mirror.dest", "backup/mirror")
    assert mailarchive(home, "config", "get", "mirror.dest").stdout.strip() == str(tmp_path / "backup" / "mirror")
    mailarchive(home, "config", "set", "source.old", "maildir old/Maildir")
    assert mailarchive(home, "config", "get", "source.old").stdout.strip() == f"maildir {tmp_path / 'old' / 'Maildir'}"
    mailarchive(home, "config", "set", "source.nas", "share smb://u@h/mail")
    assert mailarchive(home, "config", "get", "source.nas").stdout.strip() == "share smb://u@h/mail"
    p = mailarchive(home, "config", "set", "mirror.dest", str(home / "medium-1" / "m"), check=2)
    assert "is inside" in p.stderr and "choose a place apart" in " ".join(p.stderr.split())
    assert mailarchive(home, "config", "get", "mirror.dest").stdout.strip() == str(tmp_path / "backup" / "mirror")
