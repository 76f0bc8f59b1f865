ALTER TABLE emails DROP COLUMN reply_to;
ALTER TABLE emails DROP COLUMN from_name;
DROP INDEX followups_contact;
DROP INDEX followups_queue;
DROP TABLE job_runs;
ALTER TABLE surveys DROP COLUMN followup_assignee;
