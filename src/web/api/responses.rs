//! `/api/v1/responses`: list and read answers, and record one server-side.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::contacts::ContactFields;
use super::extract::{check_id, paginate, Caller, PageParams, ValidJson};
use super::query::{check_filter_id, Query, QueryTime};
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
    #[param(pattern = "^srv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub survey_id: Option<String>,
    #[param(pattern = "^con_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub contact_id: Option<String>,
    pub category: Option<Category>,
    /// Answers created at or after this time: a date (its start, UTC) or an RFC 3339 time.
    #[param(inline)]
    pub since: Option<QueryTime>,
    /// Answers created before this time: a date (its start, UTC) or an RFC 3339 time; after
    /// `since`.
    #[param(inline)]
    pub until: Option<QueryTime>,
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^rsp_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub cursor: Option<String>,
}

impl ResponseQuery {
    pub fn filter(&self) -> Result<ResponseFilter, AppError> {
        check_filter_id(&self.survey_id, "survey_id", IdPrefix::Survey)?;
        response_filter(
            self.survey_id.clone(),
            &self.contact_id,
            self.category,
            self.since,
            self.until,
        )
    }
}

/// The filters of the CSV export (the survey is in the path).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only this contact's answers.
    #[param(pattern = "^con_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub contact_id: Option<String>,
    pub category: Option<Category>,
    /// Answers created at or after this time: a date (its start, UTC) or an RFC 3339 time.
    #[param(inline)]
    pub since: Option<QueryTime>,
    /// Answers created before this time; after `since`.
    #[param(inline)]
    pub until: Option<QueryTime>,
}

impl ExportQuery {
    pub fn filter(&self, survey_id: String) -> Result<ResponseFilter, AppError> {
        response_filter(
            Some(survey_id),
            &self.contact_id,
            self.category,
            self.since,
            self.until,
        )
    }
}

fn response_filter(
    survey_id: Option<String>,
    contact_id: &Option<String>,
    category: Option<Category>,
    since: Option<QueryTime>,
    until: Option<QueryTime>,
) -> Result<ResponseFilter, AppError> {
    check_filter_id(contact_id, "contact_id", IdPrefix::Contact)?;
    if let (Some(a), Some(b)) = (since, until) {
        if a.0 >= b.0 {
            return Err(AppError::field("until", "must be after since"));
        }
    }
    Ok(ResponseFilter {
        survey_id,
        contact_id: contact_id.clone(),
        category: category.map(|c| c.as_str().to_string()),
        since: since.map(|t| t.0.naive_utc()),
        until: until.map(|t| t.0.naive_utc()),
        ..Default::default()
    })
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
    query: Query<ResponseQuery>,
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
        .run_replica(move |conn| crate::store::responses::list(conn, &filter, &p))
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
    params(("id" = String, Path, description = "Response id", pattern = "^rsp_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
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

/// A score captured by your own app (e.g. an in-app widget), for an invitation or for a
/// survey. Give exactly one of `invitation_token` and `survey_id`; with `survey_id`, `contact`
/// names the customer (upserted as by `POST /contacts`), else the answer is anonymous.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"survey_id": "srv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2", "score": 9, "comment": "Fast support", "contact": {"external_id": "cus_42", "email": "ada@example.com", "name": "Ada Lovelace"}}))]
pub struct CreateResponse {
    /// The token of an invitation (the last part of its `url`). Answering again updates the
    /// invitation's one response within the survey's edit window.
    #[schema(pattern = "^[A-Za-z0-9_-]{43}$")]
    pub invitation_token: Option<String>,
    /// For an answer without an invitation.
    #[schema(pattern = "^srv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub survey_id: Option<String>,
    /// 0–10 (NPS) or 1–5 (CSAT): a score outside the survey's scale is refused (422).
    #[serde(deserialize_with = "super::int")]
    #[schema(minimum = 0, maximum = 10, value_type = i32)]
    pub score: i32,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
    /// The customer who answered (with `survey_id` only: an invitation names its contact).
    /// Matched by `external_id`, then `email`; created when new, else updated.
    #[validate(nested)]
    pub contact: Option<ContactFields>,
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
        (status = 409, description = "Archived survey, the edit window has closed, or the contact's email and external_id name two different contacts", body = crate::web::error::ErrorBody)
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
    let contact = match (&b.contact, &b.invitation_token) {
        (None, _) => None,
        (Some(_), Some(_)) => {
            return Err(AppError::field(
                "contact",
                "goes with survey_id only: an invitation already names its contact",
            ))
        }
        (Some(c), None) => Some(c.check().map_err(|problems| {
            AppError::fields(
                problems
                    .into_iter()
                    .map(|(f, m)| (format!("contact.{f}"), vec![m]))
                    .collect(),
            )
        })?),
    };
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
    let score = Score::parse(kind, score as i64).map_err(|m| AppError::field("score", m))?;
    let answer = Answer {
        channel: "api".into(),
        survey,
        invitation,
        score,
        comment: CommentChange::Set(comment),
        locale: None,
        submission_id: None,
        contact,
    };
    let recorded = answers::record(&state, answer).await?;
    let (status, row) = match recorded {
        Recorded::Created(r) => (actix_web::http::StatusCode::CREATED, *r),
        Recorded::Updated { after, .. } => (actix_web::http::StatusCode::OK, *after),
    };
    Ok(HttpResponse::build(status).json(Response::from(row)))
}
