//! Queries of the `surveys` table.

use diesel::prelude::*;

use super::models::{SurveyChanges, SurveyRow};
use super::schema::surveys;
use super::DbConnection;
use crate::domain::Page;
use crate::error::AppError;

pub fn insert(conn: &mut DbConnection, row: &SurveyRow) -> Result<(), AppError> {
    diesel::insert_into(surveys::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<SurveyRow, AppError> {
    surveys::table
        .find(id)
        .select(SurveyRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("survey"))
}

pub fn find_by_slug(conn: &mut DbConnection, slug: &str) -> Result<Option<SurveyRow>, AppError> {
    Ok(surveys::table
        .filter(surveys::public_slug.eq(slug))
        .select(SurveyRow::as_select())
        .first(conn)
        .optional()?)
}

#[derive(Debug, Default, Clone)]
pub struct SurveyFilter {
    pub status: Option<String>,
    pub kind: Option<String>,
}

pub fn list(
    conn: &mut DbConnection,
    filter: &SurveyFilter,
    page: &Page,
) -> Result<Vec<SurveyRow>, AppError> {
    let mut q = surveys::table
        .select(SurveyRow::as_select())
        .order(surveys::id.desc())
        .into_boxed();
    if let Some(status) = &filter.status {
        q = q.filter(surveys::status.eq(status.clone()));
    }
    if let Some(kind) = &filter.kind {
        q = q.filter(surveys::kind.eq(kind.clone()));
    }
    if let Some(c) = &page.cursor {
        q = q.filter(surveys::id.lt(c.clone()));
    }
    Ok(q.limit(page.limit + 1).load(conn)?)
}

pub fn update(
    conn: &mut DbConnection,
    id: &str,
    changes: &SurveyChanges,
) -> Result<SurveyRow, AppError> {
    diesel::update(surveys::table.find(id))
        .set(changes)
        .execute(conn)?;
    if changes.reminder_after_days.is_some() || changes.status.is_some() {
        // When the survey's sent invitations are to be reminded follows these two settings.
        super::invitations::sync_reminders(conn, id)?;
    }
    get(conn, id)
}

/// Whether the table has any row (`closeloop demo` refuses a database with data).
pub fn any(conn: &mut DbConnection) -> Result<bool, AppError> {
    Ok(super::schema::surveys::table
        .select(super::schema::surveys::id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}
