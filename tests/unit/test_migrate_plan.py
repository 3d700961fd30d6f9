"""Migration plans (docs/cli.md "migrate"): CSV and TOML read alike, paths relative to the plan,
every broken line named at once, passwords never inline."""
from __future__ import annotations


from toolkit.migrate.plan import PROMPT, load_plan

CSV_HEAD = "kind,location,user,password_file,owner,folders\n"


def test_csv_and_toml_give_the_same_lines_with_paths_relative_to_the_plan(tmp_path):
    (tmp_path / "p").mkdir()
    csv_plan = tmp_path / "p" / "plan.csv"
    csv_plan.write_text(CSV_HEAD + "imap,imaps://mail.example.org:993,alice,alice.pw,Alice,INBOX;Archive/2020\n"
                        "# a comment line\n\nmbox,mail/old.mbox,,,Bob,\npop3,pop3s://h:995,carol,-,,\n")
    toml_plan = tmp_path / "p" / "plan.toml"
    toml_plan.write_text('[[source]]\nkind = "imap"\nlocation = "imaps://mail.example.org:993"\nuser = "alice"\n'
                         'password_file = "alice.pw"\nowner = "Alice"\nfolders = ["INBOX", "Archive/2020"]\n'
                         '[[source]]\nkind = "mbox"\nlocation = "mail/old.mbox"\nowner = "Bob"\n'
                         '[[source]]\nkind = "pop3"\nlocation = "pop3s://h:995"\nuser = "carol"\npassword_file = "-"\n')
    a, b = load_plan(csv_plan), load_plan(toml_plan)
    assert a.problems == b.problems == []
    strip = lambda plan: [(ln.kind, ln.location, ln.user, ln.password_file, ln.owner, ln.folders) for ln in plan.lines]
    assert strip(a) == strip(b)
    imap, mbox, pop = a.lines
    assert imap.url == "imaps://alice@mail.example.org:993" and imap.folders == ("INBOX", "Archive/2020")
    assert imap.password_file == tmp_path / "p" / "alice.pw" and imap.server == "mail.example.org:993"
    assert mbox.location == str(tmp_path / "p" / "mail" / "old.mbox") and mbox.server is None
    assert pop.password_file == PROMPT
    assert [ln.number for ln in a.lines] == [2, 5, 6]  # the file's own line numbers


def test_every_broken_line_is_named_in_one_pass(tmp_path):
    plan = tmp_path / "plan.csv"
    plan.write_text(CSV_HEAD
                    + "floppy,/dev/fd0,,,,\n"                          # 2: unknown kind
                    + "imap,imaps://h:993,alice,,,\n"                   # 3: no password file
                    + "imap,https://h,bob,b.pw,,\n"                     # 4: not an IMAP URL
                    + "pop3,pop3s://h:995,,c.pw,,\n"                    # 5: no user
                    + "mbox,x.mbox,root,p.pw,,\n"                       # 6: credentials on a local source
                    + "maildir,md,,,,INBOX\n"                           # 7: folders for a Maildir
                    + "maildir,md,,,,\n"                                # 8: fine
                    + "imap,imaps://h:99999,dan,d.pw,,\n"               # 9: bad port
                    + "imap,imaps://eve:secret@h,,e.pw,,\n")            # 10: a password in the URL
    p = load_plan(plan)
    assert sorted({n for n, _ in p.problems}) == [2, 3, 4, 5, 6, 7, 9, 10]
    text = dict(p.problems)
    assert "floppy" in text[2] and "password_file" in text[3] and "imaps://" in text[4] and "no user" in text[5]
    assert "port" in text[9] and "never go into the plan" in text[10] and "secret" not in text[10]
    assert [ln.number for ln in p.lines] == [8]


def test_a_bad_header_or_an_empty_plan_is_a_problem_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("type,where\nimap,x\n")
    assert load_plan(bad).problems[0][0] == 1
    empty = tmp_path / "empty.csv"
    empty.write_text(CSV_HEAD)
    assert load_plan(empty).problems == [(0, "the plan names no source")]
    assert load_plan(tmp_path / "missing.csv").problems[0][1].startswith("cannot read the plan")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[source]\n")
    assert load_plan(broken).problems[0][1].startswith("not TOML")


def test_a_source_named_twice_is_a_problem_of_the_later_line(tmp_path):
    (tmp_path / "mail").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "mail")
    plan = tmp_path / "plan.csv"
    plan.write_text(CSV_HEAD
                    + "eml,mail,,,,\n"                                   # 2
                    + "share,mail,,,,\n"                                 # 3: another kind: its own cursor
                    + "eml,link/,,,,\n"                                  # 4: line 2 again (a link to it)
                    + "imap,imaps://Mail.example.org,anna,a.pw,,INBOX\n"  # 5
                    + "imap,imaps://mail.example.org:993,Anna,a.pw,,Sent\n"  # 6: the same account
                    + "imap,imaps://mail.example.org,bert,b.pw,,\n")      # 7: another account
    p = load_plan(plan)
    assert [n for n, _ in p.problems] == [4, 6] and [ln.number for ln in p.lines] == [2, 3, 5, 7]
    assert p.problems[0][1].startswith("the same source as line 2 (eml ")
    assert "the same source as line 5" in p.problems[1][1] and "list them all in one line's folders" in p.problems[1][1]
