ALTER TABLE invitations DROP COLUMN claimed_by;
ALTER TABLE webhook_deliveries DROP COLUMN claimed_by;
DROP INDEX emails_followup;
UPDATE emails SET status = 'failed' WHERE status = 'cancelled';
ALTER TABLE emails DROP COLUMN claimed_by;
