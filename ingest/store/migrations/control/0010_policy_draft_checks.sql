-- The result of a draft's check at upload (it loads, keeps the platform's invariants, its Rego tests pass),
-- so that activating a revision picks a draft that passed: two drafts share a revision when only their tests
-- differ, and an untested upload of the same revision must never shadow a tested one
-- (ingest.policy_runtime.PolicyRuntime.draft_files). Drafts uploaded before this migration have NULLs:
-- they rank after checked ones. Activation checks the chosen draft again in any case.
ALTER TABLE policy_drafts
    ADD COLUMN IF NOT EXISTS loads             boolean,
    ADD COLUMN IF NOT EXISTS tests_passed      integer,
    ADD COLUMN IF NOT EXISTS tests_failed      integer,
    ADD COLUMN IF NOT EXISTS check_error       text,
    ADD COLUMN IF NOT EXISTS invariants_failed text[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS checked_at        timestamptz;
