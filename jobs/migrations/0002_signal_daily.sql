-- Per-user, per-day aggregates of signals, kept a year while the raw rows
-- are kept a week (the Flow-Monitor design). A trigger keeps them: one row
-- counted when a signal is inserted, and results and screenshot outcomes
-- moved when they change. A retried ingest batch that meets its rows again
-- (ON CONFLICT ... DO UPDATE) changes neither, so nothing counts twice;
-- deleting raw rows (retention) leaves the aggregates alone.

CREATE TABLE signal_daily (
    user_id            bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day                date NOT NULL,
    ticker             text NOT NULL,
    signal_type        text NOT NULL,
    signals            bigint NOT NULL DEFAULT 0,
    wins               bigint NOT NULL DEFAULT 0,
    losses             bigint NOT NULL DEFAULT 0,
    skips              bigint NOT NULL DEFAULT 0,
    screenshots_done   bigint NOT NULL DEFAULT 0,
    screenshots_failed bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day, ticker, signal_type)
);

-- Retention deletes the oldest days first.
CREATE INDEX signal_daily_day ON signal_daily (day);

CREATE FUNCTION signal_daily_count() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO signal_daily AS d (user_id, day, ticker, signal_type, signals, wins,
                                       losses, skips, screenshots_done, screenshots_failed)
        VALUES (NEW.user_id, (NEW.created_at AT TIME ZONE 'UTC')::date, NEW.ticker,
                NEW.signal_type, 1, (NEW.result = 'win')::int, (NEW.result = 'loss')::int,
                (NEW.result = 'skip')::int, (NEW.screenshot_status = 'completed')::int,
                (NEW.screenshot_status = 'failed')::int)
        ON CONFLICT (user_id, day, ticker, signal_type) DO UPDATE SET
            signals = d.signals + 1,
            wins = d.wins + EXCLUDED.wins,
            losses = d.losses + EXCLUDED.losses,
            skips = d.skips + EXCLUDED.skips,
            screenshots_done = d.screenshots_done + EXCLUDED.screenshots_done,
            screenshots_failed = d.screenshots_failed + EXCLUDED.screenshots_failed;
    ELSIF NEW.result IS DISTINCT FROM OLD.result
          OR NEW.screenshot_status IS DISTINCT FROM OLD.screenshot_status THEN
        UPDATE signal_daily SET
            wins = wins + (NEW.result = 'win')::int - (OLD.result = 'win')::int,
            losses = losses + (NEW.result = 'loss')::int - (OLD.result = 'loss')::int,
            skips = skips + (NEW.result = 'skip')::int - (OLD.result = 'skip')::int,
            screenshots_done = screenshots_done + (NEW.screenshot_status = 'completed')::int
                               - (OLD.screenshot_status = 'completed')::int,
            screenshots_failed = screenshots_failed + (NEW.screenshot_status = 'failed')::int
                                 - (OLD.screenshot_status = 'failed')::int
        WHERE user_id = OLD.user_id
          AND day = (OLD.created_at AT TIME ZONE 'UTC')::date
          AND ticker = OLD.ticker
          AND signal_type = OLD.signal_type;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER signals_daily AFTER INSERT OR UPDATE ON signals
    FOR EACH ROW EXECUTE FUNCTION signal_daily_count();

-- Signals stored before this migration are counted once, here.
INSERT INTO signal_daily (user_id, day, ticker, signal_type, signals, wins, losses, skips,
                          screenshots_done, screenshots_failed)
SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, ticker, signal_type, count(*),
       count(*) FILTER (WHERE result = 'win'), count(*) FILTER (WHERE result = 'loss'),
       count(*) FILTER (WHERE result = 'skip'),
       count(*) FILTER (WHERE screenshot_status = 'completed'),
       count(*) FILTER (WHERE screenshot_status = 'failed')
FROM signals
GROUP BY 1, 2, 3, 4;
