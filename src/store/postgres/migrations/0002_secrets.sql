-- Secrets every node shares, by name (the proof-of-work challenge MAC key).
CREATE TABLE secrets (
    name text PRIMARY KEY,
    value bytea NOT NULL
);
