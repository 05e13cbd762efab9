-- The event log. One row per event; `position` is the global order and is
-- assigned by the writer while it holds a transaction-scoped advisory lock,
-- so it is strictly increasing in commit order (no late-committing gaps).
-- `data` and `metadata` are `json`, not `jsonb`, so the stored text is kept
-- exactly as written and the hash chain recomputes byte for byte.
CREATE TABLE events (
    position       BIGINT      PRIMARY KEY,
    stream_id      TEXT        NOT NULL,
    revision       BIGINT      NOT NULL,
    event_id       UUID        NOT NULL UNIQUE,
    event_type     TEXT        NOT NULL,
    schema_version INTEGER     NOT NULL,
    data           JSON        NOT NULL,
    metadata       JSON        NOT NULL,
    prev_hash      TEXT        NOT NULL,
    hash           TEXT        NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (stream_id, revision)
);
