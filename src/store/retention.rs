//! Queries of the retention prune (`RETENTION_DAYS`): each removes one batch of the oldest
//! rows past a cutoff and says how many it removed, so the caller runs short transactions
//! (no long lock) until a batch comes back short. Each query's age condition leads an index
//! (migration `2026-11-28-000501_retention`), so a run reads only what it prunes.
//!
//! Answers, follow-ups, their activity and contacts are never touched here.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{
    emails, idempotency_keys, job_runs, sessions, sign_in_tokens, webhook_attempts,
    webhook_deliveries,
};
use super::DbConnection;
use crate::error::AppError;

/// Empties the bodies of up to `batch` emails sent before `cutoff` (oldest first): the row
/// stays, with its status, recipient, subject, Message-ID and times, so a task page still
/// shows a reply's delivery state. Marks them `pruned_at = t`.
pub fn prune_email_bodies(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    batch: i64,
    t: NaiveDateTime,
) -> Result<usize, AppError> {
    conn.transaction(|conn| {
        let ids: Vec<String> = emails::table
            .filter(emails::pruned_at.is_null())
            // Only a sent email has `sent_at`.
            .filter(emails::sent_at.lt(cutoff))
            .order(emails::sent_at)
            .select(emails::id)
            .limit(batch)
            .load(conn)?;
        if ids.is_empty() {
            return Ok(0);
        }
        Ok(
            diesel::update(emails::table.filter(emails::id.eq_any(&ids)))
                .set((
                    emails::body_text.eq(""),
                    emails::body_html.eq(None::<String>),
                    emails::pruned_at.eq(Some(t)),
                ))
                .execute(conn)?,
        )
    })
}

/// Deletes up to `batch` webhook deliveries delivered before `cutoff` (oldest first) with
/// their attempts. Returns (deliveries, attempts) deleted. Deliveries that failed or still
/// wait stay.
pub fn prune_webhook_deliveries(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    batch: i64,
) -> Result<(usize, usize), AppError> {
    conn.transaction(|conn| {
        let ids: Vec<String> = webhook_deliveries::table
            .filter(webhook_deliveries::delivered_at.lt(cutoff))
            .order(webhook_deliveries::delivered_at)
            .select(webhook_deliveries::id)
            .limit(batch)
            .load(conn)?;
        if ids.is_empty() {
            return Ok((0, 0));
        }
        let attempts = diesel::delete(
            webhook_attempts::table.filter(webhook_attempts::delivery_id.eq_any(&ids)),
        )
        .execute(conn)?;
        let deliveries =
            diesel::delete(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(&ids)))
                .execute(conn)?;
        Ok((deliveries, attempts))
    })
}

/// Deletes up to `batch` sign-in links that expired before `cutoff`.
pub fn prune_sign_in_tokens(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    batch: i64,
) -> Result<usize, AppError> {
    conn.transaction(|conn| {
        let ids: Vec<String> = sign_in_tokens::table
            .filter(sign_in_tokens::expires_at.lt(cutoff))
            .order(sign_in_tokens::expires_at)
            .select(sign_in_tokens::token_hash)
            .limit(batch)
            .load(conn)?;
        Ok(
            diesel::delete(sign_in_tokens::table.filter(sign_in_tokens::token_hash.eq_any(&ids)))
                .execute(conn)?,
        )
    })
}

/// Deletes up to `batch` workspace sessions that expired before `cutoff`.
pub fn prune_sessions(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    batch: i64,
) -> Result<usize, AppError> {
    conn.transaction(|conn| {
        let ids: Vec<String> = sessions::table
            .filter(sessions::expires_at.lt(cutoff))
            .order(sessions::expires_at)
            .select(sessions::id_hash)
            .limit(batch)
            .load(conn)?;
        Ok(diesel::delete(sessions::table.filter(sessions::id_hash.eq_any(&ids))).execute(conn)?)
    })
}

/// Deletes the `Idempotency-Key` records made before `cutoff`, about `batch` at a time
/// (the oldest `batch`, and any made in the same instant as the last of them): a retry
/// after that is a new request.
pub fn prune_idempotency_records(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    batch: i64,
) -> Result<usize, AppError> {
    conn.transaction(|conn| {
        let edge: Option<NaiveDateTime> = idempotency_keys::table
            .filter(idempotency_keys::created_at.lt(cutoff))
            .order(idempotency_keys::created_at)
            .select(idempotency_keys::created_at)
            .offset(batch - 1)
            .first(conn)
            .optional()?;
        let upto = edge.unwrap_or(cutoff);
        Ok(diesel::delete(
            idempotency_keys::table
                .filter(idempotency_keys::created_at.lt(cutoff))
                .filter(idempotency_keys::created_at.le(upto)),
        )
        .execute(conn)?)
    })
}

/// Deletes the `job_runs` rows made before `cutoff` (past days of the daily jobs, one-time
/// confirmation keys of invitation batches), about `batch` at a time as in
/// [`prune_idempotency_records`]. A daily job only ever claims today, so an old day's row
/// is never needed again.
pub fn prune_job_runs(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    batch: i64,
) -> Result<usize, AppError> {
    conn.transaction(|conn| {
        let edge: Option<NaiveDateTime> = job_runs::table
            .filter(job_runs::created_at.lt(cutoff))
            .order(job_runs::created_at)
            .select(job_runs::created_at)
            .offset(batch - 1)
            .first(conn)
            .optional()?;
        let upto = edge.unwrap_or(cutoff);
        Ok(diesel::delete(
            job_runs::table
                .filter(job_runs::created_at.lt(cutoff))
                .filter(job_runs::created_at.le(upto)),
        )
        .execute(conn)?)
    })
}
