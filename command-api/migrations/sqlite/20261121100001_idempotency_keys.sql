-- Idempotency-Key records (SPEC §4): one row per (principal, key). A row
-- with `completed_at IS NULL` is a request still in flight; a completed row
-- holds the response to replay. Times are microseconds since the Unix epoch
-- (INTEGER compares exactly, unlike SQLite's text timestamps). Rows count as
-- absent once `created_at` is 24 h old and are deleted by `purge_expired`,
-- hence the index.
CREATE TABLE idempotency_keys (
    principal        TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL,
    fingerprint      TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    completed_at     INTEGER,
    response_status  INTEGER,
    -- `[[name, value], …]` as JSON text: header order and repeats survive.
    response_headers TEXT,
    response_body    BLOB,
    PRIMARY KEY (principal, idempotency_key)
) WITHOUT ROWID;

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
