-- Re-survey after a resolved follow-up (issue 11, "closing the loop, measured").
-- A survey may ask the customer again N days after their follow-up was resolved.
ALTER TABLE surveys ADD COLUMN resurvey_after_days INTEGER;
-- Why an invitation was made: 'api' (an invitation request) or 'resurvey' (the re-survey job).
-- `reason` stays what it was: why an invitation was suppressed, cancelled or failed.
ALTER TABLE invitations ADD COLUMN origin TEXT NOT NULL DEFAULT 'api';
-- The one re-survey invitation of a follow-up: set in the same transaction that makes it, so a
-- task resolved twice or a job run by two replicas never sends a second one.
ALTER TABLE followups ADD COLUMN resurvey_invitation_id TEXT;
CREATE UNIQUE INDEX followups_resurvey_invitation ON followups (resurvey_invitation_id);
-- The re-survey job looks for resolved tasks without a re-survey.
CREATE INDEX followups_resolved_at ON followups (status, resolved_at);
