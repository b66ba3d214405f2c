-- Quarantine lifecycle: an item ends released (routed), dismissed (closed by a compliance officer with a reason,
-- its payload purged) or expired (its held payload deleted after the retention period). Who closed it, when
-- and why; the payload is gone in every closed state. See docs/quarantine.md.
ALTER TABLE rejections DROP CONSTRAINT IF EXISTS rejections_state_check;
ALTER TABLE rejections ADD CONSTRAINT rejections_state_check
    CHECK (state IN ('held', 'discarded', 'released', 'dismissed', 'expired'));
ALTER TABLE rejections
    ADD COLUMN IF NOT EXISTS closed_at    timestamptz,
    ADD COLUMN IF NOT EXISTS closed_by    text,
    ADD COLUMN IF NOT EXISTS close_reason text;
-- Retention sweeps the oldest held payloads first.
CREATE INDEX IF NOT EXISTS rejections_held_received ON rejections (received_at) WHERE state = 'held';
