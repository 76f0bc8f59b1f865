ALTER TABLE invitations DROP COLUMN opened_at;
