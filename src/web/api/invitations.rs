//! Invitations: batch creation (email or link), list, get, cancel, retry.

use std::collections::HashSet;

use actix_web::http::header::HeaderName;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::contacts::ContactFields;
use super::extract::{check_id, paginate, Caller, PageParams, ValidJson};
use super::query::{check_filter_id, enum_name, Query};
use super::surveys::link;
use super::utc;
use crate::context::AppState;
use crate::domain::{now, IdPrefix, Role};
use crate::error::AppError;
use crate::invitations::{self, InviteRequest, Invited};
pub use crate::invitations::{BatchSummary, InvitationBatch, InvitationItem};
use crate::store::contacts::ContactInput;
use crate::store::invitations::{Channel, InvitationFilter};
use crate::store::models::InvitationRow;

pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChannelName {
    /// Closeloop emails the survey.
    Email,
    /// You hand the returned link out yourself; the invitation counts as sent at once.
    Link,
}

#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"channel": "email", "contacts": [{"email": "ada@example.com", "name": "Ada", "properties": {"plan": "pro", "value": 1200}}, {"email": "grace@example.com"}]}))]
pub struct CreateInvitations {
    pub channel: ChannelName,
    /// When to send (email); default now. At most one year ahead.
    pub send_at: Option<DateTime<Utc>>,
    /// 1 to 1000 contacts, each upserted as by `POST /contacts`. Each is checked on its
    /// own: one that `POST /contacts` would refuse, or that repeats an earlier one, comes back
    /// `rejected` with the reason while the others go ahead.
    #[validate(length(min = 1, max = 1000))]
    #[schema(min_items = 1, max_items = 1000, value_type = Vec<BatchContact>)]
    pub contacts: Vec<ContactFields>,
}

/// A contact in an invitation batch: the fields of `POST /contacts`, checked per item (an
/// invalid one is `rejected` in the answer, not the whole request).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct BatchContact {
    email: Option<String>,
    name: Option<String>,
    external_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    properties: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Invitation {
    #[schema(example = "inv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")]
    pub id: String,
    pub survey_id: String,
    pub contact_id: String,
    pub channel: ChannelName,
    /// `scheduled → sending → sent → responded`, or `suppressed`, `failed`, `cancelled`,
    /// `expired`.
    pub status: String,
    /// Why it is suppressed, cancelled or failed.
    pub reason: Option<String>,
    /// Why it was made: `api` (an invitation request) or `resurvey` (sent
    /// `resurvey_after_days` after the customer's follow-up was resolved).
    #[schema(example = "resurvey")]
    pub origin: String,
    pub url: String,
    pub send_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub responded_at: Option<DateTime<Utc>>,
    pub reminder_sent_at: Option<DateTime<Utc>>,
    /// When the customer first opened the survey page (`GET /s/{token}`), answered or not.
    /// Not an answer: mail scanners that open links set it too.
    pub opened_at: Option<DateTime<Utc>>,
    /// Send attempts so far.
    pub attempts: i32,
    /// The last transport error (e.g. the SMTP server's reply).
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    pub items: Vec<Invitation>,
    pub next_cursor: Option<String>,
}

impl Invitation {
    pub fn from_row(row: InvitationRow, base: &url::Url) -> Invitation {
        Invitation {
            url: link(base, "s", &row.token),
            channel: if row.channel == "link" {
                ChannelName::Link
            } else {
                ChannelName::Email
            },
            next_attempt_at: (row.status == "scheduled").then(|| utc(row.next_attempt_at)),
            id: row.id,
            survey_id: row.survey_id,
            contact_id: row.contact_id,
            status: row.status,
            reason: row.reason,
            origin: row.origin,
            send_at: utc(row.send_at),
            sent_at: row.sent_at.map(utc),
            responded_at: row.responded_at.map(utc),
            reminder_sent_at: row.reminder_sent_at.map(utc),
            opened_at: row.opened_at.map(utc),
            attempts: row.attempts,
            last_error: row.last_error,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        }
    }
}

static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Invite contacts to a survey
///
/// Upserts each contact and makes one invitation per contact, reported per item in request
/// order: partial success is normal. Unsubscribed contacts (email) and contacts surveyed
/// within the survey's `throttle_days` get a `suppressed` invitation with the reason; invalid
/// or duplicate entries are `rejected`. With an `Idempotency-Key` header, a retry of the same
/// request returns the first answer instead of inviting again.
#[utoipa::path(
    operation_id = "create_invitations",
    tag = "invitations",
    params(
        ("id" = String, Path, description = "Survey id", pattern = "^srv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"),
        ("Idempotency-Key" = Option<String>, Header, description = "Any unique string of 1 to 255 printable ASCII characters (e.g. a UUID); a retry with the same key and body returns the first answer", pattern = "^[!-~]([ -~]{0,253}[!-~])?$")
    ),
    request_body = CreateInvitations,
    responses(
        (status = 200, description = "One item per contact", body = InvitationBatch),
        (status = 404, description = "No such survey", body = crate::web::error::ErrorBody),
        (status = 409, description = "The Idempotency-Key was used for a different request", body = crate::web::error::ErrorBody)
    )
)]
#[post("/surveys/{id}/invitations")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<CreateInvitations>,
) -> Result<HttpResponse, AppError> {
    caller.require(Role::Admin)?;
    let survey_id = id.into_inner();
    check_id(&survey_id, IdPrefix::Survey, "survey")?;
    let idem_key = match req.headers().get(&IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k)
                if !k.trim().is_empty()
                    && k.len() <= 255
                    && k.bytes().all(|b| (0x20..=0x7e).contains(&b)) =>
            {
                Some(k.trim().to_string())
            }
            _ => {
                return Err(AppError::BadRequest(
                    "Idempotency-Key must be 1 to 255 printable ASCII characters".into(),
                ))
            }
        },
    };
    let request = body.0;
    let t = now();
    let send_at = match request.send_at {
        None => t,
        Some(at) if at.naive_utc() > t + TimeDelta::days(366) => {
            return Err(AppError::field("send_at", "must be at most one year ahead"))
        }
        Some(at) => at.naive_utc().max(t),
    };
    let hash = hex::encode(Sha256::digest(
        format!(
            "{survey_id}\n{}",
            serde_json::to_string(&request).unwrap_or_default()
        )
        .as_bytes(),
    ));
    let channel = match request.channel {
        ChannelName::Email => Channel::Email,
        ChannelName::Link => Channel::Link,
    };
    let (inputs, displayed) = check_contacts(channel, &request.contacts);

    let request = InviteRequest {
        survey_id,
        channel,
        send_at,
        inputs,
        displayed,
        request_hash: hash,
        idempotency: idem_key.map(|k| (caller.key_id.clone(), k)),
        once: None,
    };
    let stored = match invitations::invite(&state, request).await? {
        Invited::Fresh(body) => {
            return Ok(HttpResponse::Ok()
                .content_type("application/json")
                .body(body))
        }
        Invited::Replayed(stored) => stored,
    };
    Ok(HttpResponse::build(
        actix_web::http::StatusCode::from_u16(stored.status)
            .unwrap_or(actix_web::http::StatusCode::OK),
    )
    .content_type("application/json")
    .insert_header(("Idempotent-Replayed", "true"))
    .body(stored.body))
}

/// Checks each contact of a batch on its own (a bad one is rejected with a reason and a
/// message, a repeated one is `duplicate_in_batch`, the others go ahead), and the email and
/// external id of each as given, for the rejected items. Shared by the API and the
/// workspace's invite page.
#[allow(clippy::type_complexity)]
pub fn check_contacts(
    channel: Channel,
    contacts: &[ContactFields],
) -> (
    Vec<Result<ContactInput, (&'static str, String)>>,
    Vec<(Option<String>, Option<String>)>,
) {
    let mut seen_emails = HashSet::new();
    let mut seen_ext = HashSet::new();
    let inputs: Vec<_> = contacts
        .iter()
        .map(|c| {
            let input = c.check().map_err(|problems| {
                let text = problems
                    .iter()
                    .map(|(f, m)| format!("{f}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                ("invalid_contact", text)
            })?;
            if channel == Channel::Email && input.email.is_none() {
                return Err((
                    "invalid_contact",
                    "email: is required for the email channel".to_string(),
                ));
            }
            let dup_email = input
                .email
                .as_ref()
                .is_some_and(|e| !seen_emails.insert(e.as_str().to_string()));
            let dup_ext = input
                .external_id
                .as_ref()
                .is_some_and(|x| !seen_ext.insert(x.clone()));
            if dup_email || dup_ext {
                return Err((
                    "duplicate_in_batch",
                    "this contact appears earlier in the batch".to_string(),
                ));
            }
            Ok(input)
        })
        .collect();
    let displayed = contacts
        .iter()
        .map(|c| {
            (
                c.email.as_ref().map(|e| e.trim().to_lowercase()),
                c.external_id.clone(),
            )
        })
        .collect();
    (inputs, displayed)
}

/// An invitation's state, as a list filter.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    Scheduled,
    Sending,
    Sent,
    Responded,
    Suppressed,
    Failed,
    Cancelled,
    Expired,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvitationQuery {
    #[param(pattern = "^srv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub survey_id: Option<String>,
    #[param(pattern = "^con_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub contact_id: Option<String>,
    #[param(inline)]
    pub status: Option<InvitationStatus>,
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^inv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub cursor: Option<String>,
}

/// List invitations
#[utoipa::path(
    operation_id = "list_invitations",
    tag = "invitations",
    params(InvitationQuery),
    responses((status = 200, description = "Invitations, newest first", body = InvitationList))
)]
#[get("/invitations")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<InvitationQuery>,
) -> Result<web::Json<InvitationList>, AppError> {
    caller.require(Role::Reader)?;
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .check(IdPrefix::Invitation)?;
    check_filter_id(&q.survey_id, "survey_id", IdPrefix::Survey)?;
    check_filter_id(&q.contact_id, "contact_id", IdPrefix::Contact)?;
    let filter = InvitationFilter {
        survey_id: q.survey_id,
        contact_id: q.contact_id,
        status: q.status.map(|s| enum_name(&s)),
    };
    let p = page.clone();
    let rows = state
        .db
        .run_replica(move |conn| crate::store::invitations::list(conn, &filter, &p))
        .await?;
    let (rows, next_cursor) = paginate(rows, &page, |r| &r.id);
    Ok(web::Json(InvitationList {
        items: rows
            .into_iter()
            .map(|r| Invitation::from_row(r, &state.settings.public_url))
            .collect(),
        next_cursor,
    }))
}

/// Get an invitation
#[utoipa::path(
    operation_id = "get_invitation",
    tag = "invitations",
    params(("id" = String, Path, description = "Invitation id", pattern = "^inv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 200, description = "The invitation", body = Invitation),
        (status = 404, description = "No such invitation", body = crate::web::error::ErrorBody)
    )
)]
#[get("/invitations/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<Invitation>, AppError> {
    caller.require(Role::Reader)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Invitation, "invitation")?;
    let row = state
        .db
        .run(move |conn| crate::store::invitations::get(conn, &id))
        .await?;
    Ok(web::Json(Invitation::from_row(
        row,
        &state.settings.public_url,
    )))
}

/// Cancel a scheduled invitation
///
/// Only `scheduled` invitations can be cancelled (409 otherwise); cancelling twice is
/// harmless.
#[utoipa::path(
    operation_id = "cancel_invitation",
    tag = "invitations",
    params(("id" = String, Path, description = "Invitation id", pattern = "^inv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 200, description = "The cancelled invitation", body = Invitation),
        (status = 404, description = "No such invitation", body = crate::web::error::ErrorBody),
        (status = 409, description = "Already sending, sent or done", body = crate::web::error::ErrorBody)
    )
)]
#[post("/invitations/{id}/cancel")]
pub async fn cancel(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<Invitation>, AppError> {
    caller.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Invitation, "invitation")?;
    let row = state
        .db
        .write(move |conn| crate::store::invitations::cancel(conn, &id))
        .await?;
    Ok(web::Json(Invitation::from_row(
        row,
        &state.settings.public_url,
    )))
}

/// Retry a failed or cancelled invitation
///
/// Puts a `failed` or `cancelled` email invitation back in the send queue: it becomes
/// `scheduled`, due now, with its attempts counted from zero. Unsubscribes and throttling
/// are checked again when it is sent. Any other status, and link invitations, answer 409.
#[utoipa::path(
    operation_id = "retry_invitation",
    tag = "invitations",
    params(("id" = String, Path, description = "Invitation id", pattern = "^inv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 200, description = "The invitation, scheduled again", body = Invitation),
        (status = 401, description = "No or unknown API key", body = crate::web::error::ErrorBody),
        (status = 403, description = "Not an admin key", body = crate::web::error::ErrorBody),
        (status = 404, description = "No such invitation", body = crate::web::error::ErrorBody),
        (status = 409, description = "Not failed or cancelled, or a link invitation", body = crate::web::error::ErrorBody)
    )
)]
#[post("/invitations/{id}/retry")]
pub async fn retry(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<Invitation>, AppError> {
    caller.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Invitation, "invitation")?;
    let row = invitations::retry(&state, id).await?;
    Ok(web::Json(Invitation::from_row(
        row,
        &state.settings.public_url,
    )))
}
