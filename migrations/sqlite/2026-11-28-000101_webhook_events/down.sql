DROP INDEX webhook_deliveries_contact;
ALTER TABLE webhook_deliveries DROP COLUMN contact_id;
DROP INDEX followups_overdue_pending;
ALTER TABLE followups DROP COLUMN overdue_notified_at;
