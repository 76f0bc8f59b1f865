//! `/api/v1/responses`: list and read answers, and record one server-side.

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::error::ApiError;
use super::extract::{check_id, paginate, Caller, PageParams, ValidJson};
use super::utc;
use crate::db::models::ResponseRow;
use crate::db::responses::{Answer, CommentChange, Recorded, ResponseFilter};
use crate::domain::{Category, IdPrefix, Role, Score, SurveyKind};
use crate::startup::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Response {
    #[schema(example = "rsp_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")]
    pub id: String,
    pub survey_id: String,
    /// Absent for anonymous answers (public link, or API capture by survey id).
    pub invitation_id: Option<String>,
    pub contact_id: Option<String>,
    pub score: i32,
    pub category: Category,
    pub comment: Option<String>,
    /// `email`, `link`, `public` or `api`.
    pub channel: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ResponseRow> for Response {
    fn from(r: ResponseRow) -> Self {
        Response {
            category: serde_json::from_value(serde_json::Value::String(r.category.clone()))
                .unwrap_or(Category::Passive),
            id: r.id,
            survey_id: r.survey_id,
            invitation_id: r.invitation_id,
            contact_id: r.contact_id,
            score: r.score,
            comment: r.comment,
            channel: r.channel,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseList {
    pub items: Vec<Response>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResponseQuery {
    pub survey_id: Option<String>,
    pub contact_id: Option<String>,
    pub category: Option<Category>,
    /// Answers created at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Answers created before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl ResponseQuery {
    pub fn filter(&self) -> Result<ResponseFilter, ApiError> {
        if let (Some(a), Some(b)) = (self.since, self.until) {
            if a >= b {
                return Err(ApiError::field("until", "must be after since"));
            }
        }
        Ok(ResponseFilter {
            survey_id: self.survey_id.clone(),
            contact_id: self.contact_id.clone(),
            category: self.category.map(|c| c.as_str().to_string()),
            since: self.since.map(|t| t.naive_utc()),
            until: self.until.map(|t| t.naive_utc()),
        })
    }
}

/// List responses
#[utoipa::path(
    operation_id = "list_responses",
    tag = "responses",
    params(ResponseQuery),
    responses((status = 200, description = "Responses, newest first", body = ResponseList))
)]
#[get("/responses")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ResponseQuery>,
) -> Result<web::Json<ResponseList>, ApiError> {
    caller.require(Role::Reader)?;
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .check(IdPrefix::Response)?;
    let filter = q.filter()?;
    let p = page.clone();
    let rows = state
        .db
        .run(move |conn| crate::db::responses::list(conn, &filter, &p))
        .await?;
    let (rows, next_cursor) = paginate(rows, &page, |r| &r.id);
    Ok(web::Json(ResponseList {
        items: rows.into_iter().map(Response::from).collect(),
        next_cursor,
    }))
}

/// Get a response
#[utoipa::path(
    operation_id = "get_response",
    tag = "responses",
    params(("id" = String, Path, description = "Response id")),
    responses(
        (status = 200, description = "The response", body = Response),
        (status = 404, description = "No such response", body = super::error::ErrorBody)
    )
)]
#[get("/responses/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<Response>, ApiError> {
    caller.require(Role::Reader)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Response, "response")?;
    let row = state
        .db
        .run(move |conn| crate::db::responses::get(conn, &id))
        .await?;
    Ok(web::Json(row.into()))
}

/// A score captured by your own app (e.g. an in-app widget), for an invitation or
/// anonymously for a survey. Give exactly one of `invitation_token` and `survey_id`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"invitation_token": "yJrNhP5vCYwTHLP34HZ948sZaaDwaR0e2Z-UpK4Z8z4", "score": 9, "comment": "Fast support"}))]
pub struct CreateResponse {
    /// The token of an invitation (the last part of its `url`). Answering again updates the
    /// invitation's one response within the survey's edit window.
    pub invitation_token: Option<String>,
    /// For an anonymous answer.
    pub survey_id: Option<String>,
    /// 0–10 (NPS) or 1–5 (CSAT).
    pub score: i64,
    #[validate(length(max = 2000))]
    pub comment: Option<String>,
}

/// Record a response
///
/// Records an answer captured outside the survey pages. The same rules apply as for the
/// pages: one response per invitation, updated within the edit window (409
/// `edit_window_closed` after it), 410-like 409 `survey_archived` for archived surveys.
#[utoipa::path(
    operation_id = "create_response",
    tag = "responses",
    request_body = CreateResponse,
    responses(
        (status = 201, description = "Response recorded", body = Response),
        (status = 200, description = "The invitation's response was updated", body = Response),
        (status = 404, description = "No such invitation or survey", body = super::error::ErrorBody),
        (status = 409, description = "Archived survey, or the edit window has closed", body = super::error::ErrorBody)
    )
)]
#[post("/responses")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: ValidJson<CreateResponse>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Agent)?;
    let b = body.0;
    let comment = b
        .comment
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let rules = crate::followup::Rules::from_settings(&state.settings);
    let outcome = state
        .db
        .write_grouped(move |conn| {
            let (survey, invitation) = match (&b.invitation_token, &b.survey_id) {
                (Some(token), None) => {
                    let inv = crate::db::invitations::find_by_token(conn, token)?
                        .ok_or(ApiError::NotFound("invitation"))?;
                    (crate::db::surveys::get(conn, &inv.survey_id)?, Some(inv))
                }
                (None, Some(id)) => {
                    check_id(id, IdPrefix::Survey, "survey")?;
                    (crate::db::surveys::get(conn, id)?, None)
                }
                _ => {
                    return Err(ApiError::field(
                        "invitation_token",
                        "give exactly one of invitation_token and survey_id",
                    ))
                }
            };
            if survey.status == "archived" {
                return Err(ApiError::conflict(
                    "survey_archived",
                    "the survey is archived",
                ));
            }
            let kind = SurveyKind::parse(&survey.kind).unwrap_or(SurveyKind::Nps);
            let score = Score::parse(kind, b.score).map_err(|m| ApiError::field("score", m))?;
            let answer = Answer {
                channel: "api".into(),
                survey,
                invitation,
                score,
                comment: CommentChange::Set(comment),
                locale: None,
                submission_id: None,
            };
            crate::db::responses::record_in_tx(conn, &answer, &rules)
        })
        .await?;
    if !outcome.tasks.is_empty() {
        state.wake_dispatcher.notify_one();
    }
    if outcome.webhook_events > 0 {
        state.wake_webhooks.notify_one();
    }
    let recorded = outcome.recorded;
    let (status, row) = match recorded {
        Recorded::Created(r) => (actix_web::http::StatusCode::CREATED, *r),
        Recorded::Updated { after, .. } => (actix_web::http::StatusCode::OK, *after),
    };
    Ok(HttpResponse::build(status).json(Response::from(row)))
}
