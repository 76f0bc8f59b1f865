-- Segments snapshotted at answer time (issue 12, aim 3). A survey names the contact
-- properties it reports on (`report_segments`, a JSON array of names); when an answer is
-- recorded, the contact's values of those properties are copied onto the answer
-- (`response_segments`) and counted in a daily rollup (`segment_daily`) in the same
-- transaction, so `segment=` reports read a few thousand counts, and an answer counts under
-- the plan the customer had when they answered.
ALTER TABLE surveys ADD COLUMN report_segments TEXT NOT NULL DEFAULT '[]';

-- One row per answer and property name; `value` is NULL for anonymous answers and contacts
-- without the property (or erased ones).
CREATE TABLE response_segments (
    response_id TEXT NOT NULL REFERENCES responses (id),
    name TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (response_id, name)
);

-- Answers per survey, property, day of the answer, value and score, split over shard rows
-- like `response_daily`. `has_value` = 0 (with `value` = '') stands for no value, so that
-- the key has no NULL and an empty string stays an empty string.
CREATE TABLE segment_daily (
    survey_id TEXT NOT NULL REFERENCES surveys (id),
    name TEXT NOT NULL,
    day TEXT NOT NULL,
    has_value INTEGER NOT NULL,
    value TEXT NOT NULL,
    score INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (survey_id, name, day, has_value, value, score, shard)
);

-- Properties added to `report_segments` whose earlier answers are still being given
-- values (from the contact's current properties), in batches of answers in `created_at`
-- order from `next_from` on.
CREATE TABLE segment_backfills (
    survey_id TEXT NOT NULL REFERENCES surveys (id),
    name TEXT NOT NULL,
    next_from TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (survey_id, name)
);
