-- Per-device batch sequence tracking (gap detection) and lawful quarantine.

-- Every batch seen once, whatever replica received it. Feeds gap detection and progress counters,
-- so a redelivered batch is counted once.
CREATE TABLE IF NOT EXISTS batches_seen (
    device_id    text        NOT NULL,
    seq          bigint      NOT NULL,
    readings     integer     NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, seq)
);

-- Missing sequence ranges per device. A gap opens when a batch arrives more than one ahead of the
-- highest seen; a replay that fills it shrinks, splits or closes it (closed_at set).
CREATE TABLE IF NOT EXISTS sequence_gaps (
    id             bigserial   PRIMARY KEY,
    device_id      text        NOT NULL,
    first_missing  bigint      NOT NULL,
    last_missing   bigint      NOT NULL,
    detected_at    timestamptz NOT NULL DEFAULT now(),
    closed_at      timestamptz,
    CHECK (first_missing <= last_missing)
);
CREATE INDEX IF NOT EXISTS sequence_gaps_open ON sequence_gaps (device_id) WHERE closed_at IS NULL;

-- Quarantine: every rejected message or part. The payload is kept only in a region where the policy
-- lets it live (payload_region, table quarantine_payloads there); otherwise metadata only.
ALTER TABLE rejections
    ADD COLUMN IF NOT EXISTS quarantine_id  uuid,
    ADD COLUMN IF NOT EXISTS category       text,
    ADD COLUMN IF NOT EXISTS origin_country char(2),
    ADD COLUMN IF NOT EXISTS payload_region text,
    ADD COLUMN IF NOT EXISTS state          text NOT NULL DEFAULT 'discarded'
        CHECK (state IN ('held', 'discarded', 'released')),
    ADD COLUMN IF NOT EXISTS released_at    timestamptz,
    ADD COLUMN IF NOT EXISTS released_by    text,
    ADD COLUMN IF NOT EXISTS release_result jsonb;
CREATE UNIQUE INDEX IF NOT EXISTS rejections_quarantine_id ON rejections (quarantine_id);
CREATE INDEX IF NOT EXISTS rejections_state ON rejections (state, received_at DESC);
