"""importers/gmail_labels.py: Takeout's X-Gmail-Labels read as Gmail's folders and flags."""
from __future__ import annotations

from hypothesis import given, strategies as st

from importers.gmail_labels import MAX_LABELS, Labels, read, split


def test_system_labels_become_folders_and_flags_and_user_labels_keep_their_levels():
    got = read('Inbox,Important,Opened,Category Personal,Work/Projects,"Receipts, 2019",Starred')
    assert got == Labels(("INBOX", "Work/Projects", "Receipts, 2019"),
                         frozenset({"\\Seen", "\\Flagged", "$Important", "$Category-Personal"}))


def test_unread_archived_and_the_system_folders():
    assert read("Archived,Unread") == Labels((), frozenset())
    assert read("Sent,Drafts,Spam,Trash,Chat").folders == ("Sent", "Drafts", "Spam", "Trash", "Chats")
    assert read("inbox,INBOX,Inbox").folders == ("INBOX",)          # case of system labels, each once
    assert read("Category Social Networks").flags == {"$Category-Social-Networks"}


def test_an_encoded_word_label_is_decoded_and_an_odd_one_is_kept_as_it_is():
    assert split("Inbox,=?UTF-8?Q?Entw=C3=BCrfe?=") == ["Inbox", "Entwürfe"]
    assert split("=?UTF-8?B?@@@?=,Inbox")[-1] == "Inbox"
    assert read("Inbox,/ Reisen / 2019 /").folders == ("INBOX", "Reisen/2019")


def test_a_field_of_thousands_of_labels_is_cut():
    assert len(split(",".join(f"l{i}" for i in range(5000)))) == MAX_LABELS


@given(st.text(max_size=300))
def test_any_value_gives_labels_without_an_exception(value):
    got = read(value)
    assert all(f and "\n" not in f and "\r" not in f for f in got.folders)
    assert len(set(got.folders)) == len(got.folders)
