-- Which process (INSTANCE_ID) holds a claim, so a restarted process takes its own claims back
-- at once, and only the holder extends (heartbeat) or records them.
ALTER TABLE invitations ADD COLUMN claimed_by TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT;

-- Emails get `claimed_by` too, and the status `cancelled` (an alert whose task was closed
-- before it was due). SQLite cannot change a CHECK constraint: the table is rebuilt.
CREATE TABLE emails_new (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    to_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT,
    in_reply_to TEXT,
    followup_id TEXT REFERENCES followups (id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_until TIMESTAMP,
    last_error TEXT,
    message_id TEXT,
    sent_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    from_name TEXT,
    reply_to TEXT,
    claimed_by TEXT
);
INSERT INTO emails_new (id, kind, to_address, subject, body_text, body_html, in_reply_to,
    followup_id, status, attempts, next_attempt_at, claimed_until, last_error, message_id,
    sent_at, created_at, from_name, reply_to)
SELECT id, kind, to_address, subject, body_text, body_html, in_reply_to,
    followup_id, status, attempts, next_attempt_at, claimed_until, last_error, message_id,
    sent_at, created_at, from_name, reply_to
FROM emails;
DROP TABLE emails;
ALTER TABLE emails_new RENAME TO emails;
CREATE INDEX emails_queue ON emails (status, next_attempt_at);
CREATE INDEX emails_followup ON emails (followup_id);
