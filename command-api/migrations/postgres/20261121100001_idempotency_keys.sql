-- Idempotency-Key records (SPEC §4): one row per (principal, key). A row
-- with `completed_at IS NULL` is a request still in flight; a completed row
-- holds the response to replay. Rows count as absent once `created_at` is
-- 24 h old and are deleted by `purge_expired`, hence the index.
CREATE TABLE idempotency_keys (
    principal        TEXT        NOT NULL,
    idempotency_key  TEXT        NOT NULL,
    fingerprint      TEXT        NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    completed_at     TIMESTAMPTZ,
    response_status  INTEGER,
    -- `[[name, value], …]`: an array, so header order and repeats survive.
    response_headers JSONB,
    response_body    BYTEA,
    PRIMARY KEY (principal, idempotency_key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
