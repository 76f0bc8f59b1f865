-- Daily rollups that reports read instead of scanning every answer. They are kept in the
-- same transaction as the answer or delivery they count, and can be rebuilt from the
-- source tables with `closeloop rebuild-rollups` (also done at start when they are empty).
-- `day` is the UTC date 'YYYY-MM-DD'. Each counter is split over a few `shard` rows chosen at
-- random, so concurrent answers on PostgreSQL do not all wait for the lock of one hot row;
-- readers add the shards up.

-- Answers per survey, day of the answer and score.
CREATE TABLE response_daily (
    survey_id TEXT NOT NULL REFERENCES surveys (id),
    day TEXT NOT NULL,
    score INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (survey_id, day, score, shard)
);

-- Invitations delivered (email sent or link made) per survey and day of delivery, and how
-- many of them were answered.
CREATE TABLE delivery_daily (
    survey_id TEXT NOT NULL REFERENCES surveys (id),
    day TEXT NOT NULL,
    shard INTEGER NOT NULL,
    delivered BIGINT NOT NULL,
    answered BIGINT NOT NULL,
    PRIMARY KEY (survey_id, day, shard)
);

-- Time from delivery to first answer, as a histogram per survey and day of the answer:
-- bucket = floor(20 · ln(1 + seconds)), about 5 % wide.
CREATE TABLE answer_delay_daily (
    survey_id TEXT NOT NULL REFERENCES surveys (id),
    day TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (survey_id, day, bucket, shard)
);
