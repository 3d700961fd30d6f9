"""Every regular expression of the toolkit runs in linear time on hostile input.

The test finds the patterns itself: every compiled pattern held by a module of
``toolkit``, ``importers``, ``exporters``, ``verify`` and ``media_tools``, and every
``re.<function>(...)`` call inside a function (a literal pattern, or a pattern built at
run time, keyed by the enclosing function). Each must have an entry in ``WORST``: the
operation the code uses and inputs of 100 KB built to hit that pattern's worst case
(long runs of the characters its quantifiers overlap on, unterminated quotes,
backslashes...). Every input, plus runs of a fixed set of single characters, must be
handled in under 100 ms (the best of up to 3 runs), or, on a machine so loaded that this
bound is out of reach for any linear pattern, in under 4 times the time of matching every
character of the same input one by one. A regex added later without an entry
fails ``test_every_pattern_has_a_worst_case``.
"""
from __future__ import annotations

import ast
import importlib
import re
import signal
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.security

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("toolkit", "importers", "exporters", "verify", "media_tools")
N = 100_000
LIMIT = 0.100
_RE_CALLS = {"compile", "match", "search", "sub", "subn", "findall", "finditer", "split", "fullmatch"}


def _runs(*units: str) -> list[str]:
    """Each unit repeated to N characters."""
    return [(u * (N // len(u) + 1))[:N] for u in units]


def _tail(prefix: str, unit: str, suffix: str = "\x01") -> str:
    """prefix + a run of unit to N characters + suffix (a character no pattern accepts at the end)."""
    return prefix + (unit * ((N - len(prefix)) // len(unit) + 1))[: N - len(prefix)] + suffix


POINT6 = ", ".join(f"user{i}@example{i}.com" for i in range(4000)) + ', x@host."tld\\]"'

# (module, key) -> (operation, inputs). key: the attribute name of a module-level pattern,
# the pattern text of a literal re.<call>(...) inside a function, or "def <function>" for a
# pattern built at run time (then the operation is a callable running that function).
WORST: dict[tuple[str, str], tuple[object, list[str]]] = {
    # ---- toolkit.headers: the header scan and the address fast path
    ("toolkit.headers", "_HEADER_LINE"): ("match", [*_runs("a", " ", "\t"), _tail(" ", "x", "\n" + "a" * 1000)]),
    # literal two-byte needles of the body normalisation: every position a near miss or a match
    # the UID FETCH reader reads what an IMAP server sends (docs/reliability.md D6): a hostile server's lines
    ("toolkit.net.fetch_reader", "_FETCH"): ("match", [_tail("* ", "1"), *_runs("* 1 FETCH ", "*")]),
    ("toolkit.net.fetch_reader", "_UNTAGGED"): ("match", [_tail("* ", "1"), _tail("* 1 ", "A")]),
    ("toolkit.net.fetch_reader", "_NAME"): ("match", [*_runs("A", "A.", "1"), _tail("BODY[", "x"),
                                                      _tail("BODY[]<", "1")]),
    ("toolkit.net.fetch_reader", "_NUMBER"): ("match", _runs("1")),
    ("toolkit.net.fetch_reader", "_QUOTED"): ("match", [_tail('"', "a"), _tail('"', "\\\\"), _tail('"', '\\"'),
                                                        _tail('"', "\\x")]),
    ("toolkit.net.fetch_reader", "_ATOM"): ("match", _runs("a", "a\\")),
    ("toolkit.net.fetch_reader", "_LITERAL"): ("search", [_tail("{", "1"), *_runs("{", "{1", "{1}", "}{1")]),
    ("toolkit.net.fetch_reader", "_UNESCAPE"): ("sub", _runs("\\", '\\"', "\\a")),
    ("toolkit.net.fetch_reader", r"\bUID (\d+)"): ("search", [*_runs("UID ", "UID", " UID 1x", "aUID 1"),
                                                               _tail("UID ", "1")]),
    ("toolkit.headers", "_USUAL_DATE"): ("fullmatch", [_tail("1 Jan 2019 10:00:00 +0000 (", "x"),
                                                      _tail("Mon, 1 Jan 2019 10:00:00 +0000 (", "(x"),
                                                      *_runs("1", "Mon, ", " ", "1 Jan ")]),
    ("toolkit.headers", "_SPACE_LF"): ("finditer", _runs(" ", " \n", "  \n", "\n", " \t\n")),
    ("toolkit.headers", "_TAB_LF"): ("finditer", _runs("\t", "\t\n", "\t\t\n", "\n", "\t \n")),
    ("toolkit.headers", "_BLANK_LINE"): ("finditer", _runs("\n\r", "\r", "\r\n")),
    ("toolkit.headers", "_LINEBREAKS"): ("sub", _runs("\r", "\r\n", "\n")),
    ("toolkit.headers", "_WS_RUN"): ("sub", _runs(" \t\r\n", " x")),
    ("toolkit.headers", "_ALL_WS"): ("sub", _runs(" \t\r\n", " x")),
    ("toolkit.headers", "_CONTROLS"): ("finditer", _runs("a", "é")),
    ("toolkit.headers", "_ADDR_SPLIT"): ("split", _runs(" ,;<>", "a", "a@b")),
    ("toolkit.headers", "_ADDR_LINES"): ("fullmatch", [*_runs("a.", "a@b\n", "a@b.", "a-"), _tail("a@", "-"),
                                                       _tail("a@b", ".b"), _tail("", "a@b\n", "!"), "a" * N + "@"]),
    ("toolkit.headers", "_QUOTED_LIST"): ("fullmatch", [POINT6[:N], _tail("", "a"), _tail("", "a, ", ' x@host."tld\\]"'),
                                                        _tail('"', "a"), _tail("", '"a"', '"'), _tail("", "\\", '"'),
                                                        _tail("", 'a"b", ', '"\\')]),
    ("toolkit.headers", "_QUOTED_SPLIT"): ("findall", [POINT6[:N], _tail("", "a", '"'), _tail("", '"a', "\\"),
                                                        _tail("", ' a"b" ,'), _tail("", 'a"', "\\")]),
    ("toolkit.headers", "_QUOTED_STR"): ("sub", [_tail('"', "a"), *_runs('"a', '"\\', '"')]),
    ("toolkit.headers", "_NAME_BAD"): ("finditer", _runs("a b")),
    ("toolkit.headers", "_FIELD_END"): ("finditer", _runs("\n ", "\n\t", "\n")),
    ("toolkit.headers", "_BAD_LINE"): ("finditer", [*_runs("\n" + "a" * 999, "\n\r", "\na:", "\n "), _tail("\n", "a")]),
    ("toolkit.headers", "_WANTED_LINE"): ("finditer", _runs("\nto", "\nmessage-i", "\nx-ms-journal-report ")),
    # ---- toolkit.journal: unwrapping Exchange journal reports
    ("toolkit.journal", "_JOURNAL_HEADER"): ("finditer", [*_runs("\nx-ms-journal-report "), _tail("x-ms-journal-report", " ")]),
    ("toolkit.journal", "_FIELD"): ("match", [_tail("", "a"), _tail("a", " "), _tail("a-", "0")]),
    ("toolkit.journal", "_PLAIN_ADDR"): ("findall", [*_runs("a", "a@", "@a", "a@b ", "a.b"), _tail("", "a", "@")]),
    ("toolkit.journal", "_ANNOTATION"): ("finditer", _runs(",", ", ", ",a", ",a-", ", a ", ",a :")),
    ("toolkit.journal", "_ROLE_TAG"): ("finditer", [*_runs("(to)", "(to) ", "(recipient"), _tail("(to)", " ", "x")]),
    ("toolkit.journal", "_REDIRECTION_START"): ("match", [_tail("expanded", " "), _tail("", "expanded")]),
    ("toolkit.journal", "_ANNOTATION_PARTS"): ("match", [_tail("", "a"), _tail("a", " "), _tail("a:", " ")]),
    ("toolkit.journal", "[^A-Za-z0-9+/=]+"): ("sub", _runs("!", "a!")),
    ("toolkit.journal", r"[^<>]*<([^<>]*)>\s*"): ("fullmatch", [*_runs("<", "a", "<a>"), _tail("a<b>", " ", "x"),
                                                                  _tail("<", "a")]),
    ("toolkit.journal", r"\s+"): ("sub", _runs(" ", " a")),
    # ---- toolkit.mapi: building MIME from Outlook items
    ("toolkit.mapi", "[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+"): ("fullmatch", [*_runs("a", "a/", "/"), _tail("a/", "a")]),
    ("toolkit.mapi", r"\r?\n\r?\n"): ("split", _runs("\r\n", "\n\r", "\r", "\r\r\n")),
    ("toolkit.mapi", "_DROP"): ("match", [_tail("content-", "a"), _tail("content-", "-"), *_runs("content-")]),
    # ---- toolkit.cli.commands.config: setting names
    ("toolkit.cli.commands.config", "_SOURCE"): ("fullmatch", [_tail("source.", "a"), _tail("source.a", ".password"),
                                                           *_runs("source.")]),
    ("toolkit.journal", "def _split_parts"): (lambda s: __import__("toolkit.journal").journal._split_parts(
        s.encode("latin-1"), 0, b"b" * 100, "text/plain", []),
        [*_runs("--" + "b" * 99 + "\n", "--" + "b" * 100 + " x\n", "-"), _tail("--" + "b" * 100, " ", "x")]),
    # ---- toolkit: key backup text, pack names
    ("toolkit.keybackup", "_DIGITS"): ("fullmatch", _runs("0", "0 ")),
    ("toolkit.keybackup", "_KDF_TOKEN"): ("fullmatch", [_tail("m=", "0"), *_runs("m=")]),
    ("toolkit.keybackup", r"[\s-]"): ("sub", _runs("a", " -")),
    ("toolkit.keybackup", "[0-9a-f]{32}"): ("fullmatch", _runs("0", "0 ")),
    ("toolkit.catalog.checking", "_FIRST_WORD"): ("match", [*_runs("/*", "--\n", "/**/ ", " ", "-"), _tail("/*", "*")]),
    ("toolkit.catalog.connection", "\\block\\b"): ("search", _runs("lock", "block", "l", " lock ")),
    ("toolkit.catalog.connection", "[0-9a-fA-F]{8,}"): ("finditer", _runs("0", "0000000x", "0" * 999 + "x")),
    ("toolkit.pack", "_NAME_RE"): ("match", _runs("0", "0.pack")),
    # ---- importers: mbox From_ lines, Maildir names, share classification
    ("importers.from_line", "_FULL"): ("match", [_tail("From", " ", "x"), _tail("From a", " at a"), _tail("From a (", "x"),
                                            _tail("From a ", "Mon "), _tail("From ", "a "), _tail("From a ", " (x)"),
                                            _tail("From ", "Mon Jan 1 ")]),
    ("importers.from_line", "_WEAK"): ("match", [_tail("From", " ", "x"), _tail("From a@", "b", "@"), _tail("From ", " \t"),
                                            _tail("From", " ", "-x"), _tail("From a", "@")]),
    ("importers.from_line", "_LOOSE"): ("finditer", [*_runs(" Mon", " Mon Jan 1 1:11", " Mon Jan 1 1:11:11 UTC 2001 x", " Mon  "),
                                               _tail(" Mon Jan 1 1:11 UTC 2001", " ", "x"), _tail(" Mon", " ")]),
    ("importers.from_line", "_FROM_FIELD"): ("match", [_tail("From", " "), _tail("From", "\t", "x")]),
    ("importers.pop3", "_UIDL_LINE"): ("fullmatch", [_tail("1", " "), _tail("1 a", " ", "x"), *_runs("1", "1 ")]),
    ("importers.pop3", "_LIST_LINE"): ("fullmatch", [_tail("1", " "), _tail("1 1 ", "x", "\r"), *_runs("1", "1 ")]),
    ("toolkit.cli.commands.import_mbox", "_SIZE"): ("fullmatch", [*_runs("1", "1."), _tail("1.1", " "), _tail("1 K", "B")]),
    ("importers.mbox", "_HEADER"): ("match", [_tail("", "a"), _tail("a", " ", "x"), _tail("a", "\t")]),
    ("importers.mbox", "_QUOTED_M"): ("sub", _runs(">", "\n>", "\n>From")),
    ("importers.mbox", "QUOTED_FROM"): ("sub", _runs(">", "\n>", "\n>From")),   # the same pattern, imported
    ("toolkit.file_region", "QUOTED_FROM"): ("sub", _runs(">", "\n>", "\n>From", ">>>>From ")),
    ("importers.from_line", "_ASCTIME"): ("match", [_tail("Mon Jan", " "), _tail("Mon Jan 1", " ", "x"), _tail("Mon Jan 1 1:11:11 ", "1"),
                                               *_runs("Mon Jan 1 ", "Mon ")]),
    ("importers.mbox", "_HEADER_RUN"): ("match", [_tail("", "a"), _tail("a", " ", "x"), _tail("a:", "x"), *_runs("a:\n", "a:\n ", "a b:\n", "From a:\n"),
                                                 _tail("a:\n", " \n", "From ")]),
    ("importers.mbox", "_PLAIN_FROM"): ("match", [_tail("From ", "a"), _tail("From a ", " "), _tail("From a Mon Jan", " "),
                                                  _tail("From a Mon Jan 1 1:11:11 ", "1"), *_runs("From ", "From a "),
                                                  _tail("From a Mon Jan 1 1:11:11 2001", "\r")]),
    ("importers.mbox", "_CL"): ("match", [_tail("content-length:", " "), _tail("content-length:", "0"),
                                          _tail("content-length: 1", " ", "x")]),
    ("importers.maildir", "_INFO"): ("finditer", [*_runs(":2,", ":", "!2,a", "2,"), _tail(":2,", "a", ":")]),
    ("importers.maildir", "_NAME_TIME"): ("match", _runs("1", "1.", "1_")),
    # a compressed Maildir file (importers/maildir_file.py): the bzip2 magic, the size in a file name
    ("importers.content", "_CYRUS_FILE"): ("match", _runs("cyrus.", "cyrus.index", "c")),
    ("exporters.layout", "MAILDIR_NOTES"): ("fullmatch", [*_runs("file-compressed-", "a", "-", "size-differs-from-name"),
                                                          _tail("file-compressed-", "a-", "!")]),
    ("media_tools.mirror", "_MIRROR_TOP"): ("match", _runs("medium-1", "medium-", "1")),
    ("importers.maildir_file", "_BZIP2"): ("match", _runs("BZh9", "B", "BZh91AY&S")),
    ("importers.maildir_file", "_NAME_SIZE"): ("search", [*_runs(",S=1", ",S=", "1", ",S=1,"), _tail(",S=", "1", "x")]),
    # a tar's member names (importers/content.py): extensions, Maildir message names, Maildir directories
    ("importers.content", "_TAR_MAIL"): ("search", [*_runs("a.eml", ".", "cur/1", "/cur/1", "/maildir", "maildir/", "1"),
                                                    _tail("new/", "1"), _tail("x/cur/1234567890", "1", "/"),
                                                    _tail("a", ".eml", ".")]),
    ("importers.maildir", "_DBOX_NAME"): ("search", [*_runs("storage/m.", "/storage/m.1", "dbox-Mails/u."),
                                                    _tail("storage/m.", "1", "x")]),
    ("importers.keywords", "KEYWORD"): ("fullmatch", [*_runs("a", "\x80"), _tail("", "a", "(")]),
    # the same pattern where it is imported (the discovery lists it under each module that holds it)
    ("importers.mbox_flags", "KEYWORD"): ("fullmatch", [*_runs("a", "\x80"), _tail("", "a", "(")]),
    ("importers.mbox", "_MOZ_STATUS"): ("match", [_tail("x-mozilla-status:", " "), _tail("x-mozilla-status", " "),
                                                  _tail("x-mozilla-status: 0001", " "), *_runs("x-mozilla-status:")]),
    ("importers.mbox", "_FLAG_FIELD"): ("match", [_tail("x-status", " "), _tail("status", "\t"), *_runs("x-")]),
    ("importers.mbox_flags", "_HEX4"): ("fullmatch", _runs("a", "1") + [_tail("", "a", "g")]),
    ("importers.content", "_DBOX_FILE"): ("match", [_tail("2 M", "1"), _tail("2 M1 C", "1"), _tail("2 M1 C1", "x"),
                                                  *_runs("2 M1 C1 ")]),
    ("importers.eml_check", "_EMLX_COUNT"): ("match", [*_runs(" ", "\t", "1", " 1"), _tail(" ", " ", "1")]),
    ("importers.eml_check", "_PLIST_START"): ("match", [*_runs(" ", "\n", "<"), _tail(" ", " ", "<")]),
    ("importers.eml_check", "def _plist_int"): (
        lambda s: __import__("importers.eml_check").eml_check._plist_int(s.encode("latin-1"), b"flags"),
        [*_runs("<key>flags</key>", "<key>flags</key> ", "<key>flags</key><integer> 1"),
         _tail("<key>flags</key>", " "), _tail("<key>flags</key><integer>", "1")]),
    ("importers.eml_check", "_HEADER_LINE"): ("match", [_tail("", "a"), _tail("a", " ", "x"), _tail("a", "\t")]),  # mbox's
    ("importers.eml_check", "_BOUNDARY"): ("search", [*_runs("boundary", "boundary=", "boundary =", "boundary= \"", " \t"),
                                                _tail("boundary=", "x", "\n"), _tail("boundary=\"", "x")]),
    ("importers.share", "_HEADER_LINE"): ("match", [_tail("", "a"), _tail("a", " "), _tail("a", "\t", "x")]),
    ("importers.content", "_HEADER_LINE"): ("match", [_tail("", "a"), _tail("a", " "), _tail("a", "\t", "x")]),  # share's
    ("importers.share", "_MAILDIR_NAME"): ("match", _runs("1")),
    # ---- exporters: file names, mbox quoting, IMAP answers, layout
    ("exporters.naming", r"[\W_]+"): ("sub", _runs("_", " a", "é!")),
    # ---- auditor zip packages and zip sources: member names
    ("exporters.zip_package", "_CONTROL"): ("finditer", _runs("a", "\x01", "é")),
    ("exporters.zip_package", "[A-Za-z]:"): ("match", [_tail("a", ":"), *_runs("a", "a:")]),
    ("importers.zipped", "_CONTROL"): ("finditer", _runs("a", "\x01", "é")),
    # ---- readpst's output, parsed for embedded messages (a hostile store can shape it)
    ("importers.pst_embedded", "_BOUNDARY_TOKEN"): ("finditer", [*_runs("iamunique-", "iamunique-1"),
                                                               _tail("iamunique-", "1")]),
    ("importers.pst_embedded", "_HEADER_END"): ("search", _runs("\r\n", "\n\r", "\r", "\r\r\n")),
    ("importers.pst_embedded", r"v(\d[\w.]*)"): ("search", [*_runs("v", "v1"), _tail("v", "1.", " ")]),
    ("importers.pst_embedded", "def embedded_parts"): (
        lambda s: __import__("importers.pst_embedded").pst_embedded.embedded_parts(
            b"Content-Type: multipart/mixed; boundary=b\n\n" + s.encode("latin-1")),
        [*_runs("\n--b", "\n--b \t", "--b\r\n", "\r\n-"), _tail("\n--b", " ", "x")]),
    # ---- media gc, config sizes, verify --subset
    ("media_tools.temp_gc", "TEMP_NAME_RE"): ("match", [_tail("a", ".0"), _tail("a.", "0123456789ab."),
                                                       *_runs(".", "a.", "0")]),
    ("toolkit.cli.commands.config", "_SIZE"): ("fullmatch", [*_runs("1", "1 "), _tail("1", " "), _tail("1 k", "i")]),
    ("toolkit.cli.commands.media_gc", "_AGE"): ("fullmatch", [*_runs("1", "1."), _tail("1.", "1"), _tail("1", ".1")]),
    ("verify.sampling", "_SPEC"): ("match", [*_runs("1", " ", "1 ", "0."), _tail("1", " "), _tail("1 /", " "),
                                             _tail("0.", "1"), _tail("1.", "1", "%x")]),
    # ---- the --executor value
    ("toolkit.executors", "_CLUSTER"): ("match", [_tail("local-cluster:", "1"), *_runs("local-cluster:")]),
    ("toolkit.executors", "_DASK"): ("match", [_tail("dask://", "a"), _tail("dask://[", ":"), _tail("dask://a:", "1"),
                                              *_runs("dask://", ":")]),
    # ---- high-water marks on the media
    ("toolkit.marks", "PACK_MARK_RE"): ("match", [_tail("marks/pack-", "0"), *_runs("marks/pack-")]),
    ("toolkit.marks", "BATCH_MARK_RE"): ("match", [_tail("marks/batch-", "0"), *_runs("marks/batch-")]),
    ("exporters.mbox", "_QUOTE"): ("sub", [*_runs(">", "\n>", "\n>From", "\nFrom "), _tail("\n", ">")]),
    ("exporters.mbox", "_QUOTE_FIRST"): ("match", [*_runs(">", ">From"), _tail("", ">", "From")]),
    ("exporters.mbox", "_BARE_FROM"): ("finditer", [*_runs("\nFrom" + " " * 999 + "x", "\nFrom \t", "\nFrom\r"),
                                                    _tail("\nFrom", " ", "x")]),
    ("exporters.mbox", "_BARE_FROM_FIRST"): ("match", [_tail("From", " ", "x"), _tail("From", "\t", "\rx")]),
    ("exporters.mbox", "_SENDER"): ("fullmatch", [_tail("", "@", " "), _tail("", "a@"), *_runs("@"), _tail("", "a", " ")]),
    ("exporters.imap", "_APPENDUID"): ("finditer", [*_runs("[APPENDUID 1", "[APPENDUID 1 1"), _tail("[APPENDUID ", "1")]),
    ("exporters.layout", "_KEYWORD"): ("fullmatch", [_tail("", "a", "("), *_runs("a")]),
    ("exporters.layout", "_PART"): ("match", [_tail(".", "a."), _tail(".", ".0000000", "x"), _tail(".", "a")]),
    ("exporters.maildir", "_KEYWORD_LETTER"): ("fullmatch", _runs("$maildir-keyword-")),
    # ---- verify: pack paths, openssl ts -text output of a token (an evidence bundle is untrusted)
    ("verify.checks", "_PACK_RE"): ("match", _runs("packs/", "0")),
    ("verify.ahead", "_PACK_NAME"): ("match", _runs("packs/", "0")),
    ("verify.tokens", r"(\w{3})\s+(\d+)\s+(\d+):(\d+):(\d+)(?:\.(\d+))?\s+(\d{4})"): (
        "match", [_tail("Jan", " "), _tail("Jan 1", " "), _tail("Jan 1 1:1:1.", "1")]),
    ("verify.tokens", r"(\d{14})(?:\.(\d{1,6})\d*)?Z"): ("fullmatch", [*_runs("1", "1."), _tail("20240101000000.", "1"),
                                                                  _tail("20240101000000.", "1", "Z")]),
    ("verify.tokens", r"^Status: (.+?)\.?$"): ("finditer", [*_runs("\nStatus: " + "x" * 999, "Status: ."), _tail("Status: ", ".", "x")]),
    ("verify.tokens", "^Status description: (.+)$"): ("finditer", _runs("\nStatus description: x")),
    ("verify.tokens", r"^Hash Algorithm: (\S+)"): ("finditer", [_tail("Hash Algorithm: ", "a")]),
    ("verify.tokens", r"^Message data:\n((?:\s+[0-9a-f]{4} - .*\n)+)"): (
        "finditer", [_tail("Message data:\n", " "), _tail("Message data:\n", "\n"), _tail("Message data:\n", " 0000 - x\n", " 0"),
                     *_runs("Message data:\n "), _tail("Message data:\n", " 0000 - ", "")]),
    ("verify.tokens", "[^0-9a-fA-F]"): ("sub", _runs("x", "0")),
    ("verify.tokens", r"^Policy OID: (\S+)"): ("finditer", _runs("\nPolicy OID: ")),
    ("verify.tokens", r"^Serial number: (?:0x)?([0-9A-Fa-f]+)"): ("finditer", [_tail("Serial number: 0x", "0")]),
    ("verify.tokens", "^Time stamp: (.+)$"): ("finditer", _runs("\nTime stamp: ")),
    ("verify.tokens", r"^Nonce: (?:0x)?([0-9A-Fa-f]+)"): ("finditer", [_tail("Nonce: ", "0")]),
    ("verify.tokens", "^TSA: DirName:(.+)$"): ("finditer", _runs("\nTSA: DirName:")),
    ("verify.tokens", r":[^:\s]+\.c:\d+:(.*)$"): ("finditer", [*_runs(":a", ":a.c", ":a.c:1", ".c:"), _tail(":", "a")]),
    ("verify.tokens", r'reason: "([^"]+)"(?:, file: "[^"]*", line: \d+(?:, data: "([^"]*)")?)?'): (
        "finditer", [_tail('reason: "', "a"), *_runs('reason: "a", file: "', 'reason: "a", file: "b", line: 1, data: "')]),
    ("media_tools.restore", "_MEDIUM_RE"): ("match", _runs("medium-", "1")),
    # ---- exporters.layout: whether a folder's name could be a message file's (names the export makes)
    ("exporters.layout", "_MESSAGE_NAME"): ("fullmatch", [*_runs("a", "a_1", "_1", "1_"), _tail("a_", "1"),
                                                      _tail("a_1_", "a"), _tail("a_1_", "a_"), _tail("a", "_1")]),
    # ---- exporters.earlier_files: the names an earlier export maildir run left (any name a folder holds)
    ("exporters.earlier_files", "_OURS"): ("match", [*_runs("1", "-1", "1.M", "1.M1"), _tail("1.M", "1"),
                                                     _tail("-", "1", ".m1_")]),
    # ---- verify.ahead: a blob id of the catalog's rows, before it is packed as a digest
    ("verify.ahead", "_HEX_ID"): ("fullmatch", [*_runs("a", "0f"), _tail("", "a" * 63 + "g")]),
}

# runs of these single characters go through every pattern besides its own inputs
GENERIC = [" ", "\t", "\n", "\r", "a", "0", "@", '"', "\\", ":", ",", ";", "<", "(", ".", "-", ">", "=", "é"]


def _modules():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if not re.search(r"^import re$|^from re import", text, re.M):
                continue
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            yield name, importlib.import_module(name), text


class _Calls(ast.NodeVisitor):
    """re.<function>(...) calls inside functions: (key, compiled pattern or None when built at run time)."""

    def __init__(self):
        self.found: dict[str, re.Pattern | None] = {}
        self.function: str | None = None

    def visit_FunctionDef(self, node):
        outer, self.function = self.function, self.function or node.name
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node):
        f = node.func
        if (self.function and isinstance(f, ast.Attribute) and f.attr in _RE_CALLS
                and isinstance(f.value, ast.Name) and f.value.id == "re" and node.args):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, (str, bytes)):
                flags = 0
                flag_args = [kw.value for kw in node.keywords if kw.arg == "flags"]
                if f.attr in ("compile", "match", "search", "fullmatch", "findall", "finditer") and len(node.args) >= 3:
                    flag_args.append(node.args[2])
                if f.attr == "compile" and len(node.args) >= 2:
                    flag_args.append(node.args[1])
                for fa in flag_args:
                    flags |= eval(compile(ast.Expression(fa), "<flags>", "eval"), {"re": re})  # noqa: S307 - re.M etc.
                key = arg.value if isinstance(arg.value, str) else arg.value.decode("latin-1")
                self.found[key] = re.compile(arg.value, flags)
            else:
                self.found[f"def {self.function}"] = None
        self.generic_visit(node)


def discover() -> dict[tuple[str, str], re.Pattern | None]:
    found: dict[tuple[str, str], re.Pattern | None] = {}
    for name, module, text in _modules():
        for attr, value in vars(module).items():
            if isinstance(value, re.Pattern):
                found[(name, attr)] = value
            elif isinstance(getattr(value, "__self__", None), re.Pattern):  # ``X = re.compile(...).match``
                found[(name, attr)] = value.__self__
        calls = _Calls()
        calls.visit(ast.parse(text))
        for key, pattern in calls.found.items():
            found[(name, key)] = pattern
    return found


FOUND = discover()


def test_every_pattern_has_a_worst_case():
    missing = sorted(set(FOUND) - set(WORST))
    assert not missing, f"regexes without a worst-case entry in WORST: {missing}"


class _TooSlow(Exception):
    pass


def _on_alarm(signum, frame):
    raise _TooSlow()


def _once(run) -> float:
    """CPU seconds of this thread one call takes; a catastrophic pattern is cut off after 5 s (re checks for signals)."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    t = time.thread_time()
    try:
        run()
    except _TooSlow:
        return float("inf")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return time.thread_time() - t


def _best_of_3(run) -> float:
    best = _once(run)
    for _ in range(2):
        if best < LIMIT or best == float("inf"):
            break
        best = min(best, _once(run))
    return best


def _runner(pattern: re.Pattern | None, op, text: str):
    if callable(op):
        return lambda: op(text)
    subject = text.encode("latin-1", "replace") if isinstance(pattern.pattern, bytes) else text
    if op == "finditer":  # every match in turn, as the code's finditer/search loops do (findall: no Python loop)
        return lambda: pattern.findall(subject)
    if op == "sub":
        return lambda: pattern.sub(subject[:0], subject)
    if op in ("split", "findall"):
        return lambda: getattr(pattern, op)(subject)
    return lambda: getattr(pattern, op)(subject)


@pytest.mark.parametrize("key", sorted(WORST), ids=lambda k: f"{k[0]}:{k[1][:40]}")
def test_linear_on_worst_case_input(key):
    if key not in FOUND:
        pytest.fail(f"{key}: a worst case for a pattern that is no longer in the code; remove the entry")
    op, inputs = WORST[key]
    pattern = FOUND[key]
    cases = list(inputs)
    if pattern is not None:
        cases += _runs(*GENERIC)
    slow = []
    for text in cases:
        assert len(text) >= N * 0.99
        seconds = _best_of_3(_runner(pattern, op, text))
        if seconds >= LIMIT and seconds >= 4 * _reference(pattern, text):
            slow.append((text[:30], len(text), seconds))
    assert not slow, f"{key}: over {LIMIT * 1000:.0f} ms on {slow}"


_ONE_CHAR = re.compile(r"(?s).")
_ONE_BYTE = re.compile(rb"(?s).")


def _reference(pattern: re.Pattern | None, text: str) -> float:
    """Best-of-3 time of the cheapest linear work with the most matches: every character of ``text``
    matched one by one. On a machine so loaded that even this is slow, a pattern within 4 times
    it is linear all the same (a super-linear one on 100 KB takes seconds to hours)."""
    if pattern is not None and isinstance(pattern.pattern, bytes):
        subject = text.encode("latin-1", "replace")
        return _best_of_3(lambda: _ONE_BYTE.findall(subject))
    return _best_of_3(lambda: _ONE_CHAR.findall(text))


OLD_QUOTED_LIST = re.compile(r'(?:[^,"]+|"[^"\\\r\n]*"|,)*')


def test_the_point6_shape_was_catastrophic_before():
    """The old address fast-path pattern on a 240-character To: of the point-6 shape runs past
    the 5 s cut-off: the shape used above is the one that hung real imports."""
    to = POINT6[-240:].split(",", 1)[1]
    assert _once(lambda: OLD_QUOTED_LIST.fullmatch(to)) == float("inf")
    assert _once(lambda: FOUND[("toolkit.headers", "_QUOTED_LIST")].fullmatch(to)) < LIMIT
