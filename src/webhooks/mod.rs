//! Signed webhooks with a durable outbox.
//!
//! Code that changes something other apps care about calls [`enqueue`] inside its own
//! transaction: one `webhook_deliveries` row is written per live webhook subscribed to the
//! event, so an event is queued exactly when the change commits, and a crash loses nothing.
//! The [`WebhookWorker`] claims due deliveries (with a lease, and `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL), POSTs them signed (see [`signing`]), logs every attempt in `webhook_attempts`
//! and retries transient failures with exponential backoff.
//!
//! After committing a transaction that enqueued, call `AppState::wake_webhooks.notify_one()`
//! so the worker sends at once; otherwise it finds the delivery on its next poll
//! (`DISPATCH_INTERVAL_MS`).

pub mod signing;
pub mod worker;

use serde_json::{json, Value};

use crate::context::AppState;
use crate::domain::{new_id, new_secret, now, IdPrefix};
use crate::error::AppError;
use crate::store::models::{FollowupRow, ResponseRow};
use crate::store::webhooks as store;
use crate::store::DbConnection;
use crate::views;

pub use signing::{sign, verify, TOLERANCE_SECS};
pub use worker::WebhookWorker;

pub use crate::domain::Event;
pub use crate::store::webhooks::DELETED;

/// Queues `event` with `data` for every live webhook subscribed to it, inside the caller's
/// transaction. Each delivery gets its own id and payload
/// `{"id": "dlv_…", "event": "…", "created_at": "…", "data": …}`. With no subscriber this is
/// one small query and no write.
pub fn enqueue(conn: &mut DbConnection, event: Event, data: Value) -> Result<usize, AppError> {
    let hooks = store::subscribers(conn, event)?;
    if hooks.is_empty() {
        return Ok(0);
    }
    let t = now();
    let rows: Vec<store::DeliveryRow> = hooks
        .into_iter()
        .map(|hook| {
            let id = new_id(IdPrefix::Delivery);
            let payload = json!({
                "id": id,
                "event": event.as_str(),
                "created_at": crate::domain::utc(t),
                "data": data,
            });
            store::DeliveryRow {
                id,
                webhook_id: hook.id,
                event: event.as_str().into(),
                payload: payload.to_string(),
                status: "pending".into(),
                attempts: 0,
                next_attempt_at: t,
                claimed_until: None,
                last_status_code: None,
                last_error: None,
                delivered_at: None,
                created_at: t,
            }
        })
        .collect();
    store::insert_deliveries(conn, &rows)?;
    Ok(rows.len())
}

/// Queues `response.created` (no `before`) or `response.updated` for a recorded answer. The
/// data is the response as `GET /api/v1/responses/{id}` shows it; updates add
/// `previous_score`. An update that changed neither the score nor the comment (a double
/// submit) sends nothing.
pub fn enqueue_response(
    conn: &mut DbConnection,
    before: Option<&ResponseRow>,
    after: &ResponseRow,
) -> Result<usize, AppError> {
    let mut data =
        serde_json::to_value(views::Response::from(after.clone())).map_err(AppError::internal)?;
    let Some(before) = before else {
        return enqueue(conn, Event::ResponseCreated, data);
    };
    if before.score == after.score && before.comment == after.comment {
        return Ok(0);
    }
    if let Value::Object(map) = &mut data {
        map.insert("previous_score".into(), json!(before.score));
    }
    enqueue(conn, Event::ResponseUpdated, data)
}

/// Queues `followup.created` / `followup.updated` for a task (data: the task as the API
/// shows it, plus `change`: what happened, e.g. `status_changed`, `assigned`, `note`).
pub fn enqueue_followup(
    conn: &mut DbConnection,
    created: bool,
    task: &FollowupRow,
    change: &str,
    actor: &str,
) -> Result<usize, AppError> {
    let mut data =
        serde_json::to_value(views::Followup::from(task.clone())).map_err(AppError::internal)?;
    let actor_name = crate::store::users::actor_name(conn, actor)?;
    if let Value::Object(map) = &mut data {
        map.insert("change".into(), json!(change));
        map.insert("actor".into(), json!(actor));
        map.insert("actor_name".into(), json!(actor_name));
    }
    let event = if created {
        Event::FollowupCreated
    } else {
        Event::FollowupUpdated
    };
    enqueue(conn, event, data)
}

/// Creates a webhook for `events` at `url`, with a new signing secret (shown once).
pub async fn create(
    state: &AppState,
    url: &str,
    events: &[Event],
) -> Result<store::WebhookRow, AppError> {
    let names: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
    let row = store::WebhookRow {
        id: new_id(IdPrefix::Webhook),
        url: url.trim().to_string(),
        secret: new_secret("whsec_"),
        events: serde_json::to_string(&names).map_err(AppError::internal)?,
        active: true,
        created_at: now(),
        deleted_at: None,
    };
    let saved = row.clone();
    state
        .db
        .write(move |conn| store::insert(conn, &saved))
        .await?;
    Ok(row)
}

/// Deletes a webhook; its pending deliveries stop with `last_error` [`DELETED`].
pub async fn delete(state: &AppState, id: &str) -> Result<(), AppError> {
    let id = id.to_string();
    state.db.write(move |conn| store::delete(conn, &id)).await
}
