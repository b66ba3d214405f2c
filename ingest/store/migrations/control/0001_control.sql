-- Control store: the decision log (one row per message x category x candidate region), rejected
-- messages (metadata only: the payload is not kept), gateway status and per-device progress.
CREATE TABLE IF NOT EXISTS decisions (
    decision_id          uuid        PRIMARY KEY,  -- uuid5(device, seq, category, region): idempotent
    decided_at           timestamptz NOT NULL DEFAULT now(),
    device_id            text        NOT NULL,
    seq                  bigint      NOT NULL,
    site_id              text        NOT NULL,
    origin_country       char(2)     NOT NULL,
    category             text        NOT NULL,
    region               text        NOT NULL,
    destination_country  char(2)     NOT NULL,
    outcome              text        NOT NULL CHECK (outcome IN ('stored', 'transformed', 'denied')),
    allow                boolean     NOT NULL,
    localization         text        NOT NULL,
    requires             jsonb       NOT NULL DEFAULT '[]',
    transforms           jsonb       NOT NULL DEFAULT '{}',
    reasons              jsonb       NOT NULL DEFAULT '[]',
    policy_revision      text        NOT NULL,
    readings             integer     NOT NULL,  -- readings of the batch carrying this category
    input                jsonb       NOT NULL   -- the exact policy input, for audit and what-if replay
);
CREATE INDEX IF NOT EXISTS decisions_decided_at ON decisions (decided_at DESC);
CREATE INDEX IF NOT EXISTS decisions_flow ON decisions (origin_country, region, category, outcome);
CREATE INDEX IF NOT EXISTS decisions_device ON decisions (device_id, seq);

CREATE TABLE IF NOT EXISTS rejections (
    id             bigserial   PRIMARY KEY,
    received_at    timestamptz NOT NULL DEFAULT now(),
    topic          text        NOT NULL,
    device_id      text,
    seq            bigint,
    code           text        NOT NULL,  -- malformed | unknown_device | origin_mismatch | oversized | ...
    detail         text        NOT NULL,
    payload_bytes  integer     NOT NULL,
    payload_kept   boolean     NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS rejections_received_at ON rejections (received_at DESC);

CREATE TABLE IF NOT EXISTS gateway_status (
    gateway_id  text        PRIMARY KEY,
    site_id     text        NOT NULL,
    state       text        NOT NULL,
    at          timestamptz NOT NULL,
    devices     jsonb       NOT NULL DEFAULT '[]',
    reason      text
);

CREATE TABLE IF NOT EXISTS device_progress (
    device_id     text        PRIMARY KEY,
    last_seq      bigint      NOT NULL,
    batches       bigint      NOT NULL DEFAULT 0,
    readings      bigint      NOT NULL DEFAULT 0,
    last_seen_at  timestamptz NOT NULL
);
