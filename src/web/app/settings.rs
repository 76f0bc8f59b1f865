//! `/app/settings` (admins only): API keys (create — the key is shown once —, revoke, when
//! each was last used) and webhooks (create — the secret is shown once —, change URL, events
//! and active, the delivery log with each attempt, send a test event, redeliver). The same
//! store queries and use cases as `/api/v1/api-keys` and `/api/v1/webhooks`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::page::{html, see_other, Layout, PageError};
use super::task::{when, When};
use super::Signed;
use crate::context::AppState;
use crate::domain::{now, Event, IdPrefix, Page, Role};
use crate::store::api_keys;
use crate::store::webhooks::{self as hooks, DeliveryFilter, WebhookRow};
use crate::webhooks::{self, WebhookUpdate};

/// Keys and webhooks listed on the settings page (newest first).
const LIST_MAX: i64 = 100;
/// Deliveries shown on a webhook's page (newest first).
const DELIVERIES_MAX: i64 = 50;

/// Registers the settings pages' routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/app/settings", web::get().to(show))
        .route("/app/settings/keys", web::post().to(create_key))
        .route(
            "/app/settings/keys/{id}/revoke",
            web::get().to(revoke_confirm),
        )
        .route("/app/settings/keys/{id}/revoke", web::post().to(revoke_key))
        .route("/app/settings/webhooks", web::post().to(create_webhook))
        .route("/app/settings/webhooks/{id}", web::get().to(webhook_page))
        .route(
            "/app/settings/webhooks/{id}",
            web::post().to(update_webhook),
        )
        .route(
            "/app/settings/webhooks/{id}/rotate-secret",
            web::post().to(rotate_secret),
        )
        .route(
            "/app/settings/webhooks/{id}/test",
            web::post().to(test_webhook),
        )
        .route(
            "/app/settings/webhooks/{id}/deliveries/{delivery}/redeliver",
            web::post().to(redeliver),
        );
}

// ------------------------------------------------------------------ the settings page

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub prefix: String,
    pub created: When,
    pub last_used: Option<When>,
    pub revoked: Option<When>,
}

pub struct HookRow {
    pub href: String,
    pub url: String,
    pub events: String,
    pub active: bool,
    pub created: When,
}

/// An event as a checkbox.
pub struct EventBox {
    pub name: &'static str,
    pub id: String,
    pub checked: bool,
}

fn event_boxes(prefix: &str, checked: &[Event]) -> Vec<EventBox> {
    Event::ALL
        .iter()
        .map(|e| EventBox {
            name: e.as_str(),
            id: format!("{prefix}-{}", e.as_str().replace('.', "-")),
            checked: checked.contains(e),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "app/settings.html")]
struct SettingsPage {
    l: Layout,
    csrf: String,
    keys: Vec<KeyRow>,
    hooks: Vec<HookRow>,
    /// More keys or webhooks than listed (the API lists them all).
    keys_more: bool,
    hooks_more: bool,
    roles: [&'static str; 3],
    notice: Option<String>,
    key_error: Option<String>,
    key_name: String,
    key_role: String,
    hook_error: Option<String>,
    hook_url: String,
    hook_events: Vec<EventBox>,
}

#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

fn notice_of(raw: Option<&str>) -> Option<String> {
    raw.map(|n| n.chars().filter(|c| !c.is_control()).take(200).collect())
}

fn with_notice(path: &str, text: &str) -> String {
    format!(
        "{path}?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("notice", text)
            .finish()
    )
}

fn event_names(row: &WebhookRow) -> String {
    row.event_list()
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a re-shown settings page keeps of a refused form.
#[derive(Default)]
struct Refused {
    key_error: Option<String>,
    key_name: String,
    key_role: Option<String>,
    hook_error: Option<String>,
    hook_url: String,
    hook_events: Vec<Event>,
}

async fn settings_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    notice: Option<String>,
    refused: Refused,
) -> Result<HttpResponse, PageError> {
    let page = Page {
        limit: LIST_MAX,
        cursor: None,
    };
    let p = page.clone();
    let (keys, hook_rows) = state
        .db
        .run(move |conn| Ok((api_keys::list(conn, &p)?, hooks::list(conn, &p)?)))
        .await?;
    let at = now();
    let keys_more = keys.len() as i64 > LIST_MAX;
    let hooks_more = hook_rows.len() as i64 > LIST_MAX;
    let keys = keys
        .into_iter()
        .take(LIST_MAX as usize)
        .map(|k| KeyRow {
            created: when(k.created_at, at),
            last_used: k.last_used_at.map(|t| when(t, at)),
            revoked: k.revoked_at.map(|t| when(t, at)),
            id: k.id,
            name: k.name,
            role: k.role,
            prefix: k.key_prefix,
        })
        .collect();
    let hooks = hook_rows
        .into_iter()
        .take(LIST_MAX as usize)
        .map(|h| HookRow {
            href: format!("/app/settings/webhooks/{}", h.id),
            events: event_names(&h),
            active: h.live(),
            created: when(h.created_at, at),
            url: h.url,
        })
        .collect();
    Ok(html(
        status,
        SettingsPage {
            l: Layout::signed("Settings", signed, "settings"),
            csrf: signed.csrf().to_string(),
            keys,
            hooks,
            keys_more,
            hooks_more,
            roles: ["reader", "agent", "admin"],
            notice,
            key_error: refused.key_error,
            key_name: refused.key_name,
            key_role: refused.key_role.unwrap_or_else(|| "reader".into()),
            hook_error: refused.hook_error,
            hook_url: refused.hook_url,
            hook_events: event_boxes("new", &refused.hook_events),
        }
        .render(),
    ))
}

/// `GET /app/settings`.
pub async fn show(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    signed.require(Role::Admin)?;
    settings_page(
        &state,
        &signed,
        StatusCode::OK,
        notice_of(query.notice.as_deref()),
        Refused::default(),
    )
    .await
}

// ------------------------------------------------------------------ API keys

#[derive(Debug, Default, Deserialize)]
pub struct KeyForm {
    csrf_token: Option<String>,
    name: Option<String>,
    role: Option<String>,
}

#[derive(Template)]
#[template(path = "app/secret.html")]
struct SecretPage {
    l: Layout,
    heading: String,
    /// What the secret is, in a sentence.
    what: String,
    label: &'static str,
    secret: String,
    usage: String,
    back: String,
    back_text: &'static str,
}

/// `POST /app/settings/keys`: creates a key and shows it, once.
pub async fn create_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    form: web::Form<KeyForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    let form = form.into_inner();
    let name = form.name.unwrap_or_default().trim().to_string();
    let role_raw = form.role.unwrap_or_default();
    let role = Role::parse(&role_raw);
    let problem = if name.is_empty() {
        Some("Give the key a name: what is it for?")
    } else if name.chars().count() > 100 || name.chars().any(char::is_control) {
        Some("The name must be one line of at most 100 characters.")
    } else if role.is_none() {
        Some("Choose a role: reader, agent or admin.")
    } else {
        None
    };
    let (Some(role), None) = (role, problem) else {
        return settings_page(
            &state,
            &signed,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Refused {
                key_error: problem.map(str::to_string),
                key_name: name,
                key_role: Some(role_raw),
                ..Default::default()
            },
        )
        .await;
    };
    let n = name.clone();
    let (row, key) = state
        .db
        .write(move |conn| api_keys::create(conn, &n, role))
        .await?;
    tracing::info!(key = %row.id, role = %row.role, by = %signed.member().id, "api key created in the workspace");
    Ok(html(
        StatusCode::CREATED,
        SecretPage {
            l: Layout::signed("API key created", &signed, "settings"),
            heading: format!("API key “{name}” created"),
            what: format!(
                "{} {} key. Copy it now and store it somewhere safe: it is shown only this once, and only its hash is kept.",
                if row.role.starts_with(['a', 'e', 'i', 'o', 'u']) { "An" } else { "A" },
                row.role
            ),
            label: "API key",
            secret: key,
            usage: "Send it as Authorization: Bearer <key> with every /api/v1 request.".into(),
            back: "/app/settings".into(),
            back_text: "Back to settings",
        }
        .render(),
    ))
}

#[derive(Template)]
#[template(path = "app/revoke_key.html")]
struct RevokePage {
    l: Layout,
    csrf: String,
    id: String,
    name: String,
    role: String,
    prefix: String,
}

fn check_key_id(id: &str) -> Result<(), PageError> {
    if IdPrefix::ApiKey.matches(id) {
        Ok(())
    } else {
        Err(PageError::NotFound("API key"))
    }
}

/// `GET /app/settings/keys/{id}/revoke`: asks first.
pub async fn revoke_confirm(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    signed.require(Role::Admin)?;
    let id = id.into_inner();
    check_key_id(&id)?;
    let i = id.clone();
    let row = state
        .db
        .run(move |conn| api_keys::get(conn, &i))
        .await?
        .ok_or(PageError::NotFound("API key"))?;
    if row.revoked_at.is_some() {
        return Ok(see_other(&with_notice(
            "/app/settings",
            &format!("The key “{}” is already revoked.", row.name),
        )));
    }
    Ok(html(
        StatusCode::OK,
        RevokePage {
            l: Layout::signed("Revoke an API key", &signed, "settings"),
            csrf: signed.csrf().to_string(),
            id: row.id,
            name: row.name,
            role: row.role,
            prefix: row.key_prefix,
        }
        .render(),
    ))
}

/// `POST /app/settings/keys/{id}/revoke`.
pub async fn revoke_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<KeyForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    let id = id.into_inner();
    check_key_id(&id)?;
    let by = signed.member().id.clone();
    let i = id.clone();
    let row = state
        .db
        .write(move |conn| api_keys::revoke(conn, &i, &by))
        .await?
        .ok_or(PageError::NotFound("API key"))?;
    tracing::info!(key = %id, by = %signed.member().id, "api key revoked in the workspace");
    Ok(see_other(&with_notice(
        "/app/settings",
        &format!("The key “{}” is revoked: it no longer works.", row.name),
    )))
}

// ------------------------------------------------------------------ webhooks

/// A webhook form: `url`, `events` (repeated), `active`, `csrf_token`. Repeated fields do
/// not fit `web::Form`, so the body is read as pairs.
#[derive(Debug, Default)]
struct HookForm {
    csrf_token: Option<String>,
    url: Option<String>,
    events: Vec<Event>,
    unknown_event: bool,
    active: bool,
}

fn hook_form(body: &[u8]) -> HookForm {
    let mut f = HookForm::default();
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "csrf_token" => f.csrf_token = Some(v.into_owned()),
            "url" => f.url = Some(v.trim().to_string()),
            "active" => f.active = v == "true" || v == "on",
            "events" => match Event::parse(&v) {
                Some(e) if !f.events.contains(&e) => f.events.push(e),
                Some(_) => {}
                None => f.unknown_event = true,
            },
            _ => {}
        }
    }
    f
}

/// What is wrong with a webhook form's URL and events, in a sentence (a URL the SSRF guard
/// refuses included).
async fn hook_problem(state: &AppState, f: &HookForm) -> Option<String> {
    let url = f.url.as_deref().unwrap_or_default();
    if url.is_empty() {
        return Some("Enter the URL to send events to.".into());
    }
    if let Err(why) = webhooks::check_url(url) {
        return Some(format!("The URL {why}."));
    }
    if let Err(why) = webhooks::guard::check_target(url, state.settings.webhook_allow_private).await
    {
        return Some(format!("The URL {why}."));
    }
    if f.unknown_event {
        return Some("Choose events from the list.".into());
    }
    if f.events.is_empty() {
        return Some("Choose at least one event.".into());
    }
    None
}

/// `POST /app/settings/webhooks`: creates a webhook and shows its secret, once.
pub async fn create_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let f = hook_form(&body);
    signed.check_csrf(&req, f.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    if let Some(problem) = hook_problem(&state, &f).await {
        return settings_page(
            &state,
            &signed,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Refused {
                hook_error: Some(problem),
                hook_url: f.url.unwrap_or_default(),
                hook_events: f.events,
                ..Default::default()
            },
        )
        .await;
    }
    let row = webhooks::create(&state, f.url.as_deref().unwrap_or_default(), &f.events).await?;
    tracing::info!(webhook = %row.id, by = %signed.member().id, "webhook created in the workspace");
    Ok(html(
        StatusCode::CREATED,
        SecretPage {
            l: Layout::signed("Webhook created", &signed, "settings"),
            heading: "Webhook created".into(),
            what: format!(
                "Events ({}) go to {}. Copy the signing secret now: it is shown only this once.",
                event_names(&row),
                row.url
            ),
            label: "Signing secret",
            secret: row.secret.clone(),
            usage: SIGNING_USAGE.into(),
            back: format!("/app/settings/webhooks/{}", row.id),
            back_text: "Go to the webhook",
        }
        .render(),
    ))
}

/// How a receiver checks a request, under a shown secret.
const SIGNING_USAGE: &str = "Requests follow Standard Webhooks v1: verify the webhook-id, webhook-timestamp and webhook-signature headers with this secret (any Standard Webhooks library does it) before trusting the body.";

pub struct AttemptItem {
    pub at: When,
    pub code: Option<i32>,
    pub error: Option<String>,
    pub ms: i32,
}

pub struct DeliveryItem {
    pub id: String,
    pub event: String,
    pub status: String,
    /// `good`, `bad` or `mid`.
    pub tone: &'static str,
    pub created: When,
    pub next: Option<When>,
    pub attempts: Vec<AttemptItem>,
    pub can_redeliver: bool,
}

#[derive(Template)]
#[template(path = "app/webhook.html")]
struct WebhookPage {
    l: Layout,
    csrf: String,
    id: String,
    url: String,
    active: bool,
    /// Why the service turned the webhook off, if it did.
    disabled_reason: Option<String>,
    /// Until when the previous secret still signs, during a rotation's overlap.
    previous_until: Option<When>,
    /// How long an old secret signs after a rotation, in words (`None`: not at all).
    overlap: Option<String>,
    events: Vec<EventBox>,
    deliveries: Vec<DeliveryItem>,
    more: bool,
    notice: Option<String>,
    error: Option<String>,
}

fn check_hook_id(id: &str) -> Result<(), PageError> {
    if IdPrefix::Webhook.matches(id) {
        Ok(())
    } else {
        Err(PageError::NotFound("webhook"))
    }
}

fn delivery_tone(status: &str) -> &'static str {
    match status {
        "delivered" => "good",
        "failed" => "bad",
        _ => "mid",
    }
}

async fn hook_page(
    state: &AppState,
    signed: &Signed,
    id: &str,
    status: StatusCode,
    notice: Option<String>,
    refused: Option<(String, HookForm)>,
) -> Result<HttpResponse, PageError> {
    let i = id.to_string();
    let page = Page {
        limit: DELIVERIES_MAX,
        cursor: None,
    };
    let (row, deliveries) = state
        .db
        .run(move |conn| {
            let row = hooks::get(conn, &i)?;
            let d = hooks::deliveries(conn, &i, &DeliveryFilter::default(), &page)?;
            Ok((row, d))
        })
        .await?;
    let at = now();
    let more = deliveries.len() as i64 > DELIVERIES_MAX;
    let live = row.live();
    let deliveries = deliveries
        .into_iter()
        .take(DELIVERIES_MAX as usize)
        .map(|(d, attempts)| DeliveryItem {
            tone: delivery_tone(&d.status),
            created: when(d.created_at, at),
            next: (d.status == "pending").then(|| when(d.next_attempt_at, at)),
            attempts: attempts
                .into_iter()
                .map(|a| AttemptItem {
                    at: when(a.attempted_at, at),
                    code: a.status_code,
                    error: a.error,
                    ms: a.duration_ms,
                })
                .collect(),
            can_redeliver: live && d.status != "delivering",
            id: d.id,
            event: d.event,
            status: d.status,
        })
        .collect();
    let (error, url, checked, active) = match refused {
        Some((e, f)) => (Some(e), f.url.unwrap_or_default(), f.events, f.active),
        None => (None, row.url.clone(), row.event_list(), live),
    };
    Ok(html(
        status,
        WebhookPage {
            l: Layout::signed("Webhook", signed, "settings"),
            csrf: signed.csrf().to_string(),
            previous_until: row
                .previous_secret_expires_at
                .filter(|t| *t > at)
                .map(|t| when(t, at)),
            disabled_reason: row.disabled_reason,
            overlap: match state.settings.webhook_rotation_overlap_hours {
                0 => None,
                24 => Some("a day".into()),
                1 => Some("an hour".into()),
                h => Some(format!("{h} hours")),
            },
            id: row.id,
            url,
            active,
            events: event_boxes("ev", &checked),
            deliveries,
            more,
            notice,
            error,
        }
        .render(),
    ))
}

/// `GET /app/settings/webhooks/{id}`: settings and the delivery log.
pub async fn webhook_page(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    signed.require(Role::Admin)?;
    check_hook_id(&id)?;
    hook_page(
        &state,
        &signed,
        &id,
        StatusCode::OK,
        notice_of(query.notice.as_deref()),
        None,
    )
    .await
}

/// `POST /app/settings/webhooks/{id}`: URL, events and active.
pub async fn update_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let f = hook_form(&body);
    signed.check_csrf(&req, f.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    check_hook_id(&id)?;
    if let Some(problem) = hook_problem(&state, &f).await {
        return hook_page(
            &state,
            &signed,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some((problem, f)),
        )
        .await;
    }
    webhooks::update(
        &state,
        &id,
        WebhookUpdate {
            url: f.url,
            events: Some(f.events),
            active: Some(f.active),
        },
    )
    .await?;
    Ok(see_other(&with_notice(
        &format!("/app/settings/webhooks/{id}"),
        "Saved.",
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    csrf_token: Option<String>,
}

/// `POST /app/settings/webhooks/{id}/test`: queues a `webhook.test` event now.
pub async fn test_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    check_hook_id(&id)?;
    let d = webhooks::send_test(&state, &id).await?;
    Ok(see_other(&with_notice(
        &format!("/app/settings/webhooks/{id}"),
        &format!(
            "A test event is on its way ({}). Reload to see the attempt.",
            d.id
        ),
    )))
}

/// `POST /app/settings/webhooks/{id}/rotate-secret`: a new signing secret, shown once; the
/// old one keeps signing beside it for `WEBHOOK_ROTATION_OVERLAP_HOURS`.
pub async fn rotate_secret(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    check_hook_id(&id)?;
    let row = webhooks::rotate_secret(&state, &id).await?;
    tracing::info!(webhook = %row.id, by = %signed.member().id, "webhook secret rotated in the workspace");
    let until = row
        .previous_secret_expires_at
        .map(|t| when(t, now()).abs)
        .unwrap_or_default();
    Ok(html(
        StatusCode::OK,
        SecretPage {
            l: Layout::signed("Secret rotated", &signed, "settings"),
            heading: "New signing secret".into(),
            what: format!(
                "Requests to {} are now signed with this secret, and with the previous one too until {until}. Copy it now and give it to the receiver: it is shown only this once.",
                row.url
            ),
            label: "Signing secret",
            secret: row.secret,
            usage: SIGNING_USAGE.into(),
            back: format!("/app/settings/webhooks/{}", row.id),
            back_text: "Back to the webhook",
        }
        .render(),
    ))
}

/// `POST /app/settings/webhooks/{id}/deliveries/{delivery}/redeliver`.
pub async fn redeliver(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    let (id, delivery) = path.into_inner();
    check_hook_id(&id)?;
    if !IdPrefix::Delivery.matches(&delivery) {
        return Err(PageError::NotFound("delivery"));
    }
    webhooks::redeliver(&state, &id, &delivery).await?;
    Ok(see_other(&with_notice(
        &format!("/app/settings/webhooks/{id}"),
        &format!("Delivery {delivery} is sent again. Reload to see the attempt."),
    )))
}
