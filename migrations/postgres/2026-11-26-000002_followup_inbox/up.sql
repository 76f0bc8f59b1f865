-- The inbox views "mine" and "unassigned" and the API's assignee filter.
CREATE INDEX followups_assignee ON followups (assignee, status);
