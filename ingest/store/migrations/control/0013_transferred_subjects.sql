-- Measured transfer volumes (docs/volumes.md): who had personal data transferred from a site to a region,
-- and when last. One row per (site, region, data subject); the subject is the first 16 bytes of
-- sha256(site_id NUL value), never the value. Replicas upsert with GREATEST, so they merge without
-- coordination; each replica pulls the rows changed since its last pull (updated_at).
CREATE TABLE IF NOT EXISTS transferred_subjects (
    site_id             text        NOT NULL,
    region              text        NOT NULL,
    subject             bytea       NOT NULL CHECK (length(subject) = 16),
    last_day            date        NOT NULL,  -- UTC day of the latest transfer of this subject's data
    last_sensitive_day  date,                  -- ... of sensitive data (NULL: never sensitive)
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (site_id, region, subject)
);

CREATE INDEX IF NOT EXISTS transferred_subjects_updated ON transferred_subjects (updated_at);
CREATE INDEX IF NOT EXISTS transferred_subjects_last_day ON transferred_subjects (last_day);
