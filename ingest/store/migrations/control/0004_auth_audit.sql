-- API authentication (users with roles scoped to regions, hashed API tokens) and the audit trail.

-- A user: one or more roles, and the regions they act for (NULL = every region of the registry).
CREATE TABLE IF NOT EXISTS users (
    name        text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    roles       text[]      NOT NULL CHECK (
                    cardinality(roles) > 0
                    AND roles <@ ARRAY['operator', 'compliance', 'engineer', 'admin']::text[]),
    regions     text[],                 -- NULL: every region
    disabled    boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- An API token rtk_<token_id>_<secret>: only the SHA-256 digest (hex) of the secret is stored.
CREATE TABLE IF NOT EXISTS api_tokens (
    token_id      text        PRIMARY KEY,
    user_name     text        NOT NULL REFERENCES users (name),
    digest        text        NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
    label         text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text        NOT NULL,
    expires_at    timestamptz,          -- NULL: never
    revoked_at    timestamptz,
    revoked_by    text,
    last_used_at  timestamptz
);
CREATE INDEX IF NOT EXISTS api_tokens_user ON api_tokens (user_name, created_at DESC);

-- Every change (device, site, policy draft and activation, quarantine release, user, token): who, when,
-- what. Append-only: the trigger below refuses UPDATE, DELETE and TRUNCATE, for every role but a
-- superuser who drops the trigger first (which PostgreSQL itself logs as DDL).
CREATE TABLE IF NOT EXISTS audit_log (
    id       bigserial   PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor    text        NOT NULL,
    action   text        NOT NULL,
    target   text        NOT NULL,
    regions  text[]      NOT NULL DEFAULT '{}',
    details  jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at DESC, id DESC);
CREATE INDEX IF NOT EXISTS audit_log_actor ON audit_log (actor, id DESC);
CREATE INDEX IF NOT EXISTS audit_log_action ON audit_log (action, id DESC);
CREATE INDEX IF NOT EXISTS audit_log_regions ON audit_log USING gin (regions);

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
