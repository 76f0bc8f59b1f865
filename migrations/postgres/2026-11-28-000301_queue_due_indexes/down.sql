DROP INDEX followups_resurvey_invitation;
CREATE UNIQUE INDEX followups_resurvey_invitation ON followups (resurvey_invitation_id);
DROP INDEX invitations_remind;
ALTER TABLE invitations DROP COLUMN remind_at;
