-- Ranges of readings written after the rollups' refresh window had passed them: late data (a gateway
-- replaying a week-old queue, a quarantine release). On TimescaleDB the refresh policies never look that
-- far back, so the writer records each such range here, in the transaction of its rows, and the ingest's
-- maintenance refreshes exactly these ranges with refresh_continuous_aggregate, then deletes them
-- (ingest/store/late_data.py). On plain PostgreSQL the rollup tables are maintained at write time and
-- nothing is recorded. Append-only, one row per UTC day of late rows and flush: concurrent writers never
-- wait on each other.
CREATE TABLE IF NOT EXISTS late_rollup_ranges (
    id          bigserial   PRIMARY KEY,
    lo          timestamptz NOT NULL,  -- oldest late reading of the flush in that day
    hi          timestamptz NOT NULL,  -- newest late reading of the flush in that day (inclusive)
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CHECK (lo <= hi)
);
