-- Read models. Portable DDL: the same file runs on SQLite and PostgreSQL
-- through sqlx's Any driver. Timestamps are RFC 3339 UTC text with
-- microseconds and `Z` (they sort as text); dates are `YYYY-MM-DD`;
-- booleans are 0/1 integers; lists and objects are JSON text. Every column
-- is copied from events (projectors do not re-run business rules), so a
-- rebuild from position zero produces identical rows.

-- Where each projector is in the global log; written in the same
-- transaction as the projector's rows.
CREATE TABLE projector_checkpoints (
    name             TEXT   PRIMARY KEY,
    commit_position  BIGINT NOT NULL,
    prepare_position BIGINT NOT NULL,
    events_applied   BIGINT NOT NULL,
    -- recorded_at of the last applied event: lag in seconds is now minus this
    last_recorded_at TEXT   NOT NULL
);

-- Baskets (every basket) with their marketplace configuration once published.
CREATE TABLE rm_baskets (
    basket_id          TEXT    PRIMARY KEY,
    owner_id           TEXT    NOT NULL,
    owner_is_admin     INTEGER NOT NULL,
    name               TEXT    NOT NULL,
    description        TEXT    NOT NULL,
    category           TEXT    NOT NULL,
    strategies         TEXT    NOT NULL, -- JSON array of strategies, as in events
    strategy_count     BIGINT  NOT NULL,
    revision           BIGINT  NOT NULL,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL,
    created_position   BIGINT  NOT NULL, -- global position of BasketCreated
    -- marketplace configuration; NULL until first published
    is_template        INTEGER NOT NULL DEFAULT 0, -- published and enabled
    visibility         TEXT,
    pricing_type       TEXT,
    monthly_fee        BIGINT,
    currency           TEXT,
    difficulty_level   TEXT,
    tags               TEXT,             -- JSON array of upper-case tags
    template_category  TEXT,
    published_at       TEXT,
    published_position BIGINT,           -- position of the first TemplatePublished
    subscriber_count   BIGINT  NOT NULL DEFAULT 0, -- subscriptions not cancelled
    performance_metrics TEXT             -- JSON object or NULL
);
CREATE INDEX rm_baskets_owner ON rm_baskets (owner_id, created_position);
CREATE INDEX rm_baskets_browse ON rm_baskets (is_template, visibility, subscriber_count);

-- One row per (template, tag) for the `tag` filter.
CREATE TABLE rm_template_tags (
    template_id TEXT NOT NULL,
    tag         TEXT NOT NULL,
    PRIMARY KEY (template_id, tag)
);
CREATE INDEX rm_template_tags_tag ON rm_template_tags (tag, template_id);

-- Subscriptions: serves users, partners and template subscribers.
CREATE TABLE rm_subscriptions (
    subscription_id   TEXT   PRIMARY KEY,
    created_position  BIGINT NOT NULL, -- position of SubscribedToTemplate: cursor order
    user_id           TEXT   NOT NULL,
    user_email        TEXT   NOT NULL,
    template_id       TEXT   NOT NULL,
    template_name     TEXT   NOT NULL,
    partner_id        TEXT,
    api_key_id        TEXT,
    status            TEXT   NOT NULL, -- ACTIVE | PAUSED | CANCELLED
    pricing_type      TEXT   NOT NULL,
    monthly_fee       BIGINT NOT NULL,
    currency          TEXT   NOT NULL,
    allocations       TEXT   NOT NULL, -- JSON array of broker allocations
    next_billing_date TEXT,            -- YYYY-MM-DD, NULL for free or cancelled
    status_history    TEXT   NOT NULL, -- JSON array of {from, to, actor, reason, at}
    created_at        TEXT   NOT NULL,
    updated_at        TEXT   NOT NULL
);
CREATE INDEX rm_subscriptions_user ON rm_subscriptions (user_id, created_position);
CREATE INDEX rm_subscriptions_partner ON rm_subscriptions (partner_id, created_position);
CREATE INDEX rm_subscriptions_template ON rm_subscriptions (template_id, status, created_position);

-- The revenue-share ledger: one line per SubscriptionCharged event.
CREATE TABLE rm_ledger (
    event_id         TEXT   PRIMARY KEY,
    commit_position  BIGINT NOT NULL,
    prepare_position BIGINT NOT NULL,
    subscription_id  TEXT   NOT NULL,
    template_id      TEXT   NOT NULL,
    user_id          TEXT   NOT NULL,
    partner_id       TEXT,             -- NULL for direct subscriptions
    period_index     BIGINT NOT NULL,
    period_start     TEXT   NOT NULL,  -- the ledger date: lines and statements are dated by it
    period_end       TEXT   NOT NULL,
    amount           BIGINT NOT NULL,
    currency         TEXT   NOT NULL,
    partner_bps      BIGINT NOT NULL,
    platform_bps     BIGINT NOT NULL,
    partner_share    BIGINT NOT NULL,
    platform_share   BIGINT NOT NULL,
    recorded_at      TEXT   NOT NULL
);
CREATE INDEX rm_ledger_partner ON rm_ledger (partner_id, period_start, commit_position);
CREATE INDEX rm_ledger_period ON rm_ledger (period_start, commit_position);

-- Partner API keys, admin view (never a secret or its hash).
CREATE TABLE rm_partner_keys (
    api_key_id     TEXT   PRIMARY KEY,
    partner_id     TEXT   NOT NULL,
    api_key        TEXT   NOT NULL,
    partner_name   TEXT   NOT NULL,
    partner_type   TEXT   NOT NULL,
    broker_id      TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    platform_bps   BIGINT NOT NULL,
    partner_bps    BIGINT NOT NULL,
    permissions    TEXT   NOT NULL, -- JSON array
    rate_limits    TEXT   NOT NULL, -- JSON object
    branding       TEXT   NOT NULL, -- JSON object
    issued_at      TEXT   NOT NULL,
    rotated_at     TEXT,
    revoked_at     TEXT,
    issued_position BIGINT NOT NULL
);
CREATE INDEX rm_partner_keys_partner ON rm_partner_keys (partner_id);

-- Partners (admin view): the configuration every key row of a partner
-- repeats. ApiKeyIssued does not carry it and a key may be issued long after
-- PartnerRegistered, so the partner_keys projector keeps it here for new keys
-- to copy. Never a secret or its hash.
CREATE TABLE rm_partners (
    partner_id    TEXT   PRIMARY KEY,
    partner_name  TEXT   NOT NULL,
    partner_type  TEXT   NOT NULL,
    broker_id     TEXT   NOT NULL,
    platform_bps  BIGINT NOT NULL,
    partner_bps   BIGINT NOT NULL,
    permissions   TEXT   NOT NULL, -- JSON array
    rate_limits   TEXT   NOT NULL, -- JSON object
    branding      TEXT   NOT NULL, -- JSON object
    registered_at TEXT   NOT NULL,
    updated_at    TEXT   NOT NULL  -- at of the partner's last event (config or key)
);

-- Key usage, written by the command side as partners authenticate (not a
-- projection: usage is not an event).
CREATE TABLE partner_key_usage (
    api_key_id    TEXT   PRIMARY KEY,
    last_used_at  TEXT   NOT NULL,
    request_count BIGINT NOT NULL
);
