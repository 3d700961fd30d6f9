"""A scripted IMAP server that breaks the protocol on purpose (docs/reliability.md D6).

Plain TCP on 127.0.0.1, no TLS (the importer is run with ``allow_plaintext``).
It speaks just enough IMAP4rev1 for the importer (CAPABILITY, LOGIN, LIST,
EXAMINE, UID SEARCH, UID FETCH, LOGOUT) and serves a fixed set of folders,
each with one mail; a folder's ``fetch`` decides what the body FETCH answers:

* ``"good"``: the mail as a proper literal;
* ``"huge-literal"``: ``BODY[] {4294967295}`` followed by a few bytes, then silence;
* ``"garbage"``: an unparsable FETCH line;
* ``"huge-size"``: RFC822.SIZE claims 5 GB (the body is never asked for);
* ``"throttle"``: the first two body FETCHes get ``NO [THROTTLED]`` (Exchange's wording), then the mail;
* ``"bye"``: the first body FETCH gets ``* BYE`` and the connection is closed, then the mail;
* ``"lying-size"``: 20 mails, RFC822.SIZE says 1,000 bytes each, the body FETCH sends 50 MB each;
* ``"mixed"``: :data:`MIXED` mails answered in one body FETCH, each UID its own way (``MIXED_ANSWERS``): a
  good one, a literal 10 bytes shorter and one 10 bytes longer than RFC822.SIZE, an answer of garbage with a
  literal in it, a non-numeric RFC822.SIZE, an unterminated FLAGS list, an untagged EXISTS in between, and a
  good one last (the reader must stay in step through all of them).
* ``"courier-expunged"``: the listing gives the mail's RFC822.SIZE; the body FETCH answers what Courier-IMAP
  5.0 sends for a mail another session expunged meanwhile: :data:`COURIER_PLACEHOLDER`, with an
  RFC822.SIZE of its own length (tests/integration/test_imap_peers.py has the real transcript);
  ``"courier-expunged-listed"``: the same, and the size listing already gives the placeholder's size.
* ``"cyrus-flags"``: UIDs :data:`CYRUS_UIDS` at sequence numbers 1-4, every mail ``\\Seen``; every FETCH but
  the one that starts with the first UID is preceded by Cyrus's unsolicited ``* 2 FETCH (FLAGS (...))``
  without UID (sequence number 2, UID 3: flags another session changed).
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from .process import LineHandler, ScriptedServer


MAIL = b"From: a@example.com\r\nSubject: good\r\nMessage-ID: <good@evil.test>\r\n\r\nhello\r\n"
COURIER_PLACEHOLDER = (b"From: System Administrator <root@localhost>\r\nSubject: message unavailable\r\n\r\n"
                       b"This message is no longer available on the server.\r\n")
LYING_COUNT, LYING_CLAIM, LYING_SENT = 20, 1000, 50 << 20


def mixed_mail(uid: int) -> bytes:
    return b"From: m@example.com\r\nSubject: mixed %d\r\nMessage-ID: <mixed-%d@evil.test>\r\n\r\nbody %d\r\n" % (uid, uid, uid)


def _mixed_answer(uid: int) -> bytes:
    mail = mixed_mail(uid)
    n = len(mail)
    head = b"* %d FETCH (UID %d RFC822.SIZE %d BODY[] " % (uid, uid, n)
    return {
        2: head + b"{%d}\r\n" % (n - 10) + mail[:-10] + b")\r\n",                     # short literal
        3: head + b"{%d}\r\n" % (n + 10) + mail + b"0123456789)\r\n",                # long literal
        4: b"* 4 FETCH (UID 4 BODY[] ((( {%d}\r\n" % n + mail + b")\r\n",            # garbage around a literal
        5: b"* 5 FETCH (UID 5 RFC822.SIZE lots BODY[] {%d}\r\n" % n + mail + b")\r\n",  # a size that is no number
        6: b"* 6 FETCH (UID 6 FLAGS (\\Seen BODY[] {%d}\r\n" % n + mail + b")\r\n* 9 EXISTS\r\n",  # unterminated
    }.get(uid, head + b"{%d}\r\n" % n + mail + b")\r\n")


#: The UIDs of the "cyrus-flags" folder at sequence numbers 1-4 (4, 6, 7 and 8 were expunged).
CYRUS_UIDS = [2, 3, 5, 9]

MIXED = 7
#: What the importer must say of each UID of the "mixed" folder (None: archived).
MIXED_ANSWERS = {1: None, 2: "incomplete: received", 3: "incomplete: received", 4: "unparsable FETCH answer",
                 5: "unparsable FETCH answer", 6: "unparsable FETCH answer", 7: None}


def _uid_set(args: bytes) -> list[int]:
    """The UIDs of a FETCH argument like ``1:3,7 (ITEMS)``."""
    out: list[int] = []
    for part in args.split(b" ", 1)[0].split(b","):
        lo, _, hi = part.partition(b":")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out
_CMD = re.compile(rb"^(\S+) (?:UID )?(\S+)(?: (.*))?$", re.I)


@dataclass
class EvilImap(ScriptedServer):
    folders: dict[str, str] = field(default_factory=dict)
    body_fetches: dict[str, int] = field(default_factory=dict)
    appended: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # (mailbox, flags, literal)
    stored: dict[str, list[bytes]] = field(default_factory=dict)  # with ``store``: mailbox -> bytes kept, UID = index + 1


def start_evil_imap(folders: dict[str, str], *, delimiter: bytes | None = b"/", namespace: bytes | None = None,
                    capabilities: bytes = b"", store=None, drop_after_store: int = 0) -> EvilImap:
    """``folders``: wire name → mode; LIST gives them with ``delimiter`` (None: NIL); with ``namespace`` (the untagged
    line, e.g. Cyrus's ``* NAMESPACE (("INBOX." ".")) (("user." ".")) (("" "."))``) NAMESPACE is offered;
    ``capabilities`` are announced besides (``b" LOGINDISABLED"``: LOGIN gets Cyrus's NO).

    For the exporter: LIST matches the pattern (``*``, ``%``: RFC 3501's wildcards); CREATE adds a folder ("good"),
    APPEND takes the literal (into ``appended``); with ``namespace``, both refuse a name outside the personal
    prefix (other than INBOX) as Cyrus does (``NO Permission denied``, ``NO Mailbox does not exist``).

    With ``store`` (bytes sent -> bytes kept: how a server alters what it stores) the server offers UIDPLUS,
    keeps each APPEND (``stored``), answers it with ``[APPENDUID 7 uid]``, and SELECT/EXAMINE + UID FETCH of
    such a folder serve what it kept, and UID SEARCH HEADER Message-ID finds it; ``drop_after_store=N``: the
    N-th APPEND is kept, then the connection closes before its OK."""
    state = EvilImap(scheme="imap", folders=dict(folders))
    m = re.match(rb'\* NAMESPACE \(\("([^"]*)"', namespace or b"")
    personal = m.group(1).decode() if m else ""

    def outside(name: str) -> bool:
        return bool(personal) and name.upper() != "INBOX" and not name.startswith(personal)

    class Handler(LineHandler):
        def handle(self) -> None:
            selected: str | None = None
            self.send(b"* OK evil IMAP ready\r\n")
            while True:
                line = self.rfile.readline(65536)
                if not line:
                    return
                state.commands.append(line.rstrip(b"\r\n"))
                m = _CMD.match(line.rstrip(b"\r\n"))
                if not m:
                    self.send(b"* BAD what\r\n")
                    continue
                tag, cmd, args = m.group(1), m.group(2).upper(), m.group(3) or b""
                ok = tag + b" OK done\r\n"
                if cmd == b"CAPABILITY":
                    self.send(b"* CAPABILITY IMAP4rev1" + (b" NAMESPACE" if namespace else b"") + capabilities
                              + (b" UIDPLUS UNSELECT" if store else b"") + b"\r\n" + ok)
                elif cmd == b"LOGIN" and b"LOGINDISABLED" in capabilities:
                    self.send(tag + b" NO Login only available under a layer\r\n")
                elif cmd == b"NAMESPACE" and namespace:
                    self.send(namespace + b"\r\n" + ok)
                elif cmd == b"LOGOUT":
                    self.send(b"* BYE bye\r\n" + ok)
                    return
                elif cmd == b"LIST":
                    sep = b'"' + delimiter + b'"' if delimiter is not None else b"NIL"
                    pm = re.search(rb'"([^"]*)"$', args)
                    pattern = (pm.group(1) if pm else args.rsplit(b" ", 1)[-1]).decode()
                    level = re.escape((delimiter or b"").decode()) or "$^"
                    wild = "".join(".*" if ch == "*" else f"(?:(?!{level}).)*" if ch == "%" else re.escape(ch)
                                   for ch in pattern)
                    names = [n for n in state.folders if re.fullmatch(wild, n)]
                    rows = b"".join(b"* LIST (\\HasNoChildren) " + sep + b' "' + n.encode() + b'"\r\n' for n in names)
                    self.send(rows + ok)
                elif cmd == b"CREATE":
                    name = args.strip(b'"').decode()
                    if outside(name):
                        self.send(tag + b" NO Permission denied\r\n")
                    else:
                        state.folders.setdefault(name, "good")
                        self.send(ok)
                elif cmd == b"APPEND":
                    am = re.match(rb'"?([^"]*?)"? (?:\(([^)]*)\) )?(?:"[^"]*" )?\{(\d+)(\+?)\}$', args)
                    name = am.group(1).decode()
                    if outside(name) or name not in state.folders and name.upper() != "INBOX":
                        if am.group(4):  # LITERAL+: the literal comes anyway
                            self.rfile.read(int(am.group(3)) + 2)
                        self.send(tag + b" NO Mailbox does not exist\r\n")
                        continue
                    if not am.group(4):
                        self.send(b"+ go ahead\r\n")
                    data = self.rfile.read(int(am.group(3)))
                    self.rfile.readline()
                    state.appended.append((name, am.group(2) or b"", data))
                    if store is None:
                        self.send(ok)
                    else:
                        kept = state.stored.setdefault(name, [])
                        kept.append(store(data))
                        if drop_after_store and len(state.appended) == drop_after_store:
                            return  # stored, then the link drops before the OK
                        self.send(tag + b" OK [APPENDUID 7 %d] done\r\n" % len(kept))
                elif store is not None and cmd == b"SEARCH":
                    hm = re.search(rb'HEADER "?Message-ID"? "?([^"]*)"?$', args, re.I)
                    kept = state.stored.get(selected or "", [])
                    # HEADER is a substring search of that field (RFC 3501 6.4.4)
                    hits = [u for u, m in enumerate(kept, 1) if hm and re.search(
                        rb"(?im)^Message-ID:[^\r\n]*" + re.escape(hm.group(1)), m)]
                    self.send(b"* SEARCH" + b"".join(b" %d" % u for u in hits) + b"\r\n" + ok)
                elif store is not None and cmd in (b"EXAMINE", b"SELECT"):
                    selected = args.strip(b'"').decode()
                    self.send(b"* %d EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" % len(state.stored.get(selected, []))
                              + tag + b" OK [READ-ONLY] done\r\n")
                elif store is not None and cmd == b"FETCH":
                    kept = state.stored.get(selected or "", [])
                    if b"BODY.PEEK[]" in args.upper():
                        self.send(b"".join(b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (u, u, len(kept[u - 1]))
                                           + kept[u - 1] + b")\r\n" for u in _uid_set(args) if 0 < u <= len(kept)) + ok)
                    else:
                        self.send(b"".join(b"* %d FETCH (UID %d RFC822.SIZE %d)\r\n" % (u, u, len(kept[u - 1]))
                                           for u in _uid_set(args) if 0 < u <= len(kept)) + ok)
                elif cmd in (b"EXAMINE", b"SELECT") and state.folders.get(args.strip(b'"').decode()) == "lying-size":
                    selected = args.strip(b'"').decode()
                    self.send(b"* %d EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" % LYING_COUNT + tag + b" OK [READ-ONLY] done\r\n")
                elif cmd == b"SEARCH" and state.folders.get(selected or "") == "lying-size":
                    self.send(b"* SEARCH " + b" ".join(b"%d" % u for u in range(1, LYING_COUNT + 1)) + b"\r\n" + ok)
                elif cmd == b"FETCH" and state.folders.get(selected or "") == "lying-size":
                    uids = _uid_set(args)
                    if b"BODY.PEEK[]" not in args.upper():
                        self.send(b"".join(b"* %d FETCH (UID %d RFC822.SIZE %d)\r\n" % (u, u, LYING_CLAIM) for u in uids) + ok)
                        continue
                    body = MAIL + b"x" * (LYING_SENT - len(MAIL))
                    try:
                        for u in uids:
                            self.send(b"* %d FETCH (UID %d RFC822.SIZE %d BODY[] {%d}\r\n" % (u, u, LYING_CLAIM, len(body))
                                      + body + b")\r\n")
                        self.send(ok)
                    except OSError:
                        return  # the client hung up, as it should
                elif cmd in (b"EXAMINE", b"SELECT") and state.folders.get(args.strip(b'"').decode()) == "cyrus-flags":
                    selected = args.strip(b'"').decode()
                    self.send(b"* 4 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" + tag + b" OK [READ-ONLY] done\r\n")
                elif cmd == b"SEARCH" and state.folders.get(selected or "") == "cyrus-flags":
                    self.send(b"* SEARCH " + b" ".join(b"%d" % u for u in CYRUS_UIDS) + b"\r\n" + ok)
                elif cmd == b"FETCH" and state.folders.get(selected or "") == "cyrus-flags":
                    uids = _uid_set(args)
                    # before the answers of a command, Cyrus tells of flags another session changed, without UID
                    head = b"* 2 FETCH (FLAGS (\\Recent \\Answered $Junk))\r\n" if uids[0] != CYRUS_UIDS[0] else b""
                    rows = []
                    for u in uids:
                        seq = CYRUS_UIDS.index(u) + 1
                        mail = mixed_mail(u)
                        body = b" BODY[] {%d}\r\n" % len(mail) + mail if b"BODY.PEEK[]" in args.upper() else b""
                        rows.append(b'* %d FETCH (FLAGS (\\Seen) UID %d INTERNALDATE " 4-Dec-2026 15:34:09 +0000" '
                                    b"RFC822.SIZE %d%s)\r\n" % (seq, u, len(mail), body))
                    self.send(head + b"".join(rows) + ok)
                elif cmd in (b"EXAMINE", b"SELECT") and state.folders.get(args.strip(b'"').decode()) == "mixed":
                    selected = args.strip(b'"').decode()
                    self.send(b"* %d EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" % MIXED + tag + b" OK [READ-ONLY] done\r\n")
                elif cmd == b"SEARCH" and state.folders.get(selected or "") == "mixed":
                    self.send(b"* SEARCH " + b" ".join(b"%d" % u for u in range(1, MIXED + 1)) + b"\r\n" + ok)
                elif cmd == b"FETCH" and state.folders.get(selected or "") == "mixed":
                    uids = _uid_set(args)
                    if b"BODY.PEEK[]" not in args.upper():
                        self.send(b"".join(b"* %d FETCH (UID %d RFC822.SIZE %d)\r\n" % (u, u, len(mixed_mail(u)))
                                           for u in uids) + ok)
                    else:
                        self.send(b"".join(_mixed_answer(u) for u in uids) + ok)
                elif cmd in (b"EXAMINE", b"SELECT"):
                    selected = args.strip(b'"').decode()
                    self.send(b"* 1 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 2] ok\r\n"
                              + tag + b" OK [READ-ONLY] done\r\n")
                elif cmd == b"SEARCH":
                    self.send(b"* SEARCH 1\r\n" + ok)
                elif cmd == b"FETCH":
                    mode = state.folders.get(selected or "", "good")
                    if b"BODY.PEEK[]" not in args.upper():
                        size = 5 * 10**9 if mode == "huge-size" else len(MAIL)
                        size = len(COURIER_PLACEHOLDER) if mode == "courier-expunged-listed" else size
                        self.send(b"* 1 FETCH (UID 1 RFC822.SIZE %d)\r\n" % size + ok)
                    elif (mode == "throttle" and state.body_fetches.get(selected, 0) < 2) or \
                            (mode == "bye" and state.body_fetches.get(selected, 0) < 1):
                        state.body_fetches[selected] = state.body_fetches.get(selected, 0) + 1
                        if mode == "bye":
                            self.send(b"* BYE server going down for maintenance\r\n")
                            return
                        self.send(tag + b" NO [THROTTLED] Request is throttled. Suggested Backoff Time: 10 milliseconds\r\n")
                    elif mode == "huge-literal":
                        self.send(b"* 1 FETCH (UID 1 RFC822.SIZE 100 BODY[] {4294967295}\r\nFrom: x\r\n")
                        threading.Event().wait(5)  # then silence: a client must not wait for 4 GB
                        return
                    elif mode in ("courier-expunged", "courier-expunged-listed"):
                        self.send(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(COURIER_PLACEHOLDER) + COURIER_PLACEHOLDER
                                  + b' INTERNALDATE "04-Dec-2026 15:47:10 +0000" FLAGS () RFC822.SIZE %d)\r\n'
                                  % len(COURIER_PLACEHOLDER) + ok)
                    elif mode == "garbage":
                        self.send(b"* 1 FETCH (UID 1 BODY[] ((( }}} \"unterminated\r\n" + ok)
                    else:
                        self.send(b'* 1 FETCH (UID 1 RFC822.SIZE %d INTERNALDATE "01-Jan-2024 10:00:00 +0000" '
                                  b"FLAGS (\\Seen) BODY[] {%d}\r\n" % (len(MAIL), len(MAIL)) + MAIL + b")\r\n" + ok)
                else:
                    self.send(ok)

    state.serve(Handler)
    return state
