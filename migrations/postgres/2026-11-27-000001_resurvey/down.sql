DROP INDEX followups_resolved_at;
DROP INDEX followups_resurvey_invitation;
ALTER TABLE followups DROP COLUMN resurvey_invitation_id;
ALTER TABLE invitations DROP COLUMN origin;
ALTER TABLE surveys DROP COLUMN resurvey_after_days;
