-- Standard Webhooks (issue 14): secret rotation, delivery rules.
-- `previous_secret` keeps signing beside `secret` until `previous_secret_expires_at` (a
-- rotation's overlap); `failing_since` is when the webhook's current run of failed attempts
-- began (NULL after a success), so an endpoint failing for days can be disabled;
-- `disabled_reason` says why the service turned a webhook off (410 Gone, failing for days).
ALTER TABLE webhooks ADD COLUMN previous_secret TEXT;
ALTER TABLE webhooks ADD COLUMN previous_secret_expires_at TIMESTAMP;
ALTER TABLE webhooks ADD COLUMN failing_since TIMESTAMP;
ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT;

-- Secrets used to be `whsec_` + URL-safe unpadded base64 of 32 random bytes. The spec's key is
-- the standard-base64 decoding of what follows `whsec_`: re-encode the same 32 bytes in the
-- standard alphabet with its padding, so every key (and every signature) stays the same bytes.
UPDATE webhooks
SET secret = 'whsec_' || replace(replace(substr(secret, 7), '-', '+'), '_', '/') || '='
WHERE substr(secret, 1, 6) = 'whsec_' AND length(secret) = 49;
