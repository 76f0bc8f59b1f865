//! Signed webhooks with a durable outbox.
//!
//! Code that changes something other apps care about calls [`enqueue`] inside its own
//! transaction: one `webhook_deliveries` row is written per live webhook subscribed to the
//! event, so an event is queued exactly when the change commits, and a crash loses nothing.
//! The [`WebhookWorker`] claims due deliveries (with a lease, and `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL), POSTs them signed as Standard Webhooks v1 says (see [`signing`]), logs every
//! attempt in `webhook_attempts` and retries transient failures (honouring `Retry-After`).
//!
//! Secrets: `whsec_` + standard padded base64 of 32 random bytes, stored as they are (a
//! deployment's own database holds them, like the SMTP password), because the service must sign
//! with them. Secrets made before Standard Webhooks were the same 32 bytes in URL-safe unpadded
//! base64; migration `2026-11-27-000011_webhook_standard` re-encoded them in the standard
//! alphabet, so their key bytes did not change. [`rotate_secret`] replaces a secret; the
//! previous one keeps signing beside it for `WEBHOOK_ROTATION_OVERLAP_HOURS` (24).
//!
//! After committing a transaction that enqueued, call `AppState::wake_webhooks.notify_one()`
//! so the worker sends at once; otherwise it finds the delivery on its next poll
//! (`DISPATCH_INTERVAL_MS`).

pub mod guard;
pub mod payload;
pub mod signing;
pub mod slack;
pub mod worker;

use diesel::Connection;
use serde_json::{json, Value};

use crate::config::Settings;
use crate::context::AppState;
use crate::domain::{new_id, now, IdPrefix};
use crate::error::AppError;
use crate::store::models::{FollowupRow, ResponseRow};
use crate::store::webhooks as store;
use crate::store::DbConnection;

pub use signing::{new_secret, secret_key, sign, signature_header, verify, TOLERANCE_SECS};
pub use worker::WebhookWorker;

pub use crate::domain::Event;
pub use crate::store::webhooks::DELETED;

/// `last_error` of deliveries whose turn came while their webhook was paused.
pub const INACTIVE: &str = "webhook inactive";

/// The event of a delivery sent by [`send_test`]: not a subscription, sent to one webhook on
/// request, through the normal outbox (signed, logged, retried).
pub const TEST_EVENT: &str = "webhook.test";

/// Queues `event` with `data` for every live webhook subscribed to it, inside the caller's
/// transaction. Each delivery gets its own id (its `webhook-id` header) and the payload
/// `{"type": "…", "timestamp": "<RFC 3339>", "data": …}`. With no subscriber this is one small
/// query and no write.
pub fn enqueue(conn: &mut DbConnection, event: Event, data: Value) -> Result<usize, AppError> {
    enqueue_about(conn, event, data, None)
}

/// [`enqueue`] for an event whose data carries contact `contact_id`'s personal data: the
/// deliveries remember the contact, so erasing it scrubs them ([`scrub_contact`]).
pub fn enqueue_about(
    conn: &mut DbConnection,
    event: Event,
    data: Value,
    contact_id: Option<&str>,
) -> Result<usize, AppError> {
    let hooks = store::subscribers(conn, event)?;
    deliver_to(conn, &hooks, event, &data, contact_id)
}

/// Queues `event` with `data` for `hooks` (its subscribers, already read: callers that build
/// a payload only when someone listens read them once, not twice).
fn deliver_to(
    conn: &mut DbConnection,
    hooks: &[store::WebhookRow],
    event: Event,
    data: &Value,
    contact_id: Option<&str>,
) -> Result<usize, AppError> {
    if hooks.is_empty() {
        return Ok(0);
    }
    let t = now();
    let rows: Vec<store::DeliveryRow> = hooks
        .iter()
        .map(|hook| delivery_row(hook.id.clone(), event.as_str(), data, t, contact_id))
        .collect();
    store::insert_deliveries(conn, &rows)?;
    Ok(rows.len())
}

/// Serialises an event's data.
fn to_data(data: &impl serde::Serialize) -> Result<Value, AppError> {
    serde_json::to_value(data).map_err(AppError::internal)
}

/// A new pending delivery of `event` with `data` to webhook `webhook_id`, due at `t`.
fn delivery_row(
    webhook_id: String,
    event: &str,
    data: &Value,
    t: chrono::NaiveDateTime,
    contact_id: Option<&str>,
) -> store::DeliveryRow {
    let id = new_id(IdPrefix::Delivery);
    let payload = json!({
        "type": event,
        "timestamp": crate::domain::utc(t),
        "data": data,
    });
    store::DeliveryRow {
        id,
        webhook_id: Some(webhook_id),
        event: event.into(),
        payload: payload.to_string(),
        status: "pending".into(),
        attempts: 0,
        next_attempt_at: t,
        claimed_until: None,
        last_status_code: None,
        last_error: None,
        delivered_at: None,
        created_at: t,
        contact_id: contact_id.map(str::to_string),
    }
}

/// Queues `response.created` (no `before`) or `response.updated` for a recorded answer. The
/// data is the response as `GET /api/v1/responses/{id}` shows it, with its `contact` and
/// `survey` ([`payload::ResponseEvent`]); updates add `previous_score`. An update that
/// changed neither the score nor the comment (a double submit) sends nothing.
pub fn enqueue_response(
    conn: &mut DbConnection,
    before: Option<&ResponseRow>,
    after: &ResponseRow,
) -> Result<usize, AppError> {
    let event = match before {
        None => Event::ResponseCreated,
        Some(b) if b.score == after.score && b.comment == after.comment => return Ok(0),
        Some(_) => Event::ResponseUpdated,
    };
    let hooks = store::subscribers(conn, event)?;
    if hooks.is_empty() {
        return Ok(0);
    }
    let data = payload::response_event(conn, after, before.map(|b| b.score))?;
    deliver_to(
        conn,
        &hooks,
        event,
        &to_data(&data)?,
        after.contact_id.as_deref(),
    )
}

/// Queues `followup.created` (`created`) or `followup.updated` for a task (data: the task as
/// the API shows it with `change`, `actor`, `note`, `contact`, `survey` and `url`, see
/// [`payload::FollowupEvent`]). When the change closed the task (`previous_status` open or in
/// progress, the task now `resolved` or `dismissed`), `followup.resolved` is queued too,
/// with the same data.
pub fn enqueue_followup(
    conn: &mut DbConnection,
    created: bool,
    previous_status: &str,
    task: &FollowupRow,
    how: payload::TaskChange<'_>,
) -> Result<usize, AppError> {
    let closed = crate::store::followups::OPEN_STATUSES.contains(&previous_status)
        && crate::store::followups::CLOSED_STATUSES.contains(&task.status.as_str());
    let first = if created {
        Event::FollowupCreated
    } else {
        Event::FollowupUpdated
    };
    let mut events = vec![first];
    if closed && !created {
        events.push(Event::FollowupResolved);
    }
    let mut wanted = Vec::new();
    for e in events {
        let hooks = store::subscribers(conn, e)?;
        if !hooks.is_empty() {
            wanted.push((e, hooks));
        }
    }
    if wanted.is_empty() {
        return Ok(0);
    }
    let data = to_data(&payload::followup_event(conn, task, how)?)?;
    let mut n = 0;
    for (e, hooks) in wanted {
        n += deliver_to(conn, &hooks, e, &data, task.contact_id.as_deref())?;
    }
    Ok(n)
}

/// Queues `contact.unsubscribed` for a contact that was just unsubscribed (call it only when
/// the unsubscribe changed something). `invitation` is the invitation whose unsubscribe link
/// was used, if any. Erased contacts send nothing.
pub fn enqueue_unsubscribed(
    conn: &mut DbConnection,
    contact_id: &str,
    actor: &str,
    invitation: Option<&crate::store::models::InvitationRow>,
) -> Result<usize, AppError> {
    let hooks = store::subscribers(conn, Event::ContactUnsubscribed)?;
    if hooks.is_empty() {
        return Ok(0);
    }
    let Some(row) = crate::store::contacts::find_any(conn, contact_id)? else {
        return Ok(0);
    };
    if row.erased_at.is_some() {
        return Ok(0);
    }
    let via = if invitation.is_some() {
        "unsubscribe_page"
    } else if actor.starts_with("api-key:") {
        "api"
    } else {
        "workspace"
    };
    let survey = match invitation {
        Some(inv) => Some(payload::survey(conn, &inv.survey_id)?),
        None => None,
    };
    let data = payload::ContactUnsubscribedEvent {
        contact: payload::ContactContext::from(&row),
        unsubscribed_at: crate::domain::utc(row.unsubscribed_at.unwrap_or_else(now)),
        via: via.into(),
        actor: actor.into(),
        invitation_id: invitation.map(|i| i.id.clone()),
        survey,
    };
    deliver_to(
        conn,
        &hooks,
        Event::ContactUnsubscribed,
        &to_data(&data)?,
        Some(contact_id),
    )
}

/// Queues `invitation.failed` for an email invitation that just failed for good with `error`.
pub fn enqueue_invitation_failed(
    conn: &mut DbConnection,
    invitation: &crate::store::models::InvitationRow,
    error: &str,
) -> Result<usize, AppError> {
    let hooks = store::subscribers(conn, Event::InvitationFailed)?;
    if hooks.is_empty() {
        return Ok(0);
    }
    let data = payload::invitation_failed_event(conn, invitation, error, now())?;
    deliver_to(
        conn,
        &hooks,
        Event::InvitationFailed,
        &to_data(&data)?,
        Some(&invitation.contact_id),
    )
}

/// Takes an erased contact's personal data out of every delivery about them (queued, sent
/// or failed), inside the erase transaction: see [`payload`] for what is scrubbed. Returns
/// how many payloads changed.
pub fn scrub_contact(conn: &mut DbConnection, contact_id: &str) -> Result<usize, AppError> {
    let mut n = 0;
    for (id, body) in store::deliveries_about_contact(conn, contact_id)? {
        if let Some(clean) = payload::scrubbed(&body, contact_id) {
            store::set_payload(conn, &id, &clean)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Tasks claimed per overdue scan transaction.
pub const OVERDUE_BATCH: i64 = 100;

/// Queues `followup.overdue` once for each open task that passed its due time and has not
/// had it yet, [`OVERDUE_BATCH`] at a time; returns how many tasks were claimed. Each task is
/// claimed by a conditional update in the transaction that queues its event, so replicas
/// scanning at the same time send it exactly once. The scan reads an index over pending
/// tasks keyed by due time: O(rows due). Tasks that become overdue while no webhook
/// subscribes are marked too (the event is not sent later).
pub fn queue_overdue(
    conn: &mut DbConnection,
    public_url: &str,
    t: chrono::NaiveDateTime,
) -> Result<usize, AppError> {
    let mut claimed = 0;
    loop {
        let ids = crate::store::followups::overdue_pending(conn, t, OVERDUE_BATCH)?;
        let found = ids.len();
        claimed += conn.transaction(|conn| {
            // Read once per batch, in the batch's transaction.
            let hooks = store::subscribers(conn, Event::FollowupOverdue)?;
            let mut n = 0;
            for id in &ids {
                if !crate::store::followups::claim_overdue(conn, id, t)? {
                    continue;
                }
                n += 1;
                if hooks.is_empty() {
                    continue;
                }
                let task = crate::store::followups::get(conn, id)?;
                let how = payload::TaskChange {
                    change: "overdue",
                    actor: "system",
                    note: None,
                    public_url,
                };
                let data = to_data(&payload::followup_event(conn, &task, how)?)?;
                deliver_to(
                    conn,
                    &hooks,
                    Event::FollowupOverdue,
                    &data,
                    task.contact_id.as_deref(),
                )?;
            }
            Ok::<_, AppError>(n)
        })?;
        if (found as i64) < OVERDUE_BATCH {
            return Ok(claimed);
        }
    }
}

/// Checks a URL about to be saved with the SSRF guard ([`guard::check_target`], unless
/// `WEBHOOK_ALLOW_PRIVATE`): a 422 on `field` saying where it points.
pub async fn check_target(settings: &Settings, field: &str, url: &str) -> Result<(), AppError> {
    guard::check_target(url, settings.webhook_allow_private)
        .await
        .map_err(|why| AppError::field(field, why))
}

/// Creates a webhook for `events` at `url`, with a new signing secret (shown once). A URL the
/// SSRF guard refuses is a 422 on `url`.
pub async fn create(
    state: &AppState,
    url: &str,
    events: &[Event],
) -> Result<store::WebhookRow, AppError> {
    check_target(&state.settings, "url", url).await?;
    let names: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
    let row = store::WebhookRow {
        id: new_id(IdPrefix::Webhook),
        url: url.trim().to_string(),
        secret: new_secret(),
        events: serde_json::to_string(&names).map_err(AppError::internal)?,
        active: true,
        created_at: now(),
        deleted_at: None,
        previous_secret: None,
        previous_secret_expires_at: None,
        failing_since: None,
        disabled_reason: None,
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

/// Longest accepted webhook URL.
pub const MAX_URL_CHARS: usize = 2000;

/// Checks a webhook URL (for every front door): an absolute `http://` or `https://` URL of
/// at most [`MAX_URL_CHARS`] characters with a host name or IPv4 address, an optional port
/// and printable ASCII after it. The error says what is wrong.
pub fn check_url(value: &str) -> Result<(), &'static str> {
    if value.chars().count() > MAX_URL_CHARS {
        return Err("must be at most 2000 characters long");
    }
    if !url_shape(value) {
        return Err(
            "must be an http:// or https:// URL with a host name or IPv4 address, an optional \
port, and printable ASCII after it (percent-encode anything else)",
        );
    }
    match url::Url::parse(value.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err("must be an absolute http:// or https:// URL with a host"),
        Err(_) => Err("is not a valid URL; use an absolute http:// or https:// URL"),
    }
}

/// The shape the OpenAPI document states for a webhook URL:
/// `^https?://(IPV4|([A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*)(:PORT)?([/?#][!-~]*)?$`, where PORT
/// is 0 to 65535 (up to 4 digits with leading zeros, or 5 without).
fn url_shape(value: &str) -> bool {
    let Some(rest) = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
    else {
        return false;
    };
    let host_end = rest.find([':', '/', '?', '#']).unwrap_or(rest.len());
    let (host, mut tail) = rest.split_at(host_end);
    let ipv4 = {
        let parts: Vec<&str> = host.split('.').collect();
        parts.len() == 4
            && parts.iter().all(|p| {
                (1..=3).contains(&p.len())
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && (p.len() == 1 || !p.starts_with('0'))
                    && p.parse::<u16>().is_ok_and(|n| n <= 255)
            })
    };
    let domain = {
        let labels: Vec<&str> = host.split('.').collect();
        labels
            .iter()
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            && labels
                .last()
                .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()))
    };
    if !(ipv4 || domain) {
        return false;
    }
    if let Some(port_and_more) = tail.strip_prefix(':') {
        let digits = port_and_more.bytes().take_while(u8::is_ascii_digit).count();
        let port = &port_and_more[..digits];
        let fits = match digits {
            1..=4 => true,
            5 => !port.starts_with('0') && port.parse::<u32>().is_ok_and(|p| p <= 65535),
            _ => false,
        };
        if !fits {
            return false;
        }
        tail = &port_and_more[digits..];
    }
    tail.is_empty()
        || (tail.starts_with(['/', '?', '#']) && tail.bytes().all(|b| (b'!'..=b'~').contains(&b)))
}

/// What may change on a webhook (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct WebhookUpdate {
    pub url: Option<String>,
    pub events: Option<Vec<Event>>,
    pub active: Option<bool>,
}

/// Changes a webhook's URL, events or active flag (the secret stays). An inactive webhook
/// gets no new deliveries; its queued ones fail ([`INACTIVE`]) when their turn comes. 404 when it does not
/// exist or was deleted.
pub async fn update(
    state: &AppState,
    id: &str,
    change: WebhookUpdate,
) -> Result<store::WebhookRow, AppError> {
    if let Some(url) = &change.url {
        check_target(&state.settings, "url", url).await?;
    }
    let changes = store::WebhookChanges {
        url: change.url.map(|u| u.trim().to_string()),
        events: match &change.events {
            Some(events) => Some(
                serde_json::to_string(&events.iter().map(|e| e.as_str()).collect::<Vec<_>>())
                    .map_err(AppError::internal)?,
            ),
            None => None,
        },
        active: change.active,
    };
    let id = id.to_string();
    state
        .db
        .write(move |conn| store::update(conn, &id, &changes))
        .await
}

/// Queues a [`TEST_EVENT`] delivery to one active webhook, due now, and wakes the worker: it
/// goes out signed like any event, and its attempts show in the delivery log. 409
/// `webhook_inactive` for an inactive webhook (nothing would be sent).
pub async fn send_test(state: &AppState, id: &str) -> Result<store::DeliveryRow, AppError> {
    let id = id.to_string();
    let row = state
        .db
        .write(move |conn| {
            conn.transaction(|conn| {
                let hook = store::get(conn, &id)?;
                if !hook.live() {
                    return Err(inactive());
                }
                let data = json!({
                    "webhook_id": hook.id,
                    "message": "A test event sent from Closeloop. No action is needed.",
                });
                let row = delivery_row(hook.id.clone(), TEST_EVENT, &data, now(), None);
                store::insert_deliveries(conn, std::slice::from_ref(&row))?;
                Ok(row)
            })
        })
        .await?;
    state.wake_webhooks.notify_one();
    Ok(row)
}

/// Sends a delivery of an active webhook again, now, with the same id and payload (receivers
/// deduplicate by it): one new attempt, added to its log. Retries after it follow the usual
/// backoff while attempts remain (`WEBHOOK_MAX_ATTEMPTS`); past that, a failed redelivery
/// stays failed. 404 for an unknown webhook or delivery, 409 `webhook_inactive`, 409
/// `delivery_in_flight` while an attempt is under way.
pub async fn redeliver(
    state: &AppState,
    webhook_id: &str,
    delivery_id: &str,
) -> Result<(store::DeliveryRow, Vec<store::AttemptRow>), AppError> {
    let (hook_id, id) = (webhook_id.to_string(), delivery_id.to_string());
    let row = state
        .db
        .write(move |conn| {
            conn.transaction(|conn| {
                let hook = store::get(conn, &hook_id)?;
                // The delivery first: an unknown one is a 404 whatever the webhook's state.
                store::delivery(conn, &hook_id, &id)?;
                if !hook.live() {
                    return Err(inactive());
                }
                store::requeue(conn, &hook_id, &id)?;
                store::delivery_with_attempts(conn, &hook_id, &id)
            })
        })
        .await?;
    state.wake_webhooks.notify_one();
    Ok(row)
}

/// Gives a webhook a new secret (returned here, once). The old one keeps signing beside it,
/// in the same `webhook-signature` header, for `WEBHOOK_ROTATION_OVERLAP_HOURS`, so receivers
/// can switch without losing a delivery. Works on paused webhooks too; 404 for an unknown or
/// deleted one.
pub async fn rotate_secret(state: &AppState, id: &str) -> Result<store::WebhookRow, AppError> {
    let id = id.to_string();
    let until =
        now() + chrono::TimeDelta::hours(state.settings.webhook_rotation_overlap_hours as i64);
    let secret = new_secret();
    state
        .db
        .write(move |conn| store::rotate_secret(conn, &id, &secret, until))
        .await
}

/// Emails every active admin that the service disabled `hook` (its `disabled_reason`), inside
/// the caller's transaction (the outbox sends it).
pub fn queue_disabled_email(
    conn: &mut DbConnection,
    hook: &store::WebhookRow,
    settings: &Settings,
) -> Result<usize, AppError> {
    let admins = crate::store::users::active_admin_emails(conn)?;
    let page = format!(
        "{}/app/settings/webhooks/{}",
        settings.public_url.as_str().trim_end_matches('/'),
        hook.id
    );
    let target = display_url(&hook.url);
    let reason = hook.disabled_reason.as_deref().unwrap_or("it kept failing");
    let subject = format!("Webhook disabled: {target}");
    let text = format!(
        "Closeloop turned off the webhook {id} to {target}: {reason}.\n\n\
Nothing more is sent to it. Fix the endpoint, then turn the webhook on again (and redeliver \
what it missed) at {page}\n",
        id = hook.id,
    );
    let esc = crate::email::message::escape_html;
    let html = crate::email::message::team_page(
        &subject,
        &format!(
            "<p style=\"margin:0 0 12px\">Closeloop turned off the webhook {id} to <strong>{target}</strong>: {reason}.</p>\
<p style=\"margin:0 0 12px\">Nothing more is sent to it. Fix the endpoint, then turn the webhook on again (and redeliver what it missed):</p>\
<p style=\"margin:0\"><a href=\"{page}\">{page}</a></p>",
            id = esc(&hook.id),
            target = esc(&target),
            reason = esc(reason),
            page = esc(&page),
        ),
    );
    for to in &admins {
        crate::store::emails::enqueue(
            conn,
            crate::store::emails::NewEmail {
                kind: "webhook_disabled",
                to,
                subject: &subject,
                body_text: &text,
                in_reply_to: None,
                followup_id: None,
                from_name: Some("Closeloop"),
                reply_to: None,
                body_html: Some(&html),
                send_at: None,
            },
        )?;
    }
    Ok(admins.len())
}

/// A webhook URL fit for an email: no credentials, query or fragment.
fn display_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(an invalid URL)".into(),
    }
}

fn inactive() -> AppError {
    AppError::conflict(
        "webhook_inactive",
        "this webhook is inactive; activate it first (PATCH {\"active\": true})",
    )
}
