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
pub mod store;
pub mod worker;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::api::error::ApiError;
use crate::db::DbConnection;
use crate::domain::{new_id, now, IdPrefix};

pub use signing::{sign, verify, TOLERANCE_SECS};
pub use worker::WebhookWorker;

/// `last_error` of deliveries stopped because their webhook was deleted.
pub const DELETED: &str = "webhook deleted";

/// What a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Event {
    /// A new answer was recorded.
    #[serde(rename = "response.created")]
    ResponseCreated,
    /// An answer was changed (score or comment), within the survey's edit window.
    #[serde(rename = "response.updated")]
    ResponseUpdated,
    /// A follow-up task was opened for an unhappy answer.
    #[serde(rename = "followup.created")]
    FollowupCreated,
    /// A follow-up task changed (status, assignee, score).
    #[serde(rename = "followup.updated")]
    FollowupUpdated,
}

impl Event {
    pub const ALL: [Event; 4] = [
        Event::ResponseCreated,
        Event::ResponseUpdated,
        Event::FollowupCreated,
        Event::FollowupUpdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::ResponseCreated => "response.created",
            Event::ResponseUpdated => "response.updated",
            Event::FollowupCreated => "followup.created",
            Event::FollowupUpdated => "followup.updated",
        }
    }

    pub fn parse(raw: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == raw)
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Queues `event` with `data` for every live webhook subscribed to it, inside the caller's
/// transaction. Each delivery gets its own id and payload
/// `{"id": "dlv_…", "event": "…", "created_at": "…", "data": …}`. With no subscriber this is
/// one small query and no write.
pub fn enqueue(conn: &mut DbConnection, event: Event, data: Value) -> Result<usize, ApiError> {
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
                "created_at": crate::api::utc(t),
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

/// Queues `response.created` or `response.updated` for a recorded answer. The data is the
/// response as `GET /api/v1/responses/{id}` shows it; updates add `previous_score`. An update
/// that changed neither the score nor the comment (a double submit) sends nothing.
pub fn enqueue_response(
    conn: &mut DbConnection,
    recorded: &crate::db::responses::Recorded,
) -> Result<usize, ApiError> {
    use crate::db::responses::Recorded;
    let view = |row: &crate::db::models::ResponseRow| {
        serde_json::to_value(crate::api::responses::Response::from(row.clone()))
            .map_err(ApiError::internal)
    };
    match recorded {
        Recorded::Created(row) => enqueue(conn, Event::ResponseCreated, view(row)?),
        Recorded::Updated { before, after } => {
            if before.score == after.score && before.comment == after.comment {
                return Ok(0);
            }
            let mut data = view(after)?;
            if let Value::Object(map) = &mut data {
                map.insert("previous_score".into(), json!(before.score));
            }
            enqueue(conn, Event::ResponseUpdated, data)
        }
    }
}

/// Queues `followup.created` / `followup.updated` for a task (data: the task as the API
/// shows it, plus `change`: what happened, e.g. `status_changed`, `assigned`, `note`).
pub fn enqueue_followup(
    conn: &mut DbConnection,
    created: bool,
    task: &crate::db::models::FollowupRow,
    change: &str,
) -> Result<usize, ApiError> {
    let mut data = serde_json::to_value(crate::api::followups::Followup::from(task.clone()))
        .map_err(ApiError::internal)?;
    if let Value::Object(map) = &mut data {
        map.insert("change".into(), json!(change));
    }
    let event = if created {
        Event::FollowupCreated
    } else {
        Event::FollowupUpdated
    };
    enqueue(conn, event, data)
}
