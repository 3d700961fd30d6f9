"""Gmail's labels, as Google Takeout writes them into each mail of its mbox (``X-Gmail-Labels``), read as the
folders and flags the mail had in Gmail (docs/sources.md, "Google Takeout").

The field's value is a comma-separated list in CSV form: a label holding a comma is quoted with ``"``; a
label with non-ASCII characters may come as an RFC 2047 encoded-word. Gmail's own labels are named in
English whatever the account's language; a user's label keeps its ``/`` levels (``Work/Projects``).

What each label becomes (the same names Gmail's IMAP server gives, without its ``[Gmail]/`` prefix):

* ``Inbox`` → folder ``INBOX``; ``Sent``, ``Drafts``, ``Spam``, ``Trash`` → those folders; ``Chat`` →
  ``Chats``; a user's label → the folder of that name;
* ``Opened`` → ``\\Seen`` (``Unread`` → not seen); ``Starred`` → ``\\Flagged``; ``Important`` →
  ``$Important``; a tab (``Category Personal``, ``Category Social`` …) → the keyword
  ``$Category-Personal`` …;
* ``Archived`` (the mail is in no folder but All Mail) adds nothing.

Every mail stays in the folder of its mbox file too (``All mail Including Spam and Trash``), as in Gmail's
All Mail; the field itself stays in the archived bytes.
"""
from __future__ import annotations

import csv
from email.header import decode_header, make_header
from typing import NamedTuple

FIELD = b"x-gmail-labels"
#: Gmail's system labels that are folders in Gmail's IMAP (by lower-case label)
FOLDERS = {"inbox": "INBOX", "sent": "Sent", "drafts": "Drafts", "spam": "Spam", "trash": "Trash", "chat": "Chats"}
#: Gmail's system labels that are flags
FLAGS = {"opened": "\\Seen", "starred": "\\Flagged", "important": "$Important"}
#: Gmail's system labels that say no more than the absence of another (Unread: no Opened) or All Mail
NOTHING = {"unread", "archived"}
CATEGORY = "category "
MAX_LABELS = 500   # a field with more is cut there: a mail in 500 folders is no mail a person labelled


class Labels(NamedTuple):
    folders: tuple[str, ...]
    flags: frozenset[str]


def split(value: str) -> list[str]:
    """The labels of one field value (``Inbox,"a, b",Work/Projects``), encoded-words decoded, blanks trimmed."""
    if "=?" in value:
        try:
            value = str(make_header(decode_header(value)))
        except (ValueError, LookupError, UnicodeError):
            pass  # an undecodable encoded-word stays as it is: the label is then its raw text
    try:
        row = next(csv.reader([value.replace("\r", " ").replace("\n", " ")], skipinitialspace=True), [])
    except csv.Error:
        row = value.split(",")
    return [label.strip() for label in row[:MAX_LABELS] if label.strip()]


def read(value: str) -> Labels:
    """The folders (in the order given, each once) and flags the labels of one field value stand for."""
    folders: list[str] = []
    flags: set[str] = set()
    for label in split(value):
        low = label.lower()
        if low in FOLDERS:
            folder = FOLDERS[low]
        elif low in FLAGS:
            flags.add(FLAGS[low])
            continue
        elif low in NOTHING:
            continue
        elif low.startswith(CATEGORY) and len(low) > len(CATEGORY):
            flags.add("$Category-" + "-".join(label[len(CATEGORY):].split()))
            continue
        else:
            folder = "/".join(p.strip() for p in label.split("/") if p.strip()) or label
        if folder not in folders:
            folders.append(folder)
    return Labels(tuple(folders), frozenset(flags))
