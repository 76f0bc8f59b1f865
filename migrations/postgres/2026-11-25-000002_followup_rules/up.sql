-- Assignment rule: new follow-ups of a survey go to this person (and their alert too).
ALTER TABLE surveys ADD COLUMN followup_assignee TEXT;

-- Periodic jobs that must run once per period across all replicas (e.g. the daily digest):
-- the primary key makes the second replica's insert fail.
CREATE TABLE job_runs (
    job TEXT NOT NULL,
    period TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (job, period)
);

CREATE INDEX followups_queue ON followups (status, contact_value, score, answered_at);
CREATE INDEX followups_contact ON followups (contact_id);

-- Replies to customers go out under the survey's brand, with replies to the team.
ALTER TABLE emails ADD COLUMN from_name TEXT;
ALTER TABLE emails ADD COLUMN reply_to TEXT;
