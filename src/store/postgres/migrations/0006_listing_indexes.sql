-- Admin lists without a scan: users by status, by role and by login-name prefix; audit events
-- by name or family (each dotted prefix of the name: `user` finds `user.created`).
CREATE INDEX users_status ON users ((data->>'status'), id);
CREATE INDEX users_roles ON users USING gin ((data->'roles'));
CREATE INDEX user_logins_prefix ON user_logins ((key COLLATE "C"));
CREATE TABLE audit_families (
    family text NOT NULL,
    id uuid NOT NULL REFERENCES audit (id) ON DELETE CASCADE,
    PRIMARY KEY (family, id)
);
CREATE INDEX audit_families_id ON audit_families (id);
INSERT INTO audit_families (family, id)
SELECT array_to_string((string_to_array(a.data->>'event', '.'))[1:n], '.'), a.id
FROM audit a, generate_series(1, cardinality(string_to_array(a.data->>'event', '.'))) AS n
ON CONFLICT DO NOTHING;
