"""What a source may give as an IMAP keyword (a flag of its own: ``$label1``, ``Junk``): an RFC 3501 atom,
no blanks, controls, non-ASCII or specials, so it can stand in a sighting's space-separated flag list.
Read by the Maildir importer (dovecot-keywords) and the mbox flags (X-Mozilla-Keys, Gmail's tabs)."""
from __future__ import annotations

import re

KEYWORD = re.compile(r'[^\x00-\x20\x7f-\U0010ffff()\[\]{%*"\\]{1,200}')
