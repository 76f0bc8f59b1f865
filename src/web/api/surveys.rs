//! `/api/v1/surveys`: create, list, get, update, archive.

use actix_web::{get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::{Validate, ValidationError};

use super::extract::{check_id, paginate, Caller, PageParams, ValidJson};
use super::query::Query;
use super::{double_int, double_option, no_null, not_blank, opt_int, single_line, some_int, utc};
use crate::context::AppState;
use crate::domain::{new_id, new_secret, now, IdPrefix, Role, SurveyKind, SurveyStatus};
use crate::error::AppError;
use crate::i18n::Locale;
use crate::store::models::{SurveyChanges, SurveyRow};
use crate::store::schema::invitations;
use crate::store::surveys::SurveyFilter;

/// Default days in which a contact is not surveyed again (as Delighted).
pub const DEFAULT_THROTTLE_DAYS: i32 = 30;
/// Default hours in which a customer may change an answer.
pub const DEFAULT_EDIT_WINDOW_HOURS: i32 = 168;

fn placeholders(text: &str) -> Result<(), ValidationError> {
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if name != "brand" && name != "topic" {
            let mut e = ValidationError::new("placeholder");
            e.message =
                Some(format!("unknown placeholder {{{name}}}; use {{brand}} or {{topic}}").into());
            return Err(e);
        }
        rest = &after[end + 1..];
    }
    not_blank(text)
}

fn url_shape(value: &str) -> Result<(), ValidationError> {
    crate::webhooks::check_url(value).map_err(|message| {
        let mut e = ValidationError::new("url");
        e.message = Some(message.into());
        e
    })
}

/// Checks a survey's Slack URL beyond its shape: `https://` unless private addresses are
/// allowed, and through the SSRF guard. A 422 on `slack_webhook_url`.
async fn check_slack_url(state: &AppState, url: &str) -> Result<(), AppError> {
    if let Some(problem) =
        crate::config::slack_url_problem(url, state.settings.webhook_allow_private)
    {
        return Err(AppError::field("slack_webhook_url", problem));
    }
    crate::webhooks::check_target(&state.settings, "slack_webhook_url", url).await
}

fn hex_color(value: &str) -> Result<(), ValidationError> {
    let ok = value.len() == 7
        && value.starts_with('#')
        && value[1..].chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        let mut e = ValidationError::new("color");
        e.message = Some("must be a colour such as #1f6feb".into());
        Err(e)
    }
}

/// At most this many properties in `report_segments`.
pub const MAX_REPORT_SEGMENTS: usize = 10;

/// `report_segments`: at most 10 distinct property names of letters, digits, `_` or `-`.
fn segment_names(names: &[String]) -> Result<(), ValidationError> {
    let fail = |m: String| {
        let mut e = ValidationError::new("report_segments");
        e.message = Some(m.into());
        Err(e)
    };
    if names.len() > MAX_REPORT_SEGMENTS {
        return fail(format!("at most {MAX_REPORT_SEGMENTS} property names"));
    }
    for (i, n) in names.iter().enumerate() {
        let ok = !n.is_empty()
            && n.len() <= 100
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return fail(format!(
                "{n:?} is not a property name of letters, digits, _ or - (1 to 100)"
            ));
        }
        if names[..i].contains(n) {
            return fail(format!("{n:?} is listed twice"));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "nps", "name": "Quarterly NPS", "brand": "Acme", "public_link": true, "report_segments": ["plan"]}))]
pub struct CreateSurvey {
    pub kind: SurveyKind,
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    /// The question; `{brand}` and `{topic}` are filled in. Default per kind and locale.
    #[validate(length(min = 1, max = 500), custom(function = "placeholders"))]
    #[schema(min_length = 1, max_length = 500, pattern = "TEMPLATE_TEXT")]
    pub question: Option<String>,
    /// Asked under the scale. Default: "What is the main reason for your score?"
    #[validate(length(min = 1, max = 500), custom(function = "placeholders"))]
    #[schema(min_length = 1, max_length = 500, pattern = "TEMPLATE_TEXT")]
    pub follow_up_question: Option<String>,
    /// Shown as the email sender name and on the survey page.
    #[validate(
        length(min = 1, max = 100),
        custom(function = "not_blank"),
        custom(function = "single_line")
    )]
    #[schema(min_length = 1, max_length = 100, pattern = "ONE_LINE_NOT_BLANK")]
    pub brand: Option<String>,
    /// Accent colour of the survey page and email, `#rrggbb`.
    #[validate(custom(function = "hex_color"))]
    #[schema(pattern = "^#[0-9A-Fa-f]{6}$")]
    pub brand_color: Option<String>,
    /// What a CSAT survey asks about, e.g. "your support request".
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub topic: Option<String>,
    /// `en` (default), `de` or `fr`.
    pub locale: Option<Locale>,
    /// Whether the survey has an anonymous public link (`public_url`).
    pub public_link: Option<bool>,
    /// A contact is not invited again within this many days of their last invitation, across
    /// surveys (0 to 365, default 30).
    #[validate(range(min = 0, max = 365))]
    #[schema(minimum = 0, maximum = 365)]
    #[serde(default, deserialize_with = "opt_int")]
    pub throttle_days: Option<i32>,
    /// Send one reminder to non-responders after this many days (1 to 30); unset = no reminder.
    #[validate(range(min = 1, max = 30))]
    #[schema(minimum = 1, maximum = 30)]
    #[serde(default, deserialize_with = "opt_int")]
    pub reminder_after_days: Option<i32>,
    /// Re-survey: this many days (1 to 365) after a follow-up of this survey is resolved, its
    /// customer gets one new invitation to the survey (`origin: "resurvey"`), by email through
    /// the normal queue; throttling, unsubscribes and erasure apply. Unset = never.
    #[validate(range(min = 1, max = 365))]
    #[schema(minimum = 1, maximum = 365, example = 30)]
    #[serde(default, deserialize_with = "opt_int")]
    pub resurvey_after_days: Option<i32>,
    /// Hours in which a customer may change their answer (0 to 8760, default 168).
    #[validate(range(min = 0, max = 8760))]
    #[schema(minimum = 0, maximum = 8760)]
    #[serde(default, deserialize_with = "opt_int")]
    pub edit_window_hours: Option<i32>,
    /// Assignment rule: new follow-ups of this survey are assigned to this address, which
    /// also gets their alert (instead of `TEAM_EMAIL`).
    #[validate(email, length(max = 254))]
    #[schema(format = Email, max_length = 254)]
    pub followup_assignee: Option<String>,
    /// A Slack incoming webhook (or one that speaks its format) that gets each new follow-up
    /// of this survey as a Block Kit message, after the alert's grace period; it overrides
    /// `SLACK_WEBHOOK_URL`. An `https://` URL (`http://` only with `WEBHOOK_ALLOW_PRIVATE`)
    /// whose host has public addresses (the SSRF guard). The URL is a credential: anyone who
    /// can read surveys sees it.
    #[validate(custom(function = "url_shape"))]
    #[schema(
        max_length = 2000,
        pattern = "^https?://((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}|([A-Za-z0-9-]+\\.)*[A-Za-z][A-Za-z0-9-]*)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?([/?#][!-~]*)?$",
        example = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXX"
    )]
    pub slack_webhook_url: Option<String>,
    /// Contact properties this survey reports on (at most 10 names). Their values are copied
    /// onto each answer when it is recorded, so `segment=<name>` reports are fast and count
    /// an answer under the value its customer had when they answered. Default: none.
    #[validate(custom(function = "segment_names"))]
    #[schema(max_items = 10, example = json!(["plan"]), value_type = Option<BTreeSet<SegmentName>>)]
    pub report_segments: Option<Vec<String>>,
}

/// A contact property name (letters, digits, `_` or `-`).
#[derive(ToSchema)]
#[schema(value_type = String, min_length = 1, max_length = 100, pattern = "^[A-Za-z0-9_-]{1,100}$", example = "plan")]
pub struct SegmentName(#[allow(dead_code)] String);

/// Changes to a survey. Absent fields stay as they are; `null` clears an optional field.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "NPS 2027", "status": "paused"}))]
pub struct UpdateSurvey {
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    #[serde(default, deserialize_with = "no_null")]
    #[schema(nullable = false, min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 500), custom(function = "placeholders"))]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 500, pattern = "TEMPLATE_TEXT")]
    pub question: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 500), custom(function = "placeholders"))]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 500, pattern = "TEMPLATE_TEXT")]
    pub follow_up_question: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(
        length(min = 1, max = 100),
        custom(function = "not_blank"),
        custom(function = "single_line")
    )]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100, pattern = "ONE_LINE_NOT_BLANK")]
    pub brand: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(custom(function = "hex_color"))]
    #[schema(value_type = Option<String>, pattern = "^#[0-9A-Fa-f]{6}$")]
    pub brand_color: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200, pattern = "\\S")]
    pub topic: Option<Option<String>>,
    #[serde(default, deserialize_with = "no_null")]
    #[schema(nullable = false)]
    pub locale: Option<Locale>,
    /// `active` or `paused` (archive with `POST /surveys/{id}/archive`).
    #[serde(default, deserialize_with = "no_null")]
    #[schema(nullable = false, value_type = Option<ActiveOrPaused>)]
    pub status: Option<SurveyStatus>,
    #[serde(default, deserialize_with = "no_null")]
    #[schema(nullable = false)]
    pub public_link: Option<bool>,
    #[validate(range(min = 0, max = 365))]
    #[serde(default, deserialize_with = "some_int")]
    #[schema(nullable = false, minimum = 0, maximum = 365)]
    pub throttle_days: Option<i32>,
    #[serde(default, deserialize_with = "double_int")]
    #[validate(range(min = 1, max = 30))]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 30)]
    pub reminder_after_days: Option<Option<i32>>,
    /// Days after a resolved follow-up before its customer is asked again (1 to 365); `null`
    /// turns re-surveys off.
    #[serde(default, deserialize_with = "double_int")]
    #[validate(range(min = 1, max = 365))]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 365, example = 30)]
    pub resurvey_after_days: Option<Option<i32>>,
    #[validate(range(min = 0, max = 8760))]
    #[serde(default, deserialize_with = "some_int")]
    #[schema(nullable = false, minimum = 0, maximum = 8760)]
    pub edit_window_hours: Option<i32>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(email, length(max = 254))]
    #[schema(value_type = Option<String>, format = Email, max_length = 254)]
    pub followup_assignee: Option<Option<String>>,
    /// The survey's Slack incoming webhook (as on create); `null` removes it (then
    /// `SLACK_WEBHOOK_URL` applies).
    #[serde(default, deserialize_with = "double_option")]
    #[validate(custom(function = "url_shape"))]
    #[schema(value_type = Option<String>, max_length = 2000, pattern = "^https?://((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}|([A-Za-z0-9-]+\\.)*[A-Za-z][A-Za-z0-9-]*)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?([/?#][!-~]*)?$")]
    pub slack_webhook_url: Option<Option<String>>,
    /// The contact properties this survey reports on (replaces the list; `[]` for none).
    /// Answers recorded from now on get their values at answer time; for a name added here,
    /// the earlier answers get the value their contact has now, by a backfill that runs in
    /// the background in small batches (until it is done, `segment=<name>` reports use the
    /// contacts' current properties and say `segment_source: "current"`).
    #[serde(default, deserialize_with = "no_null")]
    #[validate(custom(function = "segment_names"))]
    #[schema(nullable = false, max_items = 10, example = json!(["plan", "region"]), value_type = Option<BTreeSet<SegmentName>>)]
    pub report_segments: Option<Vec<String>>,
}

/// The statuses `PATCH` may set (archiving has its own endpoint).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActiveOrPaused {
    Active,
    Paused,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Survey {
    #[schema(example = "srv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")]
    pub id: String,
    pub kind: SurveyKind,
    pub name: String,
    /// The question template (the default for the kind and locale when none was set).
    pub question: String,
    pub follow_up_question: String,
    pub brand: Option<String>,
    pub brand_color: Option<String>,
    pub topic: Option<String>,
    pub locale: Locale,
    pub status: SurveyStatus,
    /// The anonymous public link, when the survey has one.
    #[schema(example = "http://localhost:8080/l/k3J9xq2LmP0a")]
    pub public_url: Option<String>,
    pub throttle_days: i32,
    pub reminder_after_days: Option<i32>,
    /// Days after a resolved follow-up before its customer gets one new invitation to this
    /// survey; `null`: never.
    #[schema(example = 30)]
    pub resurvey_after_days: Option<i32>,
    pub edit_window_hours: i32,
    pub followup_assignee: Option<String>,
    /// Where this survey's new follow-ups are posted for Slack; `null`: `SLACK_WEBHOOK_URL`
    /// (if set).
    #[schema(example = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXX")]
    pub slack_webhook_url: Option<String>,
    /// The contact properties whose values are snapshotted onto each answer (see
    /// `CreateSurvey.report_segments`).
    #[schema(example = json!(["plan"]))]
    pub report_segments: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyList {
    pub items: Vec<Survey>,
    pub next_cursor: Option<String>,
}

impl Survey {
    pub fn from_row(row: SurveyRow, public_url: &url::Url) -> Survey {
        let kind = SurveyKind::parse(&row.kind).unwrap_or(SurveyKind::Nps);
        let locale = Locale::parse(&row.locale).unwrap_or_default();
        Survey {
            question: row
                .question
                .unwrap_or_else(|| locale.default_question(kind).to_string()),
            follow_up_question: row
                .follow_up_question
                .unwrap_or_else(|| locale.default_follow_up().to_string()),
            public_url: row.public_slug.map(|slug| link(public_url, "l", &slug)),
            status: SurveyStatus::parse(&row.status).unwrap_or(SurveyStatus::Active),
            id: row.id,
            kind,
            name: row.name,
            brand: row.brand,
            brand_color: row.brand_color,
            topic: row.topic,
            locale,
            throttle_days: row.throttle_days,
            reminder_after_days: row.reminder_after_days,
            resurvey_after_days: row.resurvey_after_days,
            edit_window_hours: row.edit_window_hours,
            followup_assignee: row.followup_assignee,
            slack_webhook_url: row.slack_webhook_url,
            report_segments: crate::store::segments::names(&row.report_segments),
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
            archived_at: row.archived_at.map(utc),
        }
    }
}

pub use crate::domain::link;

fn new_slug() -> String {
    new_secret("").chars().take(12).collect()
}

fn segments_json(names: &[String]) -> String {
    serde_json::to_string(names).unwrap_or_else(|_| "[]".into())
}

fn trimmed(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string())
}

/// Create a survey
#[utoipa::path(
    operation_id = "create_survey",
    tag = "surveys",
    request_body = CreateSurvey,
    responses((status = 201, description = "Survey created", body = Survey))
)]
#[post("/surveys")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: ValidJson<CreateSurvey>,
) -> Result<HttpResponse, AppError> {
    caller.require(Role::Admin)?;
    let row = create_survey(&state, body.0).await?;
    Ok(HttpResponse::Created().json(Survey::from_row(row, &state.settings.public_url)))
}

/// Creates a survey from a validated request (the API and the workspace's editor).
pub async fn create_survey(state: &AppState, b: CreateSurvey) -> Result<SurveyRow, AppError> {
    let slack_webhook_url = trimmed(b.slack_webhook_url);
    if let Some(url) = &slack_webhook_url {
        check_slack_url(state, url).await?;
    }
    let t = now();
    let row = SurveyRow {
        id: new_id(IdPrefix::Survey),
        kind: b.kind.as_str().into(),
        name: b.name.trim().to_string(),
        question: trimmed(b.question),
        follow_up_question: trimmed(b.follow_up_question),
        brand: trimmed(b.brand),
        brand_color: b.brand_color.map(|c| c.to_ascii_lowercase()),
        topic: trimmed(b.topic),
        locale: b.locale.unwrap_or_default().as_str().into(),
        status: SurveyStatus::Active.as_str().into(),
        public_slug: b.public_link.unwrap_or(false).then(new_slug),
        throttle_days: b.throttle_days.unwrap_or(DEFAULT_THROTTLE_DAYS),
        reminder_after_days: b.reminder_after_days,
        resurvey_after_days: b.resurvey_after_days,
        edit_window_hours: b.edit_window_hours.unwrap_or(DEFAULT_EDIT_WINDOW_HOURS),
        created_at: t,
        updated_at: t,
        archived_at: None,
        followup_assignee: b.followup_assignee.map(|a| a.trim().to_lowercase()),
        slack_webhook_url,
        report_segments: segments_json(&b.report_segments.unwrap_or_default()),
    };
    let saved = row.clone();
    state
        .db
        .write(move |conn| crate::store::surveys::insert(conn, &saved))
        .await?;
    Ok(row)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SurveyQuery {
    pub status: Option<SurveyStatus>,
    pub kind: Option<SurveyKind>,
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^srv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub cursor: Option<String>,
}

/// List surveys
#[utoipa::path(
    operation_id = "list_surveys",
    tag = "surveys",
    params(SurveyQuery),
    responses((status = 200, description = "Surveys, newest first", body = SurveyList))
)]
#[get("/surveys")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<SurveyQuery>,
) -> Result<web::Json<SurveyList>, AppError> {
    caller.require(Role::Reader)?;
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .check(IdPrefix::Survey)?;
    let filter = SurveyFilter {
        status: q.status.map(|s| s.as_str().to_string()),
        kind: q.kind.map(|k| k.as_str().to_string()),
    };
    let p = page.clone();
    let rows = state
        .db
        .run_replica(move |conn| crate::store::surveys::list(conn, &filter, &p))
        .await?;
    let (rows, next_cursor) = paginate(rows, &page, |r| &r.id);
    Ok(web::Json(SurveyList {
        items: rows
            .into_iter()
            .map(|r| Survey::from_row(r, &state.settings.public_url))
            .collect(),
        next_cursor,
    }))
}

/// Get a survey
#[utoipa::path(
    operation_id = "get_survey",
    tag = "surveys",
    params(("id" = String, Path, description = "Survey id", pattern = "^srv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 200, description = "The survey", body = Survey),
        (status = 404, description = "No such survey", body = crate::web::error::ErrorBody)
    )
)]
#[get("/surveys/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<Survey>, AppError> {
    caller.require(Role::Reader)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Survey, "survey")?;
    let row = state
        .db
        .run(move |conn| crate::store::surveys::get(conn, &id))
        .await?;
    Ok(web::Json(Survey::from_row(row, &state.settings.public_url)))
}

/// Update a survey
///
/// An archived survey cannot be changed (409).
#[utoipa::path(
    operation_id = "update_survey",
    tag = "surveys",
    params(("id" = String, Path, description = "Survey id", pattern = "^srv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    request_body = UpdateSurvey,
    responses(
        (status = 200, description = "The updated survey", body = Survey),
        (status = 404, description = "No such survey", body = crate::web::error::ErrorBody),
        (status = 409, description = "The survey is archived", body = crate::web::error::ErrorBody)
    )
)]
#[patch("/surveys/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<UpdateSurvey>,
) -> Result<web::Json<Survey>, AppError> {
    caller.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Survey, "survey")?;
    let row = update_survey(&state, id, body.0).await?;
    Ok(web::Json(Survey::from_row(row, &state.settings.public_url)))
}

/// Applies a validated change to a survey (the API and the workspace's editor); 409 when it
/// is archived.
pub async fn update_survey(
    state: &AppState,
    id: String,
    b: UpdateSurvey,
) -> Result<SurveyRow, AppError> {
    if b.status == Some(SurveyStatus::Archived) {
        return Err(AppError::field(
            "status",
            "use POST /api/v1/surveys/{id}/archive to archive a survey",
        ));
    }
    let trim2 = |v: Option<Option<String>>| v.map(|o| o.map(|s| s.trim().to_string()));
    let slack_webhook_url = trim2(b.slack_webhook_url.clone());
    if let Some(Some(url)) = &slack_webhook_url {
        check_slack_url(state, url).await?;
    }
    let (row, backfill) = state
        .db
        .write(move |conn| {
            conn.transaction(|conn| {
                let current = crate::store::surveys::get(conn, &id)?;
                if current.status == SurveyStatus::Archived.as_str() {
                    return Err(AppError::conflict(
                        "survey_archived",
                        "an archived survey cannot be changed",
                    ));
                }
                let public_slug = match b.public_link {
                    Some(true) if current.public_slug.is_none() => Some(Some(new_slug())),
                    Some(false) => Some(None),
                    _ => None,
                };
                let changes = SurveyChanges {
                    name: b.name.clone().map(|s| s.trim().to_string()),
                    question: trim2(b.question.clone()),
                    follow_up_question: trim2(b.follow_up_question.clone()),
                    brand: trim2(b.brand.clone()),
                    brand_color: b
                        .brand_color
                        .clone()
                        .map(|o| o.map(|c| c.to_ascii_lowercase())),
                    topic: trim2(b.topic.clone()),
                    locale: b.locale.map(|l| l.as_str().to_string()),
                    status: b.status.map(|s| s.as_str().to_string()),
                    public_slug,
                    throttle_days: b.throttle_days,
                    reminder_after_days: b.reminder_after_days,
                    resurvey_after_days: b.resurvey_after_days,
                    edit_window_hours: b.edit_window_hours,
                    updated_at: Some(now()),
                    archived_at: None,
                    followup_assignee: b
                        .followup_assignee
                        .clone()
                        .map(|o| o.map(|a| a.trim().to_lowercase())),
                    slack_webhook_url: slack_webhook_url.clone(),
                    report_segments: b.report_segments.as_deref().map(segments_json),
                };
                // Names added to `report_segments`: the earlier answers get values by a
                // backfill in the background (queued in this transaction).
                let before = crate::store::segments::names(&current.report_segments);
                let added: Vec<String> = b
                    .report_segments
                    .iter()
                    .flatten()
                    .filter(|n| !before.contains(n))
                    .cloned()
                    .collect();
                crate::store::segments::start_backfill(conn, &id, &added, now())?;
                let row = crate::store::surveys::update(conn, &id, &changes)?;
                Ok((row, !added.is_empty()))
            })
        })
        .await?;
    if backfill {
        crate::reports::segments::spawn_backfill(state.db.clone());
    }
    Ok(row)
}

/// Archive a survey
///
/// Its pages answer 410 Gone, scheduled invitations are cancelled and no new ones can be
/// made. Archiving twice is harmless.
#[utoipa::path(
    operation_id = "archive_survey",
    tag = "surveys",
    params(("id" = String, Path, description = "Survey id", pattern = "^srv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 200, description = "The archived survey", body = Survey),
        (status = 404, description = "No such survey", body = crate::web::error::ErrorBody)
    )
)]
#[post("/surveys/{id}/archive")]
pub async fn archive(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<Survey>, AppError> {
    caller.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Survey, "survey")?;
    let row = archive_survey(&state, id).await?;
    Ok(web::Json(Survey::from_row(row, &state.settings.public_url)))
}

/// Archives a survey and cancels its scheduled invitations; archiving twice is harmless.
pub async fn archive_survey(state: &AppState, id: String) -> Result<SurveyRow, AppError> {
    let row = state
        .db
        .write(move |conn| {
            conn.transaction(|conn| {
                let current = crate::store::surveys::get(conn, &id)?;
                if current.status == SurveyStatus::Archived.as_str() {
                    return Ok(current);
                }
                let t = now();
                diesel::update(
                    invitations::table
                        .filter(invitations::survey_id.eq(&id))
                        .filter(invitations::status.eq("scheduled")),
                )
                .set((
                    invitations::status.eq("cancelled"),
                    invitations::reason.eq(Some("survey_archived")),
                    invitations::updated_at.eq(t),
                ))
                .execute(conn)?;
                let changes = SurveyChanges {
                    status: Some(SurveyStatus::Archived.as_str().into()),
                    updated_at: Some(t),
                    archived_at: Some(Some(t)),
                    ..Default::default()
                };
                crate::store::surveys::update(conn, &id, &changes)
            })
        })
        .await?;
    Ok(row)
}
