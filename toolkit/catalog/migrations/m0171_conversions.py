"""Converted mail (issue 17): a message the toolkit built from an Outlook item (PST/OST, MSG, TNEF)
rather than received as MIME, with its source kind (``pst``, ``msg``, ``tnef``) and the converter
and version that built it (``mapi2mime/1``, ``readpst``). ``converted_twins`` lists, for an auditor,
every pair of a converted mail and the original MIME of the same mail (decision ``converted-twin``)."""

SQL = """
CREATE TABLE cat.conversions (msg_id BIGINT NOT NULL, source_kind VARCHAR NOT NULL, converter VARCHAR NOT NULL);
CREATE VIEW cat.converted_twins AS
    SELECT l.parent_msg_id AS original_msg_id, l.msg_id AS converted_msg_id, c.source_kind, c.converter,
           o.message_id, o.subject, l.run_id, l.source_ref
    FROM cat.message_links l JOIN cat.messages o ON o.msg_id = l.parent_msg_id
    LEFT JOIN cat.conversions c ON c.msg_id = l.msg_id
    WHERE l.kind = 'converted-twin';
"""
