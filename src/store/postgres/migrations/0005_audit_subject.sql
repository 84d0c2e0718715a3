-- A user's events without a scan of the log.
ALTER TABLE audit ADD COLUMN subject uuid;
UPDATE audit SET subject = (data->>'subject')::uuid WHERE data->>'subject' IS NOT NULL;
CREATE INDEX audit_subject ON audit (subject, id) WHERE subject IS NOT NULL;
