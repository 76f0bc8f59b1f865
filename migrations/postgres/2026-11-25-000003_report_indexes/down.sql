DROP INDEX invitations_survey_sent;
DROP INDEX responses_survey_time_score;
CREATE INDEX responses_survey_time ON responses (survey_id, created_at);
