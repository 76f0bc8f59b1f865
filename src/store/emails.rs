//! The outbox of emails other than survey invitations: follow-up alerts, replies to
//! customers and the overdue digest. Same durability rules as invitations: claimed with a
//! lease, retried with backoff, never lost.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use super::models::EmailRow;
use super::schema::emails;
use super::DbConnection;
use crate::domain::{new_id, now, IdPrefix};
use crate::error::AppError;

/// A message to queue.
pub struct NewEmail<'a> {
    pub kind: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub body_text: &'a str,
    pub in_reply_to: Option<&'a str>,
    pub followup_id: Option<&'a str>,
    /// Sender display name (default: the one in `SMTP_FROM`).
    pub from_name: Option<&'a str>,
    pub reply_to: Option<&'a str>,
    /// An HTML alternative to `body_text`.
    pub body_html: Option<&'a str>,
    /// When to send it (default: now).
    pub send_at: Option<NaiveDateTime>,
}

pub fn enqueue(conn: &mut DbConnection, e: NewEmail<'_>) -> Result<EmailRow, AppError> {
    let t = now();
    let row = EmailRow {
        id: new_id(IdPrefix::Email),
        kind: e.kind.into(),
        to_address: e.to.into(),
        subject: e.subject.into(),
        body_text: e.body_text.into(),
        body_html: e.body_html.map(str::to_string),
        in_reply_to: e.in_reply_to.map(str::to_string),
        followup_id: e.followup_id.map(str::to_string),
        status: "pending".into(),
        attempts: 0,
        next_attempt_at: e.send_at.unwrap_or(t),
        claimed_until: None,
        last_error: None,
        message_id: None,
        sent_at: None,
        created_at: t,
        from_name: e.from_name.map(str::to_string),
        reply_to: e.reply_to.map(str::to_string),
    };
    diesel::insert_into(emails::table)
        .values(&row)
        .execute(conn)?;
    Ok(row)
}

/// Claims due emails for worker `me` until `now + lease` (see `invitations::claim_due`).
pub fn claim_due(
    conn: &mut DbConnection,
    limit: i64,
    lease: TimeDelta,
    me: &str,
) -> Result<Vec<EmailRow>, AppError> {
    conn.transaction(|conn| {
        let t = now();
        let ids = crate::store::due_queue_ids!(conn, emails, "pending", "sending", limit, t);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        diesel::update(emails::table.filter(emails::id.eq_any(&ids)))
            .set((
                emails::status.eq("sending"),
                emails::claimed_until.eq(Some(t + lease)),
                emails::claimed_by.eq(Some(me)),
                emails::attempts.eq(emails::attempts + 1),
            ))
            .execute(conn)?;
        Ok(emails::table
            .filter(emails::id.eq_any(&ids))
            .select(EmailRow::as_select())
            .load(conn)?)
    })
}

/// Extends the lease of those of `ids` that worker `me` still holds (its heartbeat).
pub fn extend(
    conn: &mut DbConnection,
    me: &str,
    ids: &[String],
    until: NaiveDateTime,
) -> Result<usize, AppError> {
    Ok(crate::store::extend_claims!(
        conn, emails, "sending", me, ids, until
    )?)
}

/// Hands back at once the claims a previous run of instance `me` left behind.
pub fn release_claims_of(conn: &mut DbConnection, me: &str) -> Result<usize, AppError> {
    let t = now();
    Ok(diesel::update(
        emails::table
            .filter(emails::status.eq("sending"))
            .filter(emails::claimed_by.eq(me)),
    )
    .set((
        emails::status.eq("pending"),
        emails::next_attempt_at.eq(t),
        emails::claimed_until.eq(None::<NaiveDateTime>),
        emails::claimed_by.eq(None::<String>),
    ))
    .execute(conn)?)
}

/// Rewrites a claimed email's content just before it is sent (an alert shows the answer as
/// it stands then).
pub fn set_content(
    conn: &mut DbConnection,
    id: &str,
    subject: &str,
    body_text: &str,
    body_html: Option<&str>,
) -> Result<(), AppError> {
    diesel::update(emails::table.find(id))
        .set((
            emails::subject.eq(subject),
            emails::body_text.eq(body_text),
            emails::body_html.eq(body_html),
        ))
        .execute(conn)?;
    Ok(())
}

/// Whether an alert about `followup_id` is still waiting to go out.
pub fn alert_pending(conn: &mut DbConnection, followup_id: &str) -> Result<bool, AppError> {
    let n: i64 = emails::table
        .filter(emails::followup_id.eq(followup_id))
        .filter(emails::kind.eq("followup_alert"))
        .filter(emails::status.eq_any(["pending", "sending"]))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// What happened to one claimed email.
pub enum EmailOutcome {
    Sent {
        message_id: String,
    },
    Failed {
        error: String,
    },
    Retry {
        at: NaiveDateTime,
        error: String,
    },
    /// Not sent and never will be (an alert whose task was closed before it was due).
    Cancelled {
        reason: String,
    },
}

/// Records the outcome of one claimed email in its own transaction, as soon as it is known;
/// only if worker `me` still holds it.
pub fn record_one(
    conn: &mut DbConnection,
    me: &str,
    id: &str,
    outcome: &EmailOutcome,
) -> Result<(), AppError> {
    let t = now();
    let target = emails::table
        .find(id)
        .filter(emails::status.eq("sending"))
        .filter(emails::claimed_by.eq(me));
    match outcome {
        EmailOutcome::Sent { message_id } => diesel::update(target)
            .set((
                emails::status.eq("sent"),
                emails::sent_at.eq(Some(t)),
                emails::message_id.eq(Some(message_id)),
                emails::claimed_until.eq(None::<NaiveDateTime>),
                emails::claimed_by.eq(None::<String>),
                emails::last_error.eq(None::<String>),
            ))
            .execute(conn)?,
        EmailOutcome::Failed { error } => diesel::update(target)
            .set((
                emails::status.eq("failed"),
                emails::last_error.eq(Some(error)),
                emails::claimed_until.eq(None::<NaiveDateTime>),
                emails::claimed_by.eq(None::<String>),
            ))
            .execute(conn)?,
        EmailOutcome::Retry { at, error } => diesel::update(target)
            .set((
                emails::status.eq("pending"),
                emails::next_attempt_at.eq(*at),
                emails::last_error.eq(Some(error)),
                emails::claimed_until.eq(None::<NaiveDateTime>),
                emails::claimed_by.eq(None::<String>),
            ))
            .execute(conn)?,
        EmailOutcome::Cancelled { reason } => diesel::update(target)
            .set((
                emails::status.eq("cancelled"),
                emails::last_error.eq(Some(reason)),
                emails::claimed_until.eq(None::<NaiveDateTime>),
                emails::claimed_by.eq(None::<String>),
            ))
            .execute(conn)?,
    };
    Ok(())
}

pub fn for_followup(conn: &mut DbConnection, followup_id: &str) -> Result<Vec<EmailRow>, AppError> {
    Ok(emails::table
        .filter(emails::followup_id.eq(followup_id))
        .order(emails::id)
        .select(EmailRow::as_select())
        .load(conn)?)
}

/// Drops the pending emails to `address` and blanks every email sent to it.
pub fn erase_address(conn: &mut DbConnection, address: &str) -> Result<(), AppError> {
    diesel::update(
        emails::table
            .filter(emails::to_address.eq(address))
            .filter(emails::status.eq("pending")),
    )
    .set((
        emails::status.eq("failed"),
        emails::last_error.eq(Some("contact_erased")),
    ))
    .execute(conn)?;
    diesel::update(emails::table.filter(emails::to_address.eq(address)))
        .set((
            emails::to_address.eq("erased"),
            emails::subject.eq("[erased]"),
            emails::body_text.eq(""),
            emails::body_html.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// The email outbox queue for `/metrics`: pending rows, how many are due, the oldest due.
pub fn queue_state(
    conn: &mut DbConnection,
    t: NaiveDateTime,
) -> Result<super::QueueState, AppError> {
    Ok(super::queue_state!(conn, emails, "pending", t))
}
