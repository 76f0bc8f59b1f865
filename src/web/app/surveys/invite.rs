//! Inviting contacts from the browser: paste addresses or upload a CSV, see what the API
//! would answer for each row (nothing is made), confirm once; the survey's send queue with
//! "Retry" for failed sends.
//!
//! Bounds: at most [`MAX_ROWS`] contacts and [`MAX_BYTES`] of upload, enforced while the
//! upload is read. The confirmation carries a one-time key, so submitting it twice invites
//! once.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::super::page::{html, see_other, Layout, PageError};
use super::super::Signed;
use super::load;
use crate::context::AppState;
use crate::domain::{new_secret, now, Role};
use crate::error::AppError;
use crate::invitations::{self, InvitationBatch, InviteRequest};
use crate::store::invitations::Channel;
use crate::store::models::SurveyRow;
use crate::web::api::contacts::ContactFields;
use crate::web::api::invitations::check_contacts;

/// Most contacts one invite takes.
pub const MAX_ROWS: usize = 10_000;
/// [`MAX_ROWS`] as people read it.
const MAX_ROWS_TEXT: &str = "10,000";
/// Most bytes one upload (pasted text and file together) may have.
pub const MAX_BYTES: usize = 5 * 1024 * 1024;
/// Rows the preview lists (the summary counts them all).
const SHOWN_ROWS: usize = 1000;
/// Failed sends the queue page lists.
const FAILED_SHOWN: i64 = 200;

#[derive(Template)]
#[template(path = "app/surveys_invite.html")]
struct InvitePage {
    l: Layout,
    csrf: String,
    id: String,
    name: String,
    addresses: String,
    error: Option<String>,
    max_rows: &'static str,
}

fn invite_page(
    signed: &Signed,
    status: StatusCode,
    survey: &SurveyRow,
    addresses: String,
    error: Option<String>,
) -> HttpResponse {
    let page = InvitePage {
        l: Layout::signed(&format!("Invite to {}", survey.name), signed, "surveys"),
        csrf: signed.csrf().to_string(),
        id: survey.id.clone(),
        name: survey.name.clone(),
        addresses,
        error,
        max_rows: MAX_ROWS_TEXT,
    };
    html(status, page.render())
}

/// `GET /app/surveys/{id}/invite`
pub async fn form(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    signed.require(Role::Admin)?;
    let survey = load(&state, &id).await?;
    Ok(invite_page(
        &signed,
        StatusCode::OK,
        &survey,
        String::new(),
        None,
    ))
}

/// What an upload held.
#[derive(Default)]
struct Upload {
    csrf_token: Option<String>,
    addresses: String,
    csv: Vec<u8>,
}

enum ReadError {
    TooBig,
    Bad(String),
}

/// Reads the multipart form, counting every byte as it arrives: past [`MAX_BYTES`] it stops
/// reading and answers `TooBig`.
async fn read_upload(mut payload: Multipart) -> Result<Upload, ReadError> {
    let mut up = Upload::default();
    let mut total = 0usize;
    loop {
        let field = match payload.try_next().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(ReadError::Bad(format!("The upload could not be read: {e}"))),
        };
        let mut field = field;
        let name = field.name().unwrap_or_default().to_string();
        let mut bytes = Vec::new();
        loop {
            match field.try_next().await {
                Ok(Some(chunk)) => {
                    total += chunk.len();
                    if total > MAX_BYTES {
                        return Err(ReadError::TooBig);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(ReadError::Bad(format!("The upload could not be read: {e}"))),
            }
        }
        let text = || String::from_utf8(bytes.clone());
        match name.as_str() {
            "csrf_token" => up.csrf_token = text().ok(),
            "addresses" => {
                up.addresses = text().map_err(|_| {
                    ReadError::Bad("The pasted addresses are not valid text (UTF-8).".into())
                })?
            }
            "csv" => up.csv = bytes,
            _ => {}
        }
    }
    Ok(up)
}

/// One pasted line: `Name <email>` or `email`.
fn pasted(line: &str) -> ContactFields {
    let line = line.trim();
    let (name, email) = match (line.rfind('<'), line.ends_with('>')) {
        (Some(open), true) => {
            let name = line[..open].trim().trim_matches('"').trim();
            (
                (!name.is_empty()).then(|| name.to_string()),
                line[open + 1..line.len() - 1].trim().to_string(),
            )
        }
        _ => (None, line.to_string()),
    };
    ContactFields {
        email: Some(email),
        name,
        external_id: None,
        properties: None,
    }
}

/// A CSV cell as a property value: a JSON number stays a number (so `value` ranks
/// follow-ups), anything else is text.
fn cell_value(cell: &str) -> Value {
    match serde_json::from_str::<serde_json::Number>(cell) {
        Ok(n) => Value::Number(n),
        Err(_) => Value::String(cell.to_string()),
    }
}

/// The contacts of a CSV with a header row: `email`, `name`, `external_id`, and any other
/// column becomes a property.
fn csv_contacts(data: &[u8], out: &mut Vec<ContactFields>) -> Result<(), String> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(data);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("The CSV could not be read: {e}"))?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    if !headers.iter().any(|h| h == "email") {
        return Err(
            "The CSV needs a header row naming its columns, with an email column: email,name,external_id (any other column becomes a property)."
                .into(),
        );
    }
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("Row {} of the CSV: {e}", i + 2))?;
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if out.len() >= MAX_ROWS {
            return Err(too_many_rows());
        }
        let mut c = ContactFields {
            email: None,
            name: None,
            external_id: None,
            properties: None,
        };
        let mut props = Map::new();
        for (h, cell) in headers.iter().zip(record.iter()) {
            if cell.is_empty() {
                continue;
            }
            match h.as_str() {
                "email" => c.email = Some(cell.to_string()),
                "name" => c.name = Some(cell.to_string()),
                "external_id" => c.external_id = Some(cell.to_string()),
                "" => {}
                other => {
                    props.insert(other.to_string(), cell_value(cell));
                }
            }
        }
        c.properties = (!props.is_empty()).then_some(props);
        out.push(c);
    }
    Ok(())
}

fn too_many_rows() -> String {
    format!(
        "That is more than {MAX_ROWS_TEXT} contacts: at most {MAX_ROWS_TEXT} can be invited at once. Nothing was checked or queued; split the list and invite each part."
    )
}

/// The contacts of a paste and a CSV, in that order.
fn contacts_of(up: &Upload) -> Result<Vec<ContactFields>, String> {
    let mut out = Vec::new();
    for line in up.addresses.lines().filter(|l| !l.trim().is_empty()) {
        if out.len() >= MAX_ROWS {
            return Err(too_many_rows());
        }
        out.push(pasted(line));
    }
    if !up.csv.is_empty() {
        csv_contacts(&up.csv, &mut out)?;
    }
    if out.is_empty() {
        return Err("Paste at least one address or choose a CSV file.".into());
    }
    Ok(out)
}

/// The invite request for `contacts` (email channel, now), as the API builds it.
fn request(survey_id: &str, contacts: &[ContactFields], once: Option<String>) -> InviteRequest {
    let (inputs, displayed) = check_contacts(Channel::Email, contacts);
    InviteRequest {
        survey_id: survey_id.to_string(),
        channel: Channel::Email,
        send_at: now(),
        inputs,
        displayed,
        request_hash: String::new(),
        idempotency: None,
        once,
    }
}

/// One row of the preview.
pub struct PreviewRow {
    pub line: usize,
    pub email: String,
    pub status: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "app/surveys_invite_preview.html")]
struct PreviewPage {
    l: Layout,
    csrf: String,
    id: String,
    name: String,
    batch_json: String,
    key: String,
    total: usize,
    scheduled: usize,
    suppressed: usize,
    rejected: usize,
    rows: Vec<PreviewRow>,
    hidden_rows: usize,
}

/// A reason code in words.
fn reason_text(reason: &str, message: Option<&str>) -> String {
    let words = match reason {
        "unsubscribed" => "unsubscribed",
        "throttled" => "throttled: surveyed recently",
        "no_email" => "no email address",
        "invalid_contact" => "invalid",
        "duplicate_in_batch" => "duplicate: appears earlier in the list",
        "contact_conflict" => "conflict with another contact",
        "survey_archived" => "the survey is archived",
        other => other,
    };
    match message {
        Some(m) if reason == "invalid_contact" || reason == "contact_conflict" => {
            format!("{words}: {m}")
        }
        _ => words.to_string(),
    }
}

/// `POST /app/surveys/{id}/invite` (multipart): the preview of what inviting would do,
/// row by row, with nothing made.
pub async fn check(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    payload: Multipart,
) -> Result<HttpResponse, PageError> {
    super::super::same_origin(&req)?;
    let up = match read_upload(payload).await {
        Ok(up) => up,
        Err(e) => {
            let survey = load(&state, &id).await?;
            signed.require(Role::Admin)?;
            let (status, message) = match e {
                ReadError::TooBig => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "The upload is larger than {} MB: nothing was checked or queued. Split the list and invite each part.",
                        MAX_BYTES / (1024 * 1024)
                    ),
                ),
                ReadError::Bad(m) => (StatusCode::BAD_REQUEST, m),
            };
            return Ok(invite_page(
                &signed,
                status,
                &survey,
                String::new(),
                Some(message),
            ));
        }
    };
    signed.check_csrf(&req, up.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    let survey = load(&state, &id).await?;
    let contacts = match contacts_of(&up) {
        Ok(c) => c,
        Err(message) => {
            let status = if message.starts_with("That is more than") {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let kept = if up.addresses.len() <= 100_000 {
                up.addresses
            } else {
                String::new()
            };
            return Ok(invite_page(&signed, status, &survey, kept, Some(message)));
        }
    };
    let batch = invitations::preview(&state, request(&survey.id, &contacts, None)).await?;
    let batch_json = serde_json::to_string(&contacts).map_err(AppError::internal)?;
    Ok(preview_page(&signed, &survey, batch, batch_json))
}

fn preview_page(
    signed: &Signed,
    survey: &SurveyRow,
    batch: InvitationBatch,
    batch_json: String,
) -> HttpResponse {
    let total = batch.items.len();
    let rows: Vec<PreviewRow> = batch
        .items
        .into_iter()
        .enumerate()
        .take(SHOWN_ROWS)
        .map(|(i, item)| PreviewRow {
            line: i + 1,
            email: item
                .email
                .or(item.external_id)
                .unwrap_or_else(|| "(none)".into()),
            reason: item
                .reason
                .as_deref()
                .map(|r| reason_text(r, item.message.as_deref()))
                .unwrap_or_default(),
            status: item.status,
        })
        .collect();
    let page = PreviewPage {
        l: Layout::signed(
            &format!("Invite to {}: check", survey.name),
            signed,
            "surveys",
        ),
        csrf: signed.csrf().to_string(),
        id: survey.id.clone(),
        name: survey.name.clone(),
        batch_json,
        key: new_secret(""),
        hidden_rows: total.saturating_sub(rows.len()),
        total,
        scheduled: batch.summary.scheduled,
        suppressed: batch.summary.suppressed,
        rejected: batch.summary.rejected,
        rows,
    };
    html(StatusCode::OK, page.render())
}

#[derive(Debug, Default, Deserialize)]
pub struct ConfirmForm {
    csrf_token: Option<String>,
    /// The checked contacts (JSON), as the preview page carries them.
    batch: Option<String>,
    /// The preview's one-time key.
    key: Option<String>,
}

/// The form limit of the confirmation (the contacts of a full upload, as JSON).
pub const CONFIRM_LIMIT: usize = 4 * MAX_BYTES;

/// `POST /app/surveys/{id}/invite/confirm`: invites the previewed contacts, once per key.
pub async fn confirm(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<ConfirmForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    let survey = load(&state, &id).await?;
    let key = form
        .key
        .as_deref()
        .filter(|k| crate::domain::is_secret(k))
        .ok_or_else(|| {
            PageError::BadRequest(
                "This confirmation has no valid key; check the list again.".into(),
            )
        })?;
    let contacts: Vec<ContactFields> = serde_json::from_str(form.batch.as_deref().unwrap_or(""))
        .map_err(|_| {
            PageError::BadRequest("The list to invite could not be read; check it again.".into())
        })?;
    if contacts.is_empty() || contacts.len() > MAX_ROWS {
        return Err(PageError::BadRequest(too_many_rows()));
    }
    let once = format!("{}:{key}", survey.id);
    let queue = format!("/app/surveys/{}/queue", survey.id);
    match invitations::invite(&state, request(&survey.id, &contacts, Some(once))).await {
        Ok(_) => Ok(see_other(&format!("{queue}?notice=invited"))),
        Err(AppError::Conflict { .. }) => Ok(see_other(&format!("{queue}?notice=already"))),
        Err(e) => Err(e.into()),
    }
}

/// A status and its count on the queue page.
pub struct StatusCount {
    pub status: &'static str,
    pub n: i64,
}

/// A failed send.
pub struct Failed {
    pub id: String,
    pub email: String,
    pub attempts: i32,
    pub error: String,
    pub when: String,
}

#[derive(Template)]
#[template(path = "app/surveys_queue.html")]
struct QueuePage {
    l: Layout,
    csrf: String,
    is_admin: bool,
    id: String,
    name: String,
    counts: Vec<StatusCount>,
    failed: Vec<Failed>,
    failed_total: i64,
    notice: Option<&'static str>,
}

/// Every invitation status, in the order of their life.
const STATUSES: [&str; 8] = [
    "scheduled",
    "sending",
    "sent",
    "responded",
    "suppressed",
    "failed",
    "cancelled",
    "expired",
];

#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    notice: Option<String>,
}

/// `GET /app/surveys/{id}/queue`: invitations per status, and the failed sends with their
/// last error.
pub async fn queue(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    query: web::Query<QueueQuery>,
) -> Result<HttpResponse, PageError> {
    let survey = load(&state, &id).await?;
    let sid = survey.id.clone();
    let (counts, failed) = state
        .db
        .run(move |conn| {
            Ok((
                crate::store::invitations::count_by_status_of(conn, &sid)?,
                crate::store::invitations::failed_of(conn, &sid, FAILED_SHOWN)?,
            ))
        })
        .await?;
    let count = |s: &str| {
        counts
            .iter()
            .find(|(k, _)| k == s)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    let page = QueuePage {
        l: Layout::signed(
            &format!("Send queue of {}", survey.name),
            &signed,
            "surveys",
        ),
        csrf: signed.csrf().to_string(),
        is_admin: signed.can(Role::Admin),
        failed_total: count("failed"),
        counts: STATUSES
            .iter()
            .map(|s| StatusCount {
                status: s,
                n: count(s),
            })
            .collect(),
        failed: failed
            .into_iter()
            .map(|(inv, email)| Failed {
                email: email.unwrap_or_else(|| "(erased)".into()),
                attempts: inv.attempts,
                error: inv.last_error.unwrap_or_default(),
                when: inv.updated_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                id: inv.id,
            })
            .collect(),
        id: survey.id,
        name: survey.name,
        notice: super::notice_text(query.notice.as_deref()),
    };
    Ok(html(StatusCode::OK, page.render()))
}

#[derive(Debug, Default, Deserialize)]
pub struct RetryForm {
    csrf_token: Option<String>,
}

/// `POST /app/invitations/{id}/retry`: puts a failed send back in the queue (the API's
/// use case).
pub async fn retry(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<RetryForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    let id = id.into_inner();
    if !crate::domain::IdPrefix::Invitation.matches(&id) {
        return Err(PageError::NotFound("invitation"));
    }
    let row = invitations::retry(&state, id).await?;
    Ok(see_other(&format!(
        "/app/surveys/{}/queue?notice=retried",
        row.survey_id
    )))
}
