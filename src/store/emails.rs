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
}

pub fn enqueue(conn: &mut DbConnection, e: NewEmail<'_>) -> Result<EmailRow, AppError> {
    let t = now();
    let row = EmailRow {
        id: new_id(IdPrefix::Email),
        kind: e.kind.into(),
        to_address: e.to.into(),
        subject: e.subject.into(),
        body_text: e.body_text.into(),
        body_html: None,
        in_reply_to: e.in_reply_to.map(str::to_string),
        followup_id: e.followup_id.map(str::to_string),
        status: "pending".into(),
        attempts: 0,
        next_attempt_at: t,
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

/// Claims due emails for this worker until `now + lease` (see `invitations::claim_due`).
pub fn claim_due(
    conn: &mut DbConnection,
    limit: i64,
    lease: TimeDelta,
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
                emails::attempts.eq(emails::attempts + 1),
            ))
            .execute(conn)?;
        Ok(emails::table
            .filter(emails::id.eq_any(&ids))
            .select(EmailRow::as_select())
            .load(conn)?)
    })
}

/// What happened to one claimed email.
pub enum EmailOutcome {
    Sent { message_id: String },
    Failed { error: String },
    Retry { at: NaiveDateTime, error: String },
}

pub fn record(
    conn: &mut DbConnection,
    outcomes: &[(String, EmailOutcome)],
) -> Result<(), AppError> {
    conn.transaction(|conn| {
        let t = now();
        for (id, outcome) in outcomes {
            let target = emails::table.find(id).filter(emails::status.eq("sending"));
            match outcome {
                EmailOutcome::Sent { message_id } => diesel::update(target)
                    .set((
                        emails::status.eq("sent"),
                        emails::sent_at.eq(Some(t)),
                        emails::message_id.eq(Some(message_id)),
                        emails::claimed_until.eq(None::<NaiveDateTime>),
                        emails::last_error.eq(None::<String>),
                    ))
                    .execute(conn)?,
                EmailOutcome::Failed { error } => diesel::update(target)
                    .set((
                        emails::status.eq("failed"),
                        emails::last_error.eq(Some(error)),
                        emails::claimed_until.eq(None::<NaiveDateTime>),
                    ))
                    .execute(conn)?,
                EmailOutcome::Retry { at, error } => diesel::update(target)
                    .set((
                        emails::status.eq("pending"),
                        emails::next_attempt_at.eq(*at),
                        emails::last_error.eq(Some(error)),
                        emails::claimed_until.eq(None::<NaiveDateTime>),
                    ))
                    .execute(conn)?,
            };
        }
        Ok(())
    })
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
