-- Closeloop schema, SQLite flavour. Keep it in step with migrations/postgres and src/db/schema.rs.
-- Ids are TEXT with a type prefix and a time-sortable ULID (`srv_01J...`), so ordering by id is
-- creation order. Times are UTC `TIMESTAMP` values.

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'agent', 'reader')),
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);

CREATE TABLE surveys (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('nps', 'csat')),
    name TEXT NOT NULL,
    question TEXT,
    follow_up_question TEXT,
    brand TEXT,
    brand_color TEXT,
    topic TEXT,
    locale TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'paused', 'archived')),
    public_slug TEXT UNIQUE,
    throttle_days INTEGER NOT NULL,
    reminder_after_days INTEGER,
    edit_window_hours INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    archived_at TIMESTAMP
);

CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    email TEXT UNIQUE,
    name TEXT,
    external_id TEXT UNIQUE,
    properties TEXT NOT NULL,
    value REAL,
    last_surveyed_at TIMESTAMP,
    last_responded_at TIMESTAMP,
    unsubscribed_at TIMESTAMP,
    erased_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    survey_id TEXT NOT NULL REFERENCES surveys (id),
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    channel TEXT NOT NULL CHECK (channel IN ('email', 'link')),
    token TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('scheduled', 'sending', 'sent', 'responded', 'suppressed', 'failed', 'expired', 'cancelled')),
    reason TEXT,
    send_at TIMESTAMP NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_until TIMESTAMP,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    message_id TEXT,
    sent_at TIMESTAMP,
    responded_at TIMESTAMP,
    reminder_sent_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX invitations_queue ON invitations (status, next_attempt_at);
CREATE INDEX invitations_survey ON invitations (survey_id, id);
CREATE INDEX invitations_contact ON invitations (contact_id, created_at);

CREATE TABLE responses (
    id TEXT PRIMARY KEY,
    survey_id TEXT NOT NULL REFERENCES surveys (id),
    invitation_id TEXT UNIQUE REFERENCES invitations (id),
    contact_id TEXT REFERENCES contacts (id),
    score INTEGER NOT NULL,
    category TEXT NOT NULL,
    comment TEXT,
    channel TEXT NOT NULL,
    locale TEXT,
    submission_id TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (survey_id, submission_id)
);
CREATE INDEX responses_survey_time ON responses (survey_id, created_at);
CREATE INDEX responses_contact ON responses (contact_id);

CREATE TABLE followups (
    id TEXT PRIMARY KEY,
    response_id TEXT NOT NULL UNIQUE REFERENCES responses (id),
    survey_id TEXT NOT NULL REFERENCES surveys (id),
    contact_id TEXT REFERENCES contacts (id),
    score INTEGER NOT NULL,
    comment TEXT,
    status TEXT NOT NULL CHECK (status IN ('open', 'in_progress', 'resolved', 'dismissed')),
    contact_value REAL,
    assignee TEXT,
    outcome TEXT,
    due_at TIMESTAMP NOT NULL,
    answered_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX followups_status_due ON followups (status, due_at);
CREATE INDEX followups_survey ON followups (survey_id, status);

CREATE TABLE followup_activities (
    id TEXT PRIMARY KEY,
    followup_id TEXT NOT NULL REFERENCES followups (id),
    kind TEXT NOT NULL,
    actor TEXT,
    body TEXT,
    data TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX followup_activities_followup ON followup_activities (followup_id, id);

CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id),
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivering', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_until TIMESTAMP,
    last_status_code INTEGER,
    last_error TEXT,
    delivered_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);

CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempted_at TIMESTAMP NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- Emails other than survey invitations (follow-up alerts, replies, digests): a durable outbox.
CREATE TABLE emails (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    to_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT,
    in_reply_to TEXT,
    followup_id TEXT REFERENCES followups (id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_until TIMESTAMP,
    last_error TEXT,
    message_id TEXT,
    sent_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX emails_queue ON emails (status, next_attempt_at);

-- Idempotency-Key replay store: the first answer to a keyed request is returned again.
CREATE TABLE idempotency_keys (
    api_key_id TEXT NOT NULL REFERENCES api_keys (id),
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response_status INTEGER NOT NULL,
    response_body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (api_key_id, idempotency_key)
);
