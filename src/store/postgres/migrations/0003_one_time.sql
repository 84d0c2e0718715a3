-- Single-use secrets (verification links and codes, password reset, MFA login steps): hashes only.
CREATE TABLE one_time_secrets (
    id text PRIMARY KEY,
    token_hash bytea UNIQUE,
    expires_at bigint NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX one_time_secrets_expiry ON one_time_secrets (expires_at);
