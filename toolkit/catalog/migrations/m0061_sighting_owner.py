"""The person a sighting's mailbox belongs to (``migrate run``: the plan's owner column), matched by
name against the directory's users (docs/formats.md); NULL where no plan named one."""

SQL = """
ALTER TABLE cat.sightings ADD COLUMN owner VARCHAR;
"""
