-- Registry changes made through the API (sites and devices), overlaid on the deployment's YAML registry.
-- Regions and profiles only come from the YAML (regions are stores with DSNs: configuration).

-- The registry revision: one row, bumped by every change. A writer takes this row's lock first
-- (UPDATE ... RETURNING), so changes are serialised and commit in revision order: a replica that has
-- seen revision N has seen every change up to N (a sequence would not guarantee that).
CREATE TABLE IF NOT EXISTS registry_revision (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    revision   bigint      NOT NULL DEFAULT 0 CHECK (revision >= 0),
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO registry_revision (singleton, revision) VALUES (true, 0) ON CONFLICT (singleton) DO NOTHING;

-- The current API entry per site / device: its full specification (the fields of ingest.registry.Site or
-- Device), or NULL for a decommissioned entry (a tombstone: it hides an entry of the same id in the YAML).
-- Who changed what and when, with the previous value, is in the audit trail written in the same transaction.
CREATE TABLE IF NOT EXISTS registry_entries (
    kind        text        NOT NULL CHECK (kind IN ('site', 'device')),
    entry_id    text        NOT NULL,
    spec        jsonb,
    revision    bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL,
    PRIMARY KEY (kind, entry_id)
);
CREATE INDEX IF NOT EXISTS registry_entries_revision ON registry_entries (revision);
