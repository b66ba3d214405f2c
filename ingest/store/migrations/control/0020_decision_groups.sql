-- The decision log, one row per distinct decision per flush (docs/audit-log.md).
--
-- Until now decision_log held one row per message x category x candidate region (3-4 rows per message, each
-- with four index entries): most of what PostgreSQL did per small message. A *distinct decision* is one
-- device's category in one candidate region decided one way under one document (decision_docs: the policy
-- input, answer and revision). Its id (ingest.decision_ids) is what every region row placed by it carries.
-- A flush logs each distinct decision it took once, with every message it covered: their sequence numbers
-- (ascending, each once) and the readings of each message's batch, in the same order. The view `decisions`
-- still has one row per message x category x candidate region, with the columns it always had.
--
-- A message redelivered after its decisions were logged is not logged again: the writer leaves out the seqs
-- that a row of the same decision already covers (a probe of the primary key per distinct decision written, under
-- a per-device advisory lock, ingest.store.control). So the seqs of one decision_id never overlap and
-- (decision_id, last_seq) is a key.
--
-- Rows logged before this migration keep their per-message decision ids (the region rows of that time carry
-- them): each becomes a row covering its one message.

DROP VIEW decisions;
ALTER TABLE decision_log RENAME TO decision_log_v1;

CREATE TABLE decision_log (
    decision_id          uuid        NOT NULL,  -- the distinct decision (device, category, region, outcome, doc)
    last_seq             bigint      NOT NULL,  -- = seqs[cardinality(seqs)]
    first_seq            bigint      NOT NULL,  -- = seqs[1]
    decided_at           timestamptz NOT NULL DEFAULT now(),
    device_id            text        NOT NULL,
    site_id              text        NOT NULL,
    origin_country       char(2)     NOT NULL,
    category             text        NOT NULL,
    region               text        NOT NULL,
    destination_country  char(2)     NOT NULL,
    outcome              text        NOT NULL CHECK (outcome IN ('stored', 'transformed', 'denied')),
    doc_id               uuid        NOT NULL,
    seqs                 bigint[]    NOT NULL,  -- the messages (batch seqs) it covered, ascending, each once
    readings             integer[]   NOT NULL,  -- readings of each message's batch, in the order of seqs
    PRIMARY KEY (decision_id, last_seq),
    CHECK (cardinality(seqs) > 0 AND cardinality(seqs) = cardinality(readings)),
    CHECK (first_seq = seqs[1] AND last_seq = seqs[cardinality(seqs)])
);

INSERT INTO decision_log (decision_id, last_seq, first_seq, decided_at, device_id, site_id, origin_country,
                          category, region, destination_country, outcome, doc_id, seqs, readings)
SELECT decision_id, seq, seq, decided_at, device_id, site_id, origin_country, category, region, destination_country,
       outcome, doc_id, ARRAY[seq], ARRAY[readings]
FROM decision_log_v1;

DROP TABLE decision_log_v1;
DROP FUNCTION decisions_insert();

CREATE INDEX decision_log_decided_at ON decision_log (decided_at DESC);
CREATE INDEX decision_log_flow ON decision_log (origin_country, region, category, outcome);
CREATE INDEX decision_log_device ON decision_log (device_id, first_seq);

-- One row per message x category x candidate region, as before. A LEFT JOIN on the documents' primary key: a
-- query that reads no document column never touches decision_docs.
CREATE VIEW decisions AS
SELECT l.decision_id, l.decided_at, l.device_id, m.seq, l.site_id, l.origin_country, l.category, l.region,
       l.destination_country, l.outcome, d.allow, d.localization, d.requires, d.transforms, d.reasons,
       d.policy_revision, m.readings, d.input, l.doc_id
FROM decision_log l
CROSS JOIN LATERAL unnest(l.seqs, l.readings) AS m(seq, readings)
LEFT JOIN decision_docs d ON d.doc_id = l.doc_id;

-- An INSERT into the view (seeds, hand-written scripts) logs one row covering that one message.
CREATE FUNCTION decisions_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    requires   jsonb := coalesce(NEW.requires, '[]');
    transforms jsonb := coalesce(NEW.transforms, '{}');
    reasons    jsonb := coalesce(NEW.reasons, '[]');
    doc        uuid  := decision_doc_id(NEW.allow, NEW.localization, requires, transforms, reasons,
                                        NEW.policy_revision, NEW.input);
BEGIN
    INSERT INTO decision_docs (doc_id, allow, localization, requires, transforms, reasons, policy_revision, input)
    VALUES (doc, NEW.allow, NEW.localization, requires, transforms, reasons, NEW.policy_revision, NEW.input)
    ON CONFLICT (doc_id) DO NOTHING;
    INSERT INTO decision_log (decision_id, last_seq, first_seq, decided_at, device_id, site_id, origin_country,
                              category, region, destination_country, outcome, doc_id, seqs, readings)
    VALUES (NEW.decision_id, NEW.seq, NEW.seq, coalesce(NEW.decided_at, now()), NEW.device_id, NEW.site_id,
            NEW.origin_country, NEW.category, NEW.region, NEW.destination_country, NEW.outcome, doc,
            ARRAY[NEW.seq], ARRAY[NEW.readings])
    ON CONFLICT (decision_id, last_seq) DO NOTHING;
    NEW.doc_id := doc;
    RETURN NEW;
END
$$;

CREATE TRIGGER decisions_insert INSTEAD OF INSERT ON decisions FOR EACH ROW EXECUTE FUNCTION decisions_insert();
