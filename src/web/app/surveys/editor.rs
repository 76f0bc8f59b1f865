//! Creating and editing a survey (every field, through the API's own validation and use
//! case), its live preview (the real email and survey page templates, in a sandboxed
//! same-origin frame), archiving with a confirmation, and "Send me a test email".

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use validator::Validate;

use super::super::page::{html, see_other, Layout, PageError};
use super::super::Signed;
use super::{kind_label, load};
use crate::context::AppState;
use crate::domain::{now, Role, SurveyKind, SurveyStatus};
use crate::error::{AppError, FieldErrors};
use crate::i18n::Locale;
use crate::store::models::SurveyRow;
use crate::web::api::surveys::{
    archive_survey, create_survey, update_survey, CreateSurvey, UpdateSurvey,
    DEFAULT_EDIT_WINDOW_HOURS, DEFAULT_THROTTLE_DAYS,
};

/// The editor's fields as posted (and as the preview frame's query string).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct SurveyForm {
    csrf_token: Option<String>,
    /// `preview`: show the preview of these values without saving.
    action: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    question: Option<String>,
    follow_up_question: Option<String>,
    brand: Option<String>,
    brand_color: Option<String>,
    topic: Option<String>,
    locale: Option<String>,
    status: Option<String>,
    public_link: Option<String>,
    throttle_days: Option<String>,
    reminder_after_days: Option<String>,
    resurvey_after_days: Option<String>,
    edit_window_hours: Option<String>,
    followup_assignee: Option<String>,
    slack_webhook_url: Option<String>,
    /// Comma-separated property names.
    report_segments: Option<String>,
}

/// What the editor's inputs show.
pub struct Values {
    pub kind: String,
    pub name: String,
    pub question: String,
    pub follow_up_question: String,
    pub brand: String,
    pub brand_color: String,
    pub topic: String,
    pub locale: String,
    pub status: String,
    pub public_link: bool,
    pub throttle_days: String,
    pub reminder_after_days: String,
    pub resurvey_after_days: String,
    pub edit_window_hours: String,
    pub followup_assignee: String,
    pub slack_webhook_url: String,
    /// Comma-separated property names.
    pub report_segments: String,
}

/// The names of a comma-separated list (blanks dropped).
fn segment_list(v: &Option<String>) -> Vec<String> {
    v.as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

impl Values {
    fn of_new() -> Values {
        Values {
            kind: "nps".into(),
            name: String::new(),
            question: String::new(),
            follow_up_question: String::new(),
            brand: String::new(),
            brand_color: String::new(),
            topic: String::new(),
            locale: "en".into(),
            status: "active".into(),
            public_link: false,
            throttle_days: DEFAULT_THROTTLE_DAYS.to_string(),
            reminder_after_days: String::new(),
            resurvey_after_days: String::new(),
            edit_window_hours: DEFAULT_EDIT_WINDOW_HOURS.to_string(),
            followup_assignee: String::new(),
            slack_webhook_url: String::new(),
            report_segments: String::new(),
        }
    }

    fn of_row(r: &SurveyRow) -> Values {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        Values {
            kind: r.kind.clone(),
            name: r.name.clone(),
            question: s(&r.question),
            follow_up_question: s(&r.follow_up_question),
            brand: s(&r.brand),
            brand_color: s(&r.brand_color),
            topic: s(&r.topic),
            locale: r.locale.clone(),
            status: r.status.clone(),
            public_link: r.public_slug.is_some(),
            throttle_days: r.throttle_days.to_string(),
            reminder_after_days: r
                .reminder_after_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
            resurvey_after_days: r
                .resurvey_after_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
            edit_window_hours: r.edit_window_hours.to_string(),
            followup_assignee: s(&r.followup_assignee),
            slack_webhook_url: s(&r.slack_webhook_url),
            report_segments: crate::store::segments::names(&r.report_segments).join(", "),
        }
    }

    /// The posted values over `base` (the kind of a saved survey cannot change).
    fn posted(mut base: Values, f: &SurveyForm, new: bool) -> Values {
        let take = |v: &Option<String>| v.clone().unwrap_or_default();
        if new {
            base.kind = f.kind.clone().unwrap_or(base.kind);
        }
        base.name = take(&f.name);
        base.question = take(&f.question);
        base.follow_up_question = take(&f.follow_up_question);
        base.brand = take(&f.brand);
        base.brand_color = take(&f.brand_color);
        base.topic = take(&f.topic);
        base.locale = f.locale.clone().unwrap_or(base.locale);
        if !new {
            base.status = f.status.clone().unwrap_or(base.status);
        }
        base.public_link = f.public_link.is_some();
        base.throttle_days = take(&f.throttle_days);
        base.reminder_after_days = take(&f.reminder_after_days);
        base.resurvey_after_days = take(&f.resurvey_after_days);
        base.edit_window_hours = take(&f.edit_window_hours);
        base.followup_assignee = take(&f.followup_assignee);
        base.slack_webhook_url = take(&f.slack_webhook_url);
        base.report_segments = take(&f.report_segments);
        base
    }

    /// The preview frames' query string: these values.
    fn query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("kind", &self.kind)
            .append_pair("question", &self.question)
            .append_pair("follow_up_question", &self.follow_up_question)
            .append_pair("brand", &self.brand)
            .append_pair("brand_color", &self.brand_color)
            .append_pair("topic", &self.topic)
            .append_pair("locale", &self.locale)
            .finish()
    }
}

/// One field's error messages, joined.
fn message_of(errors: &FieldErrors, field: &str) -> Option<String> {
    errors.get(field).map(|m| m.join("; "))
}

#[derive(Template)]
#[template(path = "app/surveys_edit.html")]
struct EditPage {
    l: Layout,
    csrf: String,
    /// `None` for a new survey.
    id: Option<String>,
    /// `new` or the survey id: the preview frames' path segment.
    preview_id: String,
    v: Values,
    preview_query: String,
    errors: FieldErrors,
    summary: Option<String>,
    public_url: Option<String>,
    locales: [&'static str; 3],
    notice: Option<&'static str>,
}

impl EditPage {
    fn error(&self, field: &str) -> Option<String> {
        message_of(&self.errors, field)
    }

    fn kind_label(&self) -> &'static str {
        kind_label(&self.v.kind)
    }

    fn default_question(&self) -> &'static str {
        let kind = SurveyKind::parse(&self.v.kind).unwrap_or(SurveyKind::Nps);
        Locale::parse(&self.v.locale)
            .unwrap_or_default()
            .default_question(kind)
    }

    fn default_follow_up(&self) -> &'static str {
        Locale::parse(&self.v.locale)
            .unwrap_or_default()
            .default_follow_up()
    }
}

fn edit_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    row: Option<&SurveyRow>,
    v: Values,
    errors: FieldErrors,
    notice: Option<&'static str>,
) -> HttpResponse {
    let title = match row {
        Some(r) => format!("Edit {}", r.name),
        None => "New survey".into(),
    };
    let summary = (!errors.is_empty()).then(|| {
        let n = errors.len();
        format!(
            "Nothing was saved: {n} field{} to fix.",
            if n == 1 { "" } else { "s" }
        )
    });
    let page = EditPage {
        l: Layout::signed(&title, signed, "surveys"),
        csrf: signed.csrf().to_string(),
        id: row.map(|r| r.id.clone()),
        preview_id: row.map(|r| r.id.clone()).unwrap_or_else(|| "new".into()),
        preview_query: v.query(),
        v,
        errors,
        summary,
        public_url: row
            .and_then(|r| r.public_slug.as_deref())
            .map(|slug| crate::domain::link(&state.settings.public_url, "l", slug)),
        locales: ["en", "de", "fr"],
        notice,
    };
    html(status, page.render())
}

/// `GET /app/surveys/new`
pub async fn new_form(
    state: web::Data<AppState>,
    signed: Signed,
) -> Result<HttpResponse, PageError> {
    signed.require(Role::Admin)?;
    Ok(edit_page(
        &state,
        &signed,
        StatusCode::OK,
        None,
        Values::of_new(),
        FieldErrors::new(),
        None,
    ))
}

#[derive(Debug, Default, Deserialize)]
pub struct EditQuery {
    notice: Option<String>,
}

/// `GET /app/surveys/{id}/edit`
pub async fn edit_form(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    query: web::Query<EditQuery>,
) -> Result<HttpResponse, PageError> {
    signed.require(Role::Admin)?;
    let row = load(&state, &id).await?;
    Ok(edit_page(
        &state,
        &signed,
        StatusCode::OK,
        Some(&row),
        Values::of_row(&row),
        FieldErrors::new(),
        super::notice_text(query.notice.as_deref()),
    ))
}

/// Blank is absent.
fn text(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A whole number field; blank is absent.
fn number(v: &Option<String>, field: &str, errors: &mut FieldErrors) -> Option<i32> {
    let raw = text(v)?;
    match raw.parse::<i32>() {
        Ok(n) => Some(n),
        Err(_) => {
            errors
                .entry(field.to_string())
                .or_default()
                .push("must be a whole number".into());
            None
        }
    }
}

fn locale(v: &Option<String>, errors: &mut FieldErrors) -> Option<Locale> {
    let raw = text(v)?;
    let l = Locale::parse(&raw).filter(|l| l.as_str() == raw);
    if l.is_none() {
        errors
            .entry("locale".into())
            .or_default()
            .push("must be en, de or fr".into());
    }
    l
}

/// The validator's messages merged into `errors`.
fn validate(v: &impl Validate, errors: &mut FieldErrors) {
    if let Err(e) = v.validate() {
        if let AppError::Validation { fields, .. } = AppError::from(e) {
            for (k, m) in fields {
                errors.entry(k).or_default().extend(m);
            }
        }
    }
}

fn to_create(f: &SurveyForm) -> Result<CreateSurvey, FieldErrors> {
    let mut errors = FieldErrors::new();
    let kind = match f.kind.as_deref().and_then(SurveyKind::parse) {
        Some(k) => k,
        None => {
            errors
                .entry("kind".into())
                .or_default()
                .push("must be NPS or CSAT".into());
            SurveyKind::Nps
        }
    };
    let create = CreateSurvey {
        kind,
        name: f.name.clone().unwrap_or_default(),
        question: text(&f.question),
        follow_up_question: text(&f.follow_up_question),
        brand: text(&f.brand),
        brand_color: text(&f.brand_color),
        topic: text(&f.topic),
        locale: locale(&f.locale, &mut errors),
        public_link: Some(f.public_link.is_some()),
        throttle_days: number(&f.throttle_days, "throttle_days", &mut errors),
        reminder_after_days: number(&f.reminder_after_days, "reminder_after_days", &mut errors),
        resurvey_after_days: number(&f.resurvey_after_days, "resurvey_after_days", &mut errors),
        edit_window_hours: number(&f.edit_window_hours, "edit_window_hours", &mut errors),
        followup_assignee: text(&f.followup_assignee),
        slack_webhook_url: text(&f.slack_webhook_url),
        report_segments: Some(segment_list(&f.report_segments)),
    };
    validate(&create, &mut errors);
    if errors.is_empty() {
        Ok(create)
    } else {
        Err(errors)
    }
}

fn to_update(f: &SurveyForm) -> Result<UpdateSurvey, FieldErrors> {
    let mut errors = FieldErrors::new();
    let status = match f.status.as_deref() {
        None | Some("active") => SurveyStatus::Active,
        Some("paused") => SurveyStatus::Paused,
        Some(_) => {
            errors
                .entry("status".into())
                .or_default()
                .push("must be active or paused".into());
            SurveyStatus::Active
        }
    };
    let update = UpdateSurvey {
        name: Some(f.name.clone().unwrap_or_default()),
        question: Some(text(&f.question)),
        follow_up_question: Some(text(&f.follow_up_question)),
        brand: Some(text(&f.brand)),
        brand_color: Some(text(&f.brand_color)),
        topic: Some(text(&f.topic)),
        locale: locale(&f.locale, &mut errors),
        status: Some(status),
        public_link: Some(f.public_link.is_some()),
        throttle_days: Some(
            number(&f.throttle_days, "throttle_days", &mut errors).unwrap_or(DEFAULT_THROTTLE_DAYS),
        ),
        reminder_after_days: Some(number(
            &f.reminder_after_days,
            "reminder_after_days",
            &mut errors,
        )),
        resurvey_after_days: Some(number(
            &f.resurvey_after_days,
            "resurvey_after_days",
            &mut errors,
        )),
        edit_window_hours: Some(
            number(&f.edit_window_hours, "edit_window_hours", &mut errors)
                .unwrap_or(DEFAULT_EDIT_WINDOW_HOURS),
        ),
        followup_assignee: Some(text(&f.followup_assignee)),
        slack_webhook_url: Some(text(&f.slack_webhook_url)),
        report_segments: f
            .report_segments
            .is_some()
            .then(|| segment_list(&f.report_segments)),
    };
    validate(&update, &mut errors);
    if errors.is_empty() {
        Ok(update)
    } else {
        Err(errors)
    }
}

/// `POST /app/surveys/new`: create (or, with `action=preview`, show the preview of the
/// values without saving).
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    form: web::Form<SurveyForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    let values = Values::posted(Values::of_new(), &form, true);
    if form.action.as_deref() == Some("preview") {
        return Ok(edit_page(
            &state,
            &signed,
            StatusCode::OK,
            None,
            values,
            FieldErrors::new(),
            None,
        ));
    }
    let errors = match to_create(&form) {
        Ok(create) => match create_survey(&state, create).await {
            Ok(row) => {
                return Ok(see_other(&format!(
                    "/app/surveys/{}/edit?notice=created",
                    row.id
                )))
            }
            Err(AppError::Validation { fields, .. }) => fields,
            Err(e) => return Err(e.into()),
        },
        Err(errors) => errors,
    };
    Ok(edit_page(
        &state,
        &signed,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
        values,
        errors,
        None,
    ))
}

/// `POST /app/surveys/{id}/edit`: save (or preview, as for a new survey).
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<SurveyForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    let row = load(&state, &id).await?;
    let values = Values::posted(Values::of_row(&row), &form, false);
    if form.action.as_deref() == Some("preview") {
        return Ok(edit_page(
            &state,
            &signed,
            StatusCode::OK,
            Some(&row),
            values,
            FieldErrors::new(),
            None,
        ));
    }
    let errors = match to_update(&form) {
        Ok(update) => match update_survey(&state, row.id.clone(), update).await {
            Ok(saved) => {
                return Ok(see_other(&format!(
                    "/app/surveys/{}/edit?notice=saved",
                    saved.id
                )))
            }
            Err(AppError::Validation { fields, .. }) => fields,
            Err(e) => return Err(e.into()),
        },
        Err(errors) => errors,
    };
    Ok(edit_page(
        &state,
        &signed,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some(&row),
        values,
        errors,
        None,
    ))
}

/// The survey the preview shows: `base` with the form's presentation fields; a value the
/// API would refuse keeps the base's.
fn previewed(mut base: SurveyRow, f: &SurveyForm, new: bool) -> SurveyRow {
    if new {
        if let Some(k) = f.kind.as_deref().and_then(SurveyKind::parse) {
            base.kind = k.as_str().into();
        }
    }
    let mut probe = FieldErrors::new();
    let create = CreateSurvey {
        kind: SurveyKind::Nps,
        name: "preview".into(),
        question: text(&f.question),
        follow_up_question: text(&f.follow_up_question),
        brand: text(&f.brand),
        brand_color: text(&f.brand_color),
        topic: text(&f.topic),
        locale: None,
        public_link: None,
        throttle_days: None,
        reminder_after_days: None,
        resurvey_after_days: None,
        edit_window_hours: None,
        followup_assignee: None,
        slack_webhook_url: None,
        report_segments: None,
    };
    validate(&create, &mut probe);
    let ok = |field: &str| !probe.contains_key(field);
    if ok("question") {
        base.question = create.question;
    }
    if ok("follow_up_question") {
        base.follow_up_question = create.follow_up_question;
    }
    if ok("brand") {
        base.brand = create.brand;
    }
    if ok("brand_color") {
        base.brand_color = create.brand_color.map(|c| c.to_ascii_lowercase());
    }
    if ok("topic") {
        base.topic = create.topic;
    }
    if let Some(l) = text(&f.locale).as_deref().and_then(Locale::parse) {
        base.locale = l.as_str().into();
    }
    base
}

/// A survey that is not saved, for the preview of a new one.
fn unsaved() -> SurveyRow {
    let t = now();
    SurveyRow {
        id: "new".into(),
        kind: "nps".into(),
        name: String::new(),
        question: None,
        follow_up_question: None,
        brand: None,
        brand_color: None,
        topic: None,
        locale: "en".into(),
        status: "active".into(),
        public_slug: None,
        throttle_days: DEFAULT_THROTTLE_DAYS,
        reminder_after_days: None,
        resurvey_after_days: None,
        edit_window_hours: DEFAULT_EDIT_WINDOW_HOURS,
        created_at: t,
        updated_at: t,
        archived_at: None,
        followup_assignee: None,
        slack_webhook_url: None,
        report_segments: "[]".into(),
    }
}

/// The headers of a preview: framed by this site's pages only, sandboxed (no script, no
/// form, no same-origin access), never cached.
fn framed(mut res: HttpResponse, csp: &str) -> HttpResponse {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /app/surveys/{id}/preview/{email|page}?…`: the survey email or the customer's
/// survey page of `{id}` (or `new`) with the query's values, rendered by the real
/// templates for a sample contact. Nothing is saved.
pub async fn preview(
    state: web::Data<AppState>,
    signed: Signed,
    path: web::Path<(String, String)>,
    query: web::Query<SurveyForm>,
) -> Result<HttpResponse, PageError> {
    let (id, what) = path.into_inner();
    let new = id == "new";
    let base = if new {
        signed.require(Role::Admin)?;
        unsaved()
    } else {
        load(&state, &id).await?
    };
    let survey = previewed(base, &query, new);
    match what.as_str() {
        "email" => {
            let body = crate::email::message::survey_body(
                &survey,
                Some("Ada"),
                "preview",
                false,
                &state.settings,
            )
            .map_err(|e| PageError::Failure(AppError::internal(anyhow::anyhow!(e))))?;
            let res = HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .body(body.html);
            Ok(framed(
                res,
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                 frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox",
            ))
        }
        "page" => {
            let res = crate::web::pages::survey::survey_page(
                StatusCode::OK,
                &survey,
                crate::web::pages::survey::FormState {
                    action: "#",
                    selected: None,
                    comment: "",
                    errors: Vec::new(),
                    score_error: false,
                    comment_error: false,
                    submission_id: None,
                    honeypot: false,
                    preselect: None,
                    recorded: None,
                },
            );
            let csp = res
                .headers()
                .get(header::CONTENT_SECURITY_POLICY)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("default-src 'none'")
                .replace("frame-ancestors 'none'", "frame-ancestors 'self'")
                + "; sandbox";
            Ok(framed(res, &csp))
        }
        _ => Err(PageError::NotFound("preview")),
    }
}

#[derive(Template)]
#[template(path = "app/surveys_archive.html")]
struct ArchivePage {
    l: Layout,
    csrf: String,
    id: String,
    name: String,
    scheduled: i64,
}

/// `GET /app/surveys/{id}/archive`: what archiving does, and the button that does it.
pub async fn archive_form(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    signed.require(Role::Admin)?;
    let row = load(&state, &id).await?;
    if row.status == "archived" {
        return Ok(see_other("/app/surveys?show=archived"));
    }
    let sid = row.id.clone();
    let counts = state
        .db
        .run(move |conn| crate::store::invitations::count_by_status_of(conn, &sid))
        .await?;
    let scheduled = counts
        .iter()
        .find(|(s, _)| s == "scheduled")
        .map(|(_, n)| *n)
        .unwrap_or(0);
    let page = ArchivePage {
        l: Layout::signed(&format!("Archive {}", row.name), &signed, "surveys"),
        csrf: signed.csrf().to_string(),
        id: row.id,
        name: row.name,
        scheduled,
    };
    Ok(html(StatusCode::OK, page.render()))
}

#[derive(Debug, Default, Deserialize)]
pub struct ArchiveForm {
    csrf_token: Option<String>,
    confirm: Option<String>,
}

/// `POST /app/surveys/{id}/archive` with `confirm=archive` (the confirmation page's
/// button); without it, back to the confirmation page and nothing archived.
pub async fn archive(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<ArchiveForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    let row = load(&state, &id).await?;
    if form.confirm.as_deref() != Some("archive") {
        return Ok(see_other(&format!("/app/surveys/{}/archive", row.id)));
    }
    archive_survey(&state, row.id).await?;
    Ok(see_other("/app/surveys?show=archived&notice=archived"))
}

#[derive(Debug, Default, Deserialize)]
pub struct CsrfForm {
    csrf_token: Option<String>,
}

/// `POST /app/surveys/{id}/test-email`: the survey email to the signed-in member.
pub async fn test_email(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    let row = load(&state, &id).await?;
    let id = row.id.clone();
    let member = signed.member();
    crate::invitations::send_test(&state, row, member.email.clone(), member.name.clone()).await?;
    Ok(see_other(&format!(
        "/app/surveys/{id}/edit?notice=test_sent"
    )))
}
