DROP INDEX responses_survey_time_score;
CREATE INDEX responses_survey_time_score ON responses (survey_id, created_at, score);
