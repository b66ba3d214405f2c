-- Residency cells (docs/cells.md): the parts this cell sends to regions of other cells, committed before the
-- edge message is acknowledged and deleted when the receiving cell's receipt arrives. The link sender ships
-- them (at most a window per link in flight) and re-sends what is not receipted in time.
CREATE TABLE IF NOT EXISTS outbox (
    part_id          uuid        PRIMARY KEY,
    to_cell          text        NOT NULL,
    region           text        NOT NULL,
    device_id        text        NOT NULL,
    seq              bigint      NOT NULL,
    body             bytea       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (to_cell, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_age ON outbox (to_cell, created_at);
