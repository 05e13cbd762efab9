-- The event log. One row per event; `position` is the global order and is
-- assigned by the single writer inside a BEGIN IMMEDIATE transaction, so it
-- is strictly increasing in commit order.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    revision       INTEGER NOT NULL,
    event_id       TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL,
    recorded_at    TEXT    NOT NULL,
    UNIQUE (stream_id, revision)
);

CREATE UNIQUE INDEX events_event_id ON events (event_id);
