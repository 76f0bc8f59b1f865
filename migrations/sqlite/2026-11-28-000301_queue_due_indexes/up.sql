-- Every queue poll costs O(due rows), not O(table) (issue 12).
-- When an email invitation's one reminder is due: set when it is sent to a survey with
-- reminders (sent_at + reminder_after_days), recomputed when the survey's reminder_after_days
-- or status changes (NULL while the survey is not active), cleared when it is answered or
-- reminded. The reminder poll reads this index from its start and stops after one batch.
ALTER TABLE invitations ADD COLUMN remind_at TIMESTAMP;
UPDATE invitations
SET remind_at = (
    SELECT strftime('%Y-%m-%d %H:%M:%f', invitations.sent_at, '+' || s.reminder_after_days || ' days')
    FROM surveys s
    WHERE s.id = invitations.survey_id AND s.status = 'active' AND s.reminder_after_days IS NOT NULL
)
WHERE status = 'sent' AND channel = 'email' AND reminder_sent_at IS NULL AND sent_at IS NOT NULL;
CREATE INDEX invitations_remind ON invitations (remind_at) WHERE remind_at IS NOT NULL;


-- The one re-survey of a task stays unique, but the index holds linked tasks only: the
-- re-survey poll asks for tasks *without* one, and a full index let the planner walk every
-- unlinked task through it (nearly the whole table) instead of the resolved_at window.
DROP INDEX followups_resurvey_invitation;
CREATE UNIQUE INDEX followups_resurvey_invitation ON followups (resurvey_invitation_id)
    WHERE resurvey_invitation_id IS NOT NULL;
