-- Who runs the projectors: one holder at a time, renewed by heartbeat, so
-- that a standby takes over when the holder dies (expires_at passes).
-- expires_at is milliseconds since the Unix epoch.
CREATE TABLE projector_leases (
    name       TEXT   PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
