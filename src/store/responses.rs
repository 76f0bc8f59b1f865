//! Queries of the `responses` table (answers). The rules of recording one are in `answers`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::ResponseRow;
use super::schema::{contacts, followups, invitations, responses, surveys, webhooks};
use super::DbConnection;
use crate::domain::{Page, Score};
use crate::error::AppError;

/// The delivery state of an invitation, its response, whether its contact was erased, the
/// contact's properties, the survey's `report_segments` and whether any webhook listens, in
/// one query.
pub fn invitation_state(
    conn: &mut DbConnection,
    invitation_id: &str,
) -> Result<InvitationState, AppError> {
    let listening = webhooks::table
        .filter(webhooks::deleted_at.is_null())
        .filter(webhooks::active.eq(true));
    let query = invitations::table
        .inner_join(contacts::table)
        .inner_join(surveys::table)
        .left_join(responses::table)
        .filter(invitations::id.eq(invitation_id))
        .select((
            invitations::sent_at,
            invitations::responded_at,
            responses::all_columns.nullable(),
            contacts::erased_at,
            contacts::properties,
            surveys::report_segments,
            diesel::dsl::exists(listening),
        ));
    let (sent_at, responded_at, response, contact_erased_at, properties, report_segments, webhooks) =
        super::on_engine!(conn, |c| query.get_result(c))?;
    Ok(InvitationState {
        sent_at,
        responded_at,
        response,
        contact_erased_at,
        properties,
        report_segments,
        webhooks,
    })
}

/// What recording an answer needs to know about its invitation.
pub struct InvitationState {
    pub sent_at: Option<NaiveDateTime>,
    pub responded_at: Option<NaiveDateTime>,
    /// Its response, if it has one.
    pub response: Option<ResponseRow>,
    /// When its contact was erased (then it takes no answer).
    pub contact_erased_at: Option<NaiveDateTime>,
    /// The contact's properties (JSON text), for the segment snapshot.
    pub properties: String,
    /// The survey's `report_segments` as committed (JSON array of names).
    pub report_segments: String,
    /// Whether any webhook is active (if none, no event needs building; read in the same
    /// query, which saves a round trip per answer on PostgreSQL).
    pub webhooks: bool,
}

/// Inserts a response; `false` when a concurrent submit won the race (the unique index on
/// the invitation or on the submission already holds a response). `ON CONFLICT DO NOTHING`
/// leaves the transaction usable on PostgreSQL without a savepoint (two round trips fewer).
pub fn try_insert(conn: &mut DbConnection, row: &ResponseRow) -> Result<bool, AppError> {
    let insert = diesel::insert_into(responses::table)
        .values(row)
        .on_conflict_do_nothing();
    let inserted = super::on_engine!(conn, |c| insert.execute(c))?;
    Ok(inserted == 1)
}

/// Sets a response's score, category and comment.
pub fn set_answer(
    conn: &mut DbConnection,
    id: &str,
    score: Score,
    comment: Option<&str>,
    t: NaiveDateTime,
) -> Result<(), AppError> {
    super::Cached(diesel::update(responses::table.find(id)).set((
        responses::score.eq(score.value()),
        responses::category.eq(score.category().as_str()),
        responses::comment.eq(comment),
        responses::updated_at.eq(t),
    )))
    .execute(conn)?;
    Ok(())
}

/// Marks an invitation answered and its contact as having answered at `t`.
pub fn mark_responded(
    conn: &mut DbConnection,
    invitation_id: &str,
    contact_id: &str,
    t: NaiveDateTime,
) -> Result<(), AppError> {
    match conn {
        DbConnection::Sqlite(c) => {
            super::Cached(diesel::update(invitations::table.find(invitation_id)).set((
                invitations::status.eq("responded"),
                invitations::responded_at.eq(Some(t)),
                invitations::claimed_until.eq(None::<NaiveDateTime>),
                invitations::remind_at.eq(None::<NaiveDateTime>),
                invitations::updated_at.eq(t),
            )))
            .execute(c)?;
            super::Cached(
                diesel::update(contacts::table.find(contact_id))
                    .set(contacts::last_responded_at.eq(Some(t))),
            )
            .execute(c)?;
        }
        // One statement (one round trip, one parse) on PostgreSQL: the invitation's update
        // as a data-modifying CTE of the contact's, the same two statements as above.
        DbConnection::Postgres(c) => {
            use diesel::sql_types::{Text, Timestamp};
            super::Cached(
                diesel::sql_query(
                    "WITH i AS (UPDATE invitations SET status = 'responded', responded_at = $2, \
                     claimed_until = NULL, remind_at = NULL, updated_at = $2 WHERE id = $1) \
                     UPDATE contacts SET last_responded_at = $2 WHERE id = $3",
                )
                .bind::<Text, _>(invitation_id)
                .bind::<Timestamp, _>(t)
                .bind::<Text, _>(contact_id),
            )
            .execute(c)?;
        }
    }
    Ok(())
}

pub fn for_invitation(
    conn: &mut DbConnection,
    invitation_id: &str,
) -> Result<Option<ResponseRow>, AppError> {
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
) -> Result<Option<ResponseRow>, AppError> {
    Ok(responses::table
        .filter(responses::survey_id.eq(survey_id))
        .filter(responses::submission_id.eq(submission_id))
        .select(ResponseRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<ResponseRow, AppError> {
    responses::table
        .find(id)
        .select(ResponseRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("response"))
}

#[derive(Debug, Default, Clone)]
pub struct ResponseFilter {
    pub survey_id: Option<String>,
    pub contact_id: Option<String>,
    pub category: Option<String>,
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
    /// Answers to any survey of this kind (`nps`, `csat`).
    pub survey_kind: Option<String>,
    /// The contact's property `key` (see `followups::is_property_key`) equals `value`,
    /// compared as text ignoring case.
    pub property: Option<(String, String)>,
    /// Case-insensitive substring of the comment.
    pub q: Option<String>,
}

/// Narrows boxed query `$q` over `responses` (possibly joined) by every field of
/// [`ResponseFilter`] `$f`; `$pg` tells the engine (for the property's JSON).
macro_rules! response_filters {
    ($q:ident, $f:expr, $pg:expr) => {{
        use diesel::dsl::sql;
        use diesel::sql_types::{Bool, Text};
        let f: &ResponseFilter = $f;
        if let Some(v) = &f.survey_id {
            $q = $q.filter(responses::survey_id.eq(v.clone()));
        }
        if let Some(v) = &f.contact_id {
            $q = $q.filter(responses::contact_id.eq(v.clone()));
        }
        if let Some(v) = &f.category {
            $q = $q.filter(responses::category.eq(v.clone()));
        }
        if let Some(v) = f.since {
            $q = $q.filter(responses::created_at.ge(v));
        }
        if let Some(v) = f.until {
            $q = $q.filter(responses::created_at.lt(v));
        }
        if let Some(k) = &f.survey_kind {
            $q = $q.filter(
                sql::<Bool>("responses.survey_id IN (SELECT sk.id FROM surveys sk WHERE sk.kind = ")
                    .bind::<Text, _>(k.clone())
                    .sql(")"),
            );
        }
        if let Some((key, value)) = &f.property {
            if !super::followups::is_property_key(key) {
                return Err(AppError::field(
                    "property",
                    "must be 1 to 100 letters, digits, _ or -",
                ));
            }
            super::filter_property!(
                $q,
                $pg,
                "responses.contact_id IN (SELECT pc.id FROM contacts pc WHERE pc.erased_at IS NULL AND ",
                "pc.properties",
                key,
                value,
                ")"
            );
        }
        if let Some(text) = f.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            $q = $q.filter(
                sql::<Bool>("LOWER(responses.comment) LIKE ")
                    .bind::<Text, _>(super::contains_pattern(text))
                    .sql(" ESCAPE '\\'"),
            );
        }
    }};
}

pub fn list(
    conn: &mut DbConnection,
    f: &ResponseFilter,
    page: &Page,
) -> Result<Vec<ResponseRow>, AppError> {
    let mut q = responses::table
        .select(ResponseRow::as_select())
        .order(responses::id.desc())
        .into_boxed();
    let pg = matches!(conn, DbConnection::Postgres(_));
    response_filters!(q, f, pg);
    if let Some(c) = &page.cursor {
        q = q.filter(responses::id.lt(c.clone()));
    }
    Ok(q.limit(page.limit + 1).load(conn)?)
}

/// A page of a CSV export: responses with their contact's email, name and external id,
/// oldest first, after the id `after`.
#[allow(clippy::type_complexity)]
/// One row of the CSV export: the response with its contact and its follow-up task.
pub struct ExportRow {
    pub response: ResponseRow,
    pub email: Option<String>,
    pub name: Option<String>,
    pub external_id: Option<String>,
    /// The contact's properties (a JSON object).
    pub properties: Option<String>,
    pub followup_status: Option<String>,
    pub followup_assignee: Option<String>,
}

type ExportTuple = (
    ResponseRow,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A page of the export (oldest first, after the response id `after`).
pub fn export_page(
    conn: &mut DbConnection,
    f: &ResponseFilter,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ExportRow>, AppError> {
    let mut q = responses::table
        .left_join(contacts::table)
        .left_join(followups::table.on(followups::response_id.eq(responses::id)))
        .select((
            ResponseRow::as_select(),
            contacts::email.nullable(),
            contacts::name.nullable(),
            contacts::external_id.nullable(),
            contacts::properties.nullable(),
            followups::status.nullable(),
            followups::assignee.nullable(),
        ))
        .order(responses::id.asc())
        .into_boxed();
    let pg = matches!(conn, DbConnection::Postgres(_));
    response_filters!(q, f, pg);
    if let Some(a) = after {
        q = q.filter(responses::id.gt(a.to_string()));
    }
    let rows: Vec<ExportTuple> = q.limit(limit).load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(response, email, name, external_id, properties, status, assignee)| ExportRow {
                response,
                email,
                name,
                external_id,
                properties,
                followup_status: status,
                followup_assignee: assignee,
            },
        )
        .collect())
}

/// Blanks the comments of a contact's answers.
pub fn clear_comments_of_contact(
    conn: &mut DbConnection,
    contact_id: &str,
) -> Result<(), AppError> {
    diesel::update(responses::table.filter(responses::contact_id.eq(contact_id)))
        .set(responses::comment.eq(None::<String>))
        .execute(conn)?;
    Ok(())
}

/// Moves a response to time `t` (demo data; the rollups are rebuilt afterwards).
pub fn backdate(conn: &mut DbConnection, id: &str, t: NaiveDateTime) -> Result<(), AppError> {
    diesel::update(responses::table.find(id))
        .set((responses::created_at.eq(t), responses::updated_at.eq(t)))
        .execute(conn)?;
    Ok(())
}

/// Whether the table has any row (`closeloop demo` refuses a database with data).
pub fn any(conn: &mut DbConnection) -> Result<bool, AppError> {
    Ok(super::schema::responses::table
        .select(super::schema::responses::id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

/// An answer with a comment, as the dashboard's comments feed lists it.
#[derive(Debug, Clone)]
pub struct CommentItem {
    pub response: ResponseRow,
    pub survey_name: String,
    pub survey_kind: String,
    /// `None` for anonymous answers and erased contacts.
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    /// The follow-up task of the answer, if any.
    pub followup_id: Option<String>,
}

/// Answers with a non-empty comment matching `f`, newest first (then by id): up to `limit`
/// from `offset`.
///
/// Each survey is read on its own, walking the `(survey_id, created_at, …)` index backwards
/// and stopping after `offset + limit` rows; a kind's surveys are then merged here. (One query
/// over several surveys, or joined to `surveys`, made SQLite sort every answer of the range:
/// 0.9 s over a year of a million answers.)
pub fn comments(
    conn: &mut DbConnection,
    f: &ResponseFilter,
    offset: i64,
    limit: i64,
) -> Result<Vec<CommentItem>, AppError> {
    let survey_ids: Vec<String> = match (&f.survey_id, &f.survey_kind) {
        (Some(id), _) => vec![id.clone()],
        (None, Some(kind)) => surveys::table
            .filter(surveys::kind.eq(kind.clone()))
            .select(surveys::id)
            .load(conn)?,
        (None, None) => surveys::table.select(surveys::id).load(conn)?,
    };
    let mut all = Vec::new();
    for id in &survey_ids {
        let one = ResponseFilter {
            survey_id: Some(id.clone()),
            survey_kind: None,
            ..f.clone()
        };
        all.extend(comments_of_survey(conn, &one, offset + limit)?);
    }
    all.sort_by(|a, b| (b.0.created_at, &b.0.id).cmp(&(a.0.created_at, &a.0.id)));
    let rows: Vec<CommentRow> = all
        .into_iter()
        .skip(offset.max(0) as usize)
        .take(limit.max(0) as usize)
        .collect();
    let ids: Vec<String> = rows.iter().map(|r| r.0.survey_id.clone()).collect();
    let names: std::collections::HashMap<String, (String, String)> = surveys::table
        .filter(surveys::id.eq_any(ids))
        .select((surveys::id, surveys::name, surveys::kind))
        .load::<(String, String, String)>(conn)?
        .into_iter()
        .map(|(id, name, kind)| (id, (name, kind)))
        .collect();
    Ok(rows
        .into_iter()
        .map(|(response, name, email, erased, followup_id)| {
            let (survey_name, survey_kind) =
                names.get(&response.survey_id).cloned().unwrap_or_default();
            CommentItem {
                response,
                survey_name,
                survey_kind,
                contact_name: name.filter(|_| erased.is_none()),
                contact_email: email.filter(|_| erased.is_none()),
                followup_id,
            }
        })
        .collect())
}

type CommentRow = (
    ResponseRow,
    Option<String>,
    Option<String>,
    Option<NaiveDateTime>,
    Option<String>,
);

/// The newest `limit` commented answers of one survey matching `f`.
fn comments_of_survey(
    conn: &mut DbConnection,
    f: &ResponseFilter,
    limit: i64,
) -> Result<Vec<CommentRow>, AppError> {
    let pg = matches!(conn, DbConnection::Postgres(_));
    let mut q = responses::table
        .left_join(contacts::table)
        .left_join(followups::table.on(followups::response_id.eq(responses::id)))
        .select((
            ResponseRow::as_select(),
            contacts::name.nullable(),
            contacts::email.nullable(),
            contacts::erased_at.nullable(),
            followups::id.nullable(),
        ))
        .filter(responses::comment.is_not_null())
        .filter(responses::comment.ne(""))
        .order((responses::created_at.desc(), responses::id.desc()))
        .into_boxed();
    response_filters!(q, f, pg);
    Ok(q.limit(limit).load(conn)?)
}
