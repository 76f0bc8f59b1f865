-- Segment breakdowns first count answers per contact and score: cover that with the index.
DROP INDEX responses_survey_time_score;
CREATE INDEX responses_survey_time_score ON responses (survey_id, created_at, score, contact_id);
