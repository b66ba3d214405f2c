-- Policy lifecycle: drafts uploaded by compliance officers and every activation attempt (the audit trail
-- that says which policy revision was running where, from when, and who switched it).

-- A draft: the files of a policy directory (rego/**.rego incl. *_test.rego, data/**.json). draft_id hashes
-- every file, tests included; revision (policy.engine.compute_revision) leaves the tests out, so two drafts
-- that differ only in their tests share a revision: activating a revision takes its newest draft. Stored
-- here so that every ingest replica can load the draft an activation names.
CREATE TABLE IF NOT EXISTS policy_drafts (
    draft_id     text        PRIMARY KEY,
    revision     text        NOT NULL,
    uploaded_at  timestamptz NOT NULL DEFAULT now(),
    uploaded_by  text        NOT NULL,
    files        jsonb       NOT NULL,  -- {"rego/residency/decision.rego": "<source>", "data/x.json": "<text>"}
    bytes        integer     NOT NULL,
    tests        integer     NOT NULL   -- number of *_test.rego files
);
CREATE INDEX IF NOT EXISTS policy_drafts_revision ON policy_drafts (revision, uploaded_at DESC);

-- One row per activation attempt on one replica, accepted or refused.
--   source: startup (the policy a replica loaded when it started), file (the policy directory changed),
--           api (POST /api/v1/policy/activate, or a replica following it), opa (the OPA server's bundle
--           revision changed: nothing to check here, OPA activated it)
CREATE TABLE IF NOT EXISTS policy_activations (
    id                 bigserial   PRIMARY KEY,
    at                 timestamptz NOT NULL DEFAULT now(),
    revision           text        NOT NULL,
    previous_revision  text,
    draft_id           text,                  -- source api: the draft that was checked (and is followed)
    activated_by       text        NOT NULL,
    source             text        NOT NULL CHECK (source IN ('startup', 'file', 'api', 'opa')),
    outcome            text        NOT NULL CHECK (outcome IN ('accepted', 'refused')),
    error              text,
    replica            text        NOT NULL,  -- INGEST_MQTT_CLIENT_ID of the replica that switched (or not)
    engine             text        NOT NULL,  -- embedded | opa
    tests_passed       integer,
    tests_failed       integer
);
CREATE INDEX IF NOT EXISTS policy_activations_at ON policy_activations (at DESC, id DESC);
CREATE INDEX IF NOT EXISTS policy_activations_api ON policy_activations (id DESC)
    WHERE source = 'api' AND outcome = 'accepted';
