-- Quarantined payloads that the policy lets live in this region. The index row (reason, state,
-- release) is in the control database's `rejections` table, keyed by the same quarantine id.
CREATE TABLE IF NOT EXISTS quarantine_payloads (
    quarantine_id  uuid        PRIMARY KEY,
    topic          text        NOT NULL,
    payload        bytea       NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now()
);
