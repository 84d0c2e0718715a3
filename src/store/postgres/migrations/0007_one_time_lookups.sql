-- Secrets by the address they confirm and by their user: confirmations are keyed by account and
-- address, and a reset or logout-all drops a user's pending secrets.
CREATE INDEX one_time_secrets_target ON one_time_secrets ((data->>'target'));
CREATE INDEX one_time_secrets_user ON one_time_secrets ((data->>'user_id'));
