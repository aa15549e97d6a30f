-- The trading-alert pipeline: users, their settings, their signals, and the
-- audit log. Plain text columns with CHECK constraints instead of enum types,
-- so a value can be added by a later migration without ALTER TYPE.

CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    -- SHA-256 of the webhook token; the token itself is never stored.
    token_hash      bytea NOT NULL UNIQUE,
    plan            text NOT NULL CHECK (plan IN ('free', 'basic', 'pro', 'premium')),
    signal_quota    integer NOT NULL CHECK (signal_quota >= 0),
    signals_used    integer NOT NULL DEFAULT 0,
    quota_resets_at timestamptz NOT NULL,
    webhook_enabled boolean NOT NULL DEFAULT true,
    last_used_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_config (
    user_id           bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- nonce || ChaCha20-Poly1305 ciphertext of the cookie JSON.
    cookies_encrypted bytea,
    cookies_valid     boolean NOT NULL DEFAULT false,
    default_chart_id  text,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE signals (
    id                bigserial PRIMARY KEY,
    -- The ingest job that stored it: a retried batch adds nothing twice.
    job_id            text NOT NULL UNIQUE,
    user_id           bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    indicator         text,
    ticker            text NOT NULL,
    exchange          text,
    symbol            text NOT NULL,
    price             numeric(30, 10),
    signal_type       text NOT NULL,
    chart_id          text,
    screenshot_status text NOT NULL DEFAULT 'pending'
        CHECK (screenshot_status IN ('pending', 'processing', 'completed', 'failed')),
    screenshot_url    text,
    screenshot_error  text,
    alert_time        timestamptz NOT NULL,
    result            text NOT NULL DEFAULT 'pending'
        CHECK (result IN ('pending', 'win', 'loss', 'skip')),
    profit_loss       numeric(30, 10),
    notes             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- A user's signals, newest first, optionally by ticker (the read API).
CREATE INDEX signals_user_created ON signals (user_id, created_at DESC);
CREATE INDEX signals_user_ticker_created ON signals (user_id, ticker, created_at DESC);
-- Retention deletes the oldest first.
CREATE INDEX signals_created ON signals (created_at);
-- Screenshots still to take, per user (stats).
CREATE INDEX signals_screenshot_open ON signals (user_id)
    WHERE screenshot_status IN ('pending', 'processing');
-- Retention checks whether another signal still shows a stored file.
CREATE INDEX signals_screenshot_url ON signals (screenshot_url) WHERE screenshot_url IS NOT NULL;

CREATE TABLE audit_logs (
    id         bigserial PRIMARY KEY,
    -- The audit job's id: a retried batch adds nothing twice.
    event_id   text NOT NULL UNIQUE,
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    target     text,
    outcome    text NOT NULL,
    status     integer,
    source_ip  text,
    latency_ms real,
    detail     text
);

CREATE INDEX audit_logs_at ON audit_logs (at);
CREATE INDEX audit_logs_actor_at ON audit_logs (actor, at DESC);
