//! Follow-up tasks and their activity log.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{ActivityRow, FollowupRow};
use super::schema::{contacts, followup_activities, followups, surveys};
use super::DbConnection;
use crate::domain::{new_id, now, IdPrefix};
use crate::error::AppError;

/// Statuses in which a task still needs someone.
pub const OPEN_STATUSES: [&str; 2] = ["open", "in_progress"];
/// The closed ones.
pub const CLOSED_STATUSES: [&str; 2] = ["resolved", "dismissed"];

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
    log_at(conn, followup_id, kind, actor, body, data, now())
}

/// Appends to a task's activity log at time `t` (`log` is now; the demo data back-dates).
pub fn log_at(
    conn: &mut DbConnection,
    followup_id: &str,
    kind: &str,
    actor: &str,
    body: Option<&str>,
    data: Option<serde_json::Value>,
    t: NaiveDateTime,
) -> Result<ActivityRow, AppError> {
    let row = ActivityRow {
        id: new_id(IdPrefix::Activity),
        followup_id: followup_id.into(),
        kind: kind.into(),
        actor: Some(actor.into()),
        body: body.map(str::to_string),
        data: data.map(|d| d.to_string()),
        created_at: t,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Most valuable contact first, then the lower score, then the older answer.
    #[default]
    Priority,
    /// Soonest due first.
    DueAt,
    /// Newest first.
    CreatedAt,
}

/// Whom a list of tasks is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AssigneeFilter {
    /// Assigned or not.
    #[default]
    Any,
    /// Tasks nobody is assigned to.
    Unassigned,
    /// Tasks assigned to exactly this assignee (an email address for team members).
    Is(String),
}

/// Which tasks an inbox or the API list shows. Every field narrows the list; the default
/// shows every task.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    /// Any of these statuses (`open`, `in_progress`, `resolved`, `dismissed`); empty: all.
    pub statuses: Vec<String>,
    pub assignee: AssigneeFilter,
    pub survey_id: Option<String>,
    /// Score band, inclusive at both ends (NPS detractors: 0 to 6; CSAT unsatisfied: 1 to 2).
    pub min_score: Option<i32>,
    pub max_score: Option<i32>,
    /// The contact's property `key` (see [`is_property_key`]) equals `value`, compared as
    /// text ignoring case: a string as is, a number as written (`120000`), a boolean as
    /// `true`/`false`.
    pub property: Option<(String, String)>,
    /// Answered at or after this time (UTC).
    pub answered_from: Option<NaiveDateTime>,
    /// Answered before this time (UTC, exclusive).
    pub answered_before: Option<NaiveDateTime>,
    /// `Some(true)`: only open or in-progress tasks past due; `Some(false)`: the others.
    pub overdue: Option<bool>,
    /// Case-insensitive substring of the comment, or the contact's name, email or `company`
    /// property (SQLite folds the case of ASCII letters only).
    pub q: Option<String>,
    /// Created after this time (the inbox's live poll).
    pub created_after: Option<NaiveDateTime>,
}

/// A task with what a list shows of its contact and survey (one query, joined).
#[derive(Debug, Clone)]
pub struct TaskListItem {
    pub task: FollowupRow,
    /// `None` for anonymous answers and erased contacts (as are the other contact fields).
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    /// The contact was erased (its personal data is gone).
    pub contact_erased: bool,
    /// The contact's `company` property, when present.
    pub company: Option<String>,
    /// The contact's `plan` property, when present.
    pub plan: Option<String>,
    /// The contact's `value` property (yearly revenue or lifetime value), when known.
    pub value: Option<f64>,
    pub survey_name: String,
    /// `nps` or `csat`.
    pub survey_kind: String,
}

/// How many tasks each inbox view holds, under the same common filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewCounts {
    /// Open or in progress.
    pub open: i64,
    /// Open or in progress, assigned to me.
    pub mine: i64,
    /// Open or in progress, assigned to nobody.
    pub unassigned: i64,
    /// Open or in progress and past due.
    pub overdue: i64,
    /// Resolved or dismissed.
    pub closed: i64,
    pub all: i64,
}

/// Whether `key` may name a contact property in a filter: 1 to 100 ASCII letters, digits,
/// `_` or `-` (as report segments).
pub fn is_property_key(key: &str) -> bool {
    (1..=100).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `key:value` as a property filter (`plan:enterprise`), when the key passes
/// [`is_property_key`].
pub fn split_property(raw: &str) -> Option<(String, String)> {
    match raw.split_once(':') {
        Some((k, v)) if is_property_key(k) => Some((k.to_string(), v.to_string())),
        _ => None,
    }
}

/// Tasks joined with their survey and (when any) contact.
macro_rules! joined {
    () => {
        followups::table
            .inner_join(surveys::table.on(surveys::id.eq(followups::survey_id)))
            .left_join(contacts::table.on(followups::contact_id.eq(contacts::id.nullable())))
    };
}

type ItemColumns = (
    FollowupRow,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<f64>,
    Option<NaiveDateTime>,
    String,
    String,
);

/// The columns of a [`TaskListItem`] over `joined!()`.
macro_rules! item_columns {
    () => {
        (
            FollowupRow::as_select(),
            contacts::name.nullable(),
            contacts::email.nullable(),
            contacts::properties.nullable(),
            contacts::value.nullable(),
            contacts::erased_at.nullable(),
            surveys::name,
            surveys::kind,
        )
    };
}

/// Narrows boxed query `$q` over `joined!()` by the filters an inbox view does not set:
/// survey, score band, property, answer dates and text.
macro_rules! common_filters {
    ($q:ident, $f:expr, $pg:expr) => {{
        use diesel::dsl::sql;
        use diesel::sql_types::{Bool, Text};
        let f: &InboxFilter = $f;
        if let Some(v) = &f.survey_id {
            $q = $q.filter(followups::survey_id.eq(v.clone()));
        }
        if let Some(v) = f.min_score {
            $q = $q.filter(followups::score.ge(v));
        }
        if let Some(v) = f.max_score {
            $q = $q.filter(followups::score.le(v));
        }
        if let Some(v) = f.answered_from {
            $q = $q.filter(followups::answered_at.ge(v));
        }
        if let Some(v) = f.answered_before {
            $q = $q.filter(followups::answered_at.lt(v));
        }
        if let Some(v) = f.created_after {
            $q = $q.filter(followups::created_at.gt(v));
        }
        if let Some((key, value)) = &f.property {
            if !is_property_key(key) {
                return Err(AppError::field(
                    "property",
                    "must be 1 to 100 letters, digits, _ or -",
                ));
            }
            $crate::store::filter_property!($q, key.clone(), value.clone(), $pg);
        }
        if let Some(text) = f.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let p = $crate::store::contains_pattern(text);
            let company = if $pg {
                "(contacts.properties::jsonb ->> 'company')"
            } else {
                "json_extract(contacts.properties, '$.company')"
            };
            $q = $q.filter(
                sql::<Bool>("(LOWER(followups.comment) LIKE ")
                    .bind::<Text, _>(p.clone())
                    .sql(" ESCAPE '\\' OR (contacts.erased_at IS NULL AND (LOWER(contacts.name) LIKE ")
                    .bind::<Text, _>(p.clone())
                    .sql(" ESCAPE '\\' OR LOWER(contacts.email) LIKE ")
                    .bind::<Text, _>(p.clone())
                    .sql(&format!(" ESCAPE '\\' OR LOWER({company}) LIKE "))
                    .bind::<Text, _>(p)
                    .sql(" ESCAPE '\\')))"),
            );
        }
    }};
}

/// Narrows a boxed query to `f`'s view: its statuses, assignee and overdue flag.
macro_rules! view_filters {
    ($q:ident, $f:expr) => {{
        let f: &InboxFilter = $f;
        if !f.statuses.is_empty() {
            $q = $q.filter(followups::status.eq_any(f.statuses.clone()));
        }
        match &f.assignee {
            AssigneeFilter::Any => {}
            AssigneeFilter::Unassigned => $q = $q.filter(followups::assignee.is_null()),
            AssigneeFilter::Is(a) => $q = $q.filter(followups::assignee.eq(a.clone())),
        }
        match f.overdue {
            Some(true) => {
                $q = $q
                    .filter(followups::status.eq_any(OPEN_STATUSES))
                    .filter(followups::due_at.lt(now()))
            }
            Some(false) => {
                $q = $q.filter(
                    followups::status
                        .ne_all(OPEN_STATUSES)
                        .or(followups::due_at.ge(now())),
                )
            }
            None => {}
        }
    }};
}

/// A page of tasks matching `f`, in `sort` order (every order ends with the id, so pages
/// are stable): up to `limit` items from `offset`. One query, whatever the filter.
pub fn search(
    conn: &mut DbConnection,
    f: &InboxFilter,
    sort: Sort,
    offset: i64,
    limit: i64,
) -> Result<Vec<TaskListItem>, AppError> {
    let pg = matches!(conn, DbConnection::Postgres(_));
    let mut q = joined!().select(item_columns!()).into_boxed();
    common_filters!(q, f, pg);
    view_filters!(q, f);
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
    let rows: Vec<ItemColumns> = q.offset(offset).limit(limit).load(conn)?;
    Ok(rows.into_iter().map(list_item).collect())
}

/// One task as a list item (404 when there is none).
pub fn item(conn: &mut DbConnection, id: &str) -> Result<TaskListItem, AppError> {
    let row: Option<ItemColumns> = joined!()
        .filter(followups::id.eq(id))
        .select(item_columns!())
        .first(conn)
        .optional()?;
    row.map(list_item).ok_or(AppError::NotFound("follow-up"))
}

/// How many tasks each inbox view (open, mine, unassigned, overdue, closed, all) holds
/// under the common part of `f` (survey, score band, property, answer dates, text; its
/// statuses, assignee and overdue are ignored), `me` being the assignee of "mine". One query.
pub fn view_counts(
    conn: &mut DbConnection,
    me: &str,
    f: &InboxFilter,
) -> Result<ViewCounts, AppError> {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Text, Timestamp};
    let pg = matches!(conn, DbConnection::Postgres(_));
    const OPEN: &str = "followups.status IN ('open', 'in_progress')";
    let sum = |cond: &str| format!("COALESCE(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END), 0)");
    let mut q = joined!()
        .select((
            sql::<BigInt>(&sum(OPEN)),
            sql::<BigInt>(&format!(
                "COALESCE(SUM(CASE WHEN {OPEN} AND followups.assignee = "
            ))
            .bind::<Text, _>(me.to_string())
            .sql(" THEN 1 ELSE 0 END), 0)"),
            sql::<BigInt>(&sum(&format!("{OPEN} AND followups.assignee IS NULL"))),
            sql::<BigInt>(&format!(
                "COALESCE(SUM(CASE WHEN {OPEN} AND followups.due_at < "
            ))
            .bind::<Timestamp, _>(now())
            .sql(" THEN 1 ELSE 0 END), 0)"),
            sql::<BigInt>(&sum("followups.status IN ('resolved', 'dismissed')")),
            sql::<BigInt>("COUNT(*)"),
        ))
        .into_boxed();
    common_filters!(q, f, pg);
    // An assignee filter narrows every view ("mine" with someone else's tasks counts none),
    // so each count is what its tab shows under the same filters.
    match &f.assignee {
        AssigneeFilter::Any => {}
        AssigneeFilter::Unassigned => q = q.filter(followups::assignee.is_null()),
        AssigneeFilter::Is(a) => q = q.filter(followups::assignee.eq(a.clone())),
    }
    let (open, mine, unassigned, overdue, closed, all): (i64, i64, i64, i64, i64, i64) =
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

/// How many tasks match `f` (for the inbox's live poll).
pub fn count(conn: &mut DbConnection, f: &InboxFilter) -> Result<i64, AppError> {
    let pg = matches!(conn, DbConnection::Postgres(_));
    let mut q = joined!().select(diesel::dsl::count_star()).into_boxed();
    common_filters!(q, f, pg);
    view_filters!(q, f);
    Ok(q.first(conn)?)
}

/// Every survey's id, name and kind, by name: the inbox's survey picker.
pub fn survey_names(conn: &mut DbConnection) -> Result<Vec<(String, String, String)>, AppError> {
    use super::schema::surveys;
    Ok(surveys::table
        .order((surveys::name.asc(), surveys::id.asc()))
        .select((surveys::id, surveys::name, surveys::kind))
        .load(conn)?)
}

fn list_item(r: ItemColumns) -> TaskListItem {
    let (task, name, email, properties, value, erased_at, survey_name, survey_kind) = r;
    let known = erased_at.is_none();
    let props = properties
        .filter(|_| known)
        .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok());
    let prop = |key: &str| {
        props
            .as_ref()
            .and_then(|p| p.get(key))
            .and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            })
    };
    TaskListItem {
        contact_name: name.filter(|_| known),
        contact_email: email.filter(|_| known),
        contact_erased: !known,
        company: prop("company"),
        plan: prop("plan"),
        value: value.filter(|_| known),
        survey_name,
        survey_kind,
        task,
    }
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

/// Open follow-ups (open or in progress) per survey: one query for every survey.
pub fn open_per_survey(conn: &mut DbConnection) -> Result<Vec<(String, i64)>, AppError> {
    Ok(followups::table
        .filter(followups::status.eq_any(OPEN_STATUSES))
        .group_by(followups::survey_id)
        .select((followups::survey_id, diesel::dsl::count_star()))
        .load(conn)?)
}

/// A resolved task whose customer may be due a re-survey.
#[derive(Debug, Clone)]
pub struct ResurveyCandidate {
    pub followup_id: String,
    pub survey_id: String,
    pub contact_id: String,
}

/// One survey's resolved tasks whose re-survey is due: resolved between `$latest - $grace` and
/// `$latest`, not re-surveyed yet, with a contact that is not erased; oldest first. It reads
/// the index `followups_resolved_at (status, resolved_at)` over that window only.
/// Shared by [`resurveys_due`] and the plan check ([`super::plans`]).
macro_rules! resurveys_due_of {
    ($survey_id:expr, $latest:expr, $grace:expr, $limit:expr) => {{
        use $crate::store::schema::{contacts, followups};
        followups::table
            .inner_join(contacts::table.on(contacts::id.nullable().eq(followups::contact_id)))
            .filter(followups::survey_id.eq($survey_id))
            .filter(followups::status.eq("resolved"))
            .filter(followups::resurvey_invitation_id.is_null())
            .filter(followups::resolved_at.le($latest))
            .filter(followups::resolved_at.ge($latest - $grace))
            .filter(contacts::erased_at.is_null())
            .select((
                followups::id,
                contacts::id,
                followups::resolved_at.assume_not_null(),
            ))
            .order(followups::resolved_at)
            .limit($limit)
    }};
}
pub(crate) use resurveys_due_of;

/// Resolved tasks with a (not erased) contact and no re-survey yet, on surveys that are not
/// archived and have `resurvey_after_days`, whose time has come at `t`: resolved at least
/// that many days ago, and at most `grace` later than that (a survey that turns re-surveys on
/// does not ask every customer of its past at once). Oldest first, at most `limit`. One
/// query per such survey, on the exact window of its delay.
pub fn resurveys_due(
    conn: &mut DbConnection,
    t: NaiveDateTime,
    grace: chrono::TimeDelta,
    limit: usize,
) -> Result<Vec<ResurveyCandidate>, AppError> {
    let delays: Vec<(String, i32)> = surveys::table
        .filter(surveys::resurvey_after_days.is_not_null())
        .filter(surveys::status.ne("archived"))
        .select((surveys::id, surveys::resurvey_after_days.assume_not_null()))
        .load(conn)?;
    let mut due: Vec<(NaiveDateTime, ResurveyCandidate)> = Vec::new();
    for (survey_id, days) in delays {
        let latest = t - chrono::TimeDelta::days(days as i64);
        let rows: Vec<(String, String, NaiveDateTime)> =
            resurveys_due_of!(&survey_id, latest, grace, limit as i64).load(conn)?;
        due.extend(rows.into_iter().map(|(followup_id, contact_id, resolved)| {
            (
                resolved,
                ResurveyCandidate {
                    followup_id,
                    survey_id: survey_id.clone(),
                    contact_id,
                },
            )
        }));
    }
    due.sort_by_key(|(resolved, _)| *resolved);
    Ok(due.into_iter().take(limit).map(|(_, c)| c).collect())
}

/// Links a task to its one re-survey invitation; false when it already has one or is no longer
/// resolved (another replica, or a run before, got there first). On PostgreSQL a concurrent
/// caller waits for the row and then sees the link, so only one invitation is ever made.
pub fn link_resurvey(
    conn: &mut DbConnection,
    followup_id: &str,
    invitation_id: &str,
) -> Result<bool, AppError> {
    let changed = diesel::update(
        followups::table
            .find(followup_id)
            .filter(followups::resurvey_invitation_id.is_null())
            .filter(followups::status.eq("resolved")),
    )
    .set(followups::resurvey_invitation_id.eq(Some(invitation_id)))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Moves a new task and its activity to the time of its answer (demo data): answered, created
/// and updated at `answered_at`, due at `due_at`.
pub fn backdate(
    conn: &mut DbConnection,
    id: &str,
    answered_at: NaiveDateTime,
    due_at: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::update(followups::table.find(id))
        .set((
            followups::answered_at.eq(answered_at),
            followups::created_at.eq(answered_at),
            followups::updated_at.eq(answered_at),
            followups::due_at.eq(due_at),
        ))
        .execute(conn)?;
    diesel::update(followup_activities::table.filter(followup_activities::followup_id.eq(id)))
        .set(followup_activities::created_at.eq(answered_at))
        .execute(conn)?;
    Ok(())
}

/// Whether there is any task (`closeloop demo` refuses a database with data).
pub fn any(conn: &mut DbConnection) -> Result<bool, AppError> {
    Ok(followups::table
        .select(followups::id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

/// Follow-up tasks open, in progress, and (of those) overdue at `t`, for `/metrics`.
pub fn backlog(conn: &mut DbConnection, t: NaiveDateTime) -> Result<(i64, i64, i64), AppError> {
    use diesel::dsl::count_star;
    let by_status: Vec<(String, i64)> = followups::table
        .filter(followups::status.eq_any(OPEN_STATUSES))
        .group_by(followups::status)
        .select((followups::status, count_star()))
        .load(conn)?;
    let of = |s: &str| {
        by_status
            .iter()
            .find(|(status, _)| status == s)
            .map_or(0, |(_, n)| *n)
    };
    let overdue: i64 = followups::table
        .filter(followups::status.eq_any(OPEN_STATUSES))
        .filter(followups::due_at.lt(t))
        .select(count_star())
        .first(conn)?;
    Ok((of("open"), of("in_progress"), overdue))
}

/// The tasks whose `followup.overdue` event is still to be sent: not closed (open or in
/// progress) and not yet notified. The partial index `followups_overdue_pending` (migration
/// `2026-11-28-000101_webhook_events`) has this predicate word for word, so both engines can
/// use it; keep the two the same. It says `NOT IN` the closed statuses rather than `IN` the
/// open ones so that SQLite's planner, which has no statistics, cannot prefer
/// `followups_status_due` (status, due_at): that one would also read every open task that is
/// overdue and was already announced.
pub const OVERDUE_PENDING: &str =
    "overdue_notified_at IS NULL AND status NOT IN ('resolved', 'dismissed')";

/// Up to `limit` tasks that passed their due time at `t` and whose overdue event is not yet
/// queued, soonest due first. Read through `followups_overdue_pending` (keyed by `due_at`, over
/// the pending tasks only), so a scan costs O(rows due), however many tasks were ever overdue.
pub fn overdue_pending(
    conn: &mut DbConnection,
    t: NaiveDateTime,
    limit: i64,
) -> Result<Vec<String>, AppError> {
    use diesel::dsl::sql;
    use diesel::sql_types::Bool;
    Ok(followups::table
        .filter(sql::<Bool>(OVERDUE_PENDING))
        .filter(followups::due_at.le(t))
        .order(followups::due_at)
        .limit(limit)
        .select(followups::id)
        .load(conn)?)
}

/// Marks the overdue event of task `id` as queued at `t`, if no one did yet and the task is
/// still open and past due: the conditional update is the claim, so of two replicas that
/// scanned the same task only one gets `true` (PostgreSQL re-checks the condition after the
/// other's commit). Call it in the transaction that queues the event.
pub fn claim_overdue(
    conn: &mut DbConnection,
    id: &str,
    t: NaiveDateTime,
) -> Result<bool, AppError> {
    let changed = diesel::update(
        followups::table
            .find(id)
            .filter(followups::overdue_notified_at.is_null())
            .filter(followups::status.eq_any(OPEN_STATUSES))
            .filter(followups::due_at.le(t)),
    )
    .set(followups::overdue_notified_at.eq(Some(t)))
    .execute(conn)?;
    Ok(changed == 1)
}
