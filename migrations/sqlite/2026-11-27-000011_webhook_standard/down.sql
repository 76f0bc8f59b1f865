UPDATE webhooks
SET secret = 'whsec_' || replace(replace(substr(secret, 7, 43), '+', '-'), '/', '_')
WHERE substr(secret, 1, 6) = 'whsec_' AND length(secret) = 50 AND substr(secret, 50, 1) = '=';
ALTER TABLE webhooks DROP COLUMN disabled_reason;
ALTER TABLE webhooks DROP COLUMN failing_since;
ALTER TABLE webhooks DROP COLUMN previous_secret_expires_at;
ALTER TABLE webhooks DROP COLUMN previous_secret;
