"""`schedule --print`: the crontab of a production archive."""
from __future__ import annotations

from toolkit.cli.commands.mirror import crontab_lines

RUN = "/opt/ma/bin/mailarchive --archive /srv/archive --quiet --lock-wait 600"


def _jobs(lines):
    return [line for line in lines if not line.startswith("#")]


def test_schedule_lines_exact():
    lines = crontab_lines(
        "/srv/archive", "/opt/ma/bin/mailarchive", "smb://backup@nas:445/mirror/archive",
        [{"kind": "imap", "uri": "imaps://mail@imap.example.com/INBOX"}, "pop3 pop3s://u@pop.example.com"],
    )
    assert _jobs(lines) == [
        f"*/15 * * * * flock -n /srv/archive/.cron-stamp.lock {RUN} timestamp run --min-pending 10000",
        f"57 23 * * * flock -n /srv/archive/.cron-stamp-daily.lock {RUN} timestamp run --all",
        f"12 0,2-23 * * * flock -n /srv/archive/.cron-backup.lock -c "
        f"'{RUN} db backup && {RUN} mirror smb://backup@nas:445/mirror/archive'",
        f"12 1 * * * flock -n /srv/archive/.cron-backup.lock -c "
        f"'{RUN} db backup --full && {RUN} mirror smb://backup@nas:445/mirror/archive'",
        f"40 3 * * * flock -n /srv/archive/.cron-purge.lock {RUN} purge --actor scheduled-purge",
        f"2,17,32,47 * * * * flock -n /srv/archive/.cron-import-1.lock {RUN} import imap imaps://mail@imap.example.com/INBOX",
        f"2,17,32,47 * * * * flock -n /srv/archive/.cron-import-2.lock {RUN} import pop3 pop3s://u@pop.example.com",
    ]
    assert lines[0].startswith("# mailarchive schedule for the archive at /srv/archive")


def test_schedule_without_mirror_or_sources_prints_examples():
    lines = crontab_lines("/srv/archive", "/opt/ma/bin/mailarchive", None, [], keep=48)
    jobs = _jobs(lines)
    assert jobs[2] == f"12 0,2-23 * * * flock -n /srv/archive/.cron-backup.lock {RUN} db backup"
    assert jobs[3] == f"12 1 * * * flock -n /srv/archive/.cron-backup.lock {RUN} db backup --full --keep 48"
    assert jobs[4] == f"40 3 * * * flock -n /srv/archive/.cron-purge.lock {RUN} purge --actor scheduled-purge"
    assert len(jobs) == 5
    assert lines[-1].startswith("# 2,17,32,47 * * * * ") and " import imap " in lines[-1]


def test_schedule_quotes_paths_and_escapes_percent():
    lines = crontab_lines("/srv/my archive%1", "mailarchive")
    job = _jobs(lines)[0]
    assert "--archive '/srv/my archive\\%1'" in job
    assert "%" not in job.replace("\\%", "")


def test_without_a_tsa_the_stamping_jobs_are_commented_out_with_the_next_step():
    lines = crontab_lines("/srv/archive", "mailarchive", None, [], tsa_configured=False)
    jobs = [ln for ln in lines if not ln.startswith("#")]
    assert jobs and not any("timestamp run" in ln for ln in jobs)
    assert any(ln.startswith("# */15 * * * * ") and "timestamp run --min-pending" in ln for ln in lines)
    assert any("no TSA configured: `mailarchive timestamp configure" in ln for ln in lines)
    assert sum("timestamp run" in ln for ln in crontab_lines("/srv/archive", "mailarchive", None, [])
               if not ln.startswith("#")) == 2
