//! `/app/surveys`: the list of surveys with their figures; the editor (create, edit, live
//! preview, archive, test email: `editor`); inviting by paste or CSV, and the send queue
//! (`invite`).
//!
//! Survey and invitation writes need the admin role, as in the API; every member sees the
//! list and the queue. `GET /app/surveys/{id}` (the survey's dashboard) is not routed here.

mod editor;
mod invite;

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::page::{html, Layout, PageError};
use super::Signed;
use crate::context::AppState;
use crate::domain::{Page, Role, SurveyKind};
use crate::store::models::SurveyRow;
use crate::store::surveys::SurveyFilter;

/// Registers the survey pages. The literal `/app/surveys/new` comes first, before any
/// `/app/surveys/{id}` route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/app/surveys", web::get().to(list))
        .route("/app/surveys/new", web::get().to(editor::new_form))
        .route("/app/surveys/new", web::post().to(editor::create))
        .route("/app/surveys/{id}/edit", web::get().to(editor::edit_form))
        .route("/app/surveys/{id}/edit", web::post().to(editor::update))
        .route(
            "/app/surveys/{id}/preview/{what}",
            web::get().to(editor::preview),
        )
        .route(
            "/app/surveys/{id}/archive",
            web::get().to(editor::archive_form),
        )
        .route("/app/surveys/{id}/archive", web::post().to(editor::archive))
        .route(
            "/app/surveys/{id}/test-email",
            web::post().to(editor::test_email),
        )
        .route("/app/surveys/{id}/invite", web::get().to(invite::form))
        .route("/app/surveys/{id}/invite", web::post().to(invite::check))
        .service(
            web::resource("/app/surveys/{id}/invite/confirm")
                .app_data(crate::web::pages::form_config().limit(invite::CONFIRM_LIMIT))
                .route(web::post().to(invite::confirm)),
        )
        .route("/app/surveys/{id}/queue", web::get().to(invite::queue))
        .route("/app/invitations/{id}/retry", web::post().to(invite::retry));
}

/// Most surveys the list shows (a workspace has tens, not thousands).
const LIST_MAX: i64 = 500;

/// One survey as the list shows it.
pub struct Row {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub status: String,
    pub sent: i64,
    pub answered: i64,
    pub rate: String,
    pub score: String,
    pub open_tasks: i64,
}

#[derive(Template)]
#[template(path = "app/surveys.html")]
struct ListPage {
    l: Layout,
    is_admin: bool,
    archived: bool,
    rows: Vec<Row>,
    current_count: usize,
    archived_count: usize,
    notice: Option<&'static str>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    show: Option<String>,
    notice: Option<String>,
}

/// "NPS" or "CSAT".
pub fn kind_label(kind: &str) -> &'static str {
    match SurveyKind::parse(kind) {
        Some(SurveyKind::Csat) => "CSAT",
        _ => "NPS",
    }
}

/// The score of all-time answers: "+23" (NPS) or "81 %" (CSAT); "—" without answers.
fn score_text(kind: &str, counts: Option<&crate::domain::stats::Counts>) -> String {
    let Some(c) = counts else {
        return "—".into();
    };
    match SurveyKind::parse(kind) {
        Some(SurveyKind::Csat) => c
            .csat()
            .map(|(v, _)| format!("{v:.0} %"))
            .unwrap_or_else(|| "—".into()),
        _ => c
            .nps()
            .map(|(v, _)| format!("{v:+.0}"))
            .unwrap_or_else(|| "—".into()),
    }
}

/// Texts of the `notice` a redirect carries.
pub fn notice_text(n: Option<&str>) -> Option<&'static str> {
    Some(match n? {
        "created" => "Survey created.",
        "saved" => "Changes saved.",
        "archived" => "Survey archived. Its scheduled invitations were cancelled.",
        "test_sent" => {
            "Test email queued to your address. It is not an invitation and counts in no report."
        }
        "invited" => "Invitations queued.",
        "already" => "This batch was already confirmed: nothing was invited twice.",
        "retried" => "The send was put back in the queue.",
        _ => return None,
    })
}

/// `GET /app/surveys`: every survey with sent, answered, response rate, score and open tasks.
/// The figures are all-time, one query each across all surveys.
async fn list(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let archived = query.show.as_deref() == Some("archived");
    let (surveys, delivery, counts, open) = state
        .db
        .run(move |conn| {
            let page = Page {
                limit: LIST_MAX,
                cursor: None,
            };
            let surveys = crate::store::surveys::list(conn, &SurveyFilter::default(), &page)?;
            let delivery = crate::store::reports::delivery_per_survey(conn)?;
            let counts = crate::store::reports::counts_per_survey(conn)?;
            let open = crate::store::followups::open_per_survey(conn)?;
            Ok((surveys, delivery, counts, open))
        })
        .await?;
    let delivery: HashMap<String, (i64, i64)> =
        delivery.into_iter().map(|(s, d, a)| (s, (d, a))).collect();
    let open: HashMap<String, i64> = open.into_iter().collect();
    let is_archived = |s: &SurveyRow| s.status == "archived";
    let archived_count = surveys.iter().filter(|s| is_archived(s)).count();
    let current_count = surveys.len() - archived_count;
    let rows = surveys
        .into_iter()
        .filter(|s| is_archived(s) == archived)
        .map(|s| {
            let (sent, answered) = delivery.get(&s.id).copied().unwrap_or((0, 0));
            Row {
                rate: if sent > 0 {
                    format!("{:.0} %", 100.0 * answered as f64 / sent as f64)
                } else {
                    "—".into()
                },
                score: score_text(&s.kind, counts.get(&s.id)),
                open_tasks: open.get(&s.id).copied().unwrap_or(0),
                kind: kind_label(&s.kind),
                sent,
                answered,
                id: s.id,
                name: s.name,
                status: s.status,
            }
        })
        .collect();
    let page = ListPage {
        l: Layout::signed("Surveys", &signed, "surveys"),
        is_admin: signed.can(Role::Admin),
        archived,
        rows,
        current_count,
        archived_count,
        notice: notice_text(query.notice.as_deref()),
    };
    Ok(html(StatusCode::OK, page.render()))
}

/// A survey by the id in a path, as a page error when there is none.
pub async fn load(state: &AppState, id: &str) -> Result<SurveyRow, PageError> {
    if !crate::domain::IdPrefix::Survey.matches(id) {
        return Err(PageError::NotFound("survey"));
    }
    let id = id.to_string();
    Ok(state
        .db
        .run(move |conn| crate::store::surveys::get(conn, &id))
        .await?)
}
