-- The execution schedule: when each strategy's legs are entered and exited,
-- for the plan of one minute (`GET /execution/plan`). Portable DDL, same
-- conventions as the read models' first migration; every column is copied
-- from basket events, so a rebuild reproduces the rows exactly.

-- One row per basket: what a strategy added later needs to know about its
-- basket (its rows repeat these columns).
CREATE TABLE rm_execution_baskets (
    basket_id    TEXT    PRIMARY KEY,
    owner_id     TEXT    NOT NULL,
    -- 1: the owner's own basket, traded for the owner. 0 once the basket
    -- has been published as a marketplace template (only admins' baskets
    -- can be): it then trades for its subscribers only, also after it is
    -- disabled.
    owner_trades INTEGER NOT NULL,
    revision     BIGINT  NOT NULL
);

-- One row per (basket, strategy, phase, trading day): the strategy's legs
-- are entered (ENTRY, at entry_time) or exited (EXIT, at exit_time) at
-- minute_of_day of that weekday.
CREATE TABLE rm_execution_schedule (
    basket_id       TEXT    NOT NULL,
    strategy_id     TEXT    NOT NULL,
    phase           TEXT    NOT NULL, -- ENTRY | EXIT
    weekday         TEXT    NOT NULL, -- MON … FRI
    minute_of_day   INTEGER NOT NULL, -- minutes since midnight, Asia/Kolkata
    phase_rank      INTEGER NOT NULL, -- 0 for EXIT, 1 for ENTRY: exits come first in a plan
    owner_id        TEXT    NOT NULL,
    owner_trades    INTEGER NOT NULL, -- as rm_execution_baskets.owner_trades
    strategy_name   TEXT    NOT NULL,
    underlying      TEXT    NOT NULL,
    product         TEXT    NOT NULL,
    legs            TEXT    NOT NULL, -- JSON array of legs, as in events
    basket_revision BIGINT  NOT NULL,
    PRIMARY KEY (basket_id, strategy_id, phase, weekday)
);
-- The plan's lookup, in the plan's order. The join to the subscribers uses
-- rm_subscriptions_template (template_id, status, created_position).
CREATE INDEX rm_execution_schedule_minute
    ON rm_execution_schedule (weekday, minute_of_day, phase_rank, basket_id, strategy_id);
