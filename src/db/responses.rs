//! Recording answers: one response per invitation (or per anonymous submission), updated in
//! place when the customer changes it within the survey's edit window.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use super::models::{InvitationRow, ResponseRow, SurveyRow};
use super::schema::{contacts, invitations, responses};
use super::DbConnection;
use crate::api::error::ApiError;
use crate::api::extract::Page;
use crate::domain::{new_id, now, IdPrefix, Score};

/// What to do with the comment.
#[derive(Debug, Clone)]
pub enum CommentChange {
    Keep,
    Set(Option<String>),
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub survey: SurveyRow,
    pub invitation: Option<InvitationRow>,
    pub score: Score,
    pub comment: CommentChange,
    /// `email`, `link`, `public` or `api`.
    pub channel: String,
    pub locale: Option<String>,
    /// Anonymous answers: the form's one-time id, so a double submit updates one response.
    pub submission_id: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Recorded {
    Created(Box<ResponseRow>),
    Updated {
        before: Box<ResponseRow>,
        after: Box<ResponseRow>,
    },
}

impl Recorded {
    pub fn response(&self) -> &ResponseRow {
        match self {
            Recorded::Created(r) => r,
            Recorded::Updated { after, .. } => after,
        }
    }
}

fn existing(conn: &mut DbConnection, a: &Answer) -> Result<Option<ResponseRow>, ApiError> {
    let q = responses::table
        .select(ResponseRow::as_select())
        .into_boxed();
    let q = match (&a.invitation, &a.submission_id) {
        (Some(inv), _) => q.filter(responses::invitation_id.eq(inv.id.clone())),
        (None, Some(sub)) => q
            .filter(responses::survey_id.eq(a.survey.id.clone()))
            .filter(responses::submission_id.eq(sub.clone())),
        (None, None) => return Ok(None),
    };
    Ok(q.first(conn).optional()?)
}

/// The end of the edit window of a response.
pub fn editable_until(survey: &SurveyRow, response: &ResponseRow) -> NaiveDateTime {
    response.created_at + TimeDelta::hours(survey.edit_window_hours as i64)
}

/// Records an answer in one transaction with its side effects: the invitation becomes
/// `responded`, the contact's `last_responded_at` is set, and the feedback loop reacts.
/// A second answer for the same invitation updates the one response within the edit window
/// (409 `edit_window_closed` after it), also under concurrent submits.
/// What recording an answer did.
pub struct RecordOutcome {
    pub recorded: Recorded,
    /// Follow-up tasks created or changed (their alerts may be queued).
    pub tasks: Vec<crate::followup::TaskEvent>,
    /// Webhook deliveries queued (0 when no webhook listens).
    pub webhook_events: usize,
}

/// Records an answer with its side effects, in a transaction of its own.
pub fn record(
    conn: &mut DbConnection,
    a: &Answer,
    rules: &crate::followup::Rules,
) -> Result<RecordOutcome, ApiError> {
    conn.transaction(|conn| record_in_tx(conn, a, rules))
}

/// `record` for a caller that already holds a transaction (`Db::write_grouped`).
pub fn record_in_tx(
    conn: &mut DbConnection,
    a: &Answer,
    rules: &crate::followup::Rules,
) -> Result<RecordOutcome, ApiError> {
    {
        let t = now();
        // For an invitation, one query reads its delivery state and its current response.
        let (delivery, current) = match &a.invitation {
            Some(inv) => {
                let (sent_at, responded_at, current_id): (
                    Option<NaiveDateTime>,
                    Option<NaiveDateTime>,
                    Option<String>,
                ) = invitations::table
                    .left_join(responses::table)
                    .filter(invitations::id.eq(&inv.id))
                    .select((
                        invitations::sent_at,
                        invitations::responded_at,
                        responses::id.nullable(),
                    ))
                    .first(conn)?;
                let current = match current_id {
                    Some(id) => Some(get(conn, &id)?),
                    None => None,
                };
                (Some((sent_at, responded_at)), current)
            }
            None => (None, existing(conn, a)?),
        };
        let recorded = match current {
            Some(before) => update(conn, a, before, t)?,
            None => {
                let row = ResponseRow {
                    id: new_id(IdPrefix::Response),
                    survey_id: a.survey.id.clone(),
                    invitation_id: a.invitation.as_ref().map(|i| i.id.clone()),
                    contact_id: a.invitation.as_ref().map(|i| i.contact_id.clone()),
                    score: a.score.value(),
                    category: a.score.category().as_str().into(),
                    comment: match &a.comment {
                        CommentChange::Keep => None,
                        CommentChange::Set(c) => c.clone(),
                    },
                    channel: a.channel.clone(),
                    locale: a.locale.clone(),
                    submission_id: a.submission_id.clone(),
                    created_at: t,
                    updated_at: t,
                };
                // When a concurrent submit won the race, the unique index refuses this insert
                // and the answer becomes an update of the winner's row. PostgreSQL needs a
                // savepoint to go on after a failed statement; SQLite undoes only the statement.
                let insert = |conn: &mut DbConnection| {
                    diesel::insert_into(responses::table)
                        .values(&row)
                        .execute(conn)
                };
                let inserted = match conn {
                    DbConnection::Sqlite(_) => insert(conn),
                    DbConnection::Postgres(_) => conn.transaction(insert),
                };
                match inserted {
                    Ok(_) => Recorded::Created(Box::new(row)),
                    Err(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    )) => {
                        let before = existing(conn, a)?.ok_or(ApiError::NotFound("response"))?;
                        update(conn, a, before, t)?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        use crate::reports::rollup;
        match &recorded {
            Recorded::Created(r) => {
                rollup::add_answer(conn, &r.survey_id, &rollup::day(r.created_at), r.score, 1)?;
                if let Some((Some(sent), None)) = delivery {
                    rollup::add_first_answer(conn, &r.survey_id, sent, r.created_at)?;
                }
            }
            Recorded::Updated { before, after } if before.score != after.score => {
                let day = rollup::day(before.created_at);
                rollup::add_answer(conn, &before.survey_id, &day, before.score, -1)?;
                rollup::add_answer(conn, &after.survey_id, &day, after.score, 1)?;
            }
            Recorded::Updated { .. } => {}
        }
        if let Some(inv) = &a.invitation {
            diesel::update(invitations::table.find(&inv.id))
                .set((
                    invitations::status.eq("responded"),
                    invitations::responded_at.eq(Some(t)),
                    invitations::claimed_until.eq(None::<NaiveDateTime>),
                    invitations::updated_at.eq(t),
                ))
                .execute(conn)?;
            diesel::update(contacts::table.find(&inv.contact_id))
                .set(contacts::last_responded_at.eq(Some(t)))
                .execute(conn)?;
        }
        let mut webhook_events = crate::webhooks::enqueue_response(conn, &recorded)?;
        let tasks = crate::followup::on_response(conn, rules, &a.survey, &recorded)?;
        for task in &tasks {
            webhook_events += match task {
                crate::followup::TaskEvent::Created(t) => {
                    crate::webhooks::enqueue_followup(conn, true, t, "created")?
                }
                crate::followup::TaskEvent::Updated(t) => {
                    crate::webhooks::enqueue_followup(conn, false, t, "answer_changed")?
                }
            };
        }
        Ok(RecordOutcome {
            recorded,
            tasks,
            webhook_events,
        })
    }
}

fn update(
    conn: &mut DbConnection,
    a: &Answer,
    before: ResponseRow,
    t: NaiveDateTime,
) -> Result<Recorded, ApiError> {
    if t > editable_until(&a.survey, &before) {
        return Err(ApiError::conflict(
            "edit_window_closed",
            "this answer can no longer be changed",
        ));
    }
    let comment = match &a.comment {
        CommentChange::Keep => before.comment.clone(),
        CommentChange::Set(c) => c.clone(),
    };
    diesel::update(responses::table.find(&before.id))
        .set((
            responses::score.eq(a.score.value()),
            responses::category.eq(a.score.category().as_str()),
            responses::comment.eq(&comment),
            responses::updated_at.eq(t),
        ))
        .execute(conn)?;
    let after = ResponseRow {
        score: a.score.value(),
        category: a.score.category().as_str().into(),
        comment,
        updated_at: t,
        ..before.clone()
    };
    Ok(Recorded::Updated {
        before: Box::new(before),
        after: Box::new(after),
    })
}

pub fn for_invitation(
    conn: &mut DbConnection,
    invitation_id: &str,
) -> Result<Option<ResponseRow>, ApiError> {
    Ok(responses::table
        .filter(responses::invitation_id.eq(invitation_id))
        .select(ResponseRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn by_submission(
    conn: &mut DbConnection,
    survey_id: &str,
    submission_id: &str,
) -> Result<Option<ResponseRow>, ApiError> {
    Ok(responses::table
        .filter(responses::survey_id.eq(survey_id))
        .filter(responses::submission_id.eq(submission_id))
        .select(ResponseRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<ResponseRow, ApiError> {
    responses::table
        .find(id)
        .select(ResponseRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(ApiError::NotFound("response"))
}

#[derive(Debug, Default, Clone)]
pub struct ResponseFilter {
    pub survey_id: Option<String>,
    pub contact_id: Option<String>,
    pub category: Option<String>,
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
}

pub fn list(
    conn: &mut DbConnection,
    f: &ResponseFilter,
    page: &Page,
) -> Result<Vec<ResponseRow>, ApiError> {
    let mut q = responses::table
        .select(ResponseRow::as_select())
        .order(responses::id.desc())
        .into_boxed();
    if let Some(v) = &f.survey_id {
        q = q.filter(responses::survey_id.eq(v.clone()));
    }
    if let Some(v) = &f.contact_id {
        q = q.filter(responses::contact_id.eq(v.clone()));
    }
    if let Some(v) = &f.category {
        q = q.filter(responses::category.eq(v.clone()));
    }
    if let Some(v) = f.since {
        q = q.filter(responses::created_at.ge(v));
    }
    if let Some(v) = f.until {
        q = q.filter(responses::created_at.lt(v));
    }
    if let Some(c) = &page.cursor {
        q = q.filter(responses::id.lt(c.clone()));
    }
    Ok(q.limit(page.limit + 1).load(conn)?)
}

/// A page of a CSV export: responses with their contact's email, name and external id,
/// oldest first, after the id `after`.
#[allow(clippy::type_complexity)]
pub fn export_page(
    conn: &mut DbConnection,
    f: &ResponseFilter,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<(ResponseRow, Option<String>, Option<String>, Option<String>)>, ApiError> {
    let mut q = responses::table
        .left_join(contacts::table)
        .select((
            ResponseRow::as_select(),
            contacts::email.nullable(),
            contacts::name.nullable(),
            contacts::external_id.nullable(),
        ))
        .order(responses::id.asc())
        .into_boxed();
    if let Some(v) = &f.survey_id {
        q = q.filter(responses::survey_id.eq(v.clone()));
    }
    if let Some(v) = &f.contact_id {
        q = q.filter(responses::contact_id.eq(v.clone()));
    }
    if let Some(v) = &f.category {
        q = q.filter(responses::category.eq(v.clone()));
    }
    if let Some(v) = f.since {
        q = q.filter(responses::created_at.ge(v));
    }
    if let Some(v) = f.until {
        q = q.filter(responses::created_at.lt(v));
    }
    if let Some(a) = after {
        q = q.filter(responses::id.gt(a.to_string()));
    }
    Ok(q.limit(limit).load(conn)?)
}
