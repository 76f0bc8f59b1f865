DROP INDEX job_runs_retention;
DROP INDEX idempotency_keys_retention;
DROP INDEX sessions_retention;
DROP INDEX sign_in_tokens_retention;
DROP INDEX webhook_deliveries_retention;
DROP INDEX emails_retention;
ALTER TABLE emails DROP COLUMN pruned_at;
