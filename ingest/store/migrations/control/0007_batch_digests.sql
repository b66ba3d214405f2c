-- The content digest of each batch seen (SHA-256 of its payload), so that the same (device, seq) with other
-- content is told apart from a redelivery (docs/message-isolation.md). NULL for batches recorded before
-- this migration: those count as the same content.
ALTER TABLE batches_seen ADD COLUMN IF NOT EXISTS digest bytea;
