"""TNEF (``winmail.dat``) files as mails, converted by ``toolkit.mapi``; used by ``import share``.

A TNEF stream (signature 0x223E9F78) is read with ``tnefparse`` (LGPL). Its MAPI properties
(attMAPIProps; named properties, ids 0x8000 and up, are left out because their ids mean nothing
without the stream's name map), its plain, HTML and RTF bodies and its attachments (with their own
MAPI properties; a nested TNEF is an embedded message) go through the same builder as PST and MSG.
A file on its own has lost the mail it travelled in, so From/To exist only when the TNEF stream
carries them. Replacing the ``application/ms-tnef`` part inside a MIME mail is not done here.
"""
from __future__ import annotations

from toolkit import mapi
from toolkit.source import SourceItem, SourceMail, SourceProblem

from .content import TNEF_MAGIC  # noqa: F401 - importers.tnef names it too

VIA = f"tnef:{mapi.CONVERTER}"


def _props(attrs) -> dict:
    out = {}
    for p in attrs or ():
        if isinstance(p.name, int) and p.name < 0x8000 and p.name not in out:
            out[p.name] = p.data
    return out


def to_mapi(t, depth: int = 0) -> mapi.MapiMessage:
    """A ``toolkit.mapi.MapiMessage`` from a parsed ``tnefparse.TNEF``."""
    props = _props(t.mapiprops)
    if mapi.PR_BODY not in props and t.body:
        props[mapi.PR_BODY] = t.body
    if mapi.PR_HTML not in props and t.htmlbody:
        props[mapi.PR_HTML] = t.htmlbody if isinstance(t.htmlbody, bytes) else t.htmlbody.encode("utf-8")
    for p in t.msgprops or ():
        if p.name == 0x8004 and mapi.PR_SUBJECT not in props:          # attSubject
            props[mapi.PR_SUBJECT] = p.data
        elif p.name == 0x8008 and mapi.PR_MESSAGE_CLASS not in props:  # attMessageClass
            props[mapi.PR_MESSAGE_CLASS] = p.data
    codepage = None
    cp = getattr(t, "codepage", None)
    if isinstance(cp, str) and cp.startswith("cp") and cp[2:].isdigit():
        codepage = int(cp[2:])
    msg = mapi.MapiMessage(props=props, codepage=props.get(mapi.PR_MESSAGE_CODEPAGE) or codepage)
    if isinstance(t.rtfbody, bytes):
        msg.rtf = t.rtfbody
    for a in t.attachments:
        ap = _props(a.mapi_attrs)
        name = a.long_filename() if callable(getattr(a, "long_filename", None)) else None
        att = mapi.MapiAttachment(name=name, mime_type=ap.get(0x370E) if isinstance(ap.get(0x370E), str) else None,
                                  content_id=ap.get(0x3712) if isinstance(ap.get(0x3712), str) else None,
                                  method=ap.get(0x3705) if isinstance(ap.get(0x3705), int) else mapi.ATTACH_BY_VALUE)
        embed = getattr(a, "embed", None)
        if embed is not None and depth < mapi.MAX_DEPTH:
            att.embedded = to_mapi(embed, depth + 1)
        elif att.method == mapi.ATTACH_OLE:
            att.missing = "OLE object attachment (not converted)"
        else:
            att.data = bytes(a.data or b"")
        msg.attachments.append(att)
    return msg


def item_from_tnef(data: bytes, ref: str, cursor, folder: str | None) -> SourceItem:
    """One converted mail from a TNEF file's bytes, or a problem naming the file."""
    try:
        from tnefparse import TNEF

        msg = to_mapi(TNEF(data, do_checksum=False))
        built = mapi.build_guarded(msg)
    except mapi.ConversionTimeout as exc:
        return SourceProblem(ref, f"TNEF file not converted: {exc}", cursor)
    except Exception as exc:  # noqa: BLE001 — a damaged TNEF file is listed, never a traceback
        return SourceProblem(ref, f"not a readable TNEF file: {type(exc).__name__}: {exc}", cursor)
    return SourceMail(raw=built.raw, ref=ref, folder=folder, flags=mapi.mail_flags(msg),
                      internal_date=mapi.internal_date(msg), date_source="outlook-item-time", cursor=cursor, via=VIA)
