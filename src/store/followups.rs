//! Follow-up tasks and their activity log.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{ActivityRow, FollowupRow};
use super::schema::{followup_activities, followups};
use super::DbConnection;
use crate::domain::{new_id, now, IdPrefix};
use crate::error::AppError;

/// Statuses in which a task still needs someone.
pub const OPEN_STATUSES: [&str; 2] = ["open", "in_progress"];

pub fn insert(conn: &mut DbConnection, row: &FollowupRow) -> Result<(), AppError> {
    diesel::insert_into(followups::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<FollowupRow, AppError> {
    followups::table
        .find(id)
        .select(FollowupRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("follow-up"))
}

pub fn for_response(
    conn: &mut DbConnection,
    response_id: &str,
) -> Result<Option<FollowupRow>, AppError> {
    Ok(followups::table
        .filter(followups::response_id.eq(response_id))
        .select(FollowupRow::as_select())
        .first(conn)
        .optional()?)
}

/// Appends to a task's activity log.
pub fn log(
    conn: &mut DbConnection,
    followup_id: &str,
    kind: &str,
    actor: &str,
    body: Option<&str>,
    data: Option<serde_json::Value>,
) -> Result<ActivityRow, AppError> {
    let row = ActivityRow {
        id: new_id(IdPrefix::Activity),
        followup_id: followup_id.into(),
        kind: kind.into(),
        actor: Some(actor.into()),
        body: body.map(str::to_string),
        data: data.map(|d| d.to_string()),
        created_at: now(),
    };
    diesel::insert_into(followup_activities::table)
        .values(&row)
        .execute(conn)?;
    Ok(row)
}

pub fn activities(
    conn: &mut DbConnection,
    followup_id: &str,
) -> Result<Vec<ActivityRow>, AppError> {
    Ok(followup_activities::table
        .filter(followup_activities::followup_id.eq(followup_id))
        .order(followup_activities::id)
        .select(ActivityRow::as_select())
        .load(conn)?)
}

/// Sets status (and the fields that go with it), assignee or the answer's score/comment.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = followups)]
pub struct FollowupChanges {
    pub status: Option<String>,
    pub assignee: Option<Option<String>>,
    pub outcome: Option<Option<String>>,
    pub resolved_at: Option<Option<NaiveDateTime>>,
    pub score: Option<i32>,
    pub comment: Option<Option<String>>,
    pub updated_at: Option<NaiveDateTime>,
}

/// Sets a task's `updated_at` (a note or reply is activity on it).
pub fn touch(conn: &mut DbConnection, id: &str, t: NaiveDateTime) -> Result<(), AppError> {
    diesel::update(followups::table.find(id))
        .set(followups::updated_at.eq(t))
        .execute(conn)?;
    Ok(())
}

pub fn update(
    conn: &mut DbConnection,
    id: &str,
    changes: &FollowupChanges,
) -> Result<FollowupRow, AppError> {
    diesel::update(followups::table.find(id))
        .set(changes)
        .execute(conn)?;
    get(conn, id)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Most valuable contact first, then the lower score, then the older answer.
    Priority,
    DueAt,
    CreatedAt,
}

#[derive(Debug, Default, Clone)]
pub struct FollowupFilter {
    pub status: Option<String>,
    pub assignee: Option<String>,
    pub survey_id: Option<String>,
    /// Only tasks still open or in progress whose due time has passed.
    pub overdue: Option<bool>,
}

/// A page of tasks in a stable order (every order ends with the id).
pub fn list(
    conn: &mut DbConnection,
    f: &FollowupFilter,
    sort: Sort,
    offset: i64,
    limit: i64,
) -> Result<Vec<FollowupRow>, AppError> {
    let mut q = followups::table
        .select(FollowupRow::as_select())
        .into_boxed();
    if let Some(v) = &f.status {
        q = q.filter(followups::status.eq(v.clone()));
    }
    if let Some(v) = &f.assignee {
        q = q.filter(followups::assignee.eq(v.clone()));
    }
    if let Some(v) = &f.survey_id {
        q = q.filter(followups::survey_id.eq(v.clone()));
    }
    match f.overdue {
        Some(true) => {
            q = q
                .filter(followups::status.eq_any(OPEN_STATUSES))
                .filter(followups::due_at.lt(now()))
        }
        Some(false) => {
            q = q.filter(
                followups::status
                    .ne_all(OPEN_STATUSES)
                    .or(followups::due_at.ge(now())),
            )
        }
        None => {}
    }
    q = match sort {
        Sort::Priority => q.order((
            followups::contact_value.desc(),
            followups::score.asc(),
            followups::answered_at.asc(),
            followups::id.asc(),
        )),
        Sort::DueAt => q.order((followups::due_at.asc(), followups::id.asc())),
        Sort::CreatedAt => q.order(followups::id.desc()),
    };
    Ok(q.offset(offset).limit(limit + 1).load(conn)?)
}

/// Open or in-progress tasks past their due time, most overdue first.
pub fn overdue(conn: &mut DbConnection, limit: i64) -> Result<Vec<FollowupRow>, AppError> {
    Ok(followups::table
        .filter(followups::status.eq_any(OPEN_STATUSES))
        .filter(followups::due_at.lt(now()))
        .order((followups::due_at.asc(), followups::id.asc()))
        .limit(limit)
        .select(FollowupRow::as_select())
        .load(conn)?)
}

/// Blanks the comments, notes and activity data of a contact's tasks.
pub fn clear_text_of_contact(conn: &mut DbConnection, contact_id: &str) -> Result<(), AppError> {
    let task_ids = followups::table
        .filter(followups::contact_id.eq(contact_id))
        .select(followups::id);
    diesel::update(
        followup_activities::table.filter(followup_activities::followup_id.eq_any(task_ids)),
    )
    .set((
        followup_activities::body.eq(None::<String>),
        followup_activities::data.eq(None::<String>),
    ))
    .execute(conn)?;
    diesel::update(followups::table.filter(followups::contact_id.eq(contact_id)))
        .set(followups::comment.eq(None::<String>))
        .execute(conn)?;
    Ok(())
}

/// A contact's tasks, newest first (the task page's "earlier tasks").
pub fn for_contact(
    conn: &mut DbConnection,
    contact_id: &str,
    limit: i64,
) -> Result<Vec<FollowupRow>, AppError> {
    Ok(followups::table
        .filter(followups::contact_id.eq(contact_id))
        .order(followups::id.desc())
        .limit(limit)
        .select(FollowupRow::as_select())
        .load(conn)?)
}
