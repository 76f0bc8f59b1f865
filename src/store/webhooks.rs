//! Queries of webhook subscriptions, the delivery outbox and its attempt log.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use crate::domain::Event;
use crate::domain::Page;
use crate::domain::{new_id, now, IdPrefix};
use crate::error::AppError;
use crate::store::schema::{webhook_attempts, webhook_deliveries, webhooks};
use crate::store::DbConnection;

/// `last_error` of deliveries stopped because their webhook was deleted.
pub const DELETED: &str = "webhook deleted";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhooks)]
pub struct WebhookRow {
    pub id: String,
    pub url: String,
    pub secret: String,
    /// A JSON array of event names, e.g. `["response.created"]`.
    pub events: String,
    pub active: bool,
    pub created_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
    /// The secret before the last rotation; it signs beside `secret` until
    /// `previous_secret_expires_at`.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<NaiveDateTime>,
    /// When the current run of failed attempts began (`None` after a success).
    pub failing_since: Option<NaiveDateTime>,
    /// Why the service turned this webhook off (410 Gone, failing for days); `None` when it
    /// is active or an admin paused it.
    pub disabled_reason: Option<String>,
}

impl WebhookRow {
    /// The secrets that sign a request sent at `at`: the current one, then the previous one
    /// while a rotation's overlap lasts.
    pub fn signing_secrets(&self, at: NaiveDateTime) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) =
            (&self.previous_secret, self.previous_secret_expires_at)
        {
            if at < until {
                secrets.push(previous);
            }
        }
        secrets
    }

    /// The subscribed events (unknown stored names are skipped).
    pub fn event_list(&self) -> Vec<Event> {
        serde_json::from_str::<Vec<String>>(&self.events)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| Event::parse(e))
            .collect()
    }

    pub fn live(&self) -> bool {
        self.active && self.deleted_at.is_none()
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct DeliveryRow {
    pub id: String,
    /// The webhook; `None` for a Slack message (see [`SlackDeliveryRow`]).
    pub webhook_id: Option<String>,
    pub event: String,
    pub payload: String,
    /// `pending → delivering → delivered | failed` (back to `pending` to retry).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub claimed_until: Option<NaiveDateTime>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    /// The contact whose personal data the payload carries (erasing them scrubs it).
    pub contact_id: Option<String>,
}

/// `kind` of a delivery that is a Slack message about a new follow-up (webhook deliveries
/// have `webhook`).
pub const SLACK: &str = "slack";

/// A Slack message queued in the delivery outbox: no webhook, a `target_url` (the incoming
/// webhook) and the follow-up it is about; its body is written when it is sent.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct SlackDeliveryRow {
    pub id: String,
    pub kind: String,
    pub target_url: String,
    pub followup_id: String,
    pub event: String,
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_attempts)]
pub struct AttemptRow {
    pub id: String,
    pub delivery_id: String,
    pub attempted_at: NaiveDateTime,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

pub fn insert(conn: &mut DbConnection, row: &WebhookRow) -> Result<(), AppError> {
    diesel::insert_into(webhooks::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// A webhook that is not deleted.
pub fn get(conn: &mut DbConnection, id: &str) -> Result<WebhookRow, AppError> {
    webhooks::table
        .find(id)
        .filter(webhooks::deleted_at.is_null())
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("webhook"))
}

/// A webhook, deleted or not (its delivery log stays readable).
pub fn get_any(conn: &mut DbConnection, id: &str) -> Result<WebhookRow, AppError> {
    webhooks::table
        .find(id)
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("webhook"))
}

/// Webhooks that are not deleted, newest first.
pub fn list(conn: &mut DbConnection, page: &Page) -> Result<Vec<WebhookRow>, AppError> {
    let mut q = webhooks::table
        .filter(webhooks::deleted_at.is_null())
        .select(WebhookRow::as_select())
        .order(webhooks::id.desc())
        .into_boxed();
    if let Some(c) = &page.cursor {
        q = q.filter(webhooks::id.lt(c.clone()));
    }
    Ok(q.limit(page.limit + 1).load(conn)?)
}

/// Soft-deletes a webhook and stops its queued deliveries (`failed`, "webhook deleted").
/// 404 when it does not exist or is already deleted.
pub fn delete(conn: &mut DbConnection, id: &str) -> Result<(), AppError> {
    conn.transaction(|conn| {
        let t = now();
        let changed = diesel::update(
            webhooks::table
                .find(id)
                .filter(webhooks::deleted_at.is_null()),
        )
        .set((webhooks::deleted_at.eq(Some(t)), webhooks::active.eq(false)))
        .execute(conn)?;
        if changed == 0 {
            return Err(AppError::NotFound("webhook"));
        }
        diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::webhook_id.eq(id))
                .filter(webhook_deliveries::status.eq_any(["pending", "delivering"])),
        )
        .set((
            webhook_deliveries::status.eq("failed"),
            webhook_deliveries::last_error.eq(Some(DELETED)),
            webhook_deliveries::claimed_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
        Ok(())
    })
}

/// Changes of a webhook; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = webhooks)]
pub struct WebhookChanges {
    pub url: Option<String>,
    /// A JSON array of event names.
    pub events: Option<String>,
    pub active: Option<bool>,
}

/// Applies `changes` to a webhook that is not deleted and returns it (404 otherwise).
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    changes: &WebhookChanges,
) -> Result<WebhookRow, AppError> {
    conn.transaction(|conn| {
        let row = get(conn, id)?;
        if changes.url.is_none() && changes.events.is_none() && changes.active.is_none() {
            return Ok(row);
        }
        diesel::update(webhooks::table.find(id))
            .set(changes)
            .execute(conn)?;
        if changes.active == Some(true) {
            // Turned on again: a fresh start for the failing-for-days rule.
            diesel::update(webhooks::table.find(id))
                .set((
                    webhooks::disabled_reason.eq(None::<String>),
                    webhooks::failing_since.eq(None::<NaiveDateTime>),
                ))
                .execute(conn)?;
        }
        get(conn, id)
    })
}

/// Replaces the secret of a webhook that is not deleted with `new_secret`; the old one keeps
/// signing until `overlap_until` (a rotation during an overlap drops the oldest secret).
/// Returns the updated row (404 when it does not exist or was deleted).
pub fn rotate_secret(
    conn: &mut DbConnection,
    id: &str,
    new_secret: &str,
    overlap_until: NaiveDateTime,
) -> Result<WebhookRow, AppError> {
    conn.transaction(|conn| {
        let row = get(conn, id)?;
        diesel::update(webhooks::table.find(id))
            .set((
                webhooks::secret.eq(new_secret),
                webhooks::previous_secret.eq(Some(&row.secret)),
                webhooks::previous_secret_expires_at.eq(Some(overlap_until)),
            ))
            .execute(conn)?;
        get(conn, id)
    })
}

/// One delivery of webhook `webhook_id` (404 when the delivery is not one of its own).
pub fn delivery(
    conn: &mut DbConnection,
    webhook_id: &str,
    id: &str,
) -> Result<DeliveryRow, AppError> {
    webhook_deliveries::table
        .find(id)
        .filter(webhook_deliveries::webhook_id.eq(webhook_id))
        .select(DeliveryRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("delivery"))
}

/// A delivery with its attempts (oldest first).
pub fn delivery_with_attempts(
    conn: &mut DbConnection,
    webhook_id: &str,
    id: &str,
) -> Result<(DeliveryRow, Vec<AttemptRow>), AppError> {
    let d = delivery(conn, webhook_id, id)?;
    let attempts = webhook_attempts::table
        .filter(webhook_attempts::delivery_id.eq(id))
        .select(AttemptRow::as_select())
        .order((webhook_attempts::attempted_at, webhook_attempts::id))
        .load(conn)?;
    Ok((d, attempts))
}

/// Queues a finished delivery (`delivered` or `failed`) again, due now; a delivery still
/// `pending` is made due now. Its attempt log is kept and the next attempt is added to it.
/// A delivery in flight (`delivering`) is a 409 `delivery_in_flight`.
pub fn requeue(
    conn: &mut DbConnection,
    webhook_id: &str,
    id: &str,
) -> Result<DeliveryRow, AppError> {
    conn.transaction(|conn| {
        let d = delivery(conn, webhook_id, id)?;
        if d.status == "delivering" {
            return Err(AppError::conflict(
                "delivery_in_flight",
                "this delivery is being sent right now; wait for the attempt to finish",
            ));
        }
        let t = now();
        diesel::update(
            webhook_deliveries::table
                .find(id)
                .filter(webhook_deliveries::status.ne("delivering")),
        )
        .set((
            webhook_deliveries::status.eq("pending"),
            webhook_deliveries::next_attempt_at.eq(t),
            webhook_deliveries::delivered_at.eq(None::<NaiveDateTime>),
            webhook_deliveries::claimed_until.eq(None::<NaiveDateTime>),
            webhook_deliveries::claimed_by.eq(None::<String>),
        ))
        .execute(conn)?;
        delivery(conn, webhook_id, id)
    })
}

/// Live webhooks subscribed to `event`. The `LIKE` keeps the common case (nobody subscribed)
/// to one query that returns nothing; the stored list is then checked exactly.
pub fn subscribers(conn: &mut DbConnection, event: Event) -> Result<Vec<WebhookRow>, AppError> {
    let rows: Vec<WebhookRow> = webhooks::table
        .filter(webhooks::deleted_at.is_null())
        .filter(webhooks::active.eq(true))
        .filter(webhooks::events.like(format!("%\"{}\"%", event.as_str())))
        .select(WebhookRow::as_select())
        .order(webhooks::id)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|w| w.event_list().contains(&event))
        .collect())
}

/// Queues a Slack message (see [`SlackDeliveryRow`]).
pub fn insert_slack(conn: &mut DbConnection, row: &SlackDeliveryRow) -> Result<(), AppError> {
    diesel::insert_into(webhook_deliveries::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Replaces the payload of delivery `id`: the body a Slack message is sent with (built at
/// send time, for its log), or a payload scrubbed when its contact is erased.
pub fn set_payload(conn: &mut DbConnection, id: &str, payload: &str) -> Result<(), AppError> {
    diesel::update(webhook_deliveries::table.find(id))
        .set(webhook_deliveries::payload.eq(payload))
        .execute(conn)?;
    Ok(())
}

pub fn insert_deliveries(conn: &mut DbConnection, rows: &[DeliveryRow]) -> Result<(), AppError> {
    for row in rows {
        diesel::insert_into(webhook_deliveries::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct DeliveryFilter {
    pub status: Option<String>,
}

/// A webhook's deliveries, newest first, each with its attempts (oldest first).
pub fn deliveries(
    conn: &mut DbConnection,
    webhook_id: &str,
    filter: &DeliveryFilter,
    page: &Page,
) -> Result<Vec<(DeliveryRow, Vec<AttemptRow>)>, AppError> {
    let mut q = webhook_deliveries::table
        .filter(webhook_deliveries::webhook_id.eq(webhook_id.to_string()))
        .select(DeliveryRow::as_select())
        .order(webhook_deliveries::id.desc())
        .into_boxed();
    if let Some(s) = &filter.status {
        q = q.filter(webhook_deliveries::status.eq(s.clone()));
    }
    if let Some(c) = &page.cursor {
        q = q.filter(webhook_deliveries::id.lt(c.clone()));
    }
    let rows: Vec<DeliveryRow> = q.limit(page.limit + 1).load(conn)?;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let attempts: Vec<AttemptRow> = if ids.is_empty() {
        Vec::new()
    } else {
        webhook_attempts::table
            .filter(webhook_attempts::delivery_id.eq_any(&ids))
            .select(AttemptRow::as_select())
            .order((webhook_attempts::attempted_at, webhook_attempts::id))
            .load(conn)?
    };
    Ok(rows
        .into_iter()
        .map(|d| {
            let mine = attempts
                .iter()
                .filter(|a| a.delivery_id == d.id)
                .cloned()
                .collect();
            (d, mine)
        })
        .collect())
}

/// A delivery claimed for sending, with where and how to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: DeliveryRow,
    pub target: Target,
}

/// Where a claimed delivery goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A signed event to a webhook.
    Webhook(WebhookRow),
    /// A Slack message about follow-up `followup_id`, to the incoming webhook `url`.
    Slack { url: String, followup_id: String },
}

impl Claimed {
    /// The webhook of a webhook delivery.
    pub fn webhook(&self) -> Option<&WebhookRow> {
        match &self.target {
            Target::Webhook(w) => Some(w),
            Target::Slack { .. } => None,
        }
    }
}

/// Claims up to `limit` due deliveries until `now + lease`: `pending` ones whose time has
/// come, and `delivering` ones whose worker died (lease expired). Each claim counts as an
/// attempt. On PostgreSQL the rows are locked with `FOR UPDATE SKIP LOCKED`, so replicas never
/// claim the same delivery; SQLite has one process and one writer.
pub fn claim_due(
    conn: &mut DbConnection,
    limit: i64,
    lease: TimeDelta,
    me: &str,
) -> Result<Vec<Claimed>, AppError> {
    conn.transaction(|conn| {
        let t = now();
        let ids = crate::store::due_queue_ids!(
            conn,
            webhook_deliveries,
            "pending",
            "delivering",
            limit,
            t
        );
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(&ids)))
            .set((
                webhook_deliveries::status.eq("delivering"),
                webhook_deliveries::claimed_until.eq(Some(t + lease)),
                webhook_deliveries::claimed_by.eq(Some(me)),
                webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
            ))
            .execute(conn)?;
        let rows: Vec<(DeliveryRow, Option<String>, Option<String>)> = webhook_deliveries::table
            .filter(webhook_deliveries::id.eq_any(&ids))
            .select((
                DeliveryRow::as_select(),
                webhook_deliveries::target_url,
                webhook_deliveries::followup_id,
            ))
            .order(webhook_deliveries::next_attempt_at)
            .load(conn)?;
        let hook_ids: Vec<&str> = rows
            .iter()
            .filter_map(|(d, _, _)| d.webhook_id.as_deref())
            .collect();
        let hooks: Vec<WebhookRow> = if hook_ids.is_empty() {
            Vec::new()
        } else {
            webhooks::table
                .filter(webhooks::id.eq_any(&hook_ids))
                .select(WebhookRow::as_select())
                .load(conn)?
        };
        Ok(rows
            .into_iter()
            .filter_map(|(delivery, url, followup_id)| {
                let hook = delivery
                    .webhook_id
                    .as_deref()
                    .and_then(|id| hooks.iter().find(|h| h.id == id));
                let target = match (hook, url, followup_id) {
                    (Some(w), _, _) => Target::Webhook(w.clone()),
                    (None, Some(url), Some(followup_id)) => Target::Slack { url, followup_id },
                    _ => return None,
                };
                Some(Claimed { delivery, target })
            })
            .collect())
    })
}

/// Extends the lease of those of `ids` that worker `me` still holds (its heartbeat).
pub fn extend(
    conn: &mut DbConnection,
    me: &str,
    ids: &[String],
    until: NaiveDateTime,
) -> Result<usize, AppError> {
    Ok(crate::store::extend_claims!(
        conn,
        webhook_deliveries,
        "delivering",
        me,
        ids,
        until
    )?)
}

/// Hands back at once the claims a previous run of instance `me` left behind.
pub fn release_claims_of(conn: &mut DbConnection, me: &str) -> Result<usize, AppError> {
    let t = now();
    Ok(diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::status.eq("delivering"))
            .filter(webhook_deliveries::claimed_by.eq(me)),
    )
    .set((
        webhook_deliveries::status.eq("pending"),
        webhook_deliveries::next_attempt_at.eq(t),
        webhook_deliveries::claimed_until.eq(None::<NaiveDateTime>),
        webhook_deliveries::claimed_by.eq(None::<String>),
    ))
    .execute(conn)?)
}

/// One HTTP attempt as it happened.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub attempted_at: NaiveDateTime,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// What became of one claimed delivery.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A 2xx answer.
    Delivered,
    /// A transient failure: try again at `at`.
    Retry { at: NaiveDateTime, error: String },
    /// Given up: a permanent answer, attempts exhausted, or the webhook was deleted.
    Failed { error: String },
    /// A 410 Gone: the delivery fails and the webhook is disabled.
    Gone { error: String },
}

/// `disabled_reason` of a webhook whose endpoint answered 410 Gone.
pub const GONE: &str = "the endpoint answered 410 Gone";

/// Records one delivery's attempt and outcome in its own transaction, as soon as it is known:
/// the attempt is logged, and the delivery moves on if worker `me` still holds it. The
/// webhook's failing run moves too: a success ends it; a failed attempt starts it, and a run
/// older than `disable_after` disables the webhook, as does a 410 ([`Outcome::Gone`]). Returns
/// the webhook, with its `disabled_reason`, when this call disabled it.
pub fn record_one(
    conn: &mut DbConnection,
    me: &str,
    c: &Claimed,
    attempt: Option<&Attempt>,
    outcome: &Outcome,
    disable_after: TimeDelta,
) -> Result<Option<WebhookRow>, AppError> {
    conn.transaction(|conn| {
        let t = now();
        let id = &c.delivery.id;
        if let Some(a) = attempt {
            diesel::insert_into(webhook_attempts::table)
                .values(&AttemptRow {
                    id: new_id(IdPrefix::Attempt),
                    delivery_id: id.clone(),
                    attempted_at: a.attempted_at,
                    status_code: a.status_code,
                    error: a.error.clone(),
                    duration_ms: a.duration_ms,
                })
                .execute(conn)?;
        }
        let target = webhook_deliveries::table
            .find(id)
            .filter(webhook_deliveries::status.eq("delivering"))
            .filter(webhook_deliveries::claimed_by.eq(me));
        let code = attempt.and_then(|a| a.status_code);
        let (status, error) = match outcome {
            Outcome::Delivered => ("delivered", None),
            Outcome::Retry { error, .. } => ("pending", Some(error)),
            Outcome::Failed { error } | Outcome::Gone { error } => ("failed", Some(error)),
        };
        let next_attempt_at = match outcome {
            Outcome::Retry { at, .. } => *at,
            _ => c.delivery.next_attempt_at,
        };
        let delivered_at = matches!(outcome, Outcome::Delivered).then_some(t);
        let moved = diesel::update(target)
            .set((
                webhook_deliveries::status.eq(status),
                webhook_deliveries::next_attempt_at.eq(next_attempt_at),
                webhook_deliveries::delivered_at.eq(delivered_at),
                webhook_deliveries::last_status_code.eq(code),
                webhook_deliveries::last_error.eq(error),
                webhook_deliveries::claimed_until.eq(None::<NaiveDateTime>),
                webhook_deliveries::claimed_by.eq(None::<String>),
            ))
            .execute(conn)?;
        match (attempt, c.webhook()) {
            (Some(a), Some(hook)) if moved == 1 => {
                track_failing(conn, &hook.id, a, outcome, disable_after)
            }
            _ => Ok(None),
        }
    })
}

/// Moves a webhook's failing run after one attempt (see [`record_one`]).
fn track_failing(
    conn: &mut DbConnection,
    webhook_id: &str,
    attempt: &Attempt,
    outcome: &Outcome,
    disable_after: TimeDelta,
) -> Result<Option<WebhookRow>, AppError> {
    let hook = webhooks::table
        .find(webhook_id)
        .select(WebhookRow::as_select())
        .first(conn)?;
    if matches!(outcome, Outcome::Delivered) {
        if hook.failing_since.is_some() {
            diesel::update(webhooks::table.find(webhook_id))
                .set(webhooks::failing_since.eq(None::<NaiveDateTime>))
                .execute(conn)?;
        }
        return Ok(None);
    }
    let since = hook.failing_since.unwrap_or(attempt.attempted_at);
    let reason = if matches!(outcome, Outcome::Gone { .. }) {
        Some(GONE.to_string())
    } else if now() - since >= disable_after {
        Some(format!(
            "every delivery failed since {} (more than {} hours)",
            crate::domain::utc(since).format("%Y-%m-%d %H:%M UTC"),
            disable_after.num_hours()
        ))
    } else {
        None
    };
    let disable = reason.is_some() && hook.live();
    let mut changed = diesel::update(webhooks::table.find(webhook_id))
        .set(webhooks::failing_since.eq(Some(since)))
        .execute(conn)?;
    if disable {
        changed = diesel::update(
            webhooks::table
                .find(webhook_id)
                .filter(webhooks::active.eq(true)),
        )
        .set((
            webhooks::active.eq(false),
            webhooks::disabled_reason.eq(reason),
        ))
        .execute(conn)?;
    }
    if !disable || changed == 0 {
        return Ok(None);
    }
    Ok(Some(
        webhooks::table
            .find(webhook_id)
            .select(WebhookRow::as_select())
            .first(conn)?,
    ))
}

/// The webhook delivery queue for `/metrics`: pending rows, how many are due, the oldest due.
pub fn queue_state(
    conn: &mut DbConnection,
    t: NaiveDateTime,
) -> Result<super::QueueState, AppError> {
    Ok(super::queue_state!(conn, webhook_deliveries, "pending", t))
}

/// The id and payload of every delivery (queued, sent or failed) about contact `contact_id`:
/// webhook events that name them, and Slack messages about their follow-ups.
pub fn deliveries_about_contact(
    conn: &mut DbConnection,
    contact_id: &str,
) -> Result<Vec<(String, String)>, AppError> {
    let mut rows: Vec<(String, String)> = webhook_deliveries::table
        .filter(webhook_deliveries::contact_id.eq(contact_id))
        .select((webhook_deliveries::id, webhook_deliveries::payload))
        .load(conn)?;
    let tasks = crate::store::schema::followups::table
        .filter(crate::store::schema::followups::contact_id.eq(contact_id))
        .select(crate::store::schema::followups::id.nullable());
    rows.extend(
        webhook_deliveries::table
            .filter(webhook_deliveries::kind.eq("slack"))
            .filter(webhook_deliveries::followup_id.eq_any(tasks))
            .select((webhook_deliveries::id, webhook_deliveries::payload))
            .load::<(String, String)>(conn)?,
    );
    Ok(rows)
}
