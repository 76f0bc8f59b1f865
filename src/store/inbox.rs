//! The workspace inbox: follow-up tasks with their customer and survey, filtered, sorted and
//! paged in one join query (`followups ⋈ surveys ⟕ contacts`), and the count of each view.
//!
//! Contact properties are a JSON text column on both engines; the property filter and the
//! company text search use engine-specific SQL with bound parameters (`json_extract` on
//! SQLite, `::jsonb ->>` on PostgreSQL). Company and plan are read from the loaded
//! properties in Rust.
// TODO(merge): reconcile with helper B's `store::followups::search` / `view_counts`.

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Text, Timestamp};

use super::followups::{Sort, OPEN_STATUSES};
use super::models::FollowupRow;
use super::schema::{contacts, followups, surveys};
use super::DbConnection;
use crate::domain::now;
use crate::error::AppError;

/// Statuses of a closed task.
pub const CLOSED_STATUSES: [&str; 2] = ["resolved", "dismissed"];

/// Whose tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AssigneeFilter {
    #[default]
    Any,
    Unassigned,
    /// Assigned to this member email.
    Is(String),
}

/// What the inbox shows. Every set field narrows the list.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    /// Any of these statuses; empty: every status.
    pub statuses: Vec<String>,
    pub assignee: AssigneeFilter,
    pub survey_id: Option<String>,
    /// Inclusive score bounds.
    pub min_score: Option<i32>,
    pub max_score: Option<i32>,
    /// A contact property equal to a value (compared case-insensitively, as text).
    pub property: Option<(String, String)>,
    /// Answered at or after.
    pub answered_from: Option<NaiveDateTime>,
    /// Answered before.
    pub answered_to: Option<NaiveDateTime>,
    /// Only open or in-progress tasks past their due time.
    pub overdue_only: bool,
    /// Text in the comment, or the customer's name, email or company (case-insensitive).
    pub q: Option<String>,
    /// Created after (the live poll's "since").
    pub created_after: Option<NaiveDateTime>,
}

/// A task as the inbox lists it.
#[derive(Debug, Clone)]
pub struct TaskListItem {
    pub task: FollowupRow,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    /// The contact's `company` property.
    pub company: Option<String>,
    /// The contact's `plan` property.
    pub plan: Option<String>,
    /// The contact's value (else the value recorded on the task).
    pub contact_value: Option<f64>,
    pub survey_name: String,
    pub survey_kind: String,
}

/// The number of tasks in each inbox view (with the other filters applied).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewCounts {
    pub open: i64,
    pub mine: i64,
    pub unassigned: i64,
    pub overdue: i64,
    pub closed: i64,
    pub all: i64,
}

/// `%text%` for `LIKE … ESCAPE '\'`, lower-cased.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The join with every filter of `$f` applied, selecting `$select`, boxed.
macro_rules! filtered {
    ($pg:expr, $f:expr, $select:expr) => {{
        let f: &InboxFilter = $f;
        let pg: bool = $pg;
        let mut q = followups::table
            .inner_join(surveys::table.on(surveys::id.eq(followups::survey_id)))
            .left_join(contacts::table)
            .select($select)
            .into_boxed();
        if !f.statuses.is_empty() {
            q = q.filter(followups::status.eq_any(f.statuses.clone()));
        }
        match &f.assignee {
            AssigneeFilter::Any => {}
            AssigneeFilter::Unassigned => q = q.filter(followups::assignee.is_null()),
            AssigneeFilter::Is(e) => q = q.filter(followups::assignee.eq(e.clone())),
        }
        if let Some(s) = &f.survey_id {
            q = q.filter(followups::survey_id.eq(s.clone()));
        }
        if let Some(v) = f.min_score {
            q = q.filter(followups::score.ge(v));
        }
        if let Some(v) = f.max_score {
            q = q.filter(followups::score.le(v));
        }
        if let Some(t) = f.answered_from {
            q = q.filter(followups::answered_at.ge(t));
        }
        if let Some(t) = f.answered_to {
            q = q.filter(followups::answered_at.lt(t));
        }
        if let Some(t) = f.created_after {
            q = q.filter(followups::created_at.gt(t));
        }
        if f.overdue_only {
            q = q
                .filter(followups::status.eq_any(OPEN_STATUSES))
                .filter(followups::due_at.lt(now()));
        }
        if let Some((key, value)) = &f.property {
            let value = value.to_lowercase();
            q = if pg {
                q.filter(
                    sql::<Bool>("lower(contacts.properties::jsonb ->> ")
                        .bind::<Text, _>(key.clone())
                        .sql(") = ")
                        .bind::<Text, _>(value),
                )
            } else {
                q.filter(
                    sql::<Bool>("lower(CAST(json_extract(contacts.properties, ")
                        .bind::<Text, _>(format!("$.\"{key}\""))
                        .sql(") AS TEXT)) = ")
                        .bind::<Text, _>(value),
                )
            };
        }
        if let Some(text) = f.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let p = like_pattern(text);
            let company = if pg {
                "contacts.properties::jsonb ->> 'company'"
            } else {
                "json_extract(contacts.properties, '$.company')"
            };
            q = q.filter(
                sql::<Bool>("(lower(coalesce(followups.comment, '')) LIKE ")
                    .bind::<Text, _>(p.clone())
                    .sql(" ESCAPE '\\' OR lower(coalesce(contacts.name, '')) LIKE ")
                    .bind::<Text, _>(p.clone())
                    .sql(" ESCAPE '\\' OR lower(coalesce(contacts.email, '')) LIKE ")
                    .bind::<Text, _>(p.clone())
                    .sql(&format!(
                        " ESCAPE '\\' OR lower(coalesce(CAST({company} AS TEXT), '')) LIKE "
                    ))
                    .bind::<Text, _>(p)
                    .sql(" ESCAPE '\\')"),
            );
        }
        q
    }};
}

fn is_pg(conn: &DbConnection) -> bool {
    matches!(conn, DbConnection::Postgres(_))
}

type Loaded = (
    FollowupRow,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<f64>,
    String,
    String,
);

/// Up to `limit` tasks matching `f` from `offset`, in `sort` order (every order ends with
/// the id, so pages are stable). Ask for one more than a page to know whether there is a next.
pub fn search(
    conn: &mut DbConnection,
    f: &InboxFilter,
    sort: Sort,
    offset: i64,
    limit: i64,
) -> Result<Vec<TaskListItem>, AppError> {
    let q = filtered!(
        is_pg(conn),
        f,
        (
            FollowupRow::as_select(),
            contacts::name.nullable(),
            contacts::email.nullable(),
            contacts::properties.nullable(),
            contacts::value.nullable(),
            surveys::name,
            surveys::kind,
        )
    );
    let q = match sort {
        Sort::Priority => q.order((
            sql::<Integer>("CASE WHEN followups.contact_value IS NULL THEN 1 ELSE 0 END").asc(),
            followups::contact_value.desc(),
            followups::score.asc(),
            followups::answered_at.asc(),
            followups::id.asc(),
        )),
        Sort::DueAt => q.order((followups::due_at.asc(), followups::id.asc())),
        Sort::CreatedAt => q.order((followups::created_at.desc(), followups::id.desc())),
    };
    let rows: Vec<Loaded> = q.offset(offset.max(0)).limit(limit.max(0)).load(conn)?;
    Ok(rows.into_iter().map(item).collect())
}

fn item((task, name, email, props, value, survey_name, survey_kind): Loaded) -> TaskListItem {
    let props: serde_json::Value = props
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(serde_json::Value::Null);
    let text = |k: &str| match props.get(k) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
            Some(v.to_string())
        }
        _ => None,
    };
    TaskListItem {
        company: text("company"),
        plan: text("plan"),
        contact_value: value.or(task.contact_value),
        task,
        contact_name: name,
        contact_email: email,
        survey_name,
        survey_kind,
    }
}

/// How many tasks match `f` (its statuses apply; for the live poll).
pub fn count(conn: &mut DbConnection, f: &InboxFilter) -> Result<i64, AppError> {
    let q = filtered!(is_pg(conn), f, sql::<BigInt>("COUNT(*)"));
    Ok(q.first(conn)?)
}

/// The count of each view for a member `me` (email), with `f`'s other filters applied (its
/// `statuses` and `overdue_only` are ignored; its assignee narrows every view, so "mine"
/// with another assignee counts none). One query.
pub fn view_counts(
    conn: &mut DbConnection,
    me: &str,
    f: &InboxFilter,
) -> Result<ViewCounts, AppError> {
    let f = InboxFilter {
        statuses: Vec::new(),
        overdue_only: false,
        ..f.clone()
    };
    const OPEN: &str = "followups.status IN ('open', 'in_progress')";
    let q = filtered!(
        is_pg(conn),
        &f,
        (
            sql::<BigInt>("COUNT(*)"),
            sql::<BigInt>(&format!(
                "COALESCE(SUM(CASE WHEN {OPEN} THEN 1 ELSE 0 END), 0)"
            )),
            sql::<BigInt>(&format!(
                "COALESCE(SUM(CASE WHEN {OPEN} AND followups.assignee = "
            ))
            .bind::<Text, _>(me.to_string())
            .sql(" THEN 1 ELSE 0 END), 0)"),
            sql::<BigInt>(&format!(
                "COALESCE(SUM(CASE WHEN {OPEN} AND followups.assignee IS NULL THEN 1 ELSE 0 END), 0)"
            )),
            sql::<BigInt>(&format!(
                "COALESCE(SUM(CASE WHEN {OPEN} AND followups.due_at < "
            ))
            .bind::<Timestamp, _>(now())
            .sql(" THEN 1 ELSE 0 END), 0)"),
            sql::<BigInt>(
                "COALESCE(SUM(CASE WHEN followups.status IN ('resolved', 'dismissed') THEN 1 ELSE 0 END), 0)"
            ),
        )
    );
    let (all, open, mine, unassigned, overdue, closed): (i64, i64, i64, i64, i64, i64) =
        q.first(conn)?;
    Ok(ViewCounts {
        open,
        mine,
        unassigned,
        overdue,
        closed,
        all,
    })
}

/// Every survey's id, name and kind, by name: the inbox's survey picker.
pub fn survey_names(conn: &mut DbConnection) -> Result<Vec<(String, String, String)>, AppError> {
    Ok(surveys::table
        .order((surveys::name.asc(), surveys::id.asc()))
        .select((surveys::id, surveys::name, surveys::kind))
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("Ab"), "%ab%");
        assert_eq!(like_pattern("50%_x\\"), "%50\\%\\_x\\\\%");
    }
}
