DROP INDEX invitations_remind;
ALTER TABLE invitations DROP COLUMN remind_at;
