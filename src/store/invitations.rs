//! Invitations: creation with throttling and suppression, lookups, and the send queue.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use super::models::{ContactRow, InvitationRow, SurveyRow};
use super::schema::{contacts, invitations, surveys};
use super::DbConnection;
use crate::domain::now;
use crate::domain::Page;
use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Link,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Link => "link",
        }
    }
}

/// Inserts an invitation.
pub fn insert(conn: &mut DbConnection, row: &InvitationRow) -> Result<(), AppError> {
    diesel::insert_into(invitations::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<InvitationRow, AppError> {
    invitations::table
        .find(id)
        .select(InvitationRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("invitation"))
}

/// The invitation of a token with its survey and when its contact was erased (if they
/// were), in one query.
pub fn with_survey_by_token(
    conn: &mut DbConnection,
    token: &str,
) -> Result<Option<(InvitationRow, SurveyRow, Option<NaiveDateTime>)>, AppError> {
    // Each engine's arm builds its own query (`as_select` is typed by engine).
    Ok(super::on_engine!(conn, |c| invitations::table
        .inner_join(surveys::table)
        .inner_join(contacts::table)
        .filter(invitations::token.eq(token))
        .select((
            InvitationRow::as_select(),
            SurveyRow::as_select(),
            contacts::erased_at,
        ))
        .get_result(c))
    .optional()?)
}

/// Notes that the page of an invitation was opened (the first time only; a later opening
/// changes nothing). Not an answer: reports can show opened-but-not-answered.
pub fn mark_opened(conn: &mut DbConnection, id: &str, t: NaiveDateTime) -> Result<(), AppError> {
    super::Cached(
        diesel::update(
            invitations::table
                .find(id)
                .filter(invitations::opened_at.is_null()),
        )
        .set(invitations::opened_at.eq(Some(t))),
    )
    .execute(conn)?;
    Ok(())
}

pub fn find_by_token(
    conn: &mut DbConnection,
    token: &str,
) -> Result<Option<InvitationRow>, AppError> {
    Ok(invitations::table
        .filter(invitations::token.eq(token))
        .select(InvitationRow::as_select())
        .first(conn)
        .optional()?)
}

#[derive(Debug, Default, Clone)]
pub struct InvitationFilter {
    pub survey_id: Option<String>,
    pub contact_id: Option<String>,
    pub status: Option<String>,
}

pub fn list(
    conn: &mut DbConnection,
    filter: &InvitationFilter,
    page: &Page,
) -> Result<Vec<InvitationRow>, AppError> {
    let mut q = invitations::table
        .select(InvitationRow::as_select())
        .order(invitations::id.desc())
        .into_boxed();
    if let Some(v) = &filter.survey_id {
        q = q.filter(invitations::survey_id.eq(v.clone()));
    }
    if let Some(v) = &filter.contact_id {
        q = q.filter(invitations::contact_id.eq(v.clone()));
    }
    if let Some(v) = &filter.status {
        q = q.filter(invitations::status.eq(v.clone()));
    }
    if let Some(c) = &page.cursor {
        q = q.filter(invitations::id.lt(c.clone()));
    }
    Ok(q.limit(page.limit + 1).load(conn)?)
}

/// Cancels a scheduled invitation; anything already on its way or done is a 409.
pub fn cancel(conn: &mut DbConnection, id: &str) -> Result<InvitationRow, AppError> {
    conn.transaction(|conn| {
        let t = now();
        let changed = diesel::update(
            invitations::table
                .find(id)
                .filter(invitations::status.eq("scheduled")),
        )
        .set((
            invitations::status.eq("cancelled"),
            invitations::reason.eq(Some("cancelled_by_api")),
            invitations::updated_at.eq(t),
        ))
        .execute(conn)?;
        let row = get(conn, id)?;
        if changed == 0 && row.status != "cancelled" {
            return Err(AppError::conflict(
                "invitation_not_cancellable",
                format!(
                    "only scheduled invitations can be cancelled; this one is {}",
                    row.status
                ),
            ));
        }
        Ok(row)
    })
}

/// An invitation claimed for sending, with what the email needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub invitation: InvitationRow,
    pub survey: SurveyRow,
    pub contact: ContactRow,
    /// A reminder to a non-responder rather than the first email.
    pub reminder: bool,
}

/// Claims up to `limit` due invitations for worker `me` until `now + lease`: scheduled ones
/// whose time has come, and ones claimed by a worker that died (lease expired). On
/// PostgreSQL the rows are locked with `FOR UPDATE SKIP LOCKED`, so replicas never claim the
/// same invitation; SQLite has one process and one writer. A live worker keeps its claims with
/// `extend` (a heartbeat) and records each outcome with `record_one`.
pub fn claim_due(
    conn: &mut DbConnection,
    limit: i64,
    lease: TimeDelta,
    me: &str,
) -> Result<Vec<Claimed>, AppError> {
    conn.transaction(|conn| {
        let t = now();
        let ids = crate::store::due_queue_ids!(conn, invitations, "scheduled", "sending", limit, t);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        diesel::update(invitations::table.filter(invitations::id.eq_any(&ids)))
            .set((
                invitations::status.eq("sending"),
                invitations::claimed_until.eq(Some(t + lease)),
                invitations::claimed_by.eq(Some(me)),
                invitations::attempts.eq(invitations::attempts + 1),
                invitations::updated_at.eq(t),
            ))
            .execute(conn)?;
        load_claimed(conn, &ids, false)
    })
}

/// Extends the lease of those of `ids` that worker `me` still holds (the heartbeat of a
/// worker that is still sending them). Returns how many it still holds.
pub fn extend(
    conn: &mut DbConnection,
    me: &str,
    ids: &[String],
    until: NaiveDateTime,
) -> Result<usize, AppError> {
    Ok(crate::store::extend_claims!(
        conn,
        invitations,
        "sending",
        me,
        ids,
        until
    )?)
}

/// Hands back, at once, the claims a previous run of this instance (`me`) left behind when it
/// stopped (a crash, kill -9): they become due now instead of when their lease runs out.
/// Returns how many were taken back.
pub fn release_claims_of(conn: &mut DbConnection, me: &str) -> Result<usize, AppError> {
    let t = now();
    Ok(diesel::update(
        invitations::table
            .filter(invitations::status.eq("sending"))
            .filter(invitations::claimed_by.eq(me)),
    )
    .set((
        invitations::status.eq("scheduled"),
        invitations::next_attempt_at.eq(t),
        invitations::claimed_until.eq(None::<NaiveDateTime>),
        invitations::claimed_by.eq(None::<String>),
        invitations::updated_at.eq(t),
    ))
    .execute(conn)?)
}

/// Puts a `failed` or `cancelled` invitation back in the queue (due now, attempts from zero);
/// 409 for any other status.
pub fn retry(conn: &mut DbConnection, id: &str) -> Result<InvitationRow, AppError> {
    conn.transaction(|conn| {
        let t = now();
        let changed = diesel::update(
            invitations::table
                .find(id)
                .filter(invitations::channel.eq("email"))
                .filter(invitations::status.eq_any(["failed", "cancelled"])),
        )
        .set((
            invitations::status.eq("scheduled"),
            invitations::reason.eq(None::<String>),
            invitations::attempts.eq(0),
            invitations::next_attempt_at.eq(t),
            invitations::claimed_until.eq(None::<NaiveDateTime>),
            invitations::claimed_by.eq(None::<String>),
            invitations::updated_at.eq(t),
        ))
        .execute(conn)?;
        let row = get(conn, id)?;
        if changed == 0 {
            let why = if row.channel != "email" {
                "only email invitations can be retried; a link invitation is sent when made"
                    .to_string()
            } else {
                format!(
                    "only failed or cancelled invitations can be retried; this one is {}",
                    row.status
                )
            };
            return Err(AppError::conflict("invitation_not_retryable", why));
        }
        Ok(row)
    })
}

/// The reminders due at `t`, earliest first, with what decides whether each may still go
/// out. It reads the partial index `invitations_remind` (`remind_at`) from its start and stops
/// after `limit` rows, so a poll costs O(batch) however many invitations the table holds
/// (issue 12). Shared by [`claim_reminders`] and the plan check ([`super::plans`]).
macro_rules! reminders_due {
    ($t:expr, $limit:expr) => {{
        use $crate::store::schema::{contacts, invitations, surveys};
        invitations::table
            .inner_join(surveys::table)
            .inner_join(contacts::table)
            .filter(invitations::remind_at.is_not_null())
            .filter(invitations::remind_at.le($t))
            .select((
                invitations::id,
                invitations::status,
                invitations::channel,
                invitations::reminder_sent_at,
                surveys::status,
                contacts::unsubscribed_at,
                contacts::erased_at,
            ))
            .order(invitations::remind_at)
            .limit($limit)
    }};
}
pub(crate) use reminders_due;

type ReminderCandidate = (
    String,
    String,
    String,
    Option<NaiveDateTime>,
    String,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
);

/// Claims email invitations whose one reminder is due (`remind_at`, set when they were sent
/// `reminder_after_days` before) and that are not answered, to send that reminder.
/// `reminder_sent_at` is set at claim time, so a reminder is attempted once. A due row that
/// may no longer be reminded (unsubscribed or erased contact, survey not active) has its
/// `remind_at` cleared, so it is looked at once; resuming the survey sets it again
/// ([`sync_reminders`]).
pub fn claim_reminders(conn: &mut DbConnection, limit: i64) -> Result<Vec<Claimed>, AppError> {
    conn.transaction(|conn| {
        let t = now();
        let candidates: Vec<ReminderCandidate> = reminders_due!(t, limit).load(conn)?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, dropped): (Vec<_>, Vec<_>) = candidates.into_iter().partition(
            |(_, status, channel, reminded, survey_status, unsubscribed, erased)| {
                status == "sent"
                    && channel == "email"
                    && reminded.is_none()
                    && survey_status == "active"
                    && unsubscribed.is_none()
                    && erased.is_none()
            },
        );
        let ids: Vec<String> = ids.into_iter().map(|c| c.0).collect();
        let dropped: Vec<String> = dropped.into_iter().map(|c| c.0).collect();
        if !dropped.is_empty() {
            diesel::update(invitations::table.filter(invitations::id.eq_any(&dropped)))
                .set(invitations::remind_at.eq(None::<NaiveDateTime>))
                .execute(conn)?;
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let changed = diesel::update(
            invitations::table
                .filter(invitations::id.eq_any(&ids))
                .filter(invitations::reminder_sent_at.is_null()),
        )
        .set((
            invitations::reminder_sent_at.eq(Some(t)),
            invitations::remind_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
        if changed != ids.len() {
            // Another replica claimed some of them: take only ours back by retrying later.
            return Err(AppError::conflict("claim_race", "reminder claim raced"));
        }
        load_claimed(conn, &ids, true)
    })
}

/// When a sent invitation of a survey with these settings is to be reminded: `sent_at` plus
/// `reminder_after_days`, while the survey is active; never otherwise.
fn remind_at_for(
    sent_at: NaiveDateTime,
    survey_status: &str,
    reminder_after_days: Option<i32>,
) -> Option<NaiveDateTime> {
    match reminder_after_days {
        Some(days) if survey_status == "active" => Some(sent_at + TimeDelta::days(days as i64)),
        _ => None,
    }
}

/// Recomputes `remind_at` of a survey's sent, unanswered, not yet reminded email invitations
/// from its current `reminder_after_days` and status (after either changed): reminders
/// turned on, moved, turned off, paused or resumed. O(the survey's invitations), run only when
/// those settings change. Returns how many rows were touched.
pub fn sync_reminders(conn: &mut DbConnection, survey_id: &str) -> Result<usize, AppError> {
    use diesel::sql_types::Text;
    let n = match conn {
        DbConnection::Sqlite(c) => diesel::sql_query(
            "UPDATE invitations SET remind_at = (\
                SELECT strftime('%Y-%m-%d %H:%M:%f', invitations.sent_at, \
                    '+' || s.reminder_after_days || ' days') \
                FROM surveys s WHERE s.id = invitations.survey_id \
                AND s.status = 'active' AND s.reminder_after_days IS NOT NULL) \
             WHERE survey_id = ? AND status = 'sent' AND channel = 'email' \
             AND reminder_sent_at IS NULL AND sent_at IS NOT NULL",
        )
        .bind::<Text, _>(survey_id)
        .execute(c)?,
        DbConnection::Postgres(c) => diesel::sql_query(
            "UPDATE invitations i SET remind_at = CASE \
                WHEN s.status = 'active' AND s.reminder_after_days IS NOT NULL \
                THEN i.sent_at + make_interval(days => s.reminder_after_days) END \
             FROM surveys s WHERE s.id = i.survey_id AND i.survey_id = $1 \
             AND i.status = 'sent' AND i.channel = 'email' \
             AND i.reminder_sent_at IS NULL AND i.sent_at IS NOT NULL",
        )
        .bind::<Text, _>(survey_id)
        .execute(c)?,
    };
    Ok(n)
}

fn load_claimed(
    conn: &mut DbConnection,
    ids: &[String],
    reminder: bool,
) -> Result<Vec<Claimed>, AppError> {
    let rows: Vec<(InvitationRow, SurveyRow, ContactRow)> = invitations::table
        .inner_join(surveys::table)
        .inner_join(contacts::table)
        .filter(invitations::id.eq_any(ids))
        .select((
            InvitationRow::as_select(),
            SurveyRow::as_select(),
            ContactRow::as_select(),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(invitation, survey, contact)| Claimed {
            invitation,
            survey,
            contact,
            reminder,
        })
        .collect())
}

/// What happened to one claimed invitation.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent {
        message_id: String,
    },
    /// Not sent, and never will be: `status` is `suppressed`, `cancelled` or `failed`.
    Stopped {
        status: &'static str,
        reason: String,
    },
    /// Try again at the given time.
    Retry {
        at: NaiveDateTime,
        error: String,
    },
    /// The survey is paused: keep it scheduled and look again later.
    Hold {
        until: NaiveDateTime,
    },
    ReminderSent,
    ReminderFailed {
        error: String,
    },
}

/// Records the outcome of one claimed invitation, as soon as it is known (so a crash repeats
/// at most the messages in flight), inside the caller's transaction; its counter increments
/// go to `tally`, which the caller writes last. Only a row that worker `me` still holds
/// (`sending`, claimed by `me`) moves on; reminders need no claim. Returns whether the row
/// moved (false: another worker had taken it over, or a reminder).
pub fn record_one(
    conn: &mut DbConnection,
    me: &str,
    c: &Claimed,
    outcome: &Outcome,
    tally: &mut crate::store::rollups::Tally,
) -> Result<bool, AppError> {
    let t = now();
    let mut moved = false;
    let id = &c.invitation.id;
    let target = invitations::table
        .find(id)
        .filter(invitations::status.eq("sending"))
        .filter(invitations::claimed_by.eq(me));
    match outcome {
        Outcome::Sent { message_id } => {
            // The survey as it is now (its reminder settings may have changed since the
            // claim; `sync_reminders` only sees rows that are already sent).
            let (survey_status, reminder_after_days): (String, Option<i32>) = surveys::table
                .find(&c.survey.id)
                .select((surveys::status, surveys::reminder_after_days))
                .first(conn)?;
            let remind_at = remind_at_for(t, &survey_status, reminder_after_days);
            let changed = diesel::update(target)
                .set((
                    invitations::status.eq("sent"),
                    invitations::sent_at.eq(Some(t)),
                    invitations::remind_at.eq(remind_at),
                    invitations::message_id.eq(Some(message_id)),
                    invitations::claimed_until.eq(None::<NaiveDateTime>),
                    invitations::claimed_by.eq(None::<String>),
                    invitations::last_error.eq(None::<String>),
                    invitations::updated_at.eq(t),
                ))
                .execute(conn)?;
            moved = changed == 1;
            if changed == 1 {
                // The contact counts as surveyed from the moment the email went out.
                diesel::update(contacts::table.find(&c.contact.id))
                    .set(contacts::last_surveyed_at.eq(Some(t)))
                    .execute(conn)?;
                let day = crate::store::rollups::day(t);
                tally.delivery(&c.survey.id, &day, 1, 0);
            }
        }
        Outcome::Stopped { status, reason } => {
            let (reason_col, error_col) = if *status == "failed" {
                (Some("send_failed".to_string()), Some(reason.clone()))
            } else {
                (Some(reason.clone()), None)
            };
            moved = diesel::update(target)
                .set((
                    invitations::status.eq(*status),
                    invitations::reason.eq(reason_col),
                    invitations::last_error.eq(error_col),
                    invitations::claimed_until.eq(None::<NaiveDateTime>),
                    invitations::claimed_by.eq(None::<String>),
                    invitations::updated_at.eq(t),
                ))
                .execute(conn)?
                == 1;
        }
        Outcome::Retry { at, error } => {
            diesel::update(target)
                .set((
                    invitations::status.eq("scheduled"),
                    invitations::next_attempt_at.eq(*at),
                    invitations::last_error.eq(Some(error)),
                    invitations::claimed_until.eq(None::<NaiveDateTime>),
                    invitations::claimed_by.eq(None::<String>),
                    invitations::updated_at.eq(t),
                ))
                .execute(conn)?;
        }
        Outcome::Hold { until } => {
            diesel::update(target)
                .set((
                    invitations::status.eq("scheduled"),
                    invitations::next_attempt_at.eq(*until),
                    // A hold is not an attempt.
                    invitations::attempts.eq(invitations::attempts - 1),
                    invitations::claimed_until.eq(None::<NaiveDateTime>),
                    invitations::claimed_by.eq(None::<String>),
                    invitations::updated_at.eq(t),
                ))
                .execute(conn)?;
        }
        Outcome::ReminderSent => {}
        Outcome::ReminderFailed { error } => {
            diesel::update(invitations::table.find(id))
                .set(invitations::last_error.eq(Some(format!("reminder: {error}"))))
                .execute(conn)?;
        }
    }
    Ok(moved)
}

/// Whether the contact was surveyed by another invitation within `days` before `at`: an
/// email that went out or a link that was handed out (checked again at send time, so two
/// batches made close together do not both go out). Failed, cancelled and suppressed
/// invitations do not count.
pub fn surveyed_elsewhere(
    conn: &mut DbConnection,
    c: &Claimed,
    days: i32,
    at: NaiveDateTime,
) -> Result<bool, AppError> {
    if days <= 0 {
        return Ok(false);
    }
    let since = at - TimeDelta::days(days as i64);
    let count: i64 = invitations::table
        .filter(invitations::contact_id.eq(&c.contact.id))
        .filter(invitations::id.ne(&c.invitation.id))
        .filter(invitations::status.eq_any(["sent", "responded"]))
        .filter(invitations::sent_at.gt(since))
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

/// Whether an older invitation of the same contact is being sent right now (claimed and not
/// yet recorded): the newer one waits for its outcome before it is checked again.
pub fn older_one_in_flight(
    conn: &mut DbConnection,
    c: &Claimed,
    at: NaiveDateTime,
) -> Result<bool, AppError> {
    let count: i64 = invitations::table
        .filter(invitations::contact_id.eq(&c.contact.id))
        .filter(invitations::id.lt(&c.invitation.id))
        .filter(invitations::status.eq("sending"))
        .filter(invitations::claimed_until.gt(at))
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

/// Counts per status (for metrics and the benchmark).
pub fn count_by_status(conn: &mut DbConnection) -> Result<Vec<(String, i64)>, AppError> {
    Ok(invitations::table
        .group_by(invitations::status)
        .select((invitations::status, diesel::dsl::count_star()))
        .load(conn)?)
}

/// Cancels a contact's scheduled invitations with `reason`.
pub fn cancel_scheduled_of_contact(
    conn: &mut DbConnection,
    contact_id: &str,
    reason: &str,
    t: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::update(
        invitations::table
            .filter(invitations::contact_id.eq(contact_id))
            .filter(invitations::status.eq("scheduled")),
    )
    .set((
        invitations::status.eq("cancelled"),
        invitations::reason.eq(Some(reason)),
        invitations::updated_at.eq(t),
    ))
    .execute(conn)?;
    Ok(())
}

/// Invitations of one survey per status.
pub fn count_by_status_of(
    conn: &mut DbConnection,
    survey_id: &str,
) -> Result<Vec<(String, i64)>, AppError> {
    Ok(invitations::table
        .filter(invitations::survey_id.eq(survey_id))
        .group_by(invitations::status)
        .select((invitations::status, diesel::dsl::count_star()))
        .order(invitations::status)
        .load(conn)?)
}

/// The failed sends of a survey with the contact's email, the latest first.
pub fn failed_of(
    conn: &mut DbConnection,
    survey_id: &str,
    limit: i64,
) -> Result<Vec<(InvitationRow, Option<String>)>, AppError> {
    Ok(invitations::table
        .inner_join(contacts::table)
        .filter(invitations::survey_id.eq(survey_id))
        .filter(invitations::status.eq("failed"))
        .order(invitations::updated_at.desc())
        .select((InvitationRow::as_select(), contacts::email))
        .limit(limit)
        .load(conn)?)
}

/// Records an email invitation as sent at `t` without sending anything (the back-dated demo
/// data: nothing may be mailed for it). Rollups are rebuilt afterwards.
pub fn mark_delivered(conn: &mut DbConnection, id: &str, t: NaiveDateTime) -> Result<(), AppError> {
    diesel::update(invitations::table.find(id))
        .set((
            invitations::status.eq("sent"),
            invitations::sent_at.eq(Some(t)),
            invitations::send_at.eq(t),
            invitations::next_attempt_at.eq(t),
            invitations::attempts.eq(1),
            invitations::created_at.eq(t),
            invitations::updated_at.eq(t),
        ))
        .execute(conn)?;
    Ok(())
}

/// The invitation queue for `/metrics`: scheduled rows, how many are due, the oldest due.
pub fn queue_state(
    conn: &mut DbConnection,
    t: NaiveDateTime,
) -> Result<super::QueueState, AppError> {
    Ok(super::queue_state!(conn, invitations, "scheduled", t))
}
