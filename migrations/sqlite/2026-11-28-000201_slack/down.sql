PRAGMA defer_foreign_keys = ON;
DELETE FROM webhook_attempts WHERE delivery_id IN
    (SELECT id FROM webhook_deliveries WHERE kind <> 'webhook');
CREATE TABLE webhook_deliveries_copy AS SELECT * FROM webhook_deliveries WHERE kind = 'webhook';
DROP TABLE webhook_deliveries;
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id),
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
    contact_id TEXT
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
CREATE INDEX webhook_deliveries_contact ON webhook_deliveries (contact_id);
ALTER TABLE surveys DROP COLUMN slack_webhook_url;
