-- Plain PostgreSQL only (TimescaleDB makes `readings` a hypertable instead: ingest/store/timescale.py).
-- `readings` becomes a table partitioned by range of ts: one partition per UTC day, named
-- readings_pYYYYMMDD, created ahead of time by the ingest's maintenance (ingest/store/partitions.py),
-- plus a default partition that catches rows outside every daily partition (the maintenance moves them
-- into their day's partition). The primary key includes ts, the partitioning column, as it must.
-- Rows written by 0001 are carried over (into the default partition).
ALTER TABLE readings RENAME TO readings_v1;
ALTER INDEX readings_pkey RENAME TO readings_v1_pkey;
ALTER INDEX readings_device_name_ts RENAME TO readings_v1_device_name_ts;
ALTER INDEX readings_ts RENAME TO readings_v1_ts;

CREATE TABLE readings (LIKE readings_v1 INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS)
    PARTITION BY RANGE (ts);
ALTER TABLE readings ADD PRIMARY KEY (device_id, seq, idx, name, ts);
CREATE INDEX readings_device_name_ts ON readings (device_id, name, ts DESC);
CREATE INDEX readings_ts ON readings (ts DESC);
CREATE TABLE readings_default PARTITION OF readings DEFAULT;

INSERT INTO readings SELECT * FROM readings_v1;
DROP TABLE readings_v1;
