"""Journal reports: every file of corpora c-exchange-journal and sample_data/journal (docs/reliability.md D13).

Each file has an explicit expectation, written down by reading the file:
whether it is a report, the envelope's Sender / Message-Id, the envelope
recipients and Bcc addresses, and the embedded original (its Message-ID and
its first and last bytes as they stand in the file).
"""
from __future__ import annotations

import json

import pytest

from tests.corpora import REPO, corpora_dir
from toolkit.headers import scan
from toolkit.journal import is_journal_report, parse_journal_report

ACE = "c-exchange-journal/IntegralDefense-ACE/"
HELPER = "c-exchange-journal/eml-helper/"
LKML = "c-exchange-journal/lkml-linux-block/"

# Office 365 reports (Exchange 2013+ "Recipient:" lines, LF line ends).
CORPUS = {
    ACE + "extra_message_id.eml": dict(
        report=True, sender="jrobinson@company.com",
        message_id="MW2PR16MB224997B938FB40AA00214DACA8590@MW2PR16MB2249.namprd16.prod.outlook.com",
        envelope=["ashphish@integraldefense.com"], bcc=[], annotations={},
        original_mid="MW2PR16MB224997B938FB40AA00214DACA8590@MW2PR16MB2249.namprd16.prod.outlook.com",
        starts=b"Received: from CY4PR22CA0026.namprd22.prod.outlook.com (2603:10b6:903:ed::12)\n",
        # the original carries its own message/rfc822 attachment: not a second original
        ends=b"\n--_31a25eb5-35f8-44c9-94b2-565aa6fb0347_--\n\n--_c43fa4a9-af1c-4ef1-af53-ca00fca419b8_--\n",
        defects=[]),
    ACE + "o365_journaled.eml": dict(
        report=True, sender="ap@someothercompany.com",
        message_id="13268020124593518925.93733CB7019D1C46@company.com",
        envelope=["lulu.zingzing@company.com"], bcc=[], annotations={},
        original_mid="13268020124593518925.93733CB7019D1C46@company.com",
        starts=b"Received: from CY1PR20CA0059.namprd20.prod.outlook.com\n (2a01:111:e400:597b::27)",
        ends=b"</html>\n\n--_454f5116-fe0e-4ea1-ac48-e274330363f4_--\n",
        defects=[]),
    ACE + "pdf_attachment.eml": dict(
        report=True, sender="unixfreak0037@gmail.com",
        message_id="CANTOGZuWahvYOEr0NwPELF5ASriGNWjfVsWhMSE_ekiSVw1RbA@mail.gmail.com",
        envelope=["jwdavison@company.com"], bcc=[], annotations={},
        original_mid="CANTOGZuWahvYOEr0NwPELF5ASriGNWjfVsWhMSE_ekiSVw1RbA@mail.gmail.com",
        starts=b"Received: from CY4PR20CA0037.namprd20.prod.outlook.com (10.172.113.151) by\n",
        ends=b"IGVuZG9iagpzdGFydHhyZWYKMTMxMzMyCiUlRU9GCg==\n--_13992285-ef1c-4dbd-a2c6-cd16a6ddb5e4_--\n",
        defects=[]),
    ACE + "phish_me.eml": dict(
        report=True, sender="cware@company.com",
        message_id="DM5PR2001MB1033AC6DF60D6EE45B25631DBB530@DM5PR2001MB1033.namprd20.prod.outlook.com",
        envelope=["valvphish@integraldefense.com"], bcc=[], annotations={},
        original_mid="DM5PR2001MB1033AC6DF60D6EE45B25631DBB530@DM5PR2001MB1033.namprd20.prod.outlook.com",
        starts=b"Received: from MWHPR22CA0067.namprd22.prod.outlook.com (2603:10b6:300:12a::29)\n",
        ends=b"\n--_06e555dc-fb69-45b3-a7b1-dfa259f760a3_--\n\n--_eda614f7-d722-4847-9301-3817e21349a1_--\n",
        defects=[]),
    ACE + "splunk_logging.eml": dict(
        report=True, sender="unixfreak0037@gmail.com",
        message_id="CANTOGZsMiMb+7aB868zXSen_fO=NS-qFTUMo9h2eHtOexY8Qhw@mail.gmail.com",
        envelope=["jwdavison@company.com"], bcc=[], annotations={},
        original_mid="CANTOGZsMiMb+7aB868zXSen_fO=NS-qFTUMo9h2eHtOexY8Qhw@mail.gmail.com",
        starts=b"Received: from BN6PR2001CA0043.namprd20.prod.outlook.com (10.172.27.29) by\n",
        ends=b"</html>\n\n--_0c036305-5e94-4585-ba29-c9425ccc5bc8_--\n",
        defects=[]),
    # Header present, but multipart/related with text/html + an attached mail: a look-alike.
    HELPER + "email_with_email_attachment.eml": dict(report=False),
    # A synthesised export: CRLF, quoted-printable envelope with a "Recipients:" block.
    HELPER + "journal_report_pst_export.eml": dict(
        report=True, sender="alice@example.com", message_id="original-7f3a@example.com",
        envelope=["bob@example.com"], bcc=[], annotations={},
        original_mid="original-7f3a@example.com",
        starts=b'From: "Alice" <alice@example.com>\r\nTo: <bob@example.com>\r\n',
        ends=b"the quarterly numbers are attached.\r\n\r\nAlice",
        defects=[]),
    # Exchange 2010-style To/Cc lines with Expanded annotations; the envelope has no Message-Id line.
    HELPER + "journaled_1.eml": dict(
        report=True, sender="janie190860@actiance.com", message_id=None,
        envelope=["porter11712@actiance.com", "hudson11715@actiance.com",
                  "joyce420@actiance.com", "zachary423@actiance.com"], bcc=[],
        annotations={"joyce420@actiance.com": "Expanded: grp1@actiance.com",
                     "zachary423@actiance.com": "Expanded: grp1@actiance.com"},
        original_mid="2QKJUVIHJEJ5UE.JavaMail.vcap@c5c0e190-7f11-4770-7329-16c5",
        starts=b"Date: Sat, 10 Jun 2017 08:51:30 +0000 (UTC)\nFrom: Janie190860@actiance.com\n",
        ends=b"Janie190860@actiance.com\n------=_Part_1413875_467432920.1559379090006--\n",
        defects=[]),
    # Exchange 2019 on-premises report that leaked to a public list; iso-8859-1 envelope.
    LKML + "exchange2019_onprem_journal_report_leaked_to_list.eml": dict(
        report=True, sender="ming.lei@redhat.com", message_id="Z_3D0PZWolXUdXnK@fedora",
        envelope=["yangpanfei@honor.com"], bcc=[], annotations={},
        original_mid="Z_3D0PZWolXUdXnK@fedora",
        starts=b"Received: from w012.hihonor.com (10.68.27.189) by a005.hihonor.com\n",
        ends=b"Thanks,\nMing\n\n\n",
        defects=[]),
}

SAMPLE = {
    "journal-report-1.eml": dict(
        report=True, sender="bernd.schaefer@example.com",
        message_id="vertrag.nordlicht.20210315101500@example.com",
        envelope=["clara.jones@example.org", "anna.mueller@example.com", "david.okafor@example.net"],
        bcc=["legal@example.net"],
        annotations={"david.okafor@example.net": "Expanded: projekt-nordlicht@example.com"},
        original_mid="vertrag.nordlicht.20210315101500@example.com",
        starts=b"Received: from EXCH01.corp.example.com (10.0.4.21) by EXCH02.corp.example.com\n",
        ends=b"Projektleitung Nordlicht, Example GmbH\n",
        defects=[]),
    "journal-report-2.eml": dict(
        report=True, sender="anna.mueller@example.com",
        message_id="AM0PR01MB1234.preise2021@AM0PR01MB1234.eurprd01.prod.example.com",
        envelope=["david.okafor@example.net"], bcc=["bernd.schaefer@example.com", "legal@example.net"],
        annotations={"david.okafor@example.net": "Forwarded: d.okafor@example.org"},
        original_mid="AM0PR01MB1234.preise2021@AM0PR01MB1234.eurprd01.prod.example.com",
        starts=b"Received: from EXCH01.corp.example.com (10.0.4.21) by EXCH02.corp.example.com\n",
        ends=b"Anna M=C3=BCller\n",
        defects=[]),
}


def _check(raw: bytes, exp: dict) -> None:
    assert is_journal_report(raw)  # every file here carries the header
    r = parse_journal_report(raw)
    if not exp["report"]:
        assert r is None
        return
    assert r is not None
    assert r.defects == exp["defects"]
    assert r.sender == exp["sender"]
    assert r.message_id == exp["message_id"]
    assert [x.address for x in r.recipients if x.kind == "envelope"] == exp["envelope"]
    assert [x.address for x in r.recipients if x.kind == "bcc"] == exp["bcc"]
    assert {x.address: x.annotation for x in r.recipients if x.annotation} == exp["annotations"]
    assert r.envelope_text.lstrip().startswith("Sender: ")
    assert r.original is not None
    assert r.original in raw  # a slice, never re-serialised
    assert r.original.startswith(exp["starts"])
    assert r.original.endswith(exp["ends"])
    meta = scan(r.original)
    assert meta.message_id == exp["original_mid"]
    assert not meta.journal
    if exp["message_id"]:
        assert meta.message_id == exp["message_id"]  # the envelope names the attached mail


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_journal_file(name):
    """D13 over the real reports: each file yields exactly what reading it shows."""
    _check((corpora_dir() / name).read_bytes(), CORPUS[name])


def test_corpus_expectations_cover_every_file():
    root = corpora_dir() / "c-exchange-journal"
    on_disk = sorted(str(p.relative_to(root.parent)) for p in root.rglob("*") if p.is_file())
    assert on_disk == sorted(CORPUS)


SAMPLE_DIR = REPO / "sample_data" / "journal"


@pytest.mark.parametrize("name", sorted(SAMPLE))
def test_sample_journal_file(name):
    _check((SAMPLE_DIR / name).read_bytes(), SAMPLE[name])


def test_sample_expectations_match_expected_json():
    expected = json.loads((REPO / "sample_data" / "EXPECTED.json").read_text(encoding="utf-8"))
    assert sorted(p.name for p in SAMPLE_DIR.glob("*.eml")) == sorted(SAMPLE)
    assert len(SAMPLE) == expected["journal_reports"]
    for name, bcc in expected["journal_bcc"].items():
        assert SAMPLE[name]["bcc"] == bcc


def test_sample_journaled_contract_dedups_with_the_recipient_copy():
    """The original of journal-report-1 and the eml copy share the dedup key (journal-merge)."""
    r = parse_journal_report((SAMPLE_DIR / "journal-report-1.eml").read_bytes())
    copy = (REPO / "sample_data" / "eml" / "2021" / "projects" / "2021-03-15_vertragsentwurf.eml").read_bytes()
    assert r.original != copy  # other Received: headers
    assert scan(r.original).dedup_key == scan(copy).dedup_key
