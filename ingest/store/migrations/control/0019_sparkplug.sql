-- Sparkplug B sessions (docs/sparkplug.md): what the ingest must remember across restarts and replicas to turn a
-- third-party edge node's messages into numbered batches exactly once.

-- One row per edge node: its current session (numbered by the ingest from 1 at each new NBIRTH), the birth's
-- bdSeq, and where the session sits in the node's durable numbering: a message's position is
-- base + rel, rel = wraps * 256 + seq (Sparkplug's seq wraps at 256). Positions continue across sessions
-- (a new session's base follows the highest position seen), so the node's positions are claimed like a device's
-- batch seqs (batches_seen, sequence_gaps and device_progress under device_id = 'spb:<group>/<edge node>').
CREATE TABLE IF NOT EXISTS sparkplug_nodes (
    node_key         text        PRIMARY KEY,
    group_id         text        NOT NULL,
    edge_node        text        NOT NULL,
    session          bigint      NOT NULL CHECK (session > 0),
    bd_seq           bigint,
    base             bigint      NOT NULL,
    last_rel         bigint      NOT NULL,
    high             bigint      NOT NULL,
    born_ms          bigint,
    online           boolean     NOT NULL,
    state_at         timestamptz NOT NULL DEFAULT now(),
    state_reason     text
);

-- The metrics each birth declared (names, aliases, datatypes), per session: data messages are resolved against the
-- birth of their session, also when redelivered after a newer birth. device = '' is the edge node's NBIRTH.
CREATE TABLE IF NOT EXISTS sparkplug_births (
    node_key   text        NOT NULL,
    device     text        NOT NULL,
    session    bigint      NOT NULL,
    metrics    jsonb       NOT NULL,
    online     boolean     NOT NULL,
    born_at    timestamptz NOT NULL DEFAULT now(),
    state_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_key, device, session)
);

-- Every Sparkplug message the ingest accepted into a session, by the SHA-256 of its topic and bytes: a redelivery
-- (the same bytes) gets the session and position it got the first time, whatever happened since. It is also the
-- audit trail's link from a decision (decision_log.device_id, seq) to the Sparkplug topic it was taken for.
CREATE TABLE IF NOT EXISTS sparkplug_messages (
    node_key     text        NOT NULL,
    digest       bytea       NOT NULL,
    session      bigint      NOT NULL,
    position     bigint,
    device_id    text,       -- the registry device of the topic (NULL: not registered)
    topic        text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_key, digest)
);
CREATE INDEX IF NOT EXISTS sparkplug_messages_decision ON sparkplug_messages (device_id, position);

-- Why a gap closed: NULL when the missing batches arrived, 'rebirth' when a Sparkplug edge node's new birth
-- re-stated every metric (the messages in the gap are lost; the birth brings the current values back).
ALTER TABLE sequence_gaps ADD COLUMN IF NOT EXISTS closed_by text;
