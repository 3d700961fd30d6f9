"""The initial catalog schema (docs/formats.md)."""

SQL = """
        CREATE TABLE cat.archive_info (key VARCHAR PRIMARY KEY, value VARCHAR);
        CREATE TABLE cat.media (
            medium_id INTEGER PRIMARY KEY, location VARCHAR, kind VARCHAR, state VARCHAR,
            alias_of INTEGER, created_at TIMESTAMPTZ);
        CREATE TABLE cat.packs (
            pack_id VARCHAR PRIMARY KEY, medium_id INTEGER NOT NULL, name VARCHAR NOT NULL,
            bytes BIGINT NOT NULL, records INTEGER NOT NULL, sha256 VARCHAR NOT NULL,
            created_at TIMESTAMPTZ, run_id INTEGER);
        CREATE TABLE cat.messages (
            msg_id BIGINT PRIMARY KEY, blob_id VARCHAR NOT NULL, dedup_key VARCHAR NOT NULL,
            pack_id VARCHAR NOT NULL, "offset" BIGINT NOT NULL, length BIGINT NOT NULL,
            size BIGINT NOT NULL, csize BIGINT NOT NULL,
            message_id VARCHAR, subject VARCHAR, from_addr VARCHAR, from_name VARCHAR,
            sent_date TIMESTAMPTZ, internal_date TIMESTAMPTZ, spam BOOLEAN NOT NULL,
            defects VARCHAR, id_conflict BOOLEAN NOT NULL, archived_at TIMESTAMPTZ NOT NULL,
            run_id INTEGER, batch_id INTEGER);
        CREATE TABLE cat.recipients (msg_id BIGINT NOT NULL, kind VARCHAR NOT NULL, address VARCHAR NOT NULL);
        CREATE TABLE cat.sightings (
            msg_id BIGINT, run_id INTEGER NOT NULL, source_uri VARCHAR NOT NULL, folder VARCHAR,
            source_ref VARCHAR NOT NULL, via VARCHAR NOT NULL, decision VARCHAR NOT NULL,
            flags VARCHAR, internal_date TIMESTAMPTZ, seen_at TIMESTAMPTZ NOT NULL);
        CREATE TABLE cat.runs (
            run_id INTEGER PRIMARY KEY, command VARCHAR NOT NULL, source_uri VARCHAR,
            started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ, status VARCHAR NOT NULL,
            seen BIGINT DEFAULT 0, archived BIGINT DEFAULT 0, duplicates BIGINT DEFAULT 0,
            merged BIGINT DEFAULT 0, errors BIGINT DEFAULT 0, bytes BIGINT DEFAULT 0,
            pid INTEGER, host VARCHAR);
        CREATE TABLE cat.run_errors (
            run_id INTEGER NOT NULL, kind VARCHAR NOT NULL, source_ref VARCHAR, message VARCHAR NOT NULL);
        CREATE TABLE cat.cursors (
            source_uri VARCHAR PRIMARY KEY, cursor VARCHAR NOT NULL, updated_at TIMESTAMPTZ, run_id INTEGER);
        CREATE TABLE cat.stamp_batches (
            batch_id INTEGER PRIMARY KEY, first_msg_id BIGINT, last_msg_id BIGINT, leaf_count BIGINT,
            merkle_root VARCHAR, token BLOB, tsa_url VARCHAR, ca_fingerprint VARCHAR,
            gen_time TIMESTAMPTZ, status VARCHAR);
        CREATE TABLE cat.db_backups (
            name VARCHAR PRIMARY KEY, medium_id INTEGER, kind VARCHAR, created_at TIMESTAMPTZ,
            bytes BIGINT, sha256 VARCHAR, verified BOOLEAN);
        CREATE TABLE cat.events (
            event_id BIGINT PRIMARY KEY, at_time TIMESTAMPTZ NOT NULL, kind VARCHAR NOT NULL, detail VARCHAR);
        """
