-- Reports aggregate (survey, time, score): a covering index lets both engines count a
-- million answers without touching the table.
DROP INDEX responses_survey_time;
CREATE INDEX responses_survey_time_score ON responses (survey_id, created_at, score);
-- Response rate: invitations sent per survey and period.
CREATE INDEX invitations_survey_sent ON invitations (survey_id, sent_at);
