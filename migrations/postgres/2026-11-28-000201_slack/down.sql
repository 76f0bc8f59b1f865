DELETE FROM webhook_attempts WHERE delivery_id IN
    (SELECT id FROM webhook_deliveries WHERE kind <> 'webhook');
DELETE FROM webhook_deliveries WHERE kind <> 'webhook';
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_target;
ALTER TABLE webhook_deliveries DROP COLUMN followup_id;
ALTER TABLE webhook_deliveries DROP COLUMN target_url;
ALTER TABLE webhook_deliveries DROP COLUMN kind;
ALTER TABLE webhook_deliveries ALTER COLUMN webhook_id SET NOT NULL;
ALTER TABLE surveys DROP COLUMN slack_webhook_url;
