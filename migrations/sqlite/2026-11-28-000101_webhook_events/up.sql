-- Webhook events of issue 14 §2: followup.overdue and erasing a contact's queued payloads.

-- When the followup.overdue event of a task was queued (once per task). Tasks already past
-- due when this migration runs count as notified: the event did not exist when they passed.
ALTER TABLE followups ADD COLUMN overdue_notified_at TIMESTAMP;
UPDATE followups SET overdue_notified_at = due_at
WHERE status IN ('open', 'in_progress') AND due_at <= CURRENT_TIMESTAMP;
-- The periodic overdue scan reads only tasks that are open, not yet notified and due: the
-- index holds just the open, un-notified tasks, ordered by due time, so each scan costs
-- O(rows due now). The query repeats this predicate word for word
-- (store::followups::OVERDUE_PENDING) so both planners can use the index.
CREATE INDEX followups_overdue_pending ON followups (due_at)
WHERE overdue_notified_at IS NULL AND status NOT IN ('resolved', 'dismissed');

-- The contact a delivery's payload is about (NULL: none), so erasing a contact can scrub
-- the personal data out of its queued and logged deliveries.
ALTER TABLE webhook_deliveries ADD COLUMN contact_id TEXT;
CREATE INDEX webhook_deliveries_contact ON webhook_deliveries (contact_id);
