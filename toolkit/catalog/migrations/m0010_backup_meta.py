"""Catalog backups remember what they hold (per-table high-water marks and checksums), for incrementals."""

SQL = """
ALTER TABLE cat.db_backups ADD COLUMN meta VARCHAR;
"""
