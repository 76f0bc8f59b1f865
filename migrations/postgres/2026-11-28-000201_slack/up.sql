-- Slack alerts (issue 14 §3) go through the webhook delivery outbox: a delivery is either a
-- signed event to a webhook (`kind = 'webhook'`, `webhook_id` set) or a Slack Block Kit message
-- about a new follow-up (`kind = 'slack'`, no webhook: `target_url` and `followup_id` set; its
-- body is written when it is sent, after the alert's grace period).
-- A survey's own Slack incoming-webhook URL overrides SLACK_WEBHOOK_URL.
ALTER TABLE surveys ADD COLUMN slack_webhook_url TEXT;

ALTER TABLE webhook_deliveries ALTER COLUMN webhook_id DROP NOT NULL;
ALTER TABLE webhook_deliveries ADD COLUMN kind TEXT NOT NULL DEFAULT 'webhook'
    CHECK (kind IN ('webhook', 'slack'));
ALTER TABLE webhook_deliveries ADD COLUMN target_url TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN followup_id TEXT REFERENCES followups (id);
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_target CHECK (
    (kind = 'webhook' AND webhook_id IS NOT NULL)
    OR (kind = 'slack' AND target_url IS NOT NULL AND followup_id IS NOT NULL));
