-- The audit log, laid out for appending (issue 40, §1): one partition per
-- UTC day, the event id as the key, a BRIN index for time.
--
-- - No bigserial id and no unique index of its own on event_id: the key is
--   (event_id, at). A partitioned table's unique constraints must hold its
--   partition key, and an event's `at` never changes between tries (the
--   writer stamps it from the event and its job, both fixed), so a retried
--   batch still meets its rows and adds nothing twice. Event ids are the
--   audit jobs' ids (`<enqueue ms>-<level>-<entry>`, the milliseconds of
--   fixed width), so each day's key grows mostly at its right edge.
-- - `at` is served by partition pruning (whole days) and a BRIN index
--   within a day (rows arrive in time order, so block ranges stay narrow).
-- - The btree on (actor, at DESC) is gone: nothing in the application reads
--   by actor, and it cost more per row than the rest together. An
--   operator's query by actor reads the days it names (docs/trading.md).
-- - Retention drops whole days (DROP TABLE of a partition) instead of
--   deleting rows: no dead tuples, no vacuum, and the freed pages are not
--   refilled with new rows that would widen the BRIN ranges.
--
-- Partitions are made on demand: the writer inserts, and when PostgreSQL
-- finds no partition for a row it calls audit_logs_add_days with the days
-- of its batch and tries again. Retention also adds today and tomorrow.
-- Making or dropping a partition locks the whole table (ACCESS EXCLUSIVE),
-- and waiting for that lock (behind a backup's long read, say) would queue
-- every writer behind it: both give up after 2 s (lock_timeout) and their
-- job is tried again later.

ALTER TABLE audit_logs RENAME TO audit_logs_v1;
ALTER INDEX audit_logs_pkey RENAME TO audit_logs_v1_pkey;
ALTER INDEX audit_logs_event_id_key RENAME TO audit_logs_v1_event_id_key;
ALTER INDEX audit_logs_at RENAME TO audit_logs_v1_at;
ALTER INDEX audit_logs_actor_at RENAME TO audit_logs_v1_actor_at;

CREATE TABLE audit_logs (
    -- The audit job's id: a retried batch adds nothing twice.
    event_id   text NOT NULL,
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    target     text,
    outcome    text NOT NULL,
    status     integer,
    source_ip  text,
    latency_ms real,
    detail     text,
    PRIMARY KEY (event_id, at)
) PARTITION BY RANGE (at);

CREATE INDEX audit_logs_at ON audit_logs USING brin (at);

-- Make the partitions of `days` (UTC) that do not exist yet, named
-- audit_logs_YYYYMMDD beside audit_logs in its schema. Writers racing at
-- midnight take turns (an advisory lock for the transaction). Returns how
-- many it made.
CREATE FUNCTION audit_logs_add_days(days date[]) RETURNS integer AS $$
DECLARE
    nsp  text;
    d    date;
    name text;
    made integer := 0;
    waited text := current_setting('lock_timeout');
BEGIN
    SELECT n.nspname INTO nsp
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = 'audit_logs'::regclass;
    PERFORM set_config('lock_timeout', '2s', true);
    PERFORM pg_advisory_xact_lock(hashtext(nsp || '.audit_logs partitions'));
    FOREACH d IN ARRAY days LOOP
        CONTINUE WHEN d IS NULL;
        name := 'audit_logs_' || to_char(d, 'YYYYMMDD');
        IF to_regclass(format('%I.%I', nsp, name)) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I.%I PARTITION OF %I.audit_logs FOR VALUES FROM (%L) TO (%L)',
                nsp, name, nsp,
                d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
            made := made + 1;
        END IF;
    END LOOP;
    PERFORM set_config('lock_timeout', waited, true);
    RETURN made;
END
$$ LANGUAGE plpgsql;

-- The rows written before this migration, moved into their days.
SELECT audit_logs_add_days(ARRAY(
    SELECT DISTINCT (at AT TIME ZONE 'UTC')::date FROM audit_logs_v1));
INSERT INTO audit_logs (event_id, at, actor, action, target, outcome, status, source_ip,
                        latency_ms, detail)
SELECT event_id, at, actor, action, target, outcome, status, source_ip, latency_ms, detail
FROM audit_logs_v1
ORDER BY at;
DROP TABLE audit_logs_v1;
