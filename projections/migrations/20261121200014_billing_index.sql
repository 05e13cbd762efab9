-- The billing index: one row per PAID subscription not cancelled, with when
-- its next period is due, so that a billing run reads only what is due
-- instead of the whole log (docs/adr/0014-signed-checkpoints-and-the-billing-index.md).
-- Copied from subscription events; the subscription aggregate still decides
-- every charge, so a row that lags only delays a charge, never doubles it.
CREATE TABLE rm_billing_index (
    subscription_id TEXT    PRIMARY KEY,
    partner_id      TEXT,             -- NULL for direct subscriptions
    active          INTEGER NOT NULL, -- 1 ACTIVE (billed), 0 PAUSED
    -- Start of the next period to charge (RFC 3339, microseconds): the
    -- billing anchor until period 0's charge, then each charge's period_end,
    -- and a resume's new anchor.
    next_charge_at  TEXT    NOT NULL
);
-- A run walks the active rows in subscription order (its resumable cursor)
-- and keeps those due; the covering index serves both.
CREATE INDEX rm_billing_index_due ON rm_billing_index (active, subscription_id, next_charge_at);
