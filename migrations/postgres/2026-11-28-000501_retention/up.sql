-- Retention (issue 13 §4): the daily housekeeping job prunes rows older than RETENTION_DAYS.
-- Each prune query's age condition leads an index, so a run reads only the rows it prunes.
-- Sent emails keep their row (delivery state, Message-ID) but lose their bodies; `pruned_at`
-- says when, and the partial index holds only bodies not yet pruned.
ALTER TABLE emails ADD COLUMN pruned_at TIMESTAMP;
CREATE INDEX emails_retention ON emails (sent_at) WHERE pruned_at IS NULL;
CREATE INDEX webhook_deliveries_retention ON webhook_deliveries (delivered_at);
CREATE INDEX sign_in_tokens_retention ON sign_in_tokens (expires_at);
CREATE INDEX sessions_retention ON sessions (expires_at);
CREATE INDEX idempotency_keys_retention ON idempotency_keys (created_at);
CREATE INDEX job_runs_retention ON job_runs (created_at);
