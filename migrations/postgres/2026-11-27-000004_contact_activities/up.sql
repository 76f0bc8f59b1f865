-- Who changed a contact's subscription, and when: `unsubscribed` / `resubscribed`, by
-- `customer` (the unsubscribe page or one-click header), `user:<email>` (the workspace) or
-- `api-key:<name>`. Kept after erasure: it names no customer.
CREATE TABLE contact_activities (
    id TEXT PRIMARY KEY NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    kind TEXT NOT NULL,
    actor TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX contact_activities_contact ON contact_activities (contact_id, id);
