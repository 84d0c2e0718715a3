-- Records are JSON documents (the same serde shapes as in redb), with the columns that
-- uniqueness, ordering and expiry need beside them.
CREATE TABLE users (
    id uuid PRIMARY KEY,
    data jsonb NOT NULL
);
-- Every login name (e:<email>, p:<e164>, u:<username>): unique across all users.
CREATE TABLE user_logins (
    key text PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX user_logins_user ON user_logins (user_id);
CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    expires_at bigint NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE TABLE refresh_tokens (
    hash bytea PRIMARY KEY,
    expires_at bigint NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
CREATE TABLE revocations (
    key text PRIMARY KEY,
    expires_at bigint NOT NULL,
    data jsonb NOT NULL
);
CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    data jsonb NOT NULL
);
CREATE TABLE roles (
    name text PRIMARY KEY,
    data jsonb NOT NULL
);
CREATE TABLE clients (
    id uuid PRIMARY KEY,
    data jsonb NOT NULL
);
CREATE TABLE audit (
    id uuid PRIMARY KEY,
    time_ms bigint NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX audit_time ON audit (time_ms);
CREATE TABLE webhooks (
    id uuid PRIMARY KEY,
    data jsonb NOT NULL
);
CREATE TABLE webhook_outbox (
    id uuid PRIMARY KEY,
    pending boolean NOT NULL,
    next_attempt_ms bigint NOT NULL,
    created_ms bigint NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_ms) WHERE pending;
