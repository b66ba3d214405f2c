-- Region store: one row per (reading, field). A reading is identified by (device_id, seq, idx);
-- redelivered or replayed batches hit the primary key and are ignored (idempotent ingest).
CREATE TABLE IF NOT EXISTS readings (
    device_id       text             NOT NULL,
    seq             bigint           NOT NULL,  -- the device's batch sequence number
    idx             integer          NOT NULL,  -- index of the reading in its batch
    name            text             NOT NULL,  -- field name, declared in the device's profile
    ts              timestamptz      NOT NULL,  -- stamped at the source
    site_id         text             NOT NULL,
    origin_country  char(2)          NOT NULL,
    category        text             NOT NULL,
    num             double precision,           -- numeric and boolean values (true = 1)
    txt             text,                       -- text values (pseudonymized when transform is set)
    transform       text,                       -- NULL, 'pseudonymized' (edge or ingest)
    decision_id     uuid             NOT NULL,  -- the decision that placed this row here
    policy_revision text             NOT NULL,
    ingested_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, seq, idx, name, ts)
);
CREATE INDEX IF NOT EXISTS readings_device_name_ts ON readings (device_id, name, ts DESC);
CREATE INDEX IF NOT EXISTS readings_ts ON readings (ts DESC);
