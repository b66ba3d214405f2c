-- Plain PostgreSQL only (TimescaleDB: continuous aggregates with the same names and columns).
-- Rollups of numeric readings per device, field and bucket (1 minute, 1 hour; aligned on
-- 2000-01-01 UTC). The ingest's RegionWriter maintains them in the transaction that inserts the raw
-- rows, from the newly inserted rows only (ingest/store/rollups.py). avg = sum / count.
-- fillfactor leaves room for HOT updates: a bucket is updated at every flush while it is current.
CREATE TABLE readings_1m (
    device_id text             NOT NULL,
    name      text             NOT NULL,
    bucket    timestamptz      NOT NULL,
    count     bigint           NOT NULL,
    sum       double precision NOT NULL,
    min       double precision NOT NULL,
    max       double precision NOT NULL,
    PRIMARY KEY (device_id, name, bucket)
) WITH (fillfactor = 80);
CREATE INDEX readings_1m_bucket ON readings_1m (bucket);

CREATE TABLE readings_1h (
    device_id text             NOT NULL,
    name      text             NOT NULL,
    bucket    timestamptz      NOT NULL,
    count     bigint           NOT NULL,
    sum       double precision NOT NULL,
    min       double precision NOT NULL,
    max       double precision NOT NULL,
    PRIMARY KEY (device_id, name, bucket)
) WITH (fillfactor = 80);
CREATE INDEX readings_1h_bucket ON readings_1h (bucket);

-- Rows stored before this migration.
INSERT INTO readings_1m (device_id, name, bucket, count, sum, min, max)
SELECT device_id, name, date_bin(INTERVAL '1 minute', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
       count(*), sum(num), min(num), max(num)
FROM readings WHERE num IS NOT NULL GROUP BY 1, 2, 3;
INSERT INTO readings_1h (device_id, name, bucket, count, sum, min, max)
SELECT device_id, name, date_bin(INTERVAL '1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
       count(*), sum(num), min(num), max(num)
FROM readings WHERE num IS NOT NULL GROUP BY 1, 2, 3;
