//! `/api/v1/followups`: the triage queue of unhappy answers.

use actix_web::{get, patch, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::contacts::Contact;
use super::extract::{check_id, Caller, ValidJson};
use super::query::{check_filter_id, enum_name, Query, QueryTime};
use super::responses::Response;
use super::{double_option, no_null, not_blank};
use crate::context::AppState;
use crate::domain::{IdPrefix, Role};
use crate::error::AppError;
use crate::followups::{self, Change};
use crate::store::followups::{AssigneeFilter, InboxFilter, Sort};
pub use crate::views::{Activity, Followup, FollowupItem};

#[derive(Debug, Serialize, ToSchema)]
pub struct FollowupList {
    pub items: Vec<FollowupItem>,
    pub next_cursor: Option<String>,
}

/// A task with everything needed to work it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FollowupDetail {
    #[serde(flatten)]
    pub followup: FollowupItem,
    pub response: Response,
    /// Absent for anonymous answers and erased contacts.
    pub contact: Option<Contact>,
    /// The contact's other answers, newest first (up to 20).
    pub earlier_responses: Vec<Response>,
    /// Oldest first.
    pub activity: Vec<Activity>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    Priority,
    DueAt,
    CreatedAt,
}

/// A task's state.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FollowupStatus {
    Open,
    InProgress,
    Resolved,
    Dismissed,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FollowupQuery {
    /// One status or a comma-separated list (`open,in_progress`) of `open`, `in_progress`,
    /// `resolved`, `dismissed`.
    #[param(
        pattern = "^(open|in_progress|resolved|dismissed)(,(open|in_progress|resolved|dismissed))*$"
    )]
    pub status: Option<String>,
    /// Tasks assigned to this person (exact match; team members are their lowercased email
    /// address); `none`: tasks assigned to nobody.
    #[param(pattern = "^[^\\u0000]*$")]
    pub assignee: Option<String>,
    #[param(pattern = "^srv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub survey_id: Option<String>,
    /// `true`: only open or in-progress tasks past due; `false`: the others.
    pub overdue: Option<bool>,
    /// Text found (case-insensitively) in the comment, or the contact's name, email or
    /// `company` property.
    #[param(max_length = 200, pattern = "^[^\\u0000]*$")]
    pub q: Option<String>,
    /// Lowest score, inclusive (with `max_score`, a score band: NPS detractors are 0 to 6).
    #[param(minimum = 0, maximum = 10)]
    pub min_score: Option<i32>,
    /// Highest score, inclusive; not below `min_score`.
    #[param(minimum = 0, maximum = 10)]
    pub max_score: Option<i32>,
    /// A contact property and its value, `key:value` (`plan:enterprise`): tasks whose
    /// contact has that property with that value, ignoring case (a number as written, a boolean as
    /// `true`/`false`). The key is 1 to 100 letters, digits, `_` or `-`.
    #[param(pattern = "^[A-Za-z0-9_-]{1,100}:[^\\u0000]*$")]
    pub property: Option<String>,
    /// Answered at or after this time: a date (its start, UTC) or an RFC 3339 time.
    #[param(inline)]
    pub since: Option<QueryTime>,
    /// Answered before this time: a date (its start, UTC) or an RFC 3339 time; after `since`.
    #[param(inline)]
    pub until: Option<QueryTime>,
    /// `priority` (default: most valuable contact, then lower score, then older answer),
    /// `due_at` (soonest first) or `created_at` (newest first).
    #[param(inline)]
    pub sort: Option<SortKey>,
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page (an offset into the sorted list).
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

impl FollowupQuery {
    /// The store's filter, or a 422 naming the parameter.
    fn filter(&self) -> Result<InboxFilter, AppError> {
        let statuses = match &self.status {
            None => Vec::new(),
            Some(raw) => {
                let all = ["open", "in_progress", "resolved", "dismissed"];
                let wanted: Vec<String> = raw.split(',').map(|s| s.trim().to_string()).collect();
                if wanted.iter().any(|s| !all.contains(&s.as_str())) {
                    return Err(AppError::field(
                        "status",
                        "must be one status or a comma-separated list of open, in_progress, resolved, dismissed",
                    ));
                }
                wanted
            }
        };
        let assignee = match self.assignee.as_deref() {
            None => AssigneeFilter::Any,
            Some("none") => AssigneeFilter::Unassigned,
            Some(a) => AssigneeFilter::Is(a.to_string()),
        };
        check_filter_id(&self.survey_id, "survey_id", IdPrefix::Survey)?;
        if self.q.as_ref().is_some_and(|q| q.chars().count() > 200) {
            return Err(AppError::field("q", "must be at most 200 characters"));
        }
        for (name, v) in [("min_score", self.min_score), ("max_score", self.max_score)] {
            if v.is_some_and(|v| !(0..=10).contains(&v)) {
                return Err(AppError::field(name, "must be from 0 to 10"));
            }
        }
        if let (Some(lo), Some(hi)) = (self.min_score, self.max_score) {
            if lo > hi {
                return Err(AppError::field("max_score", "must not be below min_score"));
            }
        }
        let property = match &self.property {
            None => None,
            Some(raw) => match crate::store::followups::split_property(raw) {
                Some(kv) => Some(kv),
                None => return Err(AppError::field(
                    "property",
                    "must be key:value, the key 1 to 100 letters, digits, _ or - (plan:enterprise)",
                )),
            },
        };
        if let (Some(a), Some(b)) = (self.since, self.until) {
            if a.0 >= b.0 {
                return Err(AppError::field("until", "must be after since"));
            }
        }
        Ok(InboxFilter {
            statuses,
            assignee,
            survey_id: self.survey_id.clone(),
            min_score: self.min_score,
            max_score: self.max_score,
            property,
            answered_from: self.since.map(|t| t.0.naive_utc()),
            answered_before: self.until.map(|t| t.0.naive_utc()),
            overdue: self.overdue,
            q: self.q.clone().filter(|q| !q.trim().is_empty()),
            created_after: None,
        })
    }
}

/// List follow-up tasks
///
/// Each task with its customer's name, email and company and its survey's name (one
/// query). Filters combine (all must hold).
#[utoipa::path(
    operation_id = "list_followups",
    tag = "followups",
    params(FollowupQuery),
    responses(
        (status = 200, description = "Tasks in the requested order", body = FollowupList),
        (status = 422, description = "A parameter is invalid; `error.fields` names it", body = crate::web::error::ErrorBody)
    )
)]
#[get("/followups")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<FollowupQuery>,
) -> Result<web::Json<FollowupList>, AppError> {
    caller.require(Role::Reader)?;
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(AppError::field("limit", "must be from 1 to 100"));
    }
    let offset = match &q.cursor {
        None => 0,
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|_| (1..=18).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| AppError::field("cursor", "is not a cursor returned by this list"))?,
    };
    let filter = q.filter()?;
    let sort = match q.sort.unwrap_or(SortKey::Priority) {
        SortKey::Priority => Sort::Priority,
        SortKey::DueAt => Sort::DueAt,
        SortKey::CreatedAt => Sort::CreatedAt,
    };
    let mut rows = state
        .db
        .run_replica(move |conn| {
            crate::store::followups::search(conn, &filter, sort, offset, limit + 1)
        })
        .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        Some((offset + limit).to_string())
    } else {
        None
    };
    Ok(web::Json(FollowupList {
        items: rows.into_iter().map(FollowupItem::from).collect(),
        next_cursor,
    }))
}

fn detail(conn: &mut crate::store::DbConnection, id: &str) -> Result<FollowupDetail, AppError> {
    let item = crate::store::followups::item(conn, id)?;
    let task = &item.task;
    let response = crate::store::responses::get(conn, &task.response_id)?;
    let contact = match &task.contact_id {
        Some(c) => crate::store::contacts::get(conn, c).ok(),
        None => None,
    };
    let earlier = match &contact {
        Some(c) => {
            let filter = crate::store::responses::ResponseFilter {
                contact_id: Some(c.id.clone()),
                ..Default::default()
            };
            let page = super::extract::Page {
                limit: 21,
                cursor: None,
            };
            crate::store::responses::list(conn, &filter, &page)?
                .into_iter()
                .filter(|r| r.id != response.id)
                .take(20)
                .map(Response::from)
                .collect()
        }
        None => Vec::new(),
    };
    let names: std::collections::HashMap<String, String> = crate::store::users::list(conn)?
        .into_iter()
        .map(|u| (format!("user:{}", u.email), u.name))
        .collect();
    let activity = crate::store::followups::activities(conn, id)?
        .into_iter()
        .map(|row| {
            let name = row.actor.as_ref().and_then(|a| names.get(a).cloned());
            let mut a = Activity::from(row);
            if name.is_some() {
                a.actor_name = name;
            }
            a
        })
        .collect();
    Ok(FollowupDetail {
        followup: item.into(),
        response: response.into(),
        contact: contact.map(Contact::from),
        earlier_responses: earlier,
        activity,
    })
}

/// Get a follow-up task
///
/// With the answer, the contact and their properties, their earlier answers and the
/// activity log.
#[utoipa::path(
    operation_id = "get_followup",
    tag = "followups",
    params(("id" = String, Path, description = "Follow-up id", pattern = "^fup_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 200, description = "The task", body = FollowupDetail),
        (status = 404, description = "No such task", body = crate::web::error::ErrorBody)
    )
)]
#[get("/followups/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<FollowupDetail>, AppError> {
    caller.require(Role::Reader)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Followup, "follow-up")?;
    Ok(web::Json(
        state.db.run(move |conn| detail(conn, &id)).await?,
    ))
}

/// Changes to a task. Absent fields stay; `assignee: null` unassigns.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "in_progress", "assignee": "lea@acme.com"}))]
pub struct UpdateFollowup {
    /// Along `open → in_progress → resolved | dismissed`, or `open → resolved | dismissed`
    /// at once; `open` again reopens a closed task. Anything else is a 409 that says why.
    #[serde(default, deserialize_with = "no_null")]
    #[schema(nullable = false)]
    pub status: Option<FollowupStatus>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200, pattern = "\\S")]
    pub assignee: Option<Option<String>>,
    /// How it ended, with `resolved` or `dismissed`: one of the outcomes configured in
    /// `FOLLOWUP_OUTCOMES` (default `resolved_issue`, `explained`, `compensated`,
    /// `feature_request`, `no_action_needed`, `could_not_reach`); another value is a 422
    /// listing them.
    #[serde(default, deserialize_with = "no_null")]
    #[schema(nullable = false, pattern = "^[a-z][a-z0-9_]{0,49}$")]
    pub outcome: Option<String>,
    /// A note logged with the change (as `POST /followups/{id}/notes` would, in the same
    /// transaction), e.g. what was done before closing.
    #[serde(default, deserialize_with = "no_null")]
    #[validate(length(min = 1, max = 10000), custom(function = "not_blank"))]
    #[schema(nullable = false, min_length = 1, max_length = 10000, pattern = "\\S")]
    pub note: Option<String>,
}

/// Assign a task or change its status
#[utoipa::path(
    operation_id = "update_followup",
    tag = "followups",
    params(("id" = String, Path, description = "Follow-up id", pattern = "^fup_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    request_body = UpdateFollowup,
    responses(
        (status = 200, description = "The updated task", body = FollowupItem),
        (status = 404, description = "No such task", body = crate::web::error::ErrorBody),
        (status = 409, description = "The status change is not allowed; the message says why", body = crate::web::error::ErrorBody),
        (status = 422, description = "An invalid field, such as an outcome not in `FOLLOWUP_OUTCOMES`; `error.fields` names it", body = crate::web::error::ErrorBody)
    )
)]
#[patch("/followups/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<UpdateFollowup>,
) -> Result<web::Json<FollowupItem>, AppError> {
    caller.require(Role::Agent)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Followup, "follow-up")?;
    let b = body.0;
    let change = Change {
        status: b.status.map(|s| enum_name(&s)),
        assignee: b.assignee,
        outcome: b.outcome,
        note: b.note.map(|text| text.trim().to_string()),
    };
    let row = followups::change(&state, &id, change, &caller.actor()).await?;
    let item = state
        .db
        .run(move |conn| crate::store::followups::item(conn, &row.id))
        .await?;
    Ok(web::Json(item.into()))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "Called the customer; a fix ships Friday."}))]
pub struct CreateNote {
    #[validate(length(min = 1, max = 10000), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 10000, pattern = "\\S")]
    pub body: String,
}

/// Add a note to a task
#[utoipa::path(
    operation_id = "add_followup_note",
    tag = "followups",
    params(("id" = String, Path, description = "Follow-up id", pattern = "^fup_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    request_body = CreateNote,
    responses(
        (status = 201, description = "The note as logged", body = Activity),
        (status = 404, description = "No such task", body = crate::web::error::ErrorBody)
    )
)]
#[post("/followups/{id}/notes")]
pub async fn add_note(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<CreateNote>,
) -> Result<HttpResponse, AppError> {
    caller.require(Role::Agent)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Followup, "follow-up")?;
    let row = followups::add_note(&state, &id, body.0.body.trim(), &caller.actor()).await?;
    Ok(HttpResponse::Created().json(Activity::from(row)))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "Hi Ada, thank you for your honest feedback. We fixed the slow exports today."}))]
pub struct CreateReply {
    /// Default: `Re: ` and the survey email's subject.
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub subject: Option<String>,
    #[validate(length(min = 1, max = 20000), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 20000, pattern = "\\S")]
    pub body: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyQueued {
    pub email_id: String,
    /// `pending` until the dispatcher sends it.
    pub status: String,
    pub activity: Activity,
}

/// Reply to the customer
///
/// Queues an email to the contact through the send queue, under the survey's brand,
/// threaded to the survey email (`In-Reply-To`), with `Reply-To` the task's assignee or
/// `TEAM_EMAIL`; logs it on the task. 409 when the contact has no email address
/// (anonymous or erased).
#[utoipa::path(
    operation_id = "reply_to_followup",
    tag = "followups",
    params(("id" = String, Path, description = "Follow-up id", pattern = "^fup_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    request_body = CreateReply,
    responses(
        (status = 202, description = "The reply is queued", body = ReplyQueued),
        (status = 404, description = "No such task", body = crate::web::error::ErrorBody),
        (status = 409, description = "No email address to reply to", body = crate::web::error::ErrorBody)
    )
)]
#[post("/followups/{id}/reply")]
pub async fn reply(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<CreateReply>,
) -> Result<HttpResponse, AppError> {
    caller.require(Role::Agent)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Followup, "follow-up")?;
    let b = body.0;
    let (email, activity) = followups::reply(
        &state,
        &id,
        b.subject.as_deref(),
        b.body.trim(),
        &caller.actor(),
    )
    .await?;
    Ok(HttpResponse::Accepted().json(ReplyQueued {
        email_id: email.id,
        status: email.status,
        activity: activity.into(),
    }))
}
