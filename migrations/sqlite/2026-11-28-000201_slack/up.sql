-- Slack alerts (issue 14 §3) go through the webhook delivery outbox: a delivery is either a
-- signed event to a webhook (`kind = 'webhook'`, `webhook_id` set) or a Slack Block Kit message
-- about a new follow-up (`kind = 'slack'`, no webhook: `target_url` and `followup_id` set; its
-- body is written when it is sent, after the alert's grace period).
-- A survey's own Slack incoming-webhook URL overrides SLACK_WEBHOOK_URL.
ALTER TABLE surveys ADD COLUMN slack_webhook_url TEXT;

-- SQLite cannot drop a NOT NULL: the table is rebuilt. `webhook_attempts` references it, so
-- the foreign-key check is deferred to the commit, by when every delivery is back under the
-- same name (a lost row would fail the commit).
PRAGMA defer_foreign_keys = ON;
CREATE TABLE webhook_deliveries_copy AS SELECT * FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT REFERENCES webhooks (id),
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivering', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_until TIMESTAMP,
    last_status_code INTEGER,
    last_error TEXT,
    delivered_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    claimed_by TEXT,
    contact_id TEXT,
    kind TEXT NOT NULL DEFAULT 'webhook' CHECK (kind IN ('webhook', 'slack')),
    target_url TEXT,
    followup_id TEXT REFERENCES followups (id),
    CHECK ((kind = 'webhook' AND webhook_id IS NOT NULL)
        OR (kind = 'slack' AND target_url IS NOT NULL AND followup_id IS NOT NULL))
);
INSERT INTO webhook_deliveries (id, webhook_id, event, payload, status, attempts,
    next_attempt_at, claimed_until, last_status_code, last_error, delivered_at, created_at,
    claimed_by, contact_id)
SELECT id, webhook_id, event, payload, status, attempts,
    next_attempt_at, claimed_until, last_status_code, last_error, delivered_at, created_at,
    claimed_by, contact_id
FROM webhook_deliveries_copy;
DROP TABLE webhook_deliveries_copy;
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
-- From migration 2026-11-28-000101_webhook_events, which ran before this rebuild.
CREATE INDEX webhook_deliveries_contact ON webhook_deliveries (contact_id);
