-- Which process (INSTANCE_ID) holds a claim, so a restarted process takes its own claims back
-- at once, and only the holder extends (heartbeat) or records them.
ALTER TABLE invitations ADD COLUMN claimed_by TEXT;
ALTER TABLE emails ADD COLUMN claimed_by TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT;

-- Emails may be `cancelled`: an alert whose task was closed before it was due.
ALTER TABLE emails DROP CONSTRAINT emails_status_check;
ALTER TABLE emails ADD CONSTRAINT emails_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'cancelled'));
CREATE INDEX emails_followup ON emails (followup_id);
