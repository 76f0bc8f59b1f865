//! `/api/v1/webhooks`: subscribe other apps to events, and inspect the delivery log.
//!
//! Every endpoint is admin only: a webhook URL may embed credentials, its secret signs the
//! requests, and the delivery log holds customer answers.

use std::collections::HashSet;

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use validator::{Validate, ValidationError};

use super::extract::{check_id, paginate, Caller, PageParams, ValidJson};
use super::query::{enum_name, Query};
use super::utc;
use crate::context::AppState;
use crate::domain::{IdPrefix, Role};
use crate::error::AppError;
use crate::store::webhooks::{self as store, AttemptRow, DeliveryFilter, DeliveryRow, WebhookRow};
use crate::webhooks::{self, Event, WebhookUpdate};

fn http_url(value: &str) -> Result<(), ValidationError> {
    webhooks::check_url(value).map_err(|message| {
        let mut e = ValidationError::new("url");
        e.message = Some(message.into());
        e
    })
}

fn distinct_events(events: &[Event]) -> Result<(), ValidationError> {
    let mut e = ValidationError::new("events");
    if events.is_empty() {
        e.message = Some("must name at least one event".into());
        return Err(e);
    }
    let mut seen = HashSet::new();
    if let Some(dup) = events.iter().find(|ev| !seen.insert(**ev)) {
        e.message = Some(format!("lists {dup} more than once").into());
        return Err(e);
    }
    Ok(())
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://crm.example.com/hooks/closeloop", "events": ["response.created", "followup.created"]}))]
pub struct CreateWebhook {
    /// Where to POST events: an absolute `http://` or `https://` URL (at most 2000
    /// characters) with a host name or IPv4 address, an optional port and printable ASCII
    /// after it (percent-encode anything else). Redirects are not followed.
    #[validate(custom(function = "http_url"))]
    #[schema(
        max_length = 2000,
        pattern = "^https?://((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}|([A-Za-z0-9-]+\\.)*[A-Za-z][A-Za-z0-9-]*)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?([/?#][!-~]*)?$"
    )]
    pub url: String,
    /// One or more distinct events.
    #[validate(custom(function = "distinct_events"))]
    #[schema(min_items = 1)]
    pub events: Vec<Event>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    #[schema(example = "whk_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")]
    pub id: String,
    pub url: String,
    pub events: Vec<Event>,
    /// Whether events are delivered (deleted webhooks disappear from the API).
    pub active: bool,
    /// Why Closeloop turned the webhook off, when it did: the endpoint answered 410 Gone, or
    /// every delivery failed for `WEBHOOK_DISABLE_AFTER_HOURS` (the admins were emailed).
    /// Absent when active or paused by an admin; cleared when it is turned on again.
    #[schema(example = "the endpoint answered 410 Gone")]
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<WebhookRow> for Webhook {
    fn from(row: WebhookRow) -> Self {
        Webhook {
            events: row.event_list(),
            active: row.live(),
            disabled_reason: row.disabled_reason,
            id: row.id,
            url: row.url,
            created_at: utc(row.created_at),
        }
    }
}

/// A new webhook with its signing secret, which is shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[schema(example = "whk_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")]
    pub id: String,
    pub url: String,
    pub events: Vec<Event>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    /// The Standard Webhooks signing secret: `whsec_` + standard base64 of 32 random bytes
    /// (the HMAC key). Any Standard Webhooks library verifies requests with it. Store it now:
    /// it is not shown again.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwEXAMPLEkeyA=")]
    pub secret: String,
}

/// A webhook's new secret, shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    #[schema(example = "whk_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")]
    pub id: String,
    /// The new signing secret (`whsec_…`). Store it now: it is not shown again.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwEXAMPLEkeyA=")]
    pub secret: String,
    /// Until when the previous secret keeps signing too (`webhook-signature` lists both).
    pub previous_secret_expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<Webhook>,
    pub next_cursor: Option<String>,
}

/// One HTTP request of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAttempt {
    pub attempted_at: DateTime<Utc>,
    /// The receiver's HTTP status, absent when no answer came (timeout, connection error).
    pub status_code: Option<i32>,
    /// What went wrong, absent on success: the status and the start of the answer's body, or
    /// the transport error.
    pub error: Option<String>,
    pub duration_ms: i32,
}

impl From<AttemptRow> for DeliveryAttempt {
    fn from(a: AttemptRow) -> Self {
        DeliveryAttempt {
            attempted_at: utc(a.attempted_at),
            status_code: a.status_code,
            error: a.error,
            duration_ms: a.duration_ms,
        }
    }
}

/// One event sent to one webhook, with every attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    /// Also the `webhook-id` header, the same on every retry and redelivery: receivers
    /// deduplicate by it.
    #[schema(example = "dlv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")]
    pub id: String,
    pub webhook_id: String,
    /// The event: one of the subscribable events, or `webhook.test` for a test event.
    #[schema(example = "response.created")]
    pub event: String,
    /// `pending` (queued or waiting to retry), `delivering` (in flight), `delivered` (2xx) or
    /// `failed` (a non-retryable answer, attempts exhausted, or the webhook was deleted).
    #[schema(example = "delivered")]
    pub status: String,
    /// Attempts made so far.
    pub attempt_count: i32,
    /// Every HTTP attempt, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The JSON body sent: `{type, timestamp, data}`.
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl Delivery {
    pub fn from_rows(d: DeliveryRow, attempts: Vec<AttemptRow>) -> Delivery {
        Delivery {
            next_attempt_at: (d.status == "pending").then(|| utc(d.next_attempt_at)),
            payload: serde_json::from_str(&d.payload).unwrap_or(Value::String(d.payload)),
            attempt_count: d.attempts,
            attempts: attempts.into_iter().map(DeliveryAttempt::from).collect(),
            id: d.id,
            webhook_id: d.webhook_id.unwrap_or_default(),
            event: d.event,
            status: d.status,
            delivered_at: d.delivered_at.map(utc),
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            created_at: utc(d.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<Delivery>,
    pub next_cursor: Option<String>,
}

/// Create a webhook
///
/// Closeloop POSTs each subscribed event to `url` as a Standard Webhooks v1 message
/// (standardwebhooks.com): the JSON body `{"type": "response.created", "timestamp": "<RFC
/// 3339>", "data": {…}}` with the headers `webhook-id` (the delivery id, the same on every
/// retry: deduplicate by it), `webhook-timestamp` (Unix seconds of the attempt) and
/// `webhook-signature: v1,<base64 HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>`,
/// the key being the base64-decoded `secret` after `whsec_`; any Standard Webhooks library
/// verifies it. A 2xx answer is success. Timeouts, connection errors, 408, 429 and 5xx are
/// retried, after the answer's `Retry-After` (at most a day) or with exponential backoff;
/// 410 Gone disables the webhook; other answers (3xx: redirects are not followed, 4xx) fail
/// the delivery at once. A webhook whose every delivery has failed for 5 days
/// (`WEBHOOK_DISABLE_AFTER_HOURS`) is disabled and the admins are emailed. The `secret` is
/// returned only here (see `POST /webhooks/{id}/rotate-secret`).
#[utoipa::path(
    operation_id = "create_webhook",
    tag = "webhooks",
    request_body = CreateWebhook,
    responses((status = 201, description = "Webhook created; `secret` is shown only now", body = CreatedWebhook))
)]
#[post("/webhooks")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: ValidJson<CreateWebhook>,
) -> Result<HttpResponse, AppError> {
    caller.require(Role::Admin)?;
    let b = body.0;
    let row = webhooks::create(&state, &b.url, &b.events).await?;
    Ok(HttpResponse::Created().json(CreatedWebhook {
        id: row.id,
        url: row.url,
        events: b.events,
        active: true,
        created_at: utc(row.created_at),
        secret: row.secret,
    }))
}

/// List webhooks
///
/// Deleted webhooks are not listed. Secrets are never shown again.
#[utoipa::path(
    operation_id = "list_webhooks",
    tag = "webhooks",
    params(WebhookQuery),
    responses((status = 200, description = "Webhooks, newest first", body = WebhookList))
)]
#[get("/webhooks")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<WebhookQuery>,
) -> Result<web::Json<WebhookList>, AppError> {
    caller.require(Role::Admin)?;
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .check(IdPrefix::Webhook)?;
    let p = page.clone();
    let rows = state.db.run(move |conn| store::list(conn, &p)).await?;
    let (rows, next_cursor) = paginate(rows, &page, |r| &r.id);
    Ok(web::Json(WebhookList {
        items: rows.into_iter().map(Webhook::from).collect(),
        next_cursor,
    }))
}

/// Get a webhook
#[utoipa::path(
    operation_id = "get_webhook",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id", pattern = "^whk_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 200, description = "The webhook", body = Webhook),
        (status = 404, description = "No such webhook (or it was deleted)", body = crate::web::error::ErrorBody)
    )
)]
#[get("/webhooks/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<Webhook>, AppError> {
    caller.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Webhook, "webhook")?;
    let row = state.db.run(move |conn| store::get(conn, &id)).await?;
    Ok(web::Json(row.into()))
}

/// Delete a webhook
///
/// Nothing more is sent to it: its queued deliveries are marked `failed` with
/// `last_error` "webhook deleted". Its delivery log stays readable.
#[utoipa::path(
    operation_id = "delete_webhook",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id", pattern = "^whk_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such webhook (or already deleted)", body = crate::web::error::ErrorBody)
    )
)]
#[delete("/webhooks/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    caller.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Webhook, "webhook")?;
    webhooks::delete(&state, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A delivery's state.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivering,
    Delivered,
    Failed,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    #[param(inline)]
    pub status: Option<DeliveryStatus>,
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^dlv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookQuery {
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^whk_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub cursor: Option<String>,
}

/// List a webhook's deliveries
///
/// Newest first, each with its attempts. Also works for a deleted webhook.
#[utoipa::path(
    operation_id = "list_webhook_deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id", pattern = "^whk_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"), DeliveryQuery),
    responses(
        (status = 200, description = "Deliveries, newest first", body = DeliveryList),
        (status = 404, description = "No such webhook", body = crate::web::error::ErrorBody)
    )
)]
#[get("/webhooks/{id}/deliveries")]
pub async fn deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: Query<DeliveryQuery>,
) -> Result<web::Json<DeliveryList>, AppError> {
    caller.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Webhook, "webhook")?;
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .check(IdPrefix::Delivery)?;
    let filter = DeliveryFilter {
        status: q.status.map(|s| enum_name(&s)),
    };
    let p = page.clone();
    let rows = state
        .db
        .run(move |conn| {
            store::get_any(conn, &id)?;
            store::deliveries(conn, &id, &filter, &p)
        })
        .await?;
    let (rows, next_cursor) = paginate(rows, &page, |(d, _)| &d.id);
    Ok(web::Json(DeliveryList {
        items: rows
            .into_iter()
            .map(|(d, a)| Delivery::from_rows(d, a))
            .collect(),
        next_cursor,
    }))
}

/// What `PATCH /webhooks/{id}` changes; absent fields stay as they are.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"events": ["response.created", "followup.created", "followup.updated"], "active": true}))]
pub struct UpdateWebhook {
    /// The new URL, with the same rules as on creation.
    #[validate(custom(function = "http_url"))]
    #[schema(
        max_length = 2000,
        pattern = "^https?://((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}|([A-Za-z0-9-]+\\.)*[A-Za-z][A-Za-z0-9-]*)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?([/?#][!-~]*)?$"
    )]
    pub url: Option<String>,
    /// The full new list of events (replaces the old one): one or more distinct events.
    #[validate(custom(function = "distinct_events"))]
    #[schema(min_items = 1)]
    pub events: Option<Vec<Event>>,
    /// `false` pauses the webhook: no new deliveries are queued, and queued ones fail with
    /// "webhook inactive" when their turn comes (redeliver them after resuming). `true`
    /// resumes it.
    pub active: Option<bool>,
}

/// Change a webhook
///
/// Changes its URL, its events or whether it is active; the secret stays the same. An empty
/// body changes nothing.
#[utoipa::path(
    operation_id = "update_webhook",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id", pattern = "^whk_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The webhook after the change", body = Webhook),
        (status = 404, description = "No such webhook (or it was deleted)", body = crate::web::error::ErrorBody),
        (status = 422, description = "An invalid URL, or an empty or repeated event list", body = crate::web::error::ErrorBody,
            example = json!({"error": {"code": "validation_failed", "message": "invalid fields", "fields": {"events": ["must name at least one event"]}}}))
    )
)]
#[patch("/webhooks/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<UpdateWebhook>,
) -> Result<web::Json<Webhook>, AppError> {
    caller.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Webhook, "webhook")?;
    let b = body.0;
    let row = webhooks::update(
        &state,
        &id,
        WebhookUpdate {
            url: b.url,
            events: b.events,
            active: b.active,
        },
    )
    .await?;
    Ok(web::Json(row.into()))
}

/// Send a test event
///
/// Queues a `webhook.test` event to this webhook, due now, through the normal delivery outbox:
/// it is signed like every event, retried on transient failures and logged with its attempts
/// (`GET /webhooks/{id}/deliveries`). The payload's `data` is
/// `{"webhook_id": "whk_…", "message": "…"}`. Answers the queued delivery; its attempts follow.
#[utoipa::path(
    operation_id = "test_webhook",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id", pattern = "^whk_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 202, description = "The test delivery, queued", body = Delivery),
        (status = 404, description = "No such webhook (or it was deleted)", body = crate::web::error::ErrorBody),
        (status = 409, description = "The webhook is inactive (`webhook_inactive`)", body = crate::web::error::ErrorBody,
            example = json!({"error": {"code": "webhook_inactive", "message": "this webhook is inactive; activate it first (PATCH {\"active\": true})"}}))
    )
)]
#[post("/webhooks/{id}/test")]
pub async fn test(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    caller.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Webhook, "webhook")?;
    let row = webhooks::send_test(&state, &id).await?;
    Ok(HttpResponse::Accepted().json(Delivery::from_rows(row, Vec::new())))
}

/// Redeliver a delivery
///
/// Sends a delivery again, now, with the same id and payload (receivers deduplicate by
/// `webhook-id`): the new attempt is added to its log. Works on delivered and failed
/// deliveries, and makes a pending one due at once. Retries after it follow the usual backoff
/// while attempts remain (`WEBHOOK_MAX_ATTEMPTS`).
#[utoipa::path(
    operation_id = "redeliver_webhook_delivery",
    tag = "webhooks",
    params(
        ("id" = String, Path, description = "Webhook id", pattern = "^whk_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"),
        ("delivery_id" = String, Path, description = "Delivery id", pattern = "^dlv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")
    ),
    responses(
        (status = 202, description = "The delivery, queued again", body = Delivery),
        (status = 404, description = "No such webhook, or no such delivery of it", body = crate::web::error::ErrorBody),
        (status = 409, description = "The webhook is inactive (`webhook_inactive`), or an attempt is under way (`delivery_in_flight`)", body = crate::web::error::ErrorBody,
            example = json!({"error": {"code": "delivery_in_flight", "message": "this delivery is being sent right now; wait for the attempt to finish"}}))
    )
)]
#[post("/webhooks/{id}/deliveries/{delivery_id}/redeliver")]
pub async fn redeliver(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    caller.require(Role::Admin)?;
    let (id, delivery_id) = path.into_inner();
    check_id(&id, IdPrefix::Webhook, "webhook")?;
    check_id(&delivery_id, IdPrefix::Delivery, "delivery")?;
    let (row, attempts) = webhooks::redeliver(&state, &id, &delivery_id).await?;
    Ok(HttpResponse::Accepted().json(Delivery::from_rows(row, attempts)))
}

/// Rotate a webhook's secret
///
/// Gives the webhook a new signing secret, returned only here. The previous secret keeps
/// signing beside it for 24 hours (`WEBHOOK_ROTATION_OVERLAP_HOURS`): during that time
/// `webhook-signature` carries two space-separated entries, `v1,<new> v1,<old>`, and a
/// receiver that still has the old secret keeps verifying. Rotating again during the overlap
/// drops the oldest secret at once. Works on paused webhooks too.
#[utoipa::path(
    operation_id = "rotate_webhook_secret",
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id", pattern = "^whk_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 200, description = "The new secret, shown only now", body = RotatedSecret),
        (status = 404, description = "No such webhook (or it was deleted)", body = crate::web::error::ErrorBody)
    )
)]
#[post("/webhooks/{id}/rotate-secret")]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<RotatedSecret>, AppError> {
    caller.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Webhook, "webhook")?;
    let row = webhooks::rotate_secret(&state, &id).await?;
    Ok(web::Json(RotatedSecret {
        previous_secret_expires_at: utc(row.previous_secret_expires_at.unwrap_or(row.created_at)),
        id: row.id,
        secret: row.secret,
    }))
}
