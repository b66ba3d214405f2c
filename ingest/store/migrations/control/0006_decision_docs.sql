-- The decision log, normalised. A logged decision is one row per message x category x candidate region,
-- but its documents (the policy input, the decision's requires / transforms / reasons and revision) are
-- those of its flow, which thousands of messages share, repeated in every row. They now live once in
-- decision_docs; each (narrow) row of decision_log names its document.
--
-- `decisions` stays, as a view with the columns it always had, so every reader (API, what-if, cache
-- warm-up, exports) is unchanged; an INSERT into it (seeds, hand-written scripts) still works through an
-- INSTEAD OF trigger. The ingest writes decision_docs and decision_log directly (COPY).
--
-- doc_id is a content hash computed by whoever writes the document first: the ingest's uuid5 of its
-- canonical JSON (ingest.store.decision_docs), or md5 of the jsonb array in SQL (this migration, the
-- trigger). The same document can therefore exist under two ids; nothing relies on one id per document.
-- A document is never updated, and never deleted while a decision names it (decision_log.doc_id is not a
-- foreign key: the check would cost a lookup per logged row; the writers insert the document first, in the
-- same transaction).

CREATE TABLE IF NOT EXISTS decision_docs (
    doc_id           uuid        PRIMARY KEY,
    first_seen       timestamptz NOT NULL DEFAULT now(),
    allow            boolean     NOT NULL,
    localization     text        NOT NULL,
    requires         jsonb       NOT NULL DEFAULT '[]',
    transforms       jsonb       NOT NULL DEFAULT '{}',
    reasons          jsonb       NOT NULL DEFAULT '[]',
    policy_revision  text        NOT NULL,
    input            jsonb       NOT NULL   -- the exact policy input, for audit and what-if replay
);

ALTER TABLE decisions RENAME TO decision_log;
ALTER TABLE decision_log ADD COLUMN doc_id uuid;

CREATE FUNCTION decision_doc_id(allow boolean, localization text, requires jsonb, transforms jsonb,
                                reasons jsonb, policy_revision text, input jsonb) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN md5(jsonb_build_array(allow, localization, requires, transforms, reasons, policy_revision, input)::text)::uuid;

INSERT INTO decision_docs (doc_id, first_seen, allow, localization, requires, transforms, reasons, policy_revision,
                           input)
SELECT decision_doc_id(allow, localization, requires, transforms, reasons, policy_revision, input), min(decided_at),
       allow, localization, requires, transforms, reasons, policy_revision, input
FROM decision_log
GROUP BY allow, localization, requires, transforms, reasons, policy_revision, input
ON CONFLICT (doc_id) DO NOTHING;

UPDATE decision_log SET doc_id = decision_doc_id(allow, localization, requires, transforms, reasons, policy_revision,
                                                 input);

ALTER TABLE decision_log ALTER COLUMN doc_id SET NOT NULL,
    DROP COLUMN allow, DROP COLUMN localization, DROP COLUMN requires, DROP COLUMN transforms,
    DROP COLUMN reasons, DROP COLUMN policy_revision, DROP COLUMN input;

-- A LEFT JOIN on the documents' primary key: a query that reads no document column (counts, flows) never
-- touches decision_docs (PostgreSQL removes the join).
CREATE VIEW decisions AS
SELECT l.decision_id, l.decided_at, l.device_id, l.seq, l.site_id, l.origin_country, l.category, l.region,
       l.destination_country, l.outcome, d.allow, d.localization, d.requires, d.transforms, d.reasons,
       d.policy_revision, l.readings, d.input, l.doc_id
FROM decision_log l
LEFT JOIN decision_docs d ON d.doc_id = l.doc_id;

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
    INSERT INTO decision_log (decision_id, decided_at, device_id, seq, site_id, origin_country, category, region,
                              destination_country, outcome, readings, doc_id)
    VALUES (NEW.decision_id, coalesce(NEW.decided_at, now()), NEW.device_id, NEW.seq, NEW.site_id,
            NEW.origin_country, NEW.category, NEW.region, NEW.destination_country, NEW.outcome, NEW.readings, doc);
    NEW.doc_id := doc;
    RETURN NEW;
END
$$;

CREATE TRIGGER decisions_insert INSTEAD OF INSERT ON decisions FOR EACH ROW EXECUTE FUNCTION decisions_insert();
