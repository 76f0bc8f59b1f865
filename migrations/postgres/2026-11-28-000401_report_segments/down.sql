DROP TABLE segment_backfills;
DROP TABLE segment_daily;
DROP TABLE response_segments;
ALTER TABLE surveys DROP COLUMN report_segments;
