DROP INDEX emails_followup;
UPDATE emails SET status = 'failed' WHERE status = 'cancelled';
ALTER TABLE emails DROP CONSTRAINT emails_status_check;
ALTER TABLE emails ADD CONSTRAINT emails_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed'));
ALTER TABLE invitations DROP COLUMN claimed_by;
ALTER TABLE emails DROP COLUMN claimed_by;
ALTER TABLE webhook_deliveries DROP COLUMN claimed_by;
