-- Gaps opened after a grace period (docs/message-isolation.md, "Gaps"): batches of one device worked out by several
-- consumers arrive out of order; a seq missing for less than INGEST_SEQ_GAP_GRACE_S is not a gap yet.
-- gaps_checked_to: every seq up to here that is missing has its gap row; above it (up to last_seq) nothing is opened
-- yet. NULL (rows written before this column): last_seq.
ALTER TABLE device_progress ADD COLUMN IF NOT EXISTS gaps_checked_to bigint;
