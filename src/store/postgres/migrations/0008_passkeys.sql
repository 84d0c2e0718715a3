-- Passkeys (WebAuthn credentials), unique by credential id.
CREATE TABLE passkeys (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id bytea NOT NULL UNIQUE,
    data jsonb NOT NULL
);
CREATE INDEX passkeys_user ON passkeys (user_id);
