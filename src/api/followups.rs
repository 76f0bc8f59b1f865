//! `/api/v1/followups`: the triage queue of unhappy answers.

use actix_web::{get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::contacts::Contact;
use super::error::ApiError;
use super::extract::{check_id, Caller, ValidJson};
use super::responses::Response;
use super::{double_option, no_null, not_blank, utc};
use crate::db::followups::{self, FollowupChanges, FollowupFilter, Sort, OPEN_STATUSES};
use crate::db::models::{ActivityRow, FollowupRow};
use crate::domain::{now, IdPrefix, Role};
use crate::followup::transitions;
use crate::startup::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Followup {
    #[schema(example = "fup_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")]
    pub id: String,
    pub response_id: String,
    pub survey_id: String,
    pub contact_id: Option<String>,
    pub score: i32,
    pub comment: Option<String>,
    /// `open`, `in_progress`, `resolved` or `dismissed`.
    pub status: String,
    /// The contact's value (`properties.value`, 0 when unknown): the first key of the
    /// priority order (value, then lower score, then older answer).
    pub priority: f64,
    pub assignee: Option<String>,
    /// How a closed task ended, e.g. `score_raised` or your own text.
    pub outcome: Option<String>,
    pub due_at: DateTime<Utc>,
    /// Open or in progress and past `due_at`.
    pub overdue: bool,
    pub answered_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<FollowupRow> for Followup {
    fn from(r: FollowupRow) -> Self {
        Followup {
            overdue: OPEN_STATUSES.contains(&r.status.as_str()) && r.due_at < now(),
            id: r.id,
            response_id: r.response_id,
            survey_id: r.survey_id,
            contact_id: r.contact_id,
            score: r.score,
            comment: r.comment,
            status: r.status,
            priority: r.contact_value.unwrap_or(0.0),
            assignee: r.assignee,
            outcome: r.outcome,
            due_at: utc(r.due_at),
            answered_at: utc(r.answered_at),
            resolved_at: r.resolved_at.map(utc),
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Activity {
    pub id: String,
    /// `created`, `assigned`, `status_changed`, `note`, `replied`, `score_changed`,
    /// `comment_changed`.
    pub kind: String,
    /// `system`, `rule`, `customer` or `api-key:<name>`.
    pub actor: Option<String>,
    pub body: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl From<ActivityRow> for Activity {
    fn from(r: ActivityRow) -> Self {
        Activity {
            id: r.id,
            kind: r.kind,
            actor: r.actor,
            body: r.body,
            data: r.data.and_then(|d| serde_json::from_str(&d).ok()),
            created_at: utc(r.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FollowupList {
    pub items: Vec<Followup>,
    pub next_cursor: Option<String>,
}

/// A task with everything needed to work it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FollowupDetail {
    #[serde(flatten)]
    pub followup: Followup,
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FollowupQuery {
    /// `open`, `in_progress`, `resolved` or `dismissed`.
    pub status: Option<String>,
    pub assignee: Option<String>,
    pub survey_id: Option<String>,
    /// `true`: only open or in-progress tasks past due; `false`: the others.
    pub overdue: Option<bool>,
    /// `priority` (default: most valuable contact, then lower score, then older answer),
    /// `due_at` (soonest first) or `created_at` (newest first).
    #[param(inline)]
    pub sort: Option<SortKey>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List follow-up tasks
#[utoipa::path(
    operation_id = "list_followups",
    tag = "followups",
    params(FollowupQuery),
    responses((status = 200, description = "Tasks in the requested order", body = FollowupList))
)]
#[get("/followups")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<FollowupQuery>,
) -> Result<web::Json<FollowupList>, ApiError> {
    caller.require(Role::Reader)?;
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be from 1 to 100"));
    }
    let offset =
        match &q.cursor {
            None => 0,
            Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::field("cursor", "is not a cursor returned by this list")
            })?,
        };
    if let Some(s) = &q.status {
        if !transitions::STATUSES.contains(&s.as_str()) {
            return Err(ApiError::field(
                "status",
                format!("must be one of {}", transitions::STATUSES.join(", ")),
            ));
        }
    }
    let filter = FollowupFilter {
        status: q.status,
        assignee: q.assignee,
        survey_id: q.survey_id,
        overdue: q.overdue,
    };
    let sort = match q.sort.unwrap_or(SortKey::Priority) {
        SortKey::Priority => Sort::Priority,
        SortKey::DueAt => Sort::DueAt,
        SortKey::CreatedAt => Sort::CreatedAt,
    };
    let mut rows = state
        .db
        .run(move |conn| followups::list(conn, &filter, sort, offset, limit))
        .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        Some((offset + limit).to_string())
    } else {
        None
    };
    Ok(web::Json(FollowupList {
        items: rows.into_iter().map(Followup::from).collect(),
        next_cursor,
    }))
}

fn detail(conn: &mut crate::db::DbConnection, id: &str) -> Result<FollowupDetail, ApiError> {
    let task = followups::get(conn, id)?;
    let response = crate::db::responses::get(conn, &task.response_id)?;
    let contact = match &task.contact_id {
        Some(c) => crate::db::contacts::get(conn, c).ok(),
        None => None,
    };
    let earlier = match &contact {
        Some(c) => {
            let filter = crate::db::responses::ResponseFilter {
                contact_id: Some(c.id.clone()),
                ..Default::default()
            };
            let page = super::extract::Page {
                limit: 21,
                cursor: None,
            };
            crate::db::responses::list(conn, &filter, &page)?
                .into_iter()
                .filter(|r| r.id != response.id)
                .take(20)
                .map(Response::from)
                .collect()
        }
        None => Vec::new(),
    };
    let activity = followups::activities(conn, id)?
        .into_iter()
        .map(Activity::from)
        .collect();
    Ok(FollowupDetail {
        followup: task.into(),
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
    params(("id" = String, Path, description = "Follow-up id")),
    responses(
        (status = 200, description = "The task", body = FollowupDetail),
        (status = 404, description = "No such task", body = super::error::ErrorBody)
    )
)]
#[get("/followups/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<FollowupDetail>, ApiError> {
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
    /// Along `open → in_progress → resolved | dismissed`; `open` again reopens a closed
    /// task. Anything else is a 409 that says why.
    #[serde(default, deserialize_with = "no_null")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    #[schema(value_type = Option<String>)]
    pub assignee: Option<Option<String>>,
    /// How it ended, with `resolved` or `dismissed`.
    #[serde(default, deserialize_with = "no_null")]
    #[validate(length(min = 1, max = 500), custom(function = "not_blank"))]
    pub outcome: Option<String>,
}

/// Assign a task or change its status
#[utoipa::path(
    operation_id = "update_followup",
    tag = "followups",
    params(("id" = String, Path, description = "Follow-up id")),
    request_body = UpdateFollowup,
    responses(
        (status = 200, description = "The updated task", body = Followup),
        (status = 404, description = "No such task", body = super::error::ErrorBody),
        (status = 409, description = "The status change is not allowed; the message says why", body = super::error::ErrorBody)
    )
)]
#[patch("/followups/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<UpdateFollowup>,
) -> Result<web::Json<Followup>, ApiError> {
    caller.require(Role::Agent)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Followup, "follow-up")?;
    let b = body.0;
    if let Some(s) = &b.status {
        if !transitions::STATUSES.contains(&s.as_str()) {
            return Err(ApiError::field(
                "status",
                format!("must be one of {}", transitions::STATUSES.join(", ")),
            ));
        }
    }
    if b.outcome.is_some() && !matches!(b.status.as_deref(), Some("resolved" | "dismissed")) {
        return Err(ApiError::field(
            "outcome",
            "goes with status resolved or dismissed",
        ));
    }
    let actor = caller.actor();
    let row = state
        .db
        .write(move |conn| {
            use diesel::Connection;
            conn.transaction(|conn| {
                let task = followups::get(conn, &id)?;
                let t = now();
                let mut changes = FollowupChanges {
                    updated_at: Some(t),
                    ..Default::default()
                };
                let mut changed = false;
                if let Some(to) = &b.status {
                    transitions::check(&task.status, to)
                        .map_err(|why| ApiError::conflict("invalid_transition", why))?;
                    if *to != task.status {
                        changed = true;
                        changes.status = Some(to.clone());
                        let closing = matches!(to.as_str(), "resolved" | "dismissed");
                        changes.resolved_at = Some(closing.then_some(t));
                        changes.outcome = Some(if closing { b.outcome.clone() } else { None });
                        followups::log(
                            conn,
                            &id,
                            "status_changed",
                            &actor,
                            None,
                            Some(json!({"from": task.status, "to": to, "outcome": b.outcome})),
                        )?;
                    }
                }
                if let Some(assignee) = &b.assignee {
                    let assignee = assignee.as_ref().map(|a| a.trim().to_string());
                    if assignee != task.assignee {
                        changed = true;
                        followups::log(
                            conn,
                            &id,
                            "assigned",
                            &actor,
                            None,
                            Some(json!({"from": task.assignee, "to": assignee})),
                        )?;
                        changes.assignee = Some(assignee);
                    }
                }
                if !changed {
                    return Ok(task);
                }
                let what = match (changes.status.is_some(), changes.assignee.is_some()) {
                    (true, true) => "status_changed,assigned",
                    (true, false) => "status_changed",
                    _ => "assigned",
                };
                let row = followups::update(conn, &id, &changes)?;
                crate::webhooks::enqueue_followup(conn, false, &row, what)?;
                Ok(row)
            })
        })
        .await?;
    state.wake_webhooks.notify_one();
    Ok(web::Json(row.into()))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "Called the customer; a fix ships Friday."}))]
pub struct CreateNote {
    #[validate(length(min = 1, max = 10000), custom(function = "not_blank"))]
    pub body: String,
}

/// Add a note to a task
#[utoipa::path(
    operation_id = "add_followup_note",
    tag = "followups",
    params(("id" = String, Path, description = "Follow-up id")),
    request_body = CreateNote,
    responses(
        (status = 201, description = "The note as logged", body = Activity),
        (status = 404, description = "No such task", body = super::error::ErrorBody)
    )
)]
#[post("/followups/{id}/notes")]
pub async fn note(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<CreateNote>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Agent)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Followup, "follow-up")?;
    let actor = caller.actor();
    let text = body.0.body.trim().to_string();
    let row = state
        .db
        .write(move |conn| {
            use diesel::Connection;
            conn.transaction(|conn| {
                followups::get(conn, &id)?;
                diesel::update(crate::db::schema::followups::table.find(&id))
                    .set(crate::db::schema::followups::updated_at.eq(now()))
                    .execute(conn)?;
                let note = followups::log(conn, &id, "note", &actor, Some(&text), None)?;
                let task = followups::get(conn, &id)?;
                crate::webhooks::enqueue_followup(conn, false, &task, "note")?;
                Ok(note)
            })
        })
        .await?;
    state.wake_webhooks.notify_one();
    Ok(HttpResponse::Created().json(Activity::from(row)))
}

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "Hi Ada, thank you for your honest feedback. We fixed the slow exports today."}))]
pub struct CreateReply {
    /// Default: `Re: ` and the survey email's subject.
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    pub subject: Option<String>,
    #[validate(length(min = 1, max = 20000), custom(function = "not_blank"))]
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
    params(("id" = String, Path, description = "Follow-up id")),
    request_body = CreateReply,
    responses(
        (status = 202, description = "The reply is queued", body = ReplyQueued),
        (status = 404, description = "No such task", body = super::error::ErrorBody),
        (status = 409, description = "No email address to reply to", body = super::error::ErrorBody)
    )
)]
#[post("/followups/{id}/reply")]
pub async fn reply(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<CreateReply>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Agent)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Followup, "follow-up")?;
    let actor = caller.actor();
    let b = body.0;
    let team = state
        .settings
        .team_email
        .as_ref()
        .map(|m| m.email.to_string());
    let (email, activity) = state
        .db
        .write(move |conn| {
            use diesel::Connection;
            conn.transaction(|conn| {
                let task = followups::get(conn, &id)?;
                let contact = match &task.contact_id {
                    Some(c) => crate::db::contacts::get(conn, c).ok(),
                    None => None,
                };
                let Some(to) = contact.as_ref().and_then(|c| c.email.clone()) else {
                    return Err(ApiError::conflict(
                        "no_email",
                        "this answer has no email address to reply to (anonymous or erased)",
                    ));
                };
                let survey = crate::db::surveys::get(conn, &task.survey_id)?;
                let response = crate::db::responses::get(conn, &task.response_id)?;
                let parent = match &response.invitation_id {
                    Some(inv) => crate::db::invitations::get(conn, inv)?.message_id,
                    None => None,
                };
                let locale = crate::i18n::Locale::parse(&survey.locale).unwrap_or_default();
                let brand = survey.brand.clone();
                let subject = b
                    .subject
                    .clone()
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|| {
                        let original = locale
                            .email()
                            .subject
                            .replace("{brand}", brand.as_deref().unwrap_or("us"));
                        format!("Re: {original}")
                    });
                let reply_to = task
                    .assignee
                    .clone()
                    .filter(|a| a.parse::<lettre::Address>().is_ok())
                    .or(team);
                let email = crate::db::emails::enqueue(
                    conn,
                    crate::db::emails::NewEmail {
                        kind: "followup_reply",
                        to: &to,
                        subject: &subject,
                        body_text: b.body.trim(),
                        in_reply_to: parent.as_deref(),
                        followup_id: Some(&id),
                        from_name: brand.as_deref(),
                        reply_to: reply_to.as_deref(),
                    },
                )?;
                diesel::update(crate::db::schema::followups::table.find(&id))
                    .set(crate::db::schema::followups::updated_at.eq(now()))
                    .execute(conn)?;
                let activity = followups::log(
                    conn,
                    &id,
                    "replied",
                    &actor,
                    Some(b.body.trim()),
                    Some(json!({"email_id": email.id, "subject": subject, "to": to})),
                )?;
                let task = followups::get(conn, &id)?;
                crate::webhooks::enqueue_followup(conn, false, &task, "replied")?;
                Ok((email, activity))
            })
        })
        .await?;
    state.wake_dispatcher.notify_one();
    state.wake_webhooks.notify_one();
    Ok(HttpResponse::Accepted().json(ReplyQueued {
        email_id: email.id,
        status: email.status,
        activity: activity.into(),
    }))
}
