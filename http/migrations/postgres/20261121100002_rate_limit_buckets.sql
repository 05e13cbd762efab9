-- Token buckets of the partner rate limits (SPEC §1, §4), shared by every
-- command API instance. Levels are in units of 1/(window in ms) of a token,
-- so one millisecond refills exactly `limit` units (see limits/rate.rs).
-- A missing row means both buckets are full; rows untouched for a day are
-- full whatever the policy and may be deleted (`purge_idle`).
CREATE TABLE rate_limit_buckets (
    bucket_key   TEXT        PRIMARY KEY,
    minute_level BIGINT      NOT NULL,
    day_level    BIGINT      NOT NULL,
    refilled_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX rate_limit_buckets_refilled_at ON rate_limit_buckets (refilled_at);
