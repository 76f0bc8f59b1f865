//! `/api/v1/responses`: list and read answers, and record one server-side.

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::extract::{check_id, paginate, Caller, PageParams, ValidJson};
use crate::answers::{self, Answer, CommentChange, Recorded};
use crate::context::AppState;
use crate::domain::{Category, IdPrefix, Role, Score, SurveyKind};
use crate::error::AppError;
use crate::store::responses::ResponseFilter;
pub use crate::views::Response;

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
    pub fn filter(&self) -> Result<ResponseFilter, AppError> {
        if let (Some(a), Some(b)) = (self.since, self.until) {
            if a >= b {
                return Err(AppError::field("until", "must be after since"));
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
) -> Result<web::Json<ResponseList>, AppError> {
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
        .run(move |conn| crate::store::responses::list(conn, &filter, &p))
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
        (status = 404, description = "No such response", body = crate::web::error::ErrorBody)
    )
)]
#[get("/responses/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<Response>, AppError> {
    caller.require(Role::Reader)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Response, "response")?;
    let row = state
        .db
        .run(move |conn| crate::store::responses::get(conn, &id))
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
        (status = 404, description = "No such invitation or survey", body = crate::web::error::ErrorBody),
        (status = 409, description = "Archived survey, or the edit window has closed", body = crate::web::error::ErrorBody)
    )
)]
#[post("/responses")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: ValidJson<CreateResponse>,
) -> Result<HttpResponse, AppError> {
    caller.require(Role::Agent)?;
    let b = body.0;
    let score = b.score;
    let comment = b
        .comment
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let (survey, invitation) = state
        .db
        .run(move |conn| match (&b.invitation_token, &b.survey_id) {
            (Some(token), None) => {
                let inv = crate::store::invitations::find_by_token(conn, token)?
                    .ok_or(AppError::NotFound("invitation"))?;
                Ok((crate::store::surveys::get(conn, &inv.survey_id)?, Some(inv)))
            }
            (None, Some(id)) => {
                check_id(id, IdPrefix::Survey, "survey")?;
                Ok((crate::store::surveys::get(conn, id)?, None))
            }
            _ => Err(AppError::field(
                "invitation_token",
                "give exactly one of invitation_token and survey_id",
            )),
        })
        .await?;
    if survey.status == "archived" {
        return Err(AppError::conflict(
            "survey_archived",
            "the survey is archived",
        ));
    }
    let kind = SurveyKind::parse(&survey.kind).unwrap_or(SurveyKind::Nps);
    let score = Score::parse(kind, score).map_err(|m| AppError::field("score", m))?;
    let answer = Answer {
        channel: "api".into(),
        survey,
        invitation,
        score,
        comment: CommentChange::Set(comment),
        locale: None,
        submission_id: None,
    };
    let recorded = answers::record(&state, answer).await?;
    let (status, row) = match recorded {
        Recorded::Created(r) => (actix_web::http::StatusCode::CREATED, *r),
        Recorded::Updated { after, .. } => (actix_web::http::StatusCode::OK, *after),
    };
    Ok(HttpResponse::build(status).json(Response::from(row)))
}
